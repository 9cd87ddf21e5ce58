"""Where the SmolLM2 study's grids stand (issue #19): a snapshot to commit before a session stops.

For every run under the study's runs folder (default runs/smollm2_study, as `benchmarks/smollm2_study.sh`
lays it out: <part>/<arm>/seed<k>/), the last logged step, the newest verified checkpoint (where a rerun of
the same part resumes), the held-out Avg@8 / Pass@8 curve so far and the training reward and entropy of the
last logged steps. PARTIAL by construction: a snapshot is a grid's state, never its result; the results are
the reports `smollm2_study.sh` collects once a part finishes. Written to its default place, the snapshot
also re-renders README Results, whose first section shows it.

    python benchmarks/smollm2_study_state.py --out benchmarks/results/smollm2_study_state.json
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import bench_utils as bu

DEFAULT_RUNS = bu.REPO_ROOT / "runs" / "smollm2_study"


SLOW = 1.8  # a step this many times the run's median step counts as slowed


def slow_steps(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """How much of a run's step time went to steps slowed well past its median, and how many of those had a
    response cut at the length limit (`response/truncated_frac` > 0). One runaway response out of 64 makes
    its step ~4x slower: generation runs every row of the batch until the longest one stops, and the update
    pads every row to the widest (on 2026-12-01, GRPO and EAPO seed 100: all 22 steps with a truncated
    response took 150-230 s, none of the 147 without one passed 100 s; the script's header)."""
    timed = [r for r in rows if "time/step" in r]
    if not timed:
        return {"count": 0, "with_truncated_response": 0, "excess_hours": 0.0, "share_of_step_time": 0.0}
    seconds = [r["time/step"] for r in timed]
    median = sorted(seconds)[len(seconds) // 2]
    slow = [r for r in timed if r["time/step"] > SLOW * median]
    excess = sum(r["time/step"] - median for r in slow)
    return {
        "count": len(slow),
        "with_truncated_response": sum(r.get("response/truncated_frac", 0.0) > 0 for r in slow),
        "excess_hours": round(excess / 3600, 2),
        "share_of_step_time": round(excess / sum(seconds), 3),
    }


def run_state(run_dir: Path, tail: int = 10) -> dict[str, Any]:
    """One run's state: last step, newest checkpoint, eval curve, the recent training rows' means."""
    from eapo.analysis.grid.run import final_eval_row
    from eapo.train.checkpoint import latest_checkpoint
    from eapo.train.config import load_config
    from eapo.train.logging import read_metrics
    from eapo.train.provenance import read_segments

    rows = read_metrics(run_dir) if (run_dir / "metrics.jsonl").is_file() else []
    train_rows = [r for r in rows if "reward/mean" in r]
    evals = [r for r in rows if "eval/avg@8" in r]
    checkpoint = latest_checkpoint(run_dir, verify=True)
    config = load_config(run_dir / "config.yaml")
    recent = train_rows[-tail:]

    def mean(key: str) -> float | None:
        values = [r[key] for r in recent if isinstance(r.get(key), int | float)]
        return sum(values) / len(values) if values else None

    return {
        "run": str(run_dir.relative_to(bu.REPO_ROOT) if run_dir.is_relative_to(bu.REPO_ROOT) else run_dir),
        "algo": config.algo.name,
        "lr": config.train.lr,
        "seed": config.run.seed,
        "horizon": config.train.steps,
        "last_step": train_rows[-1]["step"] if train_rows else 0,
        "resumes_from": checkpoint.name if checkpoint is not None else None,
        "eval_curve": [
            {"step": r["step"], "avg@8": r["eval/avg@8"], "pass@8": r.get("eval/pass@8")} for r in evals
        ],
        f"last_{tail}_steps": {
            "reward_mean": mean("reward/mean"),
            "entropy_mean": mean("entropy/mean"),
            "step_s": mean("time/step"),
        },
        # The grid's rule (eapo.analysis.grid.run.run_status), on the checkpoint verified above: the newest
        # one is at the last step and the trainer's final evaluation is logged.
        "finished": checkpoint is not None
        and checkpoint.name == f"step_{config.train.steps:06d}"
        and final_eval_row(rows, config.train.steps) is not None,
        # The run's time at work so far: its logged step and evaluation times (slower while other work
        # shares the cores; without the pauses between sessions, which grid_run.json's wall time holds).
        "hours": sum(r.get("time/step", 0.0) + r.get("time/eval", 0.0) for r in rows) / 3600,
        "slow_steps": slow_steps(train_rows),
        "precision": json.loads((run_dir / "precision.json").read_text())
        if (run_dir / "precision.json").is_file()
        else None,
        # Which code ran which steps (eapo.train.provenance; runs started before it have none).
        "segments": [
            {k: seg.get(k) for k in ("step", "resumed", "started_at", "git_commit", "git_dirty")}
            for seg in read_segments(run_dir)
        ],
    }


# The pilot's screening rule (smollm2_study.sh, stated before any run reached step 100).
SCREEN_STEP = 100
SCREEN_MARGIN = 0.02
SCREEN_RATES = ("1e-6", "3e-6", "1e-5")


def screen_decision(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The screening rule applied to the pilot's seed-0 runs: the area under the held-out Avg@8 curve over
    steps 0-SCREEN_STEP (eapo.analysis.stats.curve_auc) per learning rate; once every rate has its
    step-SCREEN_STEP evaluation, the best and any within SCREEN_MARGIN continue, the others are screened
    out. Until then `decided` is False and nothing is chosen."""
    from eapo.analysis.stats import curve_auc

    auc: dict[str, float | None] = {}
    for rate in SCREEN_RATES:
        run = next((r for r in runs if r["run"].endswith(f"pilot_lr{rate}/grpo/seed0")), None)
        curve = [p for p in (run or {}).get("eval_curve", []) if p["step"] <= SCREEN_STEP]
        if not curve or curve[-1]["step"] != SCREEN_STEP:
            auc[rate] = None
            continue
        auc[rate] = float(curve_auc([p["step"] for p in curve], [p["avg@8"] for p in curve]))
    decided = all(v is not None for v in auc.values())
    out: dict[str, Any] = {"step": SCREEN_STEP, "margin": SCREEN_MARGIN, "auc": auc, "decided": decided}
    if decided:
        best = max(v for v in auc.values() if v is not None)
        out["continue"] = [r for r, v in auc.items() if v is not None and v >= best - SCREEN_MARGIN]
        out["screened_out"] = [r for r in auc if r not in out["continue"]]
    else:
        out["pending"] = [r for r, v in auc.items() if v is None]
    return out


# The horizon rule (smollm2_study.sh, stated before seed 1's evaluations past step 200 existed).
HORIZON_RATE = "3e-6"
HORIZON_SHARE = 0.9
HORIZON_END_STEPS = (240, 250)


def horizon_decision(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The horizon rule applied to the chosen rate's pilot runs: the mean of their held-out Avg@8 curves at
    the steps every run evaluated; the end is the mean curve's average over HORIZON_END_STEPS; the horizon
    is the first evaluated step where the mean curve reaches start + HORIZON_SHARE x (end - start). Until
    every pilot run has its evaluations at HORIZON_END_STEPS, `decided` is False and nothing is chosen."""
    pilot = [r for r in runs if f"pilot_lr{HORIZON_RATE}/grpo/seed" in r["run"]]
    curves = [{p["step"]: p["avg@8"] for p in r.get("eval_curve", [])} for r in pilot]
    out: dict[str, Any] = {"rate": HORIZON_RATE, "share": HORIZON_SHARE, "end_steps": list(HORIZON_END_STEPS)}
    out["seeds"] = [r.get("seed") for r in pilot]
    if len(curves) < 2 or any(s not in c for c in curves for s in HORIZON_END_STEPS):
        return {**out, "decided": False, "pending": "every pilot seed's evaluations at the end steps"}
    steps = sorted(set.intersection(*(set(c) for c in curves)))
    mean = {s: sum(c[s] for c in curves) / len(curves) for s in steps}
    start = mean[steps[0]]
    end = sum(mean[s] for s in HORIZON_END_STEPS) / len(HORIZON_END_STEPS)
    threshold = start + HORIZON_SHARE * (end - start)
    horizon = next(s for s in steps if mean[s] >= threshold)
    return {
        **out,
        "decided": True,
        "mean_curve": [{"step": s, "avg@8": mean[s]} for s in steps],
        "start": start,
        "end": end,
        "threshold": threshold,
        "horizon": horizon,
    }


PILOT_REPORT = bu.RESULTS_DIR / "compare_smollm2_pilot.json"


def pilot_decisions(states: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The screen and the horizon as the pilot's report recorded them, once it is written: it is the record
    the grids read (`smollm2_pilot.py --horizon`), and the pilot's runs may have gone with the machine that
    trained them. Before the report, both rules applied to the pilot's runs on this machine."""
    if PILOT_REPORT.is_file():
        report = json.loads(PILOT_REPORT.read_text())
        if report.get("horizon", {}).get("decided"):
            source = {"source": f"benchmarks/results/{PILOT_REPORT.name}"}
            return {**report["screen"], **source}, {**report["horizon"], **source}
    return screen_decision(states), horizon_decision(states)


# What happened to the study that its runs cannot show; README Results lists it with the state.
EVENTS = [
    {
        "date": "2026-12-01",
        "event": "a session got a new machine without runs/: the headline's four finished runs (seeds 100 "
        "and 101), seed 102's pair (at steps 90 and 93), the pilot's runs and every checkpoint were lost. "
        "Since then `stop` archives each finished run without its weights in benchmarks/study_runs/smollm2 "
        "and every grid part restores them first.",
    },
    {
        "date": "2026-12-01",
        "event": "the new machine (AMD EPYC too) has AVX2 only, the old one had AVX512-BF16: dtype auto "
        "resolved to fp32 here and to bf16 autocast there (the pilot's runs and the lost headline runs). "
        "Every grid now pins fp32 (configs/smollm2_study.yaml), so that runs of one table compute alike on "
        "either machine; the headline restarted at seed 100 in fp32.",
    },
    {
        "date": "2026-12-01",
        "event": "the slow steps (150-230 s against ~40 s) are the steps where one of the 64 responses ran "
        "to the 96-token limit (all 22 such steps of GRPO and EAPO seed 100, none of the 147 others): "
        "generation runs every row to the longest and the update pads every row to it. Left as they are, "
        "so that every run of the study computes alike (train.trim_padding would change the rounding); "
        "`slow_steps` counts them per run.",
    },
    {
        "date": "2026-12-01",
        "event": "from the next queue start on, a run reuses its seed's step-0 evaluation from the eapo "
        "cache when another run computed it (eval.reuse_start: the same numbers, ~6.5 minutes saved), and "
        "analyses_end comes first in the queue, idle until seed 100's GRPO and EAPO runs are finished: it "
        "probes their final weights, which no archive keeps.",
    },
    {
        "date": "2026-12-01",
        "event": "the controls grid's EAPO α = 0 (φ = 1) arm reads the grpo arm's runs instead of training "
        "three of its own (Arm.runs_of; before any run of it): Eq. 7's term is 0 at α = 0, and trained from "
        "one seed the two log the same metrics and end on the same weights, bit for bit "
        "(tests/analysis/test_ablate_cli.py). 3 runs fewer, about 14 h of one slot.",
    },
]


# What each grid part of the study's queue trains: its runs folder under the study's, its arms (a list of
# `eapo compare --algos`, or an `eapo ablate` mode with --random-controls or not, whose arms eapo itself
# lists) and the script's variable that holds its seeds. test_smollm2_study_state.py checks it against
# benchmarks/smollm2_study.sh.
QUEUE_GRIDS: dict[str, tuple[str, list[str] | tuple[str, bool], str]] = {
    "headline": ("runs", ["grpo", "eapo"], "HEADLINE_SEEDS"),
    "isolate": ("runs", ("isolate", True), "GRID_SEEDS"),
    "eapo_without": ("runs", ("eapo-without", False), "GRID_SEEDS"),
    "exploratory": ("runs", ["grpo", "eapo", "dapo", "forking", "entro_adv"], "GRID_SEEDS"),
    "controls": ("runs", ("controls", False), "GRID_SEEDS"),  # the exploratory part's second grid
    "complex_headline": ("complex_runs", ["grpo", "eapo"], "COMPLEX_SEEDS"),
}
STUDY_SCRIPT = bu.REPO_ROOT / "benchmarks" / "smollm2_study.sh"


def script_seeds(name: str, script: Path = STUDY_SCRIPT) -> list[int]:
    """A seed list the study script fixes (`HEADLINE_SEEDS=100,101,...`)."""
    match = re.search(rf"^{name}=([\d,]+)$", script.read_text(), re.M)
    if match is None:
        raise SystemExit(f"{script}: no {name}=... line")
    return [int(seed) for seed in match.group(1).split(",")]


def grid_arms(arms: list[str] | tuple[str, bool]) -> list[str]:
    """The arms of a grid part that train runs of their own (not those that read another's: Arm.runs_of)."""
    if isinstance(arms, list):
        return arms
    from eapo.analysis.ablate import ablation_arms

    mode, random_controls = arms
    return [arm.name for arm in ablation_arms(mode, None, random_controls)[0] if not arm.runs_of]


def queue_progress(runs: Path, states: list[dict[str, Any]], horizon: int) -> dict[str, Any]:
    """Per grid part: its planned runs, how many are finished, which are under way (and at which step),
    how many have not started; then the unique runs left and the time they need at two runs side by side,
    from the median cost of a step (its share of the evaluations included) in the finished runs. A step
    is the unit, not a run: the pilot's finished runs trained 250 steps, the grids' train `horizon`."""
    by_dir = {state["run"]: state for state in states}
    parts: dict[str, Any] = {}
    steps_left: dict[str, int] = {}  # run -> steps it still has to train
    for part, (folder, arm_spec, seeds_name) in QUEUE_GRIDS.items():
        arms, seeds = grid_arms(arm_spec), script_seeds(seeds_name)
        finished, under_way, fresh = 0, [], 0
        for seed in seeds:
            for arm in arms:
                run_dir = runs / folder / arm / f"seed{seed}"
                state = by_dir.get(_shown(run_dir))
                if state is not None and state["finished"]:
                    finished += 1
                    continue
                step = state["last_step"] if state is not None else 0
                steps_left[_shown(run_dir)] = (state["horizon"] if state is not None else horizon) - step
                if step > 0:
                    under_way.append(f"{arm}/seed{seed} at step {step}")
                else:
                    fresh += 1
        planned = len(arms) * len(seeds)
        parts[part] = {"planned": planned, "finished": finished, "under_way": under_way, "not_started": fresh}
    # Finished runs time a step best; before any has finished, the runs past their first evaluations do.
    timed = [(s["hours"], s["horizon"]) for s in states if s["finished"] and s.get("hours")]
    timed_by = "finished runs"
    if not timed:
        timed = [(s["hours"], s["last_step"]) for s in states if s.get("hours") and s["last_step"] >= 40]
        timed_by = "runs under way (at step 40 or later)"
    per_step = sorted(3600 * hours / steps for hours, steps in timed)
    step_s = per_step[len(per_step) // 2] if per_step else None
    left = sum(steps_left.values())
    return {
        "parts": parts,
        "runs_left": len(steps_left),
        "steps_left": left,
        "run_equivalents_left": round(left / horizon, 2),
        "median_step_seconds": round(step_s, 1) if step_s else None,
        "run_hours": round(step_s * horizon / 3600, 2) if step_s else None,
        "hours_left_two_side_by_side": round(left * step_s / 3600 / 2, 1) if step_s else None,
        "step_timed_by": timed_by if step_s else None,
        "note": "time from the runs' logged step and evaluation times, which include any slowdown "
        "from other work on the cores at the time; loading, warm-up and checkpoint writes come on top",
    }


def _shown(path: Path) -> str:
    return str(path.relative_to(bu.REPO_ROOT) if path.is_relative_to(bu.REPO_ROOT) else path)


# The analyses `smollm2_study.sh` runs (analyses_start, analyses_end), by their output under <runs>/analyses:
# <name>/summary.json, or <name>.json for the gradient cosines.
PLANNED_ANALYSES = (
    "credit_start",
    "gradients_cosine_start",
    *(f"{kind}_{arm}" for kind in ("credit_end", "gradients", "quadrants") for arm in ("grpo", "eapo")),
    "gradients_cosine_end_grpo",
    "gradients_cosine_end_eapo",
)


def analyses_state(runs: Path) -> list[dict[str, Any]]:
    """Each planned analysis: finished (its output is written), under way (stopped or running part-way,
    with the pieces its journal (`eapo.journal`) holds, which a rerun of the same part keeps) or not
    started."""
    folder = runs / "analyses"
    out: list[dict[str, Any]] = []
    for name in PLANNED_ANALYSES:
        outputs = [folder / name / "summary.json", folder / f"{name}.json"]
        journals = [*sorted((folder / name).glob("*.journal.jsonl")), folder / f"{name}.journal.jsonl"]
        done = next((o for o in outputs if o.is_file()), None)
        journal = next((j for j in journals if j.is_file()), None)
        if done is not None:
            out.append({"name": name, "state": "finished", "output": _shown(done)})
        elif journal is not None:
            lines = [line for line in journal.read_text().splitlines() if line.strip()]
            header = json.loads(lines[0]) if lines else {}
            out.append(
                {
                    "name": name,
                    "state": "under way",
                    "journal": _shown(journal),
                    "finished_pieces": max(len(lines) - 1, 0),
                    "pieces": header.get("chunks"),
                }
            )
        else:
            out.append({"name": name, "state": "not started"})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=DEFAULT_RUNS, help="the study's runs folder")
    parser.add_argument("--out", type=Path, default=bu.RESULTS_DIR / "smollm2_study_state.json")
    args = parser.parse_args()
    run_dirs = sorted(p.parent for p in args.runs.glob("*/*/seed*/config.yaml"))
    if not run_dirs:
        raise SystemExit(f"{args.runs}: no runs yet (bash benchmarks/smollm2_study.sh pilot_1e-5 starts one)")
    state: dict[str, Any] = {
        "kind": "grid_state",
        "final": False,
        "note": "PARTIAL: the state of unfinished grids, for resuming and for reading progress; not a result",
        "taken_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": "python benchmarks/smollm2_study_state.py",
        "machine": bu.machine_info(),
        "runs": [run_state(d) for d in run_dirs],
    }
    state["pilot_screen"], state["pilot_horizon"] = pilot_decisions(state["runs"])
    state["events"] = EVENTS
    state["analyses"] = analyses_state(args.runs)
    horizon = state["pilot_horizon"].get("horizon")  # the grids' length: unknown until the pilot fixes it
    state["queue"] = queue_progress(args.runs, state["runs"], horizon) if horizon else None
    # A finished run keeps 0.5 GB (the headline's) or a few MB (the other grids', --keep-finished none); one
    # under way up to 3.2 GB. The queue stops with a failed checkpoint write when the disk fills.
    state["disk_free_gb"] = round(shutil.disk_usage(args.runs).free / 2**30, 1)
    args.out.write_text(json.dumps(state, indent=1) + "\n")
    for run in state["runs"]:
        curve = ", ".join(f"{p['step']}: {p['avg@8']:.3f}" for p in run["eval_curve"])
        print(
            f"{run['run']}: step {run['last_step']}/{run['horizon']}, resumes from {run['resumes_from']}; "
            f"{run['slow_steps']['count']} slow steps ({run['slow_steps']['with_truncated_response']} with a "
            f"truncated response; {run['slow_steps']['share_of_step_time']:.0%} of step time lost); "
            f"Avg@8 {curve}"
        )
    print(f"pilot screen: {json.dumps(state['pilot_screen'])}")
    horizon_fields = {k: v for k, v in state["pilot_horizon"].items() if k != "mean_curve"}
    print(f"pilot horizon: {json.dumps(horizon_fields)}")
    for analysis in state["analyses"]:
        print(f"analysis: {json.dumps(analysis)}")
    queue = state["queue"]
    if queue is None:
        print("queue: the grids wait for the pilot's horizon (bash benchmarks/smollm2_study.sh pilot_3e-6)")
    else:
        for part, progress in queue["parts"].items():
            print(f"queue {part}: {json.dumps(progress)}")
        left = f"queue: {queue['runs_left']} runs left ({queue['run_equivalents_left']} run-equivalents)"
        if queue["median_step_seconds"] is None:
            print(f"{left}; no run has trained far enough to time a step")
        else:
            print(
                f"{left}, about {queue['hours_left_two_side_by_side']} h at two side by side (median step "
                f"{queue['median_step_seconds']} s in the {queue['step_timed_by']}, "
                f"a run {queue['run_hours']} h)"
            )
    print(f"disk: {state['disk_free_gb']} GB free under {args.runs}")
    print(f"wrote {args.out}")
    if args.out.resolve() == (bu.RESULTS_DIR / "smollm2_study_state.json").resolve():
        # README Results shows where the study stands from this file: keep the two in step.
        subprocess.run([sys.executable, str(bu.REPO_ROOT / "benchmarks" / "results_section.py")], check=True)


if __name__ == "__main__":
    main()
