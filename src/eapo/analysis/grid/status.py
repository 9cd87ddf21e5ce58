"""Where a grid stands, read from its run folders without training or loading anything: each run's state,
step and newest checkpoint, its latest held-out evaluation, the time it has taken, and the time the rest
needs (`eapo compare --status`, `eapo ablate --status`).

The time left is the steps left times the median cost of a step in the finished runs (their logged step
and evaluation times over their steps); before any run has finished, the runs past a fifth of their steps
time it. A grid several processes run side by side shares the machine: the estimate for N processes
divides by N only if they do not slow each other down, which on a CPU they do unless each has cores of its
own.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eapo.analysis.grid.run import run_status
from eapo.analysis.grid.spec import GridSpec, run_config, run_dir_of

STATES = ("finished", "failed", "under way", "not started")
TIMING_FRACTION = 0.2  # before a run has finished, one past this share of its steps times a step


@dataclass(frozen=True)
class RunProgress:
    """One (arm, seed) of a grid as its folder shows it. `state`: one of STATES. `step`: the last trained
    step logged; `checkpoint_step`: the newest checkpoint's (where a resume starts), None without one;
    `latest_eval`: (step, Avg@k) of the newest held-out evaluation; `seconds`: the logged step and
    evaluation times; `idle_seconds`: since metrics.jsonl was last written (None: no file); `runs_of`: the
    arm whose runs this arm reads (Arm.runs_of), '' for an arm with runs of its own."""

    arm: str
    seed: int
    run_dir: str
    state: str
    steps: int
    step: int = 0
    checkpoint_step: int | None = None
    latest_eval: tuple[int, float] | None = None
    seconds: float = 0.0
    idle_seconds: float | None = None
    runs_of: str = ""


def run_progress(arm: str, seed: int, run_dir: Path, steps: int, runs_of: str = "") -> RunProgress:
    """A run folder's progress (see RunProgress). Reads its files only: no lock is taken, no checkpoint is
    hashed, so it is safe beside the processes training the grid."""
    from eapo.train.checkpoint import checkpoint_step as step_of
    from eapo.train.checkpoint import latest_checkpoint
    from eapo.train.logging import read_metrics

    run_dir = Path(run_dir)
    metrics = run_dir / "metrics.jsonl"
    if not (run_dir / "config.yaml").is_file() or not metrics.is_file():
        return RunProgress(arm, seed, str(run_dir), "not started", steps, runs_of=runs_of)
    rows = read_metrics(run_dir)
    trained = [row["step"] for row in rows if "loss" in row]
    evals = [row for row in rows if row.get("eval/pass@1") is not None]
    checkpoint = latest_checkpoint(run_dir)
    # The grid's own rule; a run with no checkpoint yet (the grid would start it afresh) is under way too.
    state = run_status(run_dir, steps, verify=False)
    if state in ("resumable", "fresh"):
        state = "under way"
    latest_eval = None
    if evals:
        k_key = next((k for k in sorted(evals[-1]) if k.startswith("eval/avg@") and k != "eval/avg@1"), None)
        latest_eval = (int(evals[-1]["step"]), float(evals[-1][k_key or "eval/avg@1"]))
    seconds = sum(float(row.get("time/step", 0.0)) + float(row.get("time/eval", 0.0)) for row in rows)
    return RunProgress(
        arm,
        seed,
        str(run_dir),
        state,
        steps,
        step=max(trained, default=0),
        checkpoint_step=step_of(checkpoint) if checkpoint is not None else None,
        latest_eval=latest_eval,
        seconds=seconds,
        idle_seconds=max(0.0, time.time() - metrics.stat().st_mtime),
        runs_of=runs_of,
    )


def grid_status(spec: GridSpec) -> dict[str, Any]:
    """Every run of the grid (RunProgress, in the grid's seed-major order), the count in each state, the
    steps left and the time they need at one process (None until a run can time a step)."""
    spec.validate()
    arms = {arm.name: arm for arm in spec.arms}
    runs: list[RunProgress] = []
    for seed in spec.seeds:
        for arm in spec.arms:
            owner = arms[arm.runs_of] if arm.runs_of else arm
            steps = spec.steps if spec.steps is not None else run_config(spec, owner, seed).train.steps
            runs.append(run_progress(arm.name, seed, run_dir_of(spec, owner, seed), steps, arm.runs_of))
    own = [run for run in runs if not run.runs_of]
    counts = {state: sum(run.state == state for run in own) for state in STATES}
    steps_left = sum(run.steps - run.step for run in own if run.state in ("under way", "not started"))
    finished = [run.seconds / run.steps for run in own if run.state == "finished" and run.seconds > 0]
    timed_by = "finished runs"
    if not finished:
        finished = [
            run.seconds / run.step
            for run in own
            if run.state == "under way" and run.step >= TIMING_FRACTION * run.steps and run.seconds > 0
        ]
        timed_by = f"runs under way past {TIMING_FRACTION:.0%} of their steps"
    step_seconds = statistics.median(finished) if finished else None
    return {
        "runs": runs,
        "counts": counts,
        "runs_to_train": len(own),
        "steps_left": steps_left,
        "step_seconds": step_seconds,
        "step_timed_by": timed_by if step_seconds is not None else None,
        "hours_left_one_process": steps_left * step_seconds / 3600 if step_seconds is not None else None,
    }


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def format_grid_status(status: dict[str, Any]) -> str:
    """The status as an aligned table, one row per run, and a line of totals and the time left."""
    header = ["arm", "seed", "state", "step", "checkpoint", "held-out Avg@k (step)", "hours", "last write"]
    rows = []
    for run in status["runs"]:
        if run.runs_of:
            rows.append([run.arm, str(run.seed), f"reads {run.runs_of}'s run", "", "", "", "", ""])
            continue
        evaluated = f"{run.latest_eval[1]:.3f} ({run.latest_eval[0]})" if run.latest_eval else "–"
        started = run.state != "not started"
        rows.append(
            [
                run.arm,
                str(run.seed),
                run.state,
                f"{run.step}/{run.steps}",
                str(run.checkpoint_step) if run.checkpoint_step is not None else "–",
                evaluated,
                f"{run.seconds / 3600:.2f}" if started else "–",
                _ago(run.idle_seconds) if run.state == "under way" else "–",  # is a process on it now?
            ]
        )
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
             for line in [header, *rows]]  # fmt: skip
    counts = ", ".join(f"{n} {state}" for state, n in status["counts"].items() if n)
    total = f"{status['runs_to_train']} runs to train: {counts}; {status['steps_left']:,} steps left"
    if status["step_seconds"] is None:
        total += "; no run has trained far enough to time a step"
    elif status["steps_left"]:
        total += (
            f", about {status['hours_left_one_process']:.1f} h at one process (a step took "
            f"{status['step_seconds']:.0f} s at the median in the {status['step_timed_by']}, its evaluations "
            "included; N processes side by side take 1/N of it only with cores of their own)"
        )
    return "\n".join([*lines, "", total])
