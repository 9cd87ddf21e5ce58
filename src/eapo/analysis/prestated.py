"""The pre-stated analysis of an `eapo compare` grid: one primary metric, Holm-corrected secondaries,
hierarchical bootstrap intervals, Pass@k against the base model and a guessing baseline, and the minimum
detectable effect a grid of a given size can find (issue #17, item 6).

**Primary metric**, named before the grid runs (`--primary`, default `auc`):
- `auc`: the area under the in-training held-out Avg@k curve over the evaluated steps, divided by the
  horizon (`eapo.analysis.stats.curve_auc`), so it reads as the mean held-out accuracy over training;
- `final`: the final held-out Avg@n (the grid's final evaluation, n = `--final-samples`);
- `steps_to`: the first evaluated step whose held-out Avg@k reaches the threshold (`--target`, else each
  run's own step-0 Avg@k + `DEFAULT_TARGET_GAIN`); a run that never reaches it counts as one evaluation
  interval past the last step (censored). Lower is better.
The focus arm (EAPO) is compared with every other arm, focus − other, paired by seed and problem. With more
than one other arm, the primary comparisons are one Holm family; the verdict is read from the
Holm-adjusted p-value at α = 0.05.

**Secondaries**, one Holm family: for every other arm, the metrics above that are not primary and Pass@K
at the largest K evaluated (PAPER.md §4.2: RL can lose coverage at large k); and the focus arm's Pass@K
against the base model and against the guessing baseline.

**Intervals**: `stats.hierarchical_bootstrap` over seeds, then problems (per-problem correct counts: the
grid's final evaluation and, for the in-training curve, `eval_problems.jsonl` written by the trainer; runs
without them are resampled over seeds only, and the report says so).

**Base model**: the policy every run of a seed starts from, evaluated like the finished runs
(`grid.base_model_evaluations`). **Guessing baseline**: a guesser that ignores the question and samples
an answer from the train split's answer distribution (the answer prior q); its Pass@k on problem j is
exactly 1 − (1 − q(a_j))^k, no sampling. The accuracy of always giving the most common train answer is
reported beside it.

**Power**: from per-seed primary values (a pilot grid, or this grid), the minimum detectable effect of a
two-sided paired t-test on per-seed differences at α = 0.05 and 80% power for each seed count in
`--power-seeds` (`stats.min_detectable_effect`, exact noncentral t), with the standard deviation as
estimated (never below the noise of one seed's mean over its problems) and at its 80% upper confidence
bound (a 2-3 seed pilot estimates it poorly). That is for the grid's fixed held-out problems; a second row
sizes the hierarchical bootstrap's test, the problems counted as a sample (`stats.variance_components`,
`stats.min_detectable_effect_crossed`), whose floor more seeds cannot lower.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eapo.analysis.stats import (
    BootstrapResult,
    curve_auc,
    hierarchical_bootstrap,
    holm_adjust,
    min_detectable_effect,
    min_detectable_effect_crossed,
    sd_upper_bound,
    steps_to_threshold,
    variance_components,
)
from eapo.errors import ConfigError, DataError

PRIMARY_METRICS = ("auc", "final", "steps_to")
DEFAULT_TARGET_GAIN = 0.05  # steps_to without --target: Avg@k >= the run's own start + 0.05
ALPHA = 0.05
POWER = 0.8
SD_CONFIDENCE = 0.8
DEFAULT_POWER_SEEDS = (4, 8, 16)
BASE = "base_model"
GUESS = "guessing"


def parse_power_seeds(text: str) -> list[int]:
    """`"4,8,16"` -> [4, 8, 16]; each a seed count >= 2 (a paired t-test needs two)."""
    try:
        counts = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--power-seeds {text!r}: expected comma-separated integers, e.g. 4,8,16") from None
    if not counts or min(counts) < 2:
        raise ConfigError(f"--power-seeds {text!r}: expected seed counts >= 2 (a paired t-test needs two)")
    return sorted(set(counts))


# ---------------------------------------------------------------------------------------- run data


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


# ---------------------------------------------------------------------------------------- metrics


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


# ---------------------------------------------------------------------------------------- guessing


def _answer_key(answer: str) -> Any:
    from eapo.tasks import parse_number

    number = parse_number(answer)
    return number if number is not None else answer.strip()


def guessing_baseline(
    train_answers: Sequence[str], eval_answers: Sequence[str], ks: Sequence[int]
) -> dict[str, Any]:
    """Pass@k of a guesser that samples each answer from the train split's answer distribution q.

    Exact, per problem j with gold answer a_j: Pass@k = 1 − (1 − q(a_j))^k (answers compared as numbers
    where both parse as numbers, else as stripped text). Also the accuracy of always answering the most
    common train answer. Returns the per-problem success probabilities too (for paired tests).
    """
    if not train_answers or not eval_answers:
        raise DataError("guessing baseline: the task has no train or no eval answers")
    prior = Counter(_answer_key(a) for a in train_answers)
    total = sum(prior.values())
    q = np.array([prior.get(_answer_key(a), 0) / total for a in eval_answers], dtype=np.float64)
    mode, _ = prior.most_common(1)[0]
    return {
        "definition": "each sample an answer drawn from the train split's answer distribution (the "
        "question ignored); Pass@k = mean over problems of 1 - (1 - q(gold))^k, exact",
        "pass_at_k": {str(k): float((1 - (1 - q) ** k).mean()) for k in ks},
        "most_common_answer": str(mode),
        "most_common_answer_accuracy": float(np.mean([_answer_key(a) == mode for a in eval_answers])),
        "distinct_train_answers": len(prior),
        "per_problem_probability": q.tolist(),
    }


def task_guessing_baseline(task: Any, num_problems: int, ks: Sequence[int]) -> dict[str, Any]:
    """`guessing_baseline` on a loaded task's train split and its first `num_problems` held-out problems."""
    return guessing_baseline([p.answer for p in task.train], [p.answer for p in task.eval[:num_problems]], ks)


# ---------------------------------------------------------------------------------------- the analysis


def _test(
    name: str, label: str, arm: str, reference: str, result: BootstrapResult, lower_is_better: bool
) -> dict[str, Any]:
    return {
        "metric": name,
        "label": label,
        "arm": arm,
        "reference": reference,
        "estimate": result.estimate,
        "interval": result.interval.to_dict(),
        "p_value": result.p_value,
        "seeds": result.seeds,
        "num_problems": result.num_problems,
        "problems_resampled": result.problems,
        "lower_is_better": lower_is_better,
    }


def _holm(tests: list[dict[str, Any]]) -> None:
    """Fill `p_holm` and `verdict` of one family in place (tests without a p-value are left out)."""
    tested = [t for t in tests if t["p_value"] is not None]
    for t, adjusted in zip(tested, holm_adjust([t["p_value"] for t in tested]), strict=True):
        t["p_holm"] = adjusted
        better = (t["estimate"] < 0) if t["lower_is_better"] else (t["estimate"] > 0)
        if adjusted > ALPHA:
            t["verdict"] = "no claim"
        else:
            t["verdict"] = f"{t['arm']} better" if better else f"{t['reference']} better"
    for t in tests:
        if t["p_value"] is None:
            t["p_holm"] = None
            t["verdict"] = "no claim (fewer than 2 seeds)"


def analyse(
    records: Sequence[Any],
    arms: Sequence[str],
    focus: str,
    *,
    primary: str = "auc",
    target: float | None = None,
    base: dict[int, dict[str, Any]] | None = None,
    guessing: dict[str, Any] | None = None,
    power_seeds: Sequence[int] = DEFAULT_POWER_SEEDS,
    problems: str = "shared",
    resamples: int = 10_000,
    seed: int = 0,
) -> dict[str, Any]:
    """The pre-stated analysis of a finished compare grid (see the module docstring) as a JSON-able dict.

    `records`: `grid.RunRecord`s; `base`: {seed: evaluations} from `grid.base_model_evaluations`;
    `guessing`: `guessing_baseline(...)` on the final evaluation's problems (or the Pass@k curve's).
    """
    if primary not in PRIMARY_METRICS:
        raise ConfigError(f"--primary {primary!r}: choose from {', '.join(PRIMARY_METRICS)}")
    data: dict[str, list[RunData]] = {name: [] for name in arms}
    for record in records:
        run = run_data(record)
        if run is not None and run.arm in data:
            data[run.arm].append(run)
    if not data.get(focus):
        raise DataError(f"--focus {focus!r}: no finished run to analyse")
    first = data[focus][0]
    k, n, big_k = first.eval_k, first.final_n, first.passes_n
    threshold = f"{target:g}" if target is not None else f"start + {DEFAULT_TARGET_GAIN:g}"
    pass_name = f"pass@{big_k}"
    names = [*PRIMARY_METRICS, pass_name]
    labels = {m: metric_label(m, k, n, threshold) for m in names}
    kw: dict[str, Any] = {"target": target, "problems": problems, "resamples": resamples, "seed": seed}
    others = [a for a in arms if a != focus and data.get(a)]

    per_seed: dict[str, dict[str, dict[str, float]]] = {m: {} for m in names}
    arm_summaries: dict[str, dict[str, Any]] = {}
    for arm, runs in data.items():
        if not runs:
            continue
        arm_summaries[arm] = {}
        for m in names:
            per_seed[m][arm] = per_seed_values(m, runs, target)
            arm_summaries[arm][m] = compare_runs(m, runs, None, **kw).interval.to_dict()
    base_runs = [base_data(s, e) for s, e in sorted((base or {}).items())]
    if base_runs:
        for m in ("final", pass_name):
            per_seed[m][BASE] = per_seed_values(m, base_runs)

    primary_tests = []
    for other in others:
        result = compare_runs(primary, data[focus], data[other], **kw)
        primary_tests.append(_test(primary, labels[primary], focus, other, result, primary == "steps_to"))
        primary_tests[-1]["variance"] = primary_components(primary, data[focus], data[other], target)
    _holm(primary_tests)
    secondary_names = [m for m in names if m != primary]
    secondary_tests = [
        _test(m, labels[m], focus, other, compare_runs(m, data[focus], data[other], **kw), m == "steps_to")
        for other in others
        for m in secondary_names
    ]
    if base_runs:
        result = compare_runs(pass_name, data[focus], base_runs, **kw)
        secondary_tests.append(_test(pass_name, labels[pass_name], focus, BASE, result, False))
    if guessing is not None and len(guessing["per_problem_probability"]) == first.passes.size:
        q = np.asarray(guessing["per_problem_probability"])
        result = compare_runs(pass_name, data[focus], None, reference_values=1 - (1 - q) ** big_k, **kw)
        secondary_tests.append(_test(pass_name, labels[pass_name], focus, GUESS, result, False))
    _holm(secondary_tests)

    return {
        "primary": {
            "metric": primary,
            "label": labels[primary],
            "stated": "before the grid (--primary); the verdict is read from it alone",
            "alpha": ALPHA,
            "family": f"{focus} − each other arm ({len(primary_tests)} test(s)), Holm-corrected",
            "tests": primary_tests,
        },
        "secondary": {
            "metrics": secondary_names,
            "family": f"every secondary metric for {focus} − each other arm, and {focus}'s {pass_name} − "
            f"the base model and − the guessing baseline ({len(secondary_tests)} tests), Holm-corrected "
            "together",
            "tests": secondary_tests,
        },
        "metrics": {m: labels[m] for m in names},
        "arms": arm_summaries,
        "per_seed": per_seed,
        "pass_at_k": pass_at_k_table(data, base_runs, guessing, big_k),
        "guessing": {key: v for key, v in (guessing or {}).items() if key != "per_problem_probability"},
        "bootstrap": {
            "resamples": resamples,
            "level": 0.95,
            "problems": problems,
            "how": "seeds resampled with replacement, then problems; "
            + (
                "one problem draw per replicate shared by every drawn seed (all seeds are evaluated on the "
                "same held-out problems)"
                if problems == "shared"
                else "problems drawn anew within each drawn seed"
            )
            + "; p-values: two-sided percentile bootstrap (the test the interval inverts)",
            "per_problem_curves": all(r.per_problem_curve for runs in data.values() for r in runs),
        },
        "power": power_analysis(
            {arm: per_seed[primary].get(arm, {}) for arm in arms},
            focus,
            power_seeds,
            primary,
            labels[primary],
            source="this grid",
            components={f"{t['arm']} − {t['reference']}": t["variance"] for t in primary_tests},
        ),
    }


def pass_at_k_table(
    data: dict[str, list[RunData]], base_runs: list[RunData], guessing: dict[str, Any] | None, n: int
) -> dict[str, Any]:
    """Mean Pass@k over seeds (with its hierarchical bootstrap interval) for k = 1, 2, 4, ..., n, per arm,
    for the base model, and the guessing baseline's exact values."""
    ks = pass_ks(n)
    rows: dict[str, list[dict[str, Any]]] = {}
    for arm, runs in [*data.items(), (BASE, base_runs)]:
        if runs and all(r.passes_n == n for r in runs):
            rows[arm] = [compare_runs(f"pass@{k}", runs, None, resamples=2000).interval.to_dict() for k in ks]
    return {
        "k": ks,
        "samples": n,
        "source": next((r.passes_source for runs in data.values() for r in runs), "final"),
        "arms": rows,
        GUESS: [guessing["pass_at_k"].get(str(k)) for k in ks] if guessing else None,
    }


# ---------------------------------------------------------------------------------------- power


def power_analysis(
    per_seed: dict[str, dict[str, float]],
    focus: str,
    seed_counts: Sequence[int],
    metric: str,
    label: str,
    source: str,
    components: dict[str, dict[str, float] | None] | None = None,
) -> dict[str, Any]:
    """Minimum detectable effect of `focus` − each other arm for each seed count, from per-seed values.

    With one arm only, the paired SD is taken as √2 × the SD over seeds (uncorrelated arms; seeds that
    share data order and initial weights usually correlate, so this overstates it). `components`
    ({"focus − other": `stats.variance_components` of the paired per-problem differences}) adds the MDE
    with the held-out problems counted as a sample, as the hierarchical bootstrap counts them.
    """
    rows = []
    others = [a for a in per_seed if a != focus and per_seed[a]]
    if focus in per_seed and per_seed[focus] and others:
        for other in others:
            seeds = sorted(set(per_seed[focus]) & set(per_seed[other]), key=int)
            diffs = [per_seed[focus][s] - per_seed[other][s] for s in seeds]
            name = f"{focus} − {other}"
            variance = (components or {}).get(name)
            floor = math.sqrt(variance["residual_var"] / variance["problems"]) if variance else 0.0
            rows.append(_power_row(name, diffs, 1.0, seed_counts, "paired differences", sd_floor=floor))
            if variance is not None and "mde" in rows[-1]:
                _add_sampled_problems(rows[-1], variance, seed_counts)
    else:
        arms = [a for a in per_seed if per_seed[a]]
        for arm in arms:
            values = list(per_seed[arm].values())
            rows.append(
                _power_row(
                    arm, values, math.sqrt(2), seed_counts, "√2 × SD over seeds (one arm)", paired=False
                )
            )
    return {
        "metric": metric,
        "label": label,
        "source": source,
        "test": "two-sided paired t-test on per-seed differences (exact noncentral t)",
        "alpha": ALPHA,
        "power": POWER,
        "seed_counts": list(seed_counts),
        "sd_confidence": SD_CONFIDENCE,
        "rows": rows,
    }


def _power_row(
    name: str,
    values: list[float],
    factor: float,
    seed_counts: Sequence[int],
    how: str,
    paired: bool = True,
    sd_floor: float = 0.0,
) -> dict[str, Any]:
    """One comparison's MDE per seed count from its per-seed values (× `factor`). `sd_floor`: the noise of
    one seed's mean over the problems, √(residual_var / P) from `stats.variance_components` (estimated with
    (S − 1)(P − 1) degrees of freedom); a 2-3 seed SD below it is an unlucky draw, so the SD used is never
    below it."""
    row: dict[str, Any] = {"comparison": name, "pilot_seeds": len(values), "sd_from": how}
    if len(values) < 2:
        row["note"] = "needs at least 2 pilot seeds"
        return row
    sd_seeds = float(np.std(values, ddof=1)) * factor
    row["observed"] = float(np.mean(values)) if paired else None
    row["sd_seeds"] = sd_seeds
    row["sd_floor"] = sd_floor
    sd = max(sd_seeds, sd_floor)
    row["sd"] = sd
    if sd <= 1e-12:  # identical up to rounding (e.g. KL-Cov and GRPO run for run)
        row["note"] = "the per-seed values are identical: no spread to size a grid on"
        return row
    upper = max(sd_upper_bound(sd_seeds, len(values) - 1, SD_CONFIDENCE), sd_floor)
    row["sd_upper"] = upper
    row["mde"] = {str(n): min_detectable_effect(sd, n, ALPHA, POWER) for n in seed_counts}
    row["mde_sd_upper"] = {str(n): min_detectable_effect(upper, n, ALPHA, POWER) for n in seed_counts}
    return row


def _add_sampled_problems(
    row: dict[str, Any], variance: dict[str, float], seed_counts: Sequence[int]
) -> None:
    """The MDE of the hierarchical bootstrap test, the held-out problems counted as a sample
    (`stats.min_detectable_effect_crossed`, with the row's SD as the seed part), and its floor with
    infinitely many seeds, (z_{1−α/2} + z_power)·√(problem_var / problems)."""
    problems = int(variance["problems"])
    row["variance"] = variance
    row["mde_problems_sampled"] = {
        str(n): min_detectable_effect_crossed(
            row["sd"] ** 2, variance["problem_var"], variance["residual_var"], n, problems, ALPHA, POWER
        )
        for n in seed_counts
    }
    z_sum = min_detectable_effect(1.0, 10_000, ALPHA, POWER) * 100.0  # the normal limit, 2.80 at the defaults
    row["mde_floor"] = z_sum * math.sqrt(variance["problem_var"] / problems)


def format_power(power: dict[str, Any], digits: int = 4) -> str:
    """Console / Markdown text of a `power_analysis` result: one row per comparison, and one more with the
    held-out problems counted as a sample where the per-problem values allow it."""
    counts = power["seed_counts"]
    lines = [
        f"Minimum detectable effect on the primary metric ({power['label']}), from {power['source']}: "
        f"{power['test']}, α = {power['alpha']}, power {power['power']:.0%}.",
        "",
        "| comparison | pilot seeds | SD of a seed (upper bound) | observed | "
        + " | ".join(f"MDE @ {n} seeds" for n in counts)
        + " |",
        "|---|---|---|---|" + "---|" * len(counts),
    ]
    for row in power["rows"]:
        if "mde" not in row:
            lines.append(f"| {row['comparison']} | {row['pilot_seeds']} | {row.get('note', '-')} |")
            continue
        observed = "-" if row["observed"] is None else f"{row['observed']:+.{digits}f}"
        floored = " floor" if row.get("sd_floor", 0.0) > row.get("sd_seeds", row["sd"]) else ""
        cells = [
            f"{row['mde'][str(n)]:.{digits}f} ({row['mde_sd_upper'][str(n)]:.{digits}f})" for n in counts
        ]
        lines.append(
            f"| {row['comparison']} | {row['pilot_seeds']} | {row['sd']:.{digits}f}{floored} "
            f"({row['sd_upper']:.{digits}f}) | {observed} | " + " | ".join(cells) + " |"
        )
        if "mde_problems_sampled" in row:
            v = row["variance"]
            sampled = [f"{row['mde_problems_sampled'][str(n)]:.{digits}f}" for n in counts]
            problem_sd = math.sqrt(v["problem_var"])
            lines.append(
                f"| {row['comparison']}, {int(v['problems'])} problems as a sample | {row['pilot_seeds']} | "
                f"problem SD {problem_sd:.{digits}f} | floor {row['mde_floor']:.{digits}f} | "
                + " | ".join(sampled)
                + " |"
            )
    lines += [
        "",
        f"In parentheses: at the SD's {power['sd_confidence']:.0%} upper confidence bound. SD: "
        + "; ".join(sorted({row["sd_from"] for row in power["rows"]}))
        + ", never below the noise of one seed's mean over its problems (√(residual variance / problems), "
        "marked 'floor' where it applies). Rows 'problems as a sample': the test the hierarchical "
        "bootstrap makes, the held-out problems counted as drawn from the task (crossed seeds x problems); "
        "its floor is the MDE with infinitely many seeds, which only more problems lower.",
    ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------- pilots


def pilot_power(
    path: Path,
    *,
    primary: str,
    focus: str,
    seed_counts: Sequence[int],
    target: float | None = None,
) -> dict[str, Any]:
    """`power_analysis` from a pilot without training: `path` is a grid's runs folder (runs as
    `<arm>/seed<k>/`, recomputed from their logs), a folder holding `compare.json`, or a compare JSON.

    A JSON written before per-seed metrics were recorded gives `final` (per-seed final Avg@n) only; for
    another primary metric the runs folder it names is used when it still exists.
    """
    path = Path(path)
    if primary not in PRIMARY_METRICS:
        raise ConfigError(f"--primary {primary!r}: choose from {', '.join(PRIMARY_METRICS)}")
    if path.is_dir():
        if _run_folders(path):
            return _pilot_from_runs(path, primary, focus, seed_counts, target)
        if (path / "compare.json").is_file():
            path = path / "compare.json"
        else:
            raise ConfigError(
                f"--pilot {path}: no runs (<arm>/seed<k>/config.yaml) and no compare.json in it"
            )
    if not path.is_file():
        raise ConfigError(f"--pilot {path}: no such file or folder")
    try:
        report = json.loads(path.read_text())
    except ValueError as err:
        raise ConfigError(f"--pilot {path}: not JSON ({err})") from None
    if not isinstance(report, dict) or "arms" not in report:
        raise ConfigError(f"--pilot {path}: not an `eapo compare` report (no 'arms')")
    prestated = report.get("prestated") or {}
    recorded_target = (report.get("settings") or {}).get("target")
    if primary in prestated.get("per_seed", {}) and (
        primary != "steps_to" or target in (None, recorded_target)
    ):
        values = prestated["per_seed"][primary]
        label = prestated["metrics"][primary]
        per_seed = {arm: values.get(arm, {}) for arm in report["arms"]}
        tests = prestated["primary"]["tests"] if prestated["primary"]["metric"] == primary else []
        components = {f"{t['arm']} − {t['reference']}": t.get("variance") for t in tests}
        return power_analysis(per_seed, focus, seed_counts, primary, label, f"the pilot {path}", components)
    if primary == "final":
        per_seed = {
            arm: {str(r["seed"]): r["final_avg"] for r in runs if r.get("final_avg") is not None}
            for arm, runs in report.get("runs", {}).items()
        }
        n = next(iter(report["arms"].values())).get("final_samples", "n")
        return power_analysis(
            per_seed, focus, seed_counts, primary, f"final held-out Avg@{n}", f"the pilot {path}"
        )
    runs_dir = Path((report.get("settings") or {}).get("runs_dir") or "")
    if str(runs_dir) and runs_dir.is_dir() and _run_folders(runs_dir):
        return _pilot_from_runs(runs_dir, primary, focus, seed_counts, target)
    raise ConfigError(
        f"--pilot {path}: this report has no per-seed {primary!r} values"
        + (f" for --target {target:g}" if primary == "steps_to" and target is not None else "")
        + f" (reports before the pre-stated analysis have only 'final') and its runs folder "
        f"{str(runs_dir) or '(not named)'} is gone; use --primary final, or --pilot on a runs folder"
    )


def _run_folders(path: Path) -> list[tuple[str, int, Path]]:
    out = []
    for config in sorted(Path(path).glob("*/seed*/config.yaml")):
        arm, seed_dir = config.parent.parent.name, config.parent.name
        if arm != BASE and seed_dir[4:].isdigit():
            out.append((arm, int(seed_dir[4:]), config.parent))
    return out


def _pilot_from_runs(
    path: Path, primary: str, focus: str, seed_counts: Sequence[int], target: float | None
) -> dict[str, Any]:
    from eapo.analysis.grid import collect_run

    data: dict[str, list[RunData]] = {}
    for arm, seed, run_dir in _run_folders(path):
        run = run_data(collect_run(arm, seed, run_dir))
        if run is not None:
            data.setdefault(arm, []).append(run)
    if not data:
        raise ConfigError(f"--pilot {path}: no finished run with a final evaluation (grid_eval.json) in it")
    any_run = next(iter(data.values()))[0]
    per_seed = {arm: per_seed_values(primary, runs, target) for arm, runs in data.items()}
    threshold = f"{target:g}" if target is not None else f"start + {DEFAULT_TARGET_GAIN:g}"
    label = metric_label(primary, any_run.eval_k, any_run.final_n, threshold)
    components = {
        f"{focus} − {other}": primary_components(primary, data[focus], data[other], target)
        for other in data
        if other != focus and focus in data
    }
    return power_analysis(
        per_seed, focus, seed_counts, primary, label, f"the pilot runs in {path}", components
    )


# ---------------------------------------------------------------------------------------- text


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _interval_text(test: dict[str, Any], digits: int = 3) -> str:
    interval = test["interval"]
    text = f"{interval['mean']:+.{digits}f}"
    if interval.get("low") is not None:
        text += f" [{interval['low']:+.{digits}f}, {interval['high']:+.{digits}f}]"
    return text


def tests_table(tests: list[dict[str, Any]], with_metric: bool) -> list[str]:
    """Markdown rows of bootstrap tests: difference with its interval, p, Holm-adjusted p, verdict."""
    header = ["comparison", "difference [95% hierarchical bootstrap]", "p", "p (Holm)", "seeds × problems"]
    if with_metric:
        header.insert(0, "metric")
    lines = ["| " + " | ".join([*header, "verdict"]) + " |", "|" + "---|" * (len(header) + 1)]
    for t in tests:
        resampled = t["num_problems"] if t["problems_resampled"] != "none" else "1 (seeds only)"
        cells = [
            f"{t['arm']} − {t['reference']}",
            _interval_text(t),
            _fmt(t["p_value"], 4),
            _fmt(t["p_holm"], 4),
            f"{t['seeds']} × {resampled}",
            t["verdict"],
        ]
        if with_metric:
            cells.insert(0, t["label"] + (" (lower is better)" if t["lower_is_better"] else ""))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def prestated_markdown(analysis: dict[str, Any]) -> str:
    """The `## Pre-stated analysis` section of compare.md: primary, secondaries, Pass@k, power."""
    primary, secondary, table = analysis["primary"], analysis["secondary"], analysis["pass_at_k"]
    lines = [
        "## Pre-stated analysis",
        "",
        f"Bootstrap: {analysis['bootstrap']['how']}; {analysis['bootstrap']['resamples']} resamples."
        + (
            ""
            if analysis["bootstrap"]["per_problem_curves"]
            else " Some runs have no per-problem in-training counts: their curve metrics resample seeds only."
        ),
        "",
        f"### Primary: {primary['label']}"
        + (" (lower is better)" if primary["metric"] == "steps_to" else ""),
        "",
        f"Family: {primary['family']}; verdict at α = {primary['alpha']} on the Holm-adjusted p.",
        "",
        *tests_table(primary["tests"], with_metric=False),
        "",
        "### Secondary",
        "",
        f"Family: {secondary['family']}.",
        "",
        *tests_table(secondary["tests"], with_metric=True),
        "",
        f"### Pass@k against the base model and guessing ({table['samples']} samples per problem, "
        f"{table['source']} evaluation)",
        "",
        "| | " + " | ".join(f"Pass@{k}" for k in table["k"]) + " |",
        "|---|" + "---|" * len(table["k"]),
    ]
    for arm, row in table["arms"].items():
        lines.append(f"| {arm} | " + " | ".join(_fmt(v["mean"] if v else None) for v in row) + " |")
    if table.get(GUESS):
        lines.append(f"| {GUESS} | " + " | ".join(_fmt(v) for v in table[GUESS]) + " |")
    guess = analysis.get("guessing") or {}
    if guess:
        lines += [
            "",
            f"Guessing: {guess['definition']}. Always answering the most common train answer "
            f"({guess['most_common_answer']!r}) scores {guess['most_common_answer_accuracy']:.3f}; "
            f"{guess['distinct_train_answers']} distinct train answers.",
        ]
    lines += ["", "### Power", "", format_power(analysis["power"])]
    return "\n".join(lines) + "\n"


def primary_summary(analysis: dict[str, Any]) -> str:
    """Console lines: the primary metric and each primary comparison's verdict."""
    primary = analysis["primary"]
    lines = [f"Primary metric (stated before the grid): {primary['label']}"]
    for t in primary["tests"]:
        lines.append(
            f"  {t['arm']} − {t['reference']}: {_interval_text(t, 4)}, p {_fmt(t['p_value'], 4)}, "
            f"Holm p {_fmt(t['p_holm'], 4)} -> {t['verdict']}"
        )
    return "\n".join(lines) + "\n"
