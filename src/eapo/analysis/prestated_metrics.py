"""The values `eapo compare`'s pre-stated analysis tests (`eapo.analysis.prestated`), per finished run
and per held-out problem.

`RunData` holds what the statistics need from one run; `metric_values` stacks runs into the
[seeds, problems, ...] values `stats.hierarchical_bootstrap` resamples, paired with a reference arm by seed
and problem. The metrics (`auc`, `final`, `steps_to`, `pass@k`) are defined in
`eapo.analysis.prestated`'s docstring; `pass@k` is the unbiased Pass@k of each problem (PAPER.md §6).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from eapo.analysis.stats import (
    BootstrapResult,
    curve_auc,
    hierarchical_bootstrap,
    steps_to_threshold,
    variance_components,
)
from eapo.errors import DataError

PRIMARY_METRICS = ("auc", "final", "steps_to")
DEFAULT_TARGET_GAIN = 0.05  # steps_to without --target: Avg@k >= the run's own start + 0.05
BASE = "base_model"  # the arm name of the base model's evaluations


@dataclass
class RunData:
    """What the statistics need from one finished run, per held-out problem where the run has it.

    `curve` [P, T]: held-out accuracy per problem at each in-training evaluation `steps` [T]; [1, T] with
    the run's mean accuracy when the run has no per-problem counts (`per_problem_curve` False).
    `final` [P_f]: correct counts per problem out of `final_n` (the grid's final evaluation); `passes`
    [P_p] out of `passes_n`: the Pass@k curve's evaluation where the grid ran one, else the final one.
    """

    arm: str
    seed: int
    eval_k: int
    steps: np.ndarray
    curve: np.ndarray
    per_problem_curve: bool
    final: np.ndarray
    final_n: int
    passes: np.ndarray
    passes_n: int
    passes_source: str


def run_data(record: Any) -> RunData | None:
    """A RunData from a `grid.RunRecord` (None for a failed or unevaluated run)."""
    if record.status != "completed" or record.final is None:
        return None
    steps = np.asarray(record.eval_curve["step"], dtype=np.float64)
    key = f"avg@{record.eval_k}"
    counts = [record.eval_counts.get(int(s)) for s in steps]
    lengths = {len(c["correct_per_problem"]) for c in counts if c is not None}
    if counts and all(c is not None for c in counts) and len(lengths) == 1:
        curve = np.array([np.asarray(c["correct_per_problem"], dtype=np.float64) / c["k"] for c in counts]).T
        per_problem = True
    else:
        values = [np.nan if v is None else v for v in record.eval_curve[key]]
        curve = np.asarray(values, dtype=np.float64)[None, :]
        per_problem = False
    final = np.asarray(record.final["correct_per_problem"], dtype=np.int64)
    source = record.pass_curve if record.pass_curve else record.final
    return RunData(
        arm=record.arm,
        seed=record.seed,
        eval_k=int(record.eval_k),
        steps=steps,
        curve=curve,
        per_problem_curve=per_problem,
        final=final,
        final_n=int(record.final["samples"]),
        passes=np.asarray(source["correct_per_problem"], dtype=np.int64),
        passes_n=int(source["samples"]),
        passes_source="pass_curve" if record.pass_curve else "final",
    )


def base_data(seed: int, evaluations: dict[str, Any]) -> RunData:
    """The base model's evaluations of one seed as a RunData (no training curve)."""
    final = evaluations["final"]
    source = evaluations.get("pass_curve") or final
    return RunData(
        arm=BASE,
        seed=seed,
        eval_k=0,
        steps=np.zeros(0),
        curve=np.zeros((1, 0)),
        per_problem_curve=False,
        final=np.asarray(final["correct_per_problem"], dtype=np.int64),
        final_n=int(final["samples"]),
        passes=np.asarray(source["correct_per_problem"], dtype=np.int64),
        passes_n=int(source["samples"]),
        passes_source="pass_curve" if evaluations.get("pass_curve") else "final",
    )


def pass_at_k_per_problem(counts: np.ndarray, n: int, k: int) -> np.ndarray:
    """Unbiased Pass@k of each problem (`eapo.core.pass_at_k`, PAPER.md §6), as float64 [P]."""
    import torch

    from eapo.core import pass_at_k

    values = pass_at_k(n, torch.as_tensor(counts, dtype=torch.int64), k)
    return np.asarray(torch.as_tensor(values, dtype=torch.float64).reshape(-1).numpy())


def pass_ks(n: int) -> list[int]:
    """k = 1, 2, 4, ..., and n itself (the grid's Pass@k points)."""
    return sorted({*(2**i for i in range(int(math.log2(n)) + 1)), n})


def metric_label(name: str, k: int, n: int, threshold: str) -> str:
    if name == "auc":
        return f"AUC of held-out Avg@{k} over training (÷ horizon)"
    if name == "final":
        return f"final held-out Avg@{n}"
    if name == "steps_to":
        return f"steps to held-out Avg@{k} ≥ {threshold}"
    return f"held-out {name.replace('pass', 'Pass')}"


def _component(run: RunData, name: str, per_problem: bool) -> np.ndarray:
    """[P, *rest] for one run; `per_problem` False collapses problems to their mean ([1, *rest])."""
    if name == "auc":
        values = curve_auc(run.steps, run.curve)
    elif name == "steps_to":
        values = run.curve
    elif name == "final":
        values = run.final / run.final_n
    elif name.startswith("pass@"):
        values = pass_at_k_per_problem(run.passes, run.passes_n, int(name[5:]))
    else:
        raise ValueError(f"unknown metric {name!r}")
    values = np.asarray(values, dtype=np.float64)
    return values.mean(axis=0, keepdims=True) if not per_problem else values


def _statistic(name: str, steps: np.ndarray, target: float | None) -> Callable[[np.ndarray], np.ndarray]:
    """The statistic of a problem mean: identity for the linear metrics; for steps_to, the first step
    of the mean curve [..., T] reaching the threshold."""
    if name != "steps_to":
        return lambda means: means
    censor = float(steps[-1] + (steps[-1] - steps[-2]))

    def first_step(curves: np.ndarray) -> np.ndarray:
        threshold = target if target is not None else curves[..., 0] + DEFAULT_TARGET_GAIN
        return np.asarray(steps_to_threshold(steps, curves, threshold, censor))

    return first_step


def _common_steps(runs: Sequence[RunData], name: str) -> np.ndarray:
    steps = runs[0].steps
    for run in runs:
        if run.steps.shape != steps.shape or not np.array_equal(run.steps, steps):
            raise DataError(
                f"{name}: {run.arm}/seed{run.seed} was evaluated at steps {run.steps.tolist()}, "
                f"{runs[0].arm}/seed{runs[0].seed} at {steps.tolist()}; the in-training curves must share "
                "their evaluation steps (same train.steps and eval.every)"
            )
    if steps.size < 2:
        raise DataError(f"{name}: the runs have {steps.size} in-training evaluation(s); it needs two or more")
    return steps


def _per_problem_possible(runs: Sequence[RunData], name: str) -> bool:
    """Whether every run has per-problem values of `name` over the same number of problems."""
    if name in ("auc", "steps_to"):
        if not all(r.per_problem_curve for r in runs):
            return False
        sizes = {r.curve.shape[0] for r in runs}
    elif name == "final":
        sizes = {r.final.size for r in runs}
    else:
        sizes = {r.passes.size for r in runs}
    return len(sizes) == 1


def per_seed_values(name: str, runs: Sequence[RunData], target: float | None = None) -> dict[str, float]:
    """{seed: the run's value of metric `name`} (over all its problems), in seed order."""
    steps = _common_steps(runs, name) if name in ("auc", "steps_to") else np.zeros(0)
    stat = _statistic(name, steps, target)
    return {
        str(r.seed): float(stat(_component(r, name, per_problem=False)[0]))
        for r in sorted(runs, key=lambda r: r.seed)
    }


def metric_values(
    name: str,
    arm: Sequence[RunData],
    reference: Sequence[RunData] | None = None,
    *,
    target: float | None = None,
    reference_values: np.ndarray | None = None,
) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """(values [S, P, *rest], statistic) of metric `name` for `arm` (one RunData per seed), minus
    `reference` (paired by seed and problem) when given, or minus fixed per-problem `reference_values`
    (the guessing baseline), or alone: the input of `stats.hierarchical_bootstrap`. For the linear metrics
    the values are per-problem differences and the statistic is the identity."""
    by_seed = {r.seed: r for r in arm}
    ref_by_seed = {r.seed: r for r in reference} if reference is not None else {}
    seeds = sorted(set(by_seed) & set(ref_by_seed)) if reference is not None else sorted(by_seed)
    if not seeds:
        raise DataError(f"{name}: {arm[0].arm if arm else '?'} and its reference share no seed")
    runs = [by_seed[s] for s in seeds] + [ref_by_seed[s] for s in seeds if s in ref_by_seed]
    steps = _common_steps(runs, name) if name in ("auc", "steps_to") else np.zeros(0)
    per_problem = _per_problem_possible(runs, name)
    stat = _statistic(name, steps, target)
    values = np.stack([_component(by_seed[s], name, per_problem) for s in seeds])
    if reference_values is not None:
        values = values - np.asarray(reference_values, dtype=np.float64)[None, :]
    if reference is None:
        return values, stat
    ref = np.stack([_component(ref_by_seed[s], name, per_problem) for s in seeds])
    if name != "steps_to":  # linear: the difference of problem means is the mean of differences
        return values - ref, stat
    both = np.stack([values, ref], axis=2)  # [S, P, 2, T]: the threshold step is not linear
    return both, lambda means: stat(means[..., 0, :]) - stat(means[..., 1, :])


def compare_runs(
    name: str,
    arm: Sequence[RunData],
    reference: Sequence[RunData] | None,
    *,
    target: float | None = None,
    problems: str = "shared",
    resamples: int = 10_000,
    seed: int = 0,
    reference_values: np.ndarray | None = None,
) -> BootstrapResult:
    """The hierarchical bootstrap of `metric_values(...)` (see there)."""
    values, stat = metric_values(name, arm, reference, target=target, reference_values=reference_values)
    return hierarchical_bootstrap(values, stat, problems=problems, resamples=resamples, seed=seed)


def primary_components(
    name: str, arm: Sequence[RunData], reference: Sequence[RunData], target: float | None = None
) -> dict[str, float] | None:
    """`stats.variance_components` of the per-(seed, problem) paired differences of a linear metric (None
    for steps_to, or with fewer than 2 seeds or problems)."""
    if name == "steps_to":
        return None
    values, _ = metric_values(name, arm, reference, target=target)
    if values.shape[0] < 2 or values.shape[1] < 2:
        return None
    return variance_components(values)
