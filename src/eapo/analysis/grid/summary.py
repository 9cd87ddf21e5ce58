"""What a grid's runs recorded, and their summaries over seeds: intervals per arm, paired differences.

Everything here is read from the run folders' logged data (metrics.jsonl, eval_problems.jsonl,
grid_eval.json, grid_run.json): a summary never reruns a model.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eapo.analysis.grid.spec import GRID_EVAL, GRID_RUN, Arm, FinalEvalSettings
from eapo.analysis.run_io import read_json
from eapo.analysis.stats import PairedDifference, curve_interval, mean_interval, paired_difference
from eapo.core import QUADRANTS

# "Final entropy" is the mean of the last FINAL_ENTROPY_STEPS training steps' entropy/mean: one step's
# batch (16 prompts on tiny) is too small for a stable single reading.
FINAL_ENTROPY_STEPS = 10


@dataclass
class RunRecord:
    """Everything a grid keeps about one (arm, seed) run, read from its run folder (logged data only)."""

    arm: str
    seed: int
    run_dir: str
    status: str  # completed | failed (the trainer stopped on non-finite steps)
    steps: int
    eval_k: int
    eval_curve: dict[str, list[float | None]]  # step, avg@1, pass@1, avg@K, pass@K (in-training evals)
    entropy_curve: dict[str, list[float | None]]  # step, mean
    quadrant_shares: dict[str, list[float | None]]  # step, PHR, PLR, NHR, NLR, ZERO
    final: dict[str, Any] | None  # the final held-out evaluation (see `final_evaluations`)
    pass_curve: dict[str, Any] | None
    validation: dict[str, Any] | None
    final_entropy: float | None
    tokens_generated: float
    train_seconds: float  # Σ time/step over the logged training steps (survives resumes)
    wall_seconds: float | None  # the grid's clock around training and final evaluations, summed
    # {step: {"k", "correct_per_problem"}} of the in-training evaluations (`eval_problems.jsonl`); empty
    # for runs made before the trainer wrote it
    eval_counts: dict[int, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def collect_run(arm: str, seed: int, run_dir: Path, settings: FinalEvalSettings | None = None) -> RunRecord:
    """A RunRecord from a run folder's metrics.jsonl, grid_eval.json and grid_run.json."""
    from eapo.train.config import load_config
    from eapo.train.logging import read_eval_counts, read_metrics

    run_dir = Path(run_dir)
    config = load_config(run_dir / "config.yaml")
    rows = read_metrics(run_dir)
    k = config.eval.k
    eval_keys = sorted({"avg@1", "pass@1", f"avg@{k}", f"pass@{k}"})
    eval_rows = [r for r in rows if "eval/pass@1" in r]
    train_rows = [r for r in rows if "entropy/mean" in r]
    eval_curve: dict[str, list[float | None]] = {"step": [float(r["step"]) for r in eval_rows]}
    for key in eval_keys:
        eval_curve[key] = [r.get(f"eval/{key}") for r in eval_rows]
    entropy_curve: dict[str, list[float | None]] = {
        "step": [float(r["step"]) for r in train_rows],
        "mean": [r.get("entropy/mean") for r in train_rows],
    }
    shares: dict[str, list[float | None]] = {"step": entropy_curve["step"]}
    for name in (*QUADRANTS, "ZERO"):
        shares[name] = [r.get(f"quadrant/{name}/share") for r in train_rows]
    tail = [v for v in entropy_curve["mean"][-FINAL_ENTROPY_STEPS:] if v is not None]
    evals = read_json(run_dir / GRID_EVAL) or {}
    grid_run = read_json(run_dir / GRID_RUN) or {}
    status = "failed" if grid_run.get("stopped") == "bad_steps" else "completed"
    if settings is not None and not settings.pass_curve_samples:
        evals.pop("pass_curve", None)
    if settings is not None and not settings.validation:
        evals.pop("validation", None)
    return RunRecord(
        arm=arm,
        seed=seed,
        run_dir=str(run_dir),
        status=status,
        steps=config.train.steps,
        eval_k=k,
        eval_curve=eval_curve,
        entropy_curve=entropy_curve,
        quadrant_shares=shares,
        final=evals.get("final"),
        pass_curve=evals.get("pass_curve"),
        validation=evals.get("validation"),
        final_entropy=sum(tail) / len(tail) if tail else None,
        tokens_generated=float(sum(r.get("tokens/generated") or 0.0 for r in train_rows)),
        train_seconds=float(sum(r.get("time/step") or 0.0 for r in train_rows)),
        wall_seconds=grid_run.get("wall_seconds"),
        eval_counts=read_eval_counts(run_dir),
    )


# ---------------------------------------------------------------------------------------- summaries


def steps_to_target(record: RunRecord, target: float) -> float | None:
    """The first evaluated step whose in-training held-out Avg@K reaches `target` (None if never)."""
    key = f"avg@{record.eval_k}"
    for step, value in zip(record.eval_curve["step"], record.eval_curve[key], strict=True):
        if value is not None and value >= target:
            return step
    return None


def _interval_or_none(values: list[float | None]) -> dict[str, Any] | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return mean_interval(finite).to_dict() if finite else None


def summarize_arm(records: list[RunRecord], target: float | None = None) -> dict[str, Any]:
    """Mean and 95% t-interval over seeds of everything a run records, plus pointwise curve intervals."""
    done = [r for r in records if r.status == "completed" and r.final is not None]
    out: dict[str, Any] = {
        "seeds": [r.seed for r in done],
        "failed_seeds": [r.seed for r in records if r.status != "completed"],
    }
    if not done:
        return out
    n = done[0].final["samples"] if done[0].final else 0
    out["final"] = {f"avg@{n}": _interval_or_none([r.final["avg"] for r in done if r.final])}
    for k in done[0].final["pass_at_k"] if done[0].final else []:
        out["final"][f"pass@{k}"] = _interval_or_none([r.final["pass_at_k"].get(k) for r in done if r.final])
    out["final_samples"] = n
    out["final_problems"] = done[0].final["num_problems"] if done[0].final else 0
    if all(r.pass_curve for r in done):
        curve_n = done[0].pass_curve["samples"]  # type: ignore[index]
        ks = list(done[0].pass_curve["pass_at_k"])  # type: ignore[index]
        out["pass_curve"] = {
            "samples": curve_n,
            "num_problems": done[0].pass_curve["num_problems"],  # type: ignore[index]
            "k": [int(k) for k in ks],
            "pass_at_k": [_interval_or_none([r.pass_curve["pass_at_k"][k] for r in done]) for k in ks],  # type: ignore[index]
        }
    if all(r.validation for r in done):
        out["validation"] = {
            f"avg@{n}": _interval_or_none([r.validation["avg"] for r in done]),  # type: ignore[index]
            "num_problems": done[0].validation["num_problems"],  # type: ignore[index]
        }
    k = done[0].eval_k
    out["eval_k"] = k
    out["eval_curve"] = {
        key: curve_interval([(r.eval_curve["step"], r.eval_curve[key]) for r in done])
        for key in done[0].eval_curve
        if key != "step"
    }
    out["start"] = {
        key: _interval_or_none([r.eval_curve[key][0] if r.eval_curve[key] else None for r in done])
        for key in done[0].eval_curve
        if key != "step"
    }
    out["entropy_curve"] = curve_interval([(r.entropy_curve["step"], r.entropy_curve["mean"]) for r in done])
    out["quadrant_shares"] = {
        name: curve_interval([(r.quadrant_shares["step"], r.quadrant_shares[name]) for r in done])
        for name in (*QUADRANTS, "ZERO")
    }
    out["final_entropy"] = _interval_or_none([r.final_entropy for r in done])
    out["tokens_generated"] = _interval_or_none([r.tokens_generated for r in done])
    out["train_seconds"] = _interval_or_none([r.train_seconds for r in done])
    out["wall_seconds"] = _interval_or_none([r.wall_seconds for r in done])
    if target is not None:
        reached = {r.seed: steps_to_target(r, target) for r in done}
        hit = [v for v in reached.values() if v is not None]
        out["steps_to_target"] = {
            "target": target,
            "metric": f"in-training held-out avg@{k}",
            "per_seed": {str(s): v for s, v in reached.items()},
            "reached": len(hit),
            "of": len(reached),
            "mean_over_reached": sum(hit) / len(hit) if hit else None,
        }
    return out


def final_metric(records: list[RunRecord], metric: str) -> dict[int, float]:
    """{seed: value} of one final held-out metric (`avg` or `pass@k`) or `validation` (Avg@n there)."""
    out: dict[int, float] = {}
    for r in records:
        if r.status != "completed" or r.final is None:
            continue
        if metric == "avg":
            out[r.seed] = r.final["avg"]
        elif metric == "validation":
            if r.validation is not None:
                out[r.seed] = r.validation["avg"]
        elif metric.startswith("pass@") and metric[5:] in r.final["pass_at_k"]:
            out[r.seed] = r.final["pass_at_k"][metric[5:]]
    return out


def paired_comparisons(
    records: list[RunRecord],
    pairs: list[tuple[str, str]],
    metric: str = "avg",
    label: str | None = None,
    seed: int = 0,
) -> list[PairedDifference]:
    """For each (arm, reference): per-seed final `metric` (see `final_metric`) of arm minus reference,
    with a paired bootstrap 95% interval. `label` names the metric in the results (default `metric`)."""
    by_arm: dict[str, list[RunRecord]] = {}
    for r in records:
        by_arm.setdefault(r.arm, []).append(r)
    out = []
    for arm, reference in pairs:
        a, b = final_metric(by_arm.get(arm, []), metric), final_metric(by_arm.get(reference, []), metric)
        if set(a) & set(b):
            out.append(
                paired_difference(a, b, arm=arm, reference=reference, metric=label or metric, seed=seed)
            )
    return out


def grid_summary(
    records: list[RunRecord], arms: list[Arm], target: float | None = None
) -> dict[str, dict[str, Any]]:
    """{arm name: summarize_arm(...)} plus each arm's overrides and description (and `runs_of`, for an arm
    that reads another's runs), in arm order."""
    out = {}
    for arm in arms:
        summary = summarize_arm([r for r in records if r.arm == arm.name], target)
        shared = {"runs_of": arm.runs_of} if arm.runs_of else {}
        out[arm.name] = {"description": arm.description, "overrides": arm.overrides, **shared, **summary}
    return out


def record_brief(record: RunRecord, target: float | None = None) -> dict[str, Any]:
    """A run's final numbers for the JSON report (its curves are in the arm summaries and run folder)."""
    out: dict[str, Any] = {
        "seed": record.seed,
        "run_dir": record.run_dir,
        "status": record.status,
        "final_avg": record.final["avg"] if record.final else None,
        "final_pass_at_k": record.final["pass_at_k"] if record.final else None,
        "start_avg": record.eval_curve[f"avg@{record.eval_k}"][0] if record.eval_curve["step"] else None,
        "final_entropy": record.final_entropy,
        "tokens_generated": record.tokens_generated,
        "train_seconds": round(record.train_seconds, 2),
        "wall_seconds": record.wall_seconds,
    }
    if record.pass_curve:
        out["pass_curve"] = record.pass_curve["pass_at_k"]
    if record.validation:
        out["validation_avg"] = record.validation["avg"]
    if target is not None:
        out["steps_to_target"] = steps_to_target(record, target)
    return out
