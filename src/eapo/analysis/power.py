"""How large an effect an `eapo compare` grid can find: the minimum detectable effect (MDE) of its primary
comparison for each seed count, from this grid's or a pilot's per-seed values (`--power-seeds`, `--pilot`;
issue #17, item 6).

**Power**: from per-seed primary values (a pilot grid, or this grid), the minimum detectable effect of a
two-sided paired t-test on per-seed differences at α = 0.05 and 80% power for each seed count in
`--power-seeds` (`min_detectable_effect` below, exact noncentral t), with the standard deviation as
estimated (never below the noise of one seed's mean over its problems) and at its 80% upper confidence
bound (a 2-3 seed pilot estimates it poorly). That is for the grid's fixed held-out problems; a second row
sizes the hierarchical bootstrap's test, the problems counted as a sample (`stats.variance_components`,
`min_detectable_effect_crossed`), whose floor more seeds cannot lower.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eapo.analysis.prestated_metrics import (
    BASE,
    DEFAULT_TARGET_GAIN,
    PRIMARY_METRICS,
    RunData,
    metric_label,
    per_seed_values,
    primary_components,
    run_data,
)
from eapo.analysis.stats import t_quantile
from eapo.errors import ConfigError, DataError

# ------------------------------------------------------------------------------ power of a paired test


def normal_cdf(x: Any) -> Any:
    """Φ(x), elementwise."""
    erfc = np.vectorize(math.erfc, otypes=[np.float64])
    return 0.5 * erfc(-np.asarray(x, dtype=np.float64) / math.sqrt(2.0))


def chi2_cdf(x: float, df: float) -> float:
    """P(χ²_df <= x): the regularized lower incomplete gamma P(df/2, x/2) by its power series."""
    if not df > 0:
        raise ValueError(f"chi2_cdf: df = {df!r} must be > 0")
    if x <= 0:
        return 0.0
    a, half = df / 2, x / 2
    term = math.exp(a * math.log(half) - half - math.lgamma(a + 1))
    total, n = term, 0
    while term > 1e-17 * total and n < 100_000:
        n += 1
        term *= half / (a + n)
        total += term
    return min(1.0, total)


def chi2_quantile(p: float, df: float) -> float:
    """The p-quantile of χ² with `df` degrees of freedom (bisection on `chi2_cdf`)."""
    if not 0 < p < 1:
        raise ValueError(f"chi2_quantile: p = {p!r} must be in (0, 1)")
    low, high = 0.0, max(1.0, 2.0 * df)
    while chi2_cdf(high, df) < p:
        high *= 2
    for _ in range(100):
        mid = (low + high) / 2
        if chi2_cdf(mid, df) < p:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def paired_t_power(effect: float, sd: float, n: int, alpha: float = 0.05) -> float:
    """Power of the two-sided one-sample t-test on n paired differences with mean `effect` and standard
    deviation `sd`, at level `alpha`: P(|T| > t_{1−α/2, n−1}) with T noncentral t (df n − 1, noncentrality
    effect·√n/sd). Computed exactly as E_V[Φ(δ − c·√(V/df)) + Φ(−δ − c·√(V/df))], V ~ χ²_df, by Simpson's
    rule over the χ distribution of √V."""
    if n < 2:
        raise ValueError(f"paired_t_power: n = {n} seeds; a t-test needs at least 2")
    if not sd > 0:
        raise ValueError(f"paired_t_power: sd = {sd!r} must be > 0")
    df = n - 1
    c = t_quantile(1 - alpha / 2, df)
    delta = effect * math.sqrt(n) / sd
    w = np.linspace(0.0, math.sqrt(df) + 12.0, 4001)
    log_density = (df - 1) * np.log(np.maximum(w, 1e-300)) - w * w / 2 - (df / 2 - 1) * math.log(2)
    density = np.exp(log_density - math.lgamma(df / 2))
    if df == 1:
        density[0] = math.sqrt(2 / math.pi)
    scaled = c * w / math.sqrt(df)
    f = density * (normal_cdf(delta - scaled) + normal_cdf(-delta - scaled))
    h = w[1] - w[0]
    return float(h / 3 * (f[0] + f[-1] + 4 * f[1:-1:2].sum() + 2 * f[2:-1:2].sum()))


def min_detectable_effect(sd: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest true mean paired difference a two-sided paired t-test over n seeds detects with the
    given power at level `alpha`, for per-seed differences of standard deviation `sd` (exact noncentral t,
    `paired_t_power`). For large n it tends to (z_{1−α/2} + z_power)·sd/√n = 2.80·sd/√n at the defaults."""
    if not 0 < power < 1:
        raise ValueError(f"min_detectable_effect: power = {power!r} must be in (0, 1)")
    if not alpha < power:
        raise ValueError(f"min_detectable_effect: power {power} must exceed alpha {alpha}")
    low, high = 0.0, sd
    while paired_t_power(high, sd, n, alpha) < power:
        high *= 2
    for _ in range(60):
        mid = (low + high) / 2
        if paired_t_power(mid, sd, n, alpha) < power:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def sd_upper_bound(sd: float, df: int, confidence: float = 0.8) -> float:
    """One-sided upper confidence bound of a normal standard deviation estimated with `df` degrees of
    freedom: sd·√(df / χ²_{1−confidence, df}). A pilot's 2-3 seeds estimate sd poorly; sizing a grid on
    this bound instead of the estimate guards against an optimistic pilot."""
    return sd * math.sqrt(df / chi2_quantile(1 - confidence, df))


def min_detectable_effect_crossed(
    seed_var: float,
    problem_var: float,
    residual_var: float,
    seeds: int,
    problems: int,
    alpha: float = 0.05,
    power: float = 0.8,
) -> float:
    """The minimum detectable effect of the hierarchical bootstrap test (`hierarchical_bootstrap`, shared
    problem draws), where the held-out problems count as a sample too.

    With the components of `variance_components`, that bootstrap's variance of the mean over `seeds` seeds
    and `problems` problems is seed_var/seeds + problem_var/problems + residual_var/(seeds·problems): it
    resamples seeds (whose means carry σ_e²/P) and problems (whose means carry σ_e²/S), so the residual is
    counted twice, a conservative choice. More seeds cannot push it below problem_var/problems. Computed as
    `min_detectable_effect` with the per-seed SD inflated to carry that variance and seeds − 1 degrees of
    freedom (conservative again: the problem term has many more)."""
    sd = math.sqrt(seed_var + problem_var * seeds / problems + residual_var / problems)
    return min_detectable_effect(sd, seeds, alpha, power)


ALPHA = 0.05  # two-sided significance level of every test, the power analysis's and the verdicts'
POWER = 0.8
SD_CONFIDENCE = 0.8
DEFAULT_POWER_SEEDS = (4, 8, 16)


def parse_power_seeds(text: str) -> list[int]:
    """`"4,8,16"` -> [4, 8, 16]; each a seed count >= 2 (a paired t-test needs two)."""
    try:
        counts = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--power-seeds {text!r}: expected comma-separated integers, e.g. 4,8,16") from None
    if not counts or min(counts) < 2:
        raise ConfigError(f"--power-seeds {text!r}: expected seed counts >= 2 (a paired t-test needs two)")
    return sorted(set(counts))


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
    (`min_detectable_effect_crossed`, with the row's SD as the seed part), and its floor with
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
    horizon: int | None = None,
) -> dict[str, Any]:
    """`power_analysis` from a pilot without training: `path` is a grid's runs folder (runs as
    `<arm>/seed<k>/`, recomputed from their logs), a folder holding `compare.json`, or a compare JSON.

    A JSON written before per-seed metrics were recorded gives `final` (per-seed final Avg@n) only; for
    another primary metric the runs folder it names is used when it still exists.

    `horizon` (`--steps` with `--pilot`): the grid being sized trains that many steps, so the pilot's
    in-training curves are cut at it before the curve metrics (`auc`, `steps_to`) are computed; the pilot's
    final evaluation ran at its own end, so `final` cannot be cut and is refused with a horizon.
    """
    path = Path(path)
    if primary not in PRIMARY_METRICS:
        raise ConfigError(f"--primary {primary!r}: choose from {', '.join(PRIMARY_METRICS)}")
    if horizon is not None:
        if primary == "final":
            raise ConfigError(
                f"--pilot with --steps {horizon}: the pilot's final evaluation ran at its own last step and "
                "cannot be cut at another horizon; use a curve metric (--primary auc or steps_to)"
            )
        runs_dir = path if path.is_dir() and _run_folders(path) else _named_runs_dir(path)
        if runs_dir is None:
            raise ConfigError(
                f"--pilot {path} with --steps: cutting the curves needs the pilot's runs folder"
            )
        return _pilot_from_runs(runs_dir, primary, focus, seed_counts, target, horizon)
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


def _named_runs_dir(path: Path) -> Path | None:
    """The runs folder a compare report (or the folder holding its compare.json) names, if it still exists."""
    report_path = path / "compare.json" if path.is_dir() else path
    try:
        report = json.loads(report_path.read_text())
    except (OSError, ValueError):
        return None
    runs_dir = Path(
        ((report if isinstance(report, dict) else {}).get("settings") or {}).get("runs_dir") or ""
    )
    return runs_dir if str(runs_dir) and runs_dir.is_dir() and _run_folders(runs_dir) else None


def _cut_at(run: RunData, horizon: int) -> RunData:
    """The run as if it had trained `horizon` steps: its in-training evaluations at steps ≤ horizon."""
    keep = run.steps <= horizon
    if not keep.any() or run.steps[keep][-1] != horizon:
        raise DataError(
            f"{run.arm}/seed{run.seed}: no in-training evaluation at step {horizon} (evaluated at "
            f"{run.steps.tolist()}); choose a horizon the pilot evaluated at"
        )
    return dataclasses.replace(run, steps=run.steps[keep], curve=run.curve[:, keep])


def _run_folders(path: Path) -> list[tuple[str, int, Path]]:
    out = []
    for config in sorted(Path(path).glob("*/seed*/config.yaml")):
        arm, seed_dir = config.parent.parent.name, config.parent.name
        if arm != BASE and seed_dir[4:].isdigit():
            out.append((arm, int(seed_dir[4:]), config.parent))
    return out


def _pilot_from_runs(
    path: Path,
    primary: str,
    focus: str,
    seed_counts: Sequence[int],
    target: float | None,
    horizon: int | None = None,
) -> dict[str, Any]:
    from eapo.analysis.grid import collect_run

    data: dict[str, list[RunData]] = {}
    for arm, seed, run_dir in _run_folders(path):
        run = run_data(collect_run(arm, seed, run_dir))
        if run is not None:
            data.setdefault(arm, []).append(run if horizon is None else _cut_at(run, horizon))
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
    source = f"the pilot runs in {path}" + (f", curves cut at step {horizon}" if horizon is not None else "")
    return power_analysis(per_seed, focus, seed_counts, primary, label, source, components)
