"""Render the README's Results block from the `eapo compare` JSON in benchmarks/results/.

Every number in the block is read from those files (`compare.json` / `sensitivity.json` as the commands
wrote them, copied here under the names in EXPERIMENTS); `tests/benchmarks/test_results_section.py` checks
that README.md and this rendering agree. `python benchmarks/results_section.py` rewrites the block,
`--check` only compares.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bench_utils as bu
from bench_utils import REPO_ROOT, RESULTS_DIR

README = REPO_ROOT / "README.md"
START = "<!-- results:start -->"
END = "<!-- results:end -->"
HIGH_ENTROPY = ("PHR", "NHR")


@dataclass(frozen=True)
class Experiment:
    file: str
    title: str
    focus: str = "eapo"
    baseline: str | None = None  # an `eapo eval --output` JSON of the starting model, same final evaluation
    figures: tuple[str, ...] = ()  # PNGs the command drew, copied next to the JSON
    context: str = ""  # how the setting was chosen, said before the table
    pending: str = ""  # the command that writes the file, for a grid still running: left out until it lands
    reading: str = ""  # what the numbers say on this setting, after the table (shaping sections)


SMOLLM2_SETTING = (
    "SmolLM2-135M-Instruct after its format warm-up, reasoning-gym basic_arithmetic with 3 one-digit terms "
    "(+ and −, worked steps, strict `<answer>` tag), 8 prompts x 8 samples a step at T = 1.4 / top-p 0.95, "
    "4 mini-batch updates per rollout, held-out Avg@8 every 20 steps on 200 problems at T = 0.6, one torch "
    "thread per run; the grids in fp32 on any machine (pinned on 2026-12-01), the pilot in bf16 autocast on "
    "a CPU with AVX512-BF16 (dtype auto, before the pin)"
)
EXPERIMENTS = (
    Experiment(
        "smollm2_study_state.json",
        "SmolLM2-135M-Instruct, issue #19: where the study stands",
        context="The study's grids run in the issue's budget order, resumable, two runs side by side. A "
        "comparison enters these Results when its grid has finished; until then this section says how far "
        "it is, and no partial grid is read as a verdict. A run serves every part that names it (the GRPO "
        "and EAPO runs of seeds 100-102 are also the isolate grid's full-GRPO arm, EAPO-without's full "
        "EAPO arm, the exploratory arms' and the controls' references, and the controls' EAPO α = 0 arm, "
        "which is GRPO bit for bit), so it counts in each.",
    ),
    Experiment(
        "compare_smollm2_headline.json",
        "SmolLM2-135M-Instruct, issue #19's headline: EAPO against GRPO",
        figures=(
            "compare_smollm2_headline_paired.png",
            "compare_smollm2_headline_accuracy.png",
            "compare_smollm2_headline_entropy.png",
        ),
        context=f"The study's setting (`configs/smollm2_study.yaml`): {SMOLLM2_SETTING}. EAPO at the paper's "
        "α = 0.2, φ = 2 against GRPO, seeds 100-107 (disjoint from the pilot's), the learning rate and the "
        "horizon the GRPO pilot fixed (below), the primary metric stated before the grid ran.",
        pending="bash benchmarks/smollm2_study.sh headline",
    ),
    Experiment(
        "compare_smollm2_exploratory.json",
        "SmolLM2-135M-Instruct, issue #19's exploratory arms: DAPO, Forking and EntroAdv",
        figures=("compare_smollm2_exploratory_paired.png", "compare_smollm2_exploratory_entropy.png"),
        context=f"The headline's setting ({SMOLLM2_SETTING}), seeds 100-102; exploratory: no claim rests on "
        "these arms, and three seeds detect only large differences.",
        pending="bash benchmarks/smollm2_study.sh exploratory",
    ),
    Experiment(
        "compare_smollm2_pilot.json",
        "SmolLM2-135M-Instruct, issue #19's study: the entropy gate and the GRPO pilot",
        figures=("compare_smollm2_pilot_curves.png",),
        context=f"The study's setting (`configs/smollm2_study.yaml`): {SMOLLM2_SETTING}. The pilot is GRPO "
        "only: it fixes the learning rate, the horizon and the seed-to-seed spread before EAPO runs; each "
        "rule below was written into `benchmarks/smollm2_study.sh` before the "
        "data it decides on existed.",
    ),
    Experiment(
        "smollm2_complex_warmup.json",
        "SmolLM2-135M-Instruct, issue #19's second task (complex_arithmetic): the entropy gate",
        context="The second task (`configs/smollm2_complex.yaml`): reasoning-gym complex_arithmetic, + and − "
        'of two complex numbers with whole parts 1-9, answered "a + bi" in a strict `<answer>` tag; '
        "the reward is 1 only for the exact number (both parts). Everything else is the primary study's "
        "setting. Its grid (`bash benchmarks/smollm2_study.sh complex_headline`: EAPO vs GRPO, 4 seeds, "
        "the primary pilot's learning rate and horizon, the same primary metric; rule fixed before any run "
        "of it) comes last in the issue's order and has not reported yet: this section shows the gate it "
        "passed.",
    ),
    Experiment(
        "compare_smollm2_complex_headline.json",
        "SmolLM2-135M-Instruct, issue #19's second task: EAPO against GRPO on complex_arithmetic",
        figures=(
            "compare_smollm2_complex_headline_paired.png",
            "compare_smollm2_complex_headline_entropy.png",
        ),
        context="The second task (`configs/smollm2_complex.yaml`, its gate above), seeds 100-103, the "
        "primary pilot's learning rate and horizon, the same primary metric (rule fixed before any run).",
        pending="bash benchmarks/smollm2_study.sh complex_headline",
    ),
    Experiment(
        "eapo_shaping_smollm2.json",
        "SmolLM2-135M-Instruct: how far EAPO's entropy term moves token advantages",
        context=", the headline's seed 100 (180 steps, a rollout dump every 10 steps)",
    ),
    Experiment(
        "compare_tiny_60steps.json",
        "Tiny default: all eleven algorithms",
        figures=("compare_tiny_60steps_paired.png", "compare_tiny_60steps_entropy.png"),
        context="Measured on 2026-12-01 with the tiny default as it is now: 4 mini-batch updates per rollout "
        "(the paper's schedule, since 2026-11-30) and Dr. GRPO's fixed normaliser (the generation budget, "
        "since 2026-12-01). The table published before was of a one-update default, with Dr. GRPO "
        "normalising by the step's widest response.",
    ),
    Experiment(
        "sensitivity_tiny.json",
        "Tiny default: EAPO's α and φ (PAPER.md Table 9)",
        figures=("sensitivity_tiny_paired.png",),
    ),
    Experiment(
        "compare_smollm2_chain_sum.json",
        "SmolLM2-135M-Instruct on chain_sum (two one-digit terms)",
        baseline="smollm2_chain_sum_base_eval.json",
        context="Full fine-tuning in fp32, no LoRA: this CPU has no bf16 matrix units (bf16 is emulated "
        "and slower than fp32), and LoRA would shorten only the backward pass, not the rollout or the "
        "forward passes. A step of 2 prompts x 8 responses took 45-90 s on one core, so the budget is a "
        "smoke-scale one: 6 steps per run, 12 runs in one working session. It shows the path works on a "
        "real pretrained model and how large seed-to-seed differences are at this budget; it is too small "
        "to rank the algorithms with confidence. It ran on 2026-11-25 with one update per rollout; "
        "`configs/smollm2_chain_sum.yaml` has made 2 since 2026-11-30 (the paper's schedule), so "
        "`bash benchmarks/experiments.sh smollm2` trains a different schedule. Issue #19's study (above) "
        "replaces it.",
    ),
    Experiment(
        "eapo_shaping_tiny.json",
        "Why EAPO and GRPO are so close on the tiny task",
        context=" of the 60-step grid",
        reading="On this task EAPO is close to GRPO with the deterministic majority's step shrunk by a few "
        "percent and the rare forking tokens' step raised by at most α/φ, which is small next to the "
        "seed-to-seed spread above.",
    ),
)


def load_experiments(results_dir: Path = RESULTS_DIR) -> dict[str, dict[str, Any]]:
    """file name -> its JSON, for the EXPERIMENTS (and their baselines) that have a file."""
    names = [e.file for e in EXPERIMENTS] + [e.baseline for e in EXPERIMENTS if e.baseline]
    return {n: json.loads((results_dir / n).read_text()) for n in names if (results_dir / n).is_file()}


def fmt_interval(data: dict[str, Any] | None, digits: int = 3) -> str:
    """`0.412 [0.380, 0.444]` from an interval's JSON, `–` when absent."""
    if not data:
        return "–"
    mean = f"{data['mean']:.{digits}f}"
    if data.get("low") is None or data.get("high") is None:
        return mean
    return f"{mean} [{data['low']:.{digits}f}, {data['high']:.{digits}f}]"


def _metric(report: dict[str, Any]) -> tuple[str, int]:
    """The final held-out Avg@n the paired statistics use, and n."""
    n = next(iter(report["arms"].values()))["final_samples"]
    return f"avg@{n}", n


def _setup_lines(report: dict[str, Any]) -> list[str]:
    s = report["settings"]
    final = s["final_eval"]
    machine = report.get("machine")
    lines = [
        f"- Command: `{report['command']}`",
        f"- {s['steps']} RL steps per run, seeds {', '.join(map(str, s['seeds']))}, config: {s['config']}, "
        f"initial weights: {s['init']} (the tiny model's warm-up; a pretrained model always starts from its "
        "own weights); every arm sees the same data order and rollout budget.",
        f"- Final held-out evaluation: {final['samples']} samples on each of {final['problems']} held-out "
        "problems at the config's eval sampling (T = 0.6, top-p 0.95); intervals: "
        f"{s['intervals']}; paired: {s['paired']}.",
    ]
    if machine:
        lines.append(
            f"- Machine: {bu.cpu_kind(machine)}, {machine['usable_cpus']} CPU cores, "
            f"{machine['torch_threads']} torch thread per process, torch {machine['torch']}, "
            f"{'CUDA ' + machine['cuda'] if machine.get('cuda') else 'no GPU, fp32'}."
        )
    return lines


def _high_entropy_share(arm: dict[str, Any], last: int = 10) -> float | None:
    """Mean share of tokens in the high-entropy quadrants (PHR + NHR) over the last `last` logged steps."""
    shares = arm.get("quadrant_shares", {})
    if not all(q in shares for q in HIGH_ENTROPY):
        return None
    values = [sum(v) for v in zip(*(shares[q]["mean"][-last:] for q in HIGH_ENTROPY), strict=True)]
    return sum(values) / len(values) if values else None


def render_compare(
    report: dict[str, Any], experiment: Experiment, baseline: dict[str, Any] | None = None
) -> list[str]:
    metric, n = _metric(report)
    arms, focus = report["arms"], experiment.focus
    target = report["settings"].get("target")
    paired = {p["reference"]: p for p in report["paired"].get(metric, []) if p["arm"] == focus}
    rows = []
    for name, arm in sorted(arms.items(), key=lambda kv: -kv[1]["final"][metric]["mean"]):
        p = paired.get(name)
        verdict = "–" if name == focus or p is None else _verdict(p)
        share = _high_entropy_share(arm)
        rows.append(
            [
                f"**{name}**" if name == focus else name,
                fmt_interval(arm["final"][metric]),
                fmt_interval(arm["final"].get(f"pass@{n}")),
                fmt_interval(p["interval"]) if p else "–",
                fmt_interval(p.get("t_interval")) if p else "–",
                verdict,
                fmt_interval(arm.get("final_entropy")),
                "–" if share is None else f"{share:.3f}",
                _steps_to_target(arm.get("steps_to_target")),
                str(len(arm["seeds"])),
            ]
        )
    lines = [f"### {experiment.title}", ""]
    if experiment.context:
        lines += [experiment.context, ""]
    lines += [*_setup_lines(report), ""]
    prestated = report.get("prestated") or {}
    if prestated.get("primary", {}).get("tests"):
        lines += [*_primary_lines(prestated), ""]
    first = next(iter(arms.values()))
    start, start_key = first.get("start", {}), f"avg@{first['eval_k']}"
    if baseline is not None:
        n_base = baseline["samples_per_problem"]
        lines += [
            f"The starting model under the same final evaluation ({baseline['num_problems']} problems x "
            f"{n_base} samples, T = {baseline['temperature']:g}; `eapo eval`, "
            f"`benchmarks/results/{experiment.baseline}`): Avg@{n_base} {baseline[f'avg@{n_base}']:.3f}, "
            f"Pass@{n_base} {baseline[f'pass@{n_base}']:.3f}.",
            "",
        ]
    elif start_key in start:
        lines += [
            f"Held-out {start_key.replace('avg', 'Avg')} of the starting model (step 0, in-training "
            f"evaluation): {fmt_interval(start[start_key])}.",
            "",
        ]
    lines += bu.markdown_table(
        [
            "algorithm",
            f"held-out Avg@{n}",
            f"Pass@{n}",
            f"{focus} − algorithm (paired bootstrap 95%)",
            "paired t 95%",
            f"{focus} vs algorithm",
            "final entropy (nats)",
            "high-entropy share of tokens",
            f"steps to {target}" if target is not None else "steps to target",
            "seeds",
        ],
        rows,
    )
    lines += ["", _claims(paired, focus, secondary=bool(prestated.get("primary", {}).get("tests")))]
    if prestated.get("primary", {}).get("tests"):
        lines += ["", *_secondary_lines(prestated)]
    twins = _identical_arms(report)
    if twins:
        lines += [
            "",
            "Identical run for run (the same final score and the same number of generated tokens on every "
            "seed): " + "; ".join(" = ".join(group) for group in twins) + ".",
        ]
    return lines


def _primary_lines(prestated: dict[str, Any]) -> list[str]:
    """The grid's verdict: its primary metric, stated before it ran, tested alone (analysis.prestated)."""
    from eapo.analysis.prestated import tests_table

    primary = prestated["primary"]
    return [
        f"**Primary metric, stated before the grid: {primary['label']}.** The verdict is read from it alone: "
        f"{primary['family']}, at α = {primary['alpha']} on the Holm-adjusted p "
        f"({prestated['bootstrap']['how']}).",
        "",
        *tests_table(primary["tests"], with_metric=False),
        "",
        *(_primary_verdict(t) for t in primary["tests"] if t["reference"] == "grpo"),
        "The table below and the tests after it are secondary.",
    ]


def _primary_verdict(test: dict[str, Any]) -> str:
    arm = test["arm"]
    if test["verdict"] == f"{arm} better":
        return f"**{arm} beats GRPO on the primary metric.**"
    if test["verdict"] == "grpo better":
        return f"**GRPO beats {arm} on the primary metric.**"
    return f"**{arm} does not beat GRPO here:** no difference shown on the primary metric."


def _secondary_lines(prestated: dict[str, Any]) -> list[str]:
    """The pre-stated secondaries (one Holm family) and the power of the primary comparison."""
    from eapo.analysis.power import format_power
    from eapo.analysis.prestated import tests_table

    secondary = prestated["secondary"]
    return [
        f"**Secondary metrics** ({secondary['family']}):",
        "",
        *tests_table(secondary["tests"], with_metric=True),
        "",
        format_power(prestated["power"]).rstrip(),
    ]


def _identical_arms(report: dict[str, Any]) -> list[list[str]]:
    """Groups of arms whose runs are the same on every seed (final Avg and tokens generated)."""
    groups: dict[tuple[Any, ...], list[str]] = {}
    for name, runs in report.get("runs", {}).items():
        key = tuple((r["seed"], r["final_avg"], r["tokens_generated"]) for r in runs)
        if key and all(r["final_avg"] is not None for r in runs):
            groups.setdefault(key, []).append(name)
    return [names for names in groups.values() if len(names) > 1]


def _steps_to_target(data: dict[str, Any] | None) -> str:
    """`20 (4/5)`: mean steps over the seeds that reached the target in-training accuracy, and how many."""
    if not data or data.get("of") is None:
        return "–"
    mean = data.get("mean_over_reached")
    return f"{mean:.0f} ({data['reached']}/{data['of']})" if mean is not None else f"– (0/{data['of']})"


def _verdict(p: dict[str, Any]) -> str:
    if p["beats"]:
        return "better"
    if p["worse"]:
        return "worse"
    return "no difference shown"


def _excludes_zero(interval: dict[str, Any] | None) -> bool:
    if not interval or interval.get("low") is None or interval.get("high") is None:
        return False
    return bool(interval["low"] > 0 or interval["high"] < 0)


def _claims(paired: dict[str, dict[str, Any]], focus: str, secondary: bool = False) -> str:
    """The claims the paired final scores support. In a grid with a pre-stated primary metric they are
    secondary: the bold verdict against GRPO is then the primary's (`_primary_lines`), not this one."""
    better = [r for r, p in paired.items() if p["beats"]]
    worse = [r for r, p in paired.items() if p["worse"]]
    level = [r for r in paired if r not in better and r not in worse]
    parts = [f"{focus} beats {', '.join(better) if better else 'no algorithm'}"]
    if worse:
        parts.append(f"is worse than {', '.join(worse)}")
    if level:
        parts.append(f"cannot be told apart from {', '.join(level)} (the interval contains 0)")
    head = "Secondary claims on the final score" if secondary else "Claims"
    text = f"{head} (only where the paired bootstrap interval excludes 0): " + "; ".join(parts) + "."
    fragile = [r for r in better + worse if not _excludes_zero(paired[r].get("t_interval"))]
    if fragile:
        text += (
            f" With few seeds the percentile bootstrap is narrow; the paired t-interval still contains 0 for "
            f"{', '.join(fragile)}, so read those claims as weak."
        )
    if "grpo" in paired and not paired["grpo"]["beats"] and not secondary:
        text += f" **{focus} does not beat GRPO here.**"
    return text


def render_sensitivity(report: dict[str, Any], experiment: Experiment) -> list[str]:
    metric, n = _metric(report)
    val_metric = f"validation {metric}"
    by_val = {p["arm"]: p for p in report["paired"].get(val_metric, [])}
    by_avg = {p["arm"]: p for p in report["paired"].get(metric, [])}
    chosen, default = report["chosen_on_validation"], report["default"]
    rows = []
    for name, arm in report["arms"].items():
        if "final" not in arm:
            continue
        mark = " (chosen)" if name == chosen else " (default)" if name == default else ""
        rows.append(
            [
                f"{name}{mark}",
                fmt_interval(arm.get("validation", {}).get(metric)),
                fmt_interval(by_val[name]["interval"]) if name in by_val else "–",
                fmt_interval(arm["final"][metric]),
                fmt_interval(by_avg[name]["interval"]) if name in by_avg else "–",
                fmt_interval(by_avg[name].get("t_interval")) if name in by_avg else "–",
            ]
        )
    val = report["validation"]
    lines = [f"### {experiment.title}", "", *_setup_lines(report)]
    lines += [
        f"- Chosen on a validation split of {val['num_problems']} problems ({val['how']}), then reported on "
        "held-out.",
        "",
    ]
    lines += bu.markdown_table(
        [
            "setting",
            f"validation Avg@{n}",
            "− default, validation",
            f"held-out Avg@{n}",
            "− default, held-out (bootstrap)",
            "− default, held-out (paired t)",
        ],
        rows,
    )
    held = (report["held_out_of_chosen"] or {}).get(metric)
    lines += [
        "",
        f"Chosen on validation: **{chosen}**, held-out Avg@{n} {fmt_interval(held)}. With "
        f"{len(report['settings']['seeds'])} seeds a percentile bootstrap of the mean has only a handful of "
        "distinct resamples and is too narrow; where it and the paired t-interval disagree, the difference "
        "is not established.",
    ]
    return lines


def render_shaping(report: dict[str, Any], experiment: Experiment) -> list[str]:
    """How far EAPO's term moved advantages (benchmarks/eapo_shaping.py), per quadrant."""
    b, everything = report["bound"], report["all"]
    rows = []
    for name, stats in [("all", {"share": 1.0, **everything}), *report["quadrants"].items()]:
        if not stats.get("tokens"):
            continue
        q = stats["factor_quantiles"]
        rows.append(
            [
                name,
                str(stats["tokens"]),
                f"{stats['share']:.3f}",
                f"{stats['entropy_mean']:.3f}",
                f"{q['0.1']:.3f} / {q['0.5']:.3f} / {q['0.9']:.3f}",
                f"{stats['at_lower_bound']:.3f}",
                f"{stats['at_upper_bound']:.3f}",
            ]
        )
    high = sum(report["quadrants"][q]["share"] for q in HIGH_ENTROPY)
    lines = [
        f"### {experiment.title}",
        "",
        f"EAPO multiplies each token's |Â| by a factor within [1 − α/φ, 1 + α/φ] = [{1 - b:g}, {1 + b:g}]. "
        f"Measured on {everything['tokens']} tokens with Â ≠ 0 in {report['dumps']} rollout dumps of "
        f"{len(report['runs'])} EAPO run{'s' if len(report['runs']) > 1 else ''}{experiment.context}; "
        f"command `{report['command']}`:",
        "",
    ]
    lines += bu.markdown_table(
        [
            "quadrant",
            "tokens",
            "share",
            "mean entropy (nats)",
            "factor Â^CA / Â: p10 / p50 / p90",
            f"at {1 - b:g}",
            f"at {1 + b:g}",
        ],
        rows,
    )
    lower, upper = everything["at_lower_bound"], everything["at_upper_bound"]
    clipped = (
        f" Eq. 6's clip binds for most tokens, so EAPO acts close to a two-level reweighting of GRPO: "
        f"×{1 - b:g} below the group's mean entropy, ×{1 + b:g} above it."
        if lower + upper > 0.5
        else ""
    )
    lines += [
        "",
        f"{high:.3f} of the tokens with Â ≠ 0 are in the high-entropy quadrants (above their group's mean "
        f"entropy). The median token's factor is {everything['factor_quantiles']['0.5']:.3f}; the factor "
        f"sits at a bound for {lower + upper:.3f} of the tokens ({lower:.3f} at {1 - b:g}, {upper:.3f} at "
        f"{1 + b:g}).{clipped}",
    ]
    if experiment.reading:
        lines += ["", experiment.reading]
    return lines


def _cpu_machine(machine: dict[str, Any]) -> str:
    """`AMD EPYC, 2 CPU cores, torch 2.13.0+cpu, bf16 units`: what the SmolLM2 study's speed depends on."""
    units = "bf16 units" if machine.get("cpu_fast_bf16") else "no bf16 units"
    return f"{machine['cpu']}, {machine['usable_cpus']} CPU cores, torch {machine['torch']}, {units}"


GATE_MEASURES = {
    "mean_entropy_nats": "mean token entropy (nats)",
    "share_above_group_mean": "tokens above their group's mean entropy",
    "base_avg": "base Avg@8 (strict)",
}


def gate_table(validation: dict[str, Any], train: dict[str, Any], source: str) -> list[str]:
    """Issue #19's entropy gate on the warmed-up model: each measure, its band, and whether it is met on
    validation and on train problems (`benchmarks/smollm2_arith_warmup.py`'s gate_after_warmup*)."""
    lines = [
        "**Entropy gate** (issue #19; the warmed-up model, 64 problems x 8 at T = 1.4; "
        f"`benchmarks/results/{source}`):",
        "",
        "| measure | band | validation problems | train problems |",
        "| --- | --- | --- | --- |",
    ]
    for key, name in GATE_MEASURES.items():
        val, tr = validation[key], train[key]
        band = f"{val['range'][0]:g}-{val['range'][1]:g}"
        cells = [f"{d['value']:.3f} ({'in' if d['met'] else 'OUT'})" for d in (val, tr)]
        lines.append(f"| {name} | {band} | {cells[0]} | {cells[1]} |")
    return lines


def render_gate(report: dict[str, Any], experiment: Experiment) -> list[str]:
    """A task whose gate is measured and whose grid has not reported yet: the gate and the warm-up."""
    summary, after = report["summary"], report["phases"]["after"]
    warmup = summary["warmup"]
    return [
        f"### {experiment.title}",
        "",
        experiment.context,
        "",
        f"- Command: `bash benchmarks/smollm2_study.sh gate_complex` (it runs `{report['command']}` with "
        f"`--config {report['config']}`); machine: {_cpu_machine(after['machine'])}.",
        f"- Format warm-up: {warmup['steps']} steps ({warmup['seconds']:.0f} s), format rate "
        f"{warmup['format_rate']:.3f} on its stop-rule sample; after it, on {after['problems']} validation "
        f"problems x {after['samples_per_problem']}: strict format rate {after['strict_format_rate']:.3f}, "
        f"{after['mean_response_tokens']:.1f} response tokens on average.",
        "",
        *gate_table(summary["gate_after_warmup"], summary["gate_after_warmup_train_split"], experiment.file),
    ]


def render_pilot(report: dict[str, Any], experiment: Experiment) -> list[str]:
    from eapo.analysis.power import format_power

    lines = [
        f"### {experiment.title}",
        "",
        experiment.context,
        "",
        f"- Command: `{report['command']}`; machine: {_cpu_machine(report['machine'])}.",
        "",
        *gate_table(report["gate"]["validation"], report["gate"]["train"], report["gate"]["source"]),
    ]
    screen = report["screen"]
    lines += [
        "",
        f"**Learning-rate screen** (seed 0 of each rate to step {screen['step']}; the rates within "
        f"{screen['margin']:g} of the best area under the held-out Avg@8 curve over steps 0-{screen['step']} "
        "go on to 250 steps and a second seed):",
        "",
        "| learning rate | AUC, steps 0-100 | decision |",
        "| --- | --- | --- |",
    ]
    for rate, auc in screen["auc"].items():
        if not screen["decided"]:
            decision = "undecided"
        else:
            decision = "continues" if rate in screen["continue"] else "screened out"
        lines.append(f"| {rate} | {'–' if auc is None else f'{auc:.3f}'} | {decision} |")
    horizon = report["horizon"]
    lines += [
        "",
        "**Pilot runs** (held-out Avg@8 during training; final: Avg@16 and Pass@16 on the 200 problems at "
        "the run's last step):",
        "",
        f"| learning rate | seed | steps | Avg@8 at 0 | Avg@8 at {horizon['horizon']} | last Avg@8 | "
        "final Avg@16 | final Pass@16 | rollout entropy (nats): first → last 10 steps |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in report["runs"]:
        curve = {p["step"]: p["avg@8"] for p in run["eval_curve"]}
        at_h = f"{curve[horizon['horizon']]:.3f}" if horizon["horizon"] in curve else "–"
        last = run["eval_curve"][-1]
        final = run["final_eval"]
        finals = [f"{final['avg']:.3f}", f"{final['pass']:.3f}"] if final else ["–", "–"]
        entropies = [e for _, e in run["entropy_curve"]]
        drift = (
            f"{sum(entropies[:10]) / 10:.3f} → {sum(entropies[-10:]) / 10:.3f}"
            if len(entropies) >= 10
            else "–"
        )
        lines.append(
            f"| {run['rate']} | {run['seed']} | {run['last_step']} | {curve[0]:.3f} | {at_h} | "
            f"{last['avg@8']:.3f} (step {last['step']}) | {finals[0]} | {finals[1]} | {drift} |"
        )
    lines += [
        "",
        f"**Horizon: {horizon['horizon']} steps.** The rule: the first evaluated step at which the mean of "
        f"the lr {horizon['rate']} curves reaches {horizon['share']:.0%} of their gain from step 0 "
        f"({horizon['start']:.3f}) to the end ({horizon['end']:.3f}, the mean of the evaluations at steps "
        f"{' and '.join(map(str, horizon['end_steps']))}): threshold {horizon['threshold']:.3f}. Every grid "
        "of the study trains this many steps.",
        "",
        "**Minimum detectable effect of the headline** (EAPO − GRPO on its primary metric, the AUC of "
        "held-out Avg@8 over the horizon), from the pilot's two GRPO seeds:",
        "",
        format_power(report["mde"]).rstrip(),
    ]
    return lines


def render_study_state(report: dict[str, Any], experiment: Experiment) -> list[str]:
    """The SmolLM2 study's progress (`benchmarks/smollm2_study_state.py`, final: false): per part of the
    queue, its runs finished, under way and not started; the analyses; the compute left."""
    queue = report["queue"]
    taken = report["taken_at"][:16].replace("T", " ")
    lines = [
        f"### {experiment.title}",
        "",
        experiment.context,
        "",
        f"- State of {taken} UTC, `{report['command']}` (it writes "
        f"`benchmarks/results/{experiment.file}`); machine: {_cpu_machine(report['machine'])}.",
        "",
        "| part (`bash benchmarks/smollm2_study.sh <part>`) | runs | finished | under way | not started |",
        "| --- | --- | --- | --- | --- |",
    ]
    for part, progress in queue["parts"].items():
        under_way = ", ".join(progress["under_way"]) or "–"
        lines.append(
            f"| {part} | {progress['planned']} | {progress['finished']} | {under_way} | "
            f"{progress['not_started']} |"
        )
    analyses: dict[str, list[str]] = {"finished": [], "under way": [], "not started": []}
    for analysis in report["analyses"]:
        pieces = analysis.get("pieces")
        done = f" ({analysis['finished_pieces']} of {pieces} pieces journaled)" if pieces else ""
        analyses[analysis["state"]].append(analysis["name"] + done)
    left = f"Runs left: {queue['runs_left']} ({queue['run_equivalents_left']} runs' worth of steps)"
    if queue.get("median_step_seconds") is None:
        left += "; no run here has trained far enough to time a step."
    else:
        left += (
            f", about {queue['hours_left_two_side_by_side']:.0f} h of this machine at two runs side by side "
            f"(a step took {queue['median_step_seconds']:.0f} s at the median in the "
            f"{queue.get('step_timed_by', 'finished runs')}, its share of the evaluations included: "
            f"{queue['run_hours']} h a run; loading and checkpoint writes come on top)."
        )
    lines += ["", left]
    events = [f"- {event['date']}: {event['event']}" for event in report.get("events", [])]
    lines += ["", *events] if events else []
    lines += [
        "",
        "Analyses (item 5 of the issue; `analyses_start` on the base model, `analyses_end` on the headline's "
        "seed-100 runs): "
        + "; ".join(f"{state}: {', '.join(names)}" for state, names in analyses.items() if names)
        + ".",
    ]
    return lines


def render(experiments: dict[str, dict[str, Any]]) -> str:
    lines = [
        START,
        "## Results",
        "",
        "Held-out accuracy of every algorithm under one budget, from `eapo compare` (and `eapo compare "
        "--sweep` for the sensitivity). The JSON each table is made from is in `benchmarks/results/` (named "
        "under each table); this block is rendered from it by `python benchmarks/results_section.py`, and "
        "`bash benchmarks/experiments.sh` reruns every experiment (hours on 2 CPU cores). "
        "What the fields mean: [docs/ablations.md](docs/ablations.md).",
    ]
    for experiment in EXPERIMENTS:
        report = experiments.get(experiment.file)
        if report is None:
            continue
        kind = report.get("kind", "shaping")
        if kind == "pilot":
            body = render_pilot(report, experiment)
        elif kind == "grid_state":
            body = render_study_state(report, experiment)
        elif report.get("benchmark") == "smollm2_arith_warmup":
            body = render_gate(report, experiment)
        elif kind == "compare":
            body = render_compare(report, experiment, experiments.get(experiment.baseline or ""))
        else:
            body = (render_sensitivity if kind == "sensitivity" else render_shaping)(report, experiment)
        lines += ["", *body, "", f"Source: `benchmarks/results/{experiment.file}`."]
        for figure in experiment.figures:
            if (RESULTS_DIR / figure).is_file():
                lines += ["", f"![{figure}](benchmarks/results/{figure})"]
    lines.append(END)
    return "\n".join(lines)


def main() -> None:
    bu.readme_block_main(
        __doc__.splitlines()[0],
        "Results",
        lambda results_dir: render(load_experiments(results_dir)),
        START,
        END,
        README,
    )


if __name__ == "__main__":
    main()
