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

**Power** (`eapo.analysis.power`): the minimum detectable effect of a grid of each size in `--power-seeds`,
from this grid's or a pilot's per-seed primary values. The per-run metric values are
`eapo.analysis.prestated_metrics`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from eapo.analysis.power import ALPHA, DEFAULT_POWER_SEEDS, format_power, power_analysis
from eapo.analysis.prestated_metrics import (
    BASE,
    DEFAULT_TARGET_GAIN,
    PRIMARY_METRICS,
    RunData,
    base_data,
    compare_runs,
    metric_label,
    pass_ks,
    per_seed_values,
    primary_components,
    run_data,
)
from eapo.analysis.stats import BootstrapResult, holm_adjust
from eapo.analysis.text import format_number
from eapo.errors import ConfigError, DataError

GUESS = "guessing"


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


# ---------------------------------------------------------------------------------------- text


def _fmt(value: float | None, digits: int = 3) -> str:
    return format_number(value, digits, missing="-")  # this report's tables mark a missing value "-"


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
