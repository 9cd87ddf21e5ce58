"""`eapo ablate`: the paper's quadrant experiments as a grid of arms x seeds.

Modes (PAPER.md "Four Quadrant Decomposition"; the `quadrant` shaper of `eapo.core`):

- `isolate` (§4.2, Fig. 2 and 5): GRPO's loss restricted to one quadrant's tokens (PHR, PLR, NHR, NLR),
  one run each, against full GRPO. The four isolated advantages sum to GRPO's.
- `eapo-without` (§6.4, Table 3): EAPO with its entropy term switched off in one quadrant (those tokens get
  plain GRPO advantages), for each quadrant, against full EAPO.
- `drop`: GRPO with the named quadrants' updates zeroed, against full GRPO.
- `controls` (issue #17): the arms that say whether a difference is EAPO's entropy credit, against GRPO:
  EAPO (α = 0.2, φ = 2); EAPO on entropies shuffled within each group (negative control: same shaping
  magnitudes, no link to the token's own entropy); W-REINF (positive control: it separated from GRPO on the
  tiny model); EAPO's α dose-response {0, 0.2, 0.5, 1} at φ = 1 (α = 0 is GRPO exactly, bit for bit: that
  arm reads the grpo arm's runs instead of training them again).

With `--random-controls`, `isolate` adds beside each quadrant a random-token arm that updates as many
tokens of the same polarity, per group, drawn regardless of entropy (the `quadrant` shaper's
`random_isolate` mode): the control that separates "which tokens" from "how many tokens".

`--quadrants` picks the quadrants; an item joined by `+` makes one arm of several quadrants together
(`--quadrants PLR+NLR,PHR`: drop both low-entropy quadrants in one arm, PHR in another).

Outputs in the output folder: `ablation.json` (per arm: final held-out Avg@n / Pass@k with 95% t intervals
over seeds, the paired difference to the full method with a paired bootstrap 95% interval, curves), a
Markdown table `ablation.md`, and PNG figures (accuracy and entropy over training, the Pass@k curve,
quadrant shares, paired differences).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from eapo.analysis.grid import (
    Arm,
    FinalEvalSettings,
    GridSpec,
    grid_status,
    grid_summary,
    markdown_table,
    paired_comparisons,
    pass_curve_table,
    record_brief,
    run_grid,
)
from eapo.analysis.plots import write_grid_figures
from eapo.analysis.run_io import write_report_json
from eapo.core import QUADRANTS
from eapo.errors import ConfigError

MODES = ("isolate", "eapo-without", "drop", "controls")
REFERENCE_ALGO = {"isolate": "grpo", "eapo-without": "eapo", "drop": "grpo", "controls": "grpo"}
# EAPO's α dose-response at φ = 1 (issue #17): α = 0 is GRPO exactly, so the curve starts at the reference.
DOSE_ALPHAS = (0.0, 0.2, 0.5, 1.0)
SHAPER_MODE = {"isolate": "isolate", "eapo-without": "eapo_without", "drop": "drop"}
ARM_PREFIX = {"isolate": "isolate", "eapo-without": "eapo_without", "drop": "drop"}
WHAT = {
    "isolate": "GRPO loss on {q} tokens only",
    "eapo-without": "EAPO, entropy term off on {q} tokens (plain GRPO there)",
    "drop": "GRPO with {q} tokens' updates zeroed",
}


def parse_quadrant_sets(text: str | None) -> list[tuple[str, ...]] | None:
    """`"PHR,PLR+NLR"` -> [("PHR",), ("PLR", "NLR")]; None -> None. Raises ConfigError naming the bad one."""
    if text is None:
        return None
    sets: list[tuple[str, ...]] = []
    for item in text.split(","):
        names = tuple(q.strip().upper() for q in item.split("+") if q.strip())
        if not names:
            continue
        bad = [q for q in names if q not in QUADRANTS]
        if bad:
            raise ConfigError(
                f"--quadrants {text!r}: {bad[0]!r} is not a quadrant; use {', '.join(QUADRANTS)} "
                "(comma-separated; join with + for several in one arm)"
            )
        if len(set(names)) != len(names):
            raise ConfigError(f"--quadrants {text!r}: {item!r} names a quadrant twice")
        sets.append(names)
    if not sets:
        raise ConfigError(f"--quadrants {text!r}: name at least one of {', '.join(QUADRANTS)}")
    return sets


def control_arms() -> list[Arm]:
    """The `controls` mode's arms after GRPO (see the module docstring)."""
    arms = [
        Arm("eapo", {"algo": {"name": "eapo"}}, "EAPO, α = 0.2, φ = 2 (PAPER.md Eq. 6-7)"),
        Arm(
            "eapo_shuffled",
            {"algo": {"name": "eapo_shuffled"}},
            "negative control: EAPO on entropies shuffled within each group",
        ),
        Arm("w_reinf", {"algo": {"name": "w_reinf"}}, "positive control: W-REINFORCE (positive Â × 0.1)"),
    ]
    for alpha in DOSE_ALPHAS:
        # α = 0 trains GRPO's run bit for bit (Eq. 7's term is 0; tests/analysis/test_ablate_cli.py trains
        # both), so that arm reads the grpo arm's runs instead of training them again.
        exact_grpo = alpha == 0
        arms.append(
            Arm(
                f"eapo_alpha{alpha:g}_phi1",
                {"algo": {"name": "eapo", "alpha": alpha, "phi": 1.0}},
                f"EAPO dose-response: α = {alpha:g}, φ = 1"
                + (" (GRPO exactly: the grpo arm's runs)" if exact_grpo else ""),
                runs_of="grpo" if exact_grpo else "",
            )
        )
    return arms


def ablation_arms(
    mode: str, quadrant_sets: list[tuple[str, ...]] | None = None, random_controls: bool = False
) -> tuple[list[Arm], str]:
    """(arms, reference arm name): the full method first, then one arm per quadrant set (default: each
    quadrant alone), each followed by its share-matched random-token arm when `random_controls` (isolate
    only). Mode `controls` ignores the quadrant sets."""
    if mode not in MODES:
        raise ConfigError(f"--mode {mode!r}: choose from {', '.join(MODES)}")
    if random_controls and mode != "isolate":
        raise ConfigError(
            f"--random-controls pairs quadrant-isolate arms with random ones: use --mode isolate, not {mode}"
        )
    reference = REFERENCE_ALGO[mode]
    arms = [
        Arm(
            reference,
            {"algo": {"name": reference}},
            "full GRPO (PAPER.md Eq. 2)" if reference == "grpo" else "full EAPO (PAPER.md Eq. 6-7)",
        )
    ]
    if mode == "controls":
        return arms + control_arms(), reference
    for names in quadrant_sets or [(q,) for q in QUADRANTS]:
        label = "+".join(names)
        arms.append(
            Arm(
                f"{ARM_PREFIX[mode]}_{label}",
                {
                    "algo": {
                        "name": "quadrant",
                        "shaper_params": {"mode": SHAPER_MODE[mode], "quadrants": list(names)},
                    }
                },
                WHAT[mode].format(q=label),
            )
        )
        if random_controls:
            arms.append(
                Arm(
                    f"random_{label}",
                    {
                        "algo": {
                            "name": "quadrant",
                            "shaper_params": {"mode": "random_isolate", "quadrants": list(names)},
                        }
                    },
                    f"GRPO loss on random tokens of {label}'s polarity, as many per group as {label} holds",
                )
            )
    return arms, reference


def run_ablation(
    mode: str,
    *,
    seeds: list[int],
    out_dir: Path,
    quadrants: str | None = None,
    random_controls: bool = False,
    runs_dir: Path | None = None,
    steps: int | None = None,
    config: Path | None = None,
    overrides: dict[str, Any] | None = None,
    final_eval: FinalEvalSettings | None = None,
    init: str = "per_seed",
    progress: bool = True,
    command: str | None = None,
    keep_finished: str = "all",
    status_only: bool = False,
) -> dict[str, Any]:
    """Run (or resume) the ablation grid and write `ablation.json`, `ablation.md` and the figures.
    `status_only`: train and report nothing; return where the grid stands (`grid_status`).

    Run folders go in `runs_dir` (default: `out_dir`) as `<runs_dir>/<arm>/seed<k>/`; grids that share a
    runs folder share their identical arms (e.g. `grpo` in `isolate` and `drop`): a finished run is reused,
    never retrained, and a run folder made with a different config is an error; `keep_finished`: see
    `GridSpec.keep_finished`. Returns the report dict
    (what `ablation.json` holds).
    """
    arms, reference = ablation_arms(mode, parse_quadrant_sets(quadrants), random_controls)
    out_dir = Path(out_dir)
    spec = GridSpec(
        arms=arms,
        seeds=list(seeds),
        out_dir=Path(runs_dir) if runs_dir is not None else out_dir,
        config=config,
        overrides=overrides or {},
        steps=steps,
        init=init,
        final_eval=final_eval or FinalEvalSettings(),
        keep_finished=keep_finished,
    )
    if status_only:
        return grid_status(spec)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = run_grid(spec, progress=progress)
    summary = grid_summary(records, arms)
    pairs = [(arm.name, reference) for arm in arms if arm.name != reference]
    n = spec.final_eval.samples
    paired_avg = paired_comparisons(records, pairs, "avg", f"avg@{n}")
    paired_pass = paired_comparisons(records, pairs, f"pass@{n}")
    title = f"ablate {mode}"
    figures = write_grid_figures(summary, paired_avg, out_dir, "ablation", title)
    report: dict[str, Any] = {
        "kind": "ablation",
        "mode": mode,
        "command": command,
        "created": dt.datetime.now().isoformat(timespec="seconds"),
        "reference": reference,
        "settings": _settings(spec),
        "arms": summary,
        "paired": {
            f"avg@{n}": [p.to_dict() for p in paired_avg],
            f"pass@{n}": [p.to_dict() for p in paired_pass],
        },
        "runs": {arm.name: [record_brief(r) for r in records if r.arm == arm.name] for arm in arms},
        "figures": [f.name for f in figures],
    }
    write_report_json(out_dir / "ablation.json", report)
    table = markdown_table(
        summary, {p.arm: p for p in paired_avg}, f"Δ Avg@{n} vs {reference} (paired, bootstrap 95%)"
    )
    (out_dir / "ablation.md").write_text(_markdown(report, table, pass_curve_table(summary), figures))
    return report


def _settings(spec: GridSpec) -> dict[str, Any]:
    fe = spec.final_eval
    return {
        "seeds": spec.seeds,
        "steps": spec.steps,
        "runs_dir": str(spec.out_dir),
        "config": str(spec.config) if spec.config else "built-in tiny default",
        "overrides": spec.overrides,
        "init": spec.init,
        "final_eval": {
            "samples": fe.samples,
            "problems": fe.problems,
            "pass_curve_samples": fe.pass_curve_samples,
            "pass_curve_problems": fe.pass_curve_problems if fe.pass_curve_samples else None,
        },
        "intervals": "mean over seeds with a Student-t 95% interval",
        "paired": "per-seed difference arm − reference, paired bootstrap percentile 95% interval "
        "(10,000 resamples of seeds); 'better'/'worse' only where it excludes 0",
    }


def _markdown(report: dict[str, Any], table: str, pass_table: str, figures: list[Path]) -> str:
    s = report["settings"]
    fe = s["final_eval"]
    lines = [
        f"# eapo ablate --mode {report['mode']}",
        "",
        f"Command: `{report['command'] or '(library call)'}`  ",
        f"Seeds: {s['seeds']} ({s['init']} initial weights); steps: {s['steps'] or 'from config'}; "
        f"config: {s['config']}; overrides: `{s['overrides']}`.  ",
        f"Final held-out evaluation: {fe['samples']} samples per problem"
        + (f", first {fe['problems']} problems" if fe["problems"] else "")
        + " at the config's eval temperature / top-p; "
        + (
            f"Pass@k curve: {fe['pass_curve_samples']} samples on {fe['pass_curve_problems']} problems.  "
            if fe["pass_curve_samples"]
            else "no separate Pass@k curve run.  "
        ),
        f"Intervals: {s['intervals']}. Paired: {s['paired']}.",
        "",
        table,
        "## Final held-out Pass@k",
        "",
        pass_table,
        "## Figures",
        "",
        *[f"![{f.stem}]({f.name})" for f in figures],
        "",
    ]
    return "\n".join(lines)
