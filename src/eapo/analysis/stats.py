"""Statistics over seeds for the experiment grids: means with intervals, and paired differences.

Two intervals, chosen for what they are used on:

- **The mean of one arm over seeds**: a Student-t interval, mean ± t_{(1+level)/2, n−1} · s/√n. With the
  3-5 seeds a grid affords, a bootstrap percentile interval of the mean is too narrow (it can never be
  wider than the range of the values), so the t-interval is the honest choice here.
- **A paired difference** (arm minus reference, seed by seed, same data order, same initial weights):
  a paired bootstrap percentile interval of the mean difference (resampling seeds with replacement), as
  the experiment briefs ask, reported beside the paired t-interval. A claim "A beats B" is made only where
  the bootstrap interval excludes 0; with few seeds that interval is optimistic, so read it with the t one.

For the pre-stated analysis of `eapo compare` (`eapo.analysis.prestated`): the area under an accuracy
curve (`curve_auc`), the step a curve reaches a threshold, Holm's adjustment, a hierarchical bootstrap
over seeds and problems, and the power and minimum detectable effect of a paired t-test (exact, by the
noncentral t) with the upper confidence bound of a pilot's SD.

Also the Pass@k curve of a final evaluation (`pass_at_k_curve`, k = 1, 2, 4, ..., n).

Pure functions of numbers, no I/O; only `pass_at_k_curve` imports torch (for `eapo.core.pass_at_k`), and
only when called. The t quantile is computed here (the CDF by Simpson's rule on the density, inverted by
bisection) so that the library needs no scipy.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "BootstrapResult",
    "Interval",
    "PairedDifference",
    "bootstrap_mean_interval",
    "curve_auc",
    "curve_interval",
    "hierarchical_bootstrap",
    "holm_adjust",
    "mean_interval",
    "paired_difference",
    "pass_at_k_curve",
    "spearman",
    "steps_to_threshold",
    "t_quantile",
    "variance_components",
]

DEFAULT_LEVEL = 0.95
DEFAULT_RESAMPLES = 10_000


def _t_density(x: np.ndarray, df: float) -> np.ndarray:
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    return np.exp(log_norm - (df + 1) / 2 * np.log1p(x * x / df))


def _t_cdf_upper_half(t: float, df: float, points: int = 4001) -> float:
    """P(0 <= T <= t) for t >= 0, by Simpson's rule on the density (smooth, so accurate to ~1e-12).

    The integral runs over u = atan(x) ∈ [0, atan t], which maps the heavy tail of small df onto a short
    interval: dx = (1 + x²) du.
    """
    upper = math.atan(t)
    u = np.linspace(0.0, upper, points)
    x = np.tan(u)
    f = _t_density(x, df) * (1.0 + x * x)
    h = upper / (points - 1)
    return float(h / 3 * (f[0] + f[-1] + 4 * f[1:-1:2].sum() + 2 * f[2:-1:2].sum()))


@functools.lru_cache(maxsize=1024)
def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t with `df` degrees of freedom (p in (0, 1), df > 0)."""
    if not 0 < p < 1:
        raise ValueError(f"t_quantile: p = {p!r} must be in (0, 1)")
    if not df > 0:
        raise ValueError(f"t_quantile: df = {df!r} must be > 0")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1 - p, df)
    target = p - 0.5
    low, high = 0.0, 1.0
    while _t_cdf_upper_half(high, df) < target:
        high *= 2
        if high > 1e12:
            return math.inf
    for _ in range(80):
        mid = (low + high) / 2
        if _t_cdf_upper_half(mid, df) < target:
            low = mid
        else:
            high = mid
    return (low + high) / 2


@dataclass
class Interval:
    """A mean over seeds with its interval. `low`/`high` are None when fewer than 2 values exist."""

    mean: float
    low: float | None
    high: float | None
    n: int
    method: str
    level: float = DEFAULT_LEVEL
    values: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def excludes_zero(self) -> bool:
        return self.low is not None and self.high is not None and (self.low > 0 or self.high < 0)

    def format(self, digits: int = 3, scale: float = 1.0) -> str:
        """`0.412 [0.380, 0.444]` (or just the mean when there is no interval)."""
        mean = f"{self.mean * scale:.{digits}f}"
        if self.low is None or self.high is None:
            return mean
        return f"{mean} [{self.low * scale:.{digits}f}, {self.high * scale:.{digits}f}]"


def _finite_values(values: Sequence[float], what: str) -> np.ndarray:
    array = np.asarray([float(v) for v in values], dtype=np.float64)
    if array.size == 0:
        raise ValueError(f"{what}: no values")
    if not np.isfinite(array).all():
        raise ValueError(f"{what}: non-finite values {array.tolist()}")
    return array


def mean_interval(values: Sequence[float], level: float = DEFAULT_LEVEL) -> Interval:
    """Mean and Student-t interval over independent values (e.g. one arm's final accuracy per seed)."""
    array = _finite_values(values, "mean_interval")
    n = array.size
    mean = float(array.mean())
    if n < 2:
        return Interval(mean, None, None, n, "t", level, array.tolist())
    half = t_quantile((1 + level) / 2, n - 1) * float(array.std(ddof=1)) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, "t", level, array.tolist())


def bootstrap_mean_interval(
    values: Sequence[float],
    level: float = DEFAULT_LEVEL,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """Mean and bootstrap percentile interval: resample the values with replacement `resamples` times."""
    array = _finite_values(values, "bootstrap_mean_interval")
    n = array.size
    mean = float(array.mean())
    if n < 2:
        return Interval(mean, None, None, n, "bootstrap-percentile", level, array.tolist())
    rng = np.random.default_rng(seed)
    means = _bootstrap_replicates(lambda b: array[rng.integers(0, n, size=(b, n))].mean(axis=1), resamples, n)
    low, high = _percentile_interval(means, level)
    return Interval(mean, low, high, n, "bootstrap-percentile", level, array.tolist())


def _bootstrap_replicates(replicate: Callable[[int], np.ndarray], resamples: int, cells: int) -> np.ndarray:
    """`resamples` bootstrap replicates of a statistic, `replicate(b)` giving b of them ([b]) at a time.

    Drawn in chunks of about 4M resampled cells (`cells` per replicate) so memory stays bounded; the chunks
    consume the random stream in the same order as one draw would, so the chunk size changes no result.
    """
    draws = np.empty(resamples)
    chunk = max(1, 4_000_000 // cells)
    done = 0
    while done < resamples:
        b = min(chunk, resamples - done)
        draws[done : done + b] = replicate(b)
        done += b
    return draws


def _percentile_interval(draws: np.ndarray, level: float) -> tuple[float, float]:
    """The central `level` percentile interval of bootstrap replicates."""
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return float(low), float(high)


@dataclass
class PairedDifference:
    """`arm` minus `reference`, paired by seed.

    `interval` is the paired bootstrap percentile interval of the mean difference (the one `beats` and
    `worse` are decided on), `t_interval` the paired t-interval; `wins` counts seeds where the arm is ahead.
    """

    arm: str
    reference: str
    metric: str
    seeds: list[int]
    differences: list[float]
    interval: Interval
    t_interval: Interval
    wins: int
    beats: bool
    worse: bool

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["interval"] = self.interval.to_dict()
        out["t_interval"] = self.t_interval.to_dict()
        return out

    def verdict(self) -> str:
        if self.beats:
            return "better"
        if self.worse:
            return "worse"
        return "no claim"


def paired_difference(
    arm_values: Mapping[int, float],
    reference_values: Mapping[int, float],
    *,
    arm: str = "arm",
    reference: str = "reference",
    metric: str = "",
    level: float = DEFAULT_LEVEL,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> PairedDifference:
    """Per-seed differences arm − reference over the seeds both have, with paired intervals.

    Raises ValueError when the two share no seed.
    """
    seeds = sorted(set(arm_values) & set(reference_values))
    if not seeds:
        raise ValueError(
            f"paired_difference: {arm!r} and {reference!r} share no seed "
            f"({sorted(arm_values)} vs {sorted(reference_values)})"
        )
    differences = [float(arm_values[s]) - float(reference_values[s]) for s in seeds]
    boot = bootstrap_mean_interval(differences, level, resamples, seed)
    tint = mean_interval(differences, level)
    beats = boot.excludes_zero() and boot.mean > 0
    worse = boot.excludes_zero() and boot.mean < 0
    wins = sum(d > 0 for d in differences)
    return PairedDifference(arm, reference, metric, seeds, differences, boot, tint, wins, beats, worse)


def curve_interval(
    curves: Sequence[tuple[Sequence[float | None], Sequence[float | None]]], level: float = DEFAULT_LEVEL
) -> dict[str, list[float | None]]:
    """Pointwise mean and t-interval of several (x, y) curves, at the x values every curve has.

    Missing or None y values at an x are left out of that point (the point's n drops), as are points
    without an x. Returns lists `x`, `mean`, `low`, `high`, `n`.
    """
    tables = [
        {
            float(x): float(y)
            for x, y in zip(xs, ys, strict=True)
            if x is not None and y is not None and math.isfinite(y)
        }
        for xs, ys in curves
    ]
    grid = sorted(set().union(*tables)) if tables else []
    out: dict[str, list[float | None]] = {"x": [], "mean": [], "low": [], "high": [], "n": []}
    for x in grid:
        values = [table[x] for table in tables if x in table]
        interval = mean_interval(values, level)
        out["x"].append(x)
        out["mean"].append(interval.mean)
        out["low"].append(interval.low)
        out["high"].append(interval.high)
        out["n"].append(float(interval.n))
    return out


# ---------------------------------------------------------------------------------------- curves


def pass_at_k_curve(counts: Sequence[int], n: int) -> dict[str, float]:
    """Unbiased Pass@k (PAPER.md §6) averaged over problems for k = 1, 2, 4, ..., and n itself.

    `counts`: correct samples per problem, each out of `n`. Keys are the k values as strings (JSON).
    The estimator is `eapo.core.pass_at_k` (imported here, so this module stays free of torch otherwise).
    """
    import torch

    from eapo.core import pass_at_k

    ks = sorted({*(2**i for i in range(int(math.log2(n)) + 1)), n})
    c = torch.as_tensor(list(counts), dtype=torch.int64)
    return {str(k): float(torch.as_tensor(pass_at_k(n, c, k)).mean()) for k in ks}


def curve_auc(steps: ArrayLike, values: ArrayLike) -> Any:
    """Area under an accuracy curve over training, divided by the horizon: a mean accuracy.

    `steps` [T] are the evaluated steps (strictly increasing, T >= 2), `values` [..., T] the accuracy at
    each (any leading dimensions: problems, seeds). Trapezoid rule over [steps[0], steps[-1]], divided by
    steps[-1] − steps[0], so a flat curve at a gives a. Linear in `values`: the AUC of a mean curve is the
    mean of the per-problem AUCs, which lets the hierarchical bootstrap resample problems.
    """
    x = np.asarray(steps, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size < 2:
        raise ValueError(f"curve_auc: need at least 2 evaluated steps, got {x.tolist()}")
    if not (np.diff(x) > 0).all():
        raise ValueError(f"curve_auc: steps must increase strictly, got {x.tolist()}")
    if y.shape[-1] != x.size:
        raise ValueError(f"curve_auc: values have {y.shape[-1]} points on their last axis, steps {x.size}")
    area = ((y[..., 1:] + y[..., :-1]) / 2 * np.diff(x)).sum(axis=-1)
    return area / (x[-1] - x[0])


def steps_to_threshold(steps: ArrayLike, values: ArrayLike, threshold: ArrayLike, censor: float) -> Any:
    """The first evaluated step whose value reaches `threshold` (values [..., T], threshold broadcast to
    [...]); `censor` where the curve never reaches it."""
    x = np.asarray(steps, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    reached = y >= np.asarray(threshold, dtype=np.float64)[..., None]
    first = x[np.argmax(reached, axis=-1)]
    return np.where(reached.any(axis=-1), first, censor)


# ---------------------------------------------------------------------------------------- multiplicity


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm 1979): with p_(1) <= ... <= p_(m) sorted,
    p̃_(i) = max_{j <= i} min(1, (m − j + 1) · p_(j)). Rejecting where p̃ <= α controls the family-wise
    error rate at α for any dependence between the tests. Returned in the input order."""
    p = [float(v) for v in p_values]
    if any(not 0 <= v <= 1 for v in p):
        raise ValueError(f"holm_adjust: p-values must be in [0, 1], got {p}")
    m = len(p)
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda j: p[j])):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


# ---------------------------------------------------------------------------------------- bootstrap

PROBLEM_RESAMPLING = ("shared", "nested")


@dataclass
class BootstrapResult:
    """A statistic over seeds (and problems) with its hierarchical bootstrap interval and p-value.

    `p_value`: two-sided percentile-bootstrap p of "the statistic is `null`" (None below 2 seeds).
    `problems`: how problems were resampled (`shared`, `nested`, or `none` when there was one value per
    seed); `num_problems` per seed.
    """

    estimate: float
    interval: Interval
    p_value: float | None
    seeds: int
    num_problems: int
    problems: str
    resamples: int

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["interval"] = self.interval.to_dict()
        return out


def hierarchical_bootstrap(
    values: Any,
    statistic: Callable[[np.ndarray], np.ndarray] | None = None,
    *,
    problems: str = "shared",
    level: float = DEFAULT_LEVEL,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    null: float = 0.0,
) -> BootstrapResult:
    """Two-stage bootstrap of a mean over seeds of a per-seed statistic of problem means.

    `values` [S, P, *rest]: one entry per (seed, problem), e.g. a paired difference EAPO − baseline of a
    per-problem accuracy (pairing by seed and problem is kept: both arms' values move together). Each
    replicate draws S seeds with replacement, then P problems with replacement, averages the drawn
    problems of each drawn seed to [*rest], applies `statistic` ([..., *rest] -> [...]; default: the mean
    itself, for scalar entries) and averages over the drawn seeds. The estimate is the same computation
    without resampling; the interval is the percentile interval of the replicates and the p-value
    2·min(P*(θ* <= null), P*(θ* >= null)) with the +1 correction, the test the interval inverts.

    `problems="shared"` (default) draws one problem sample per replicate and uses it for every drawn seed:
    every seed of a grid is evaluated on the same held-out problems, so seed and problem effects are
    crossed, and only a shared draw carries a problem effect common to all seeds into the spread (an
    independent draw per seed would divide its variance by S). `problems="nested"` draws problems anew for
    each drawn seed (seeds then problems within seed). With P = 1 only seeds are resampled.
    """
    if problems not in PROBLEM_RESAMPLING:
        raise ValueError(f"hierarchical_bootstrap: problems={problems!r}; choose from {PROBLEM_RESAMPLING}")
    data = np.asarray(values, dtype=np.float64)
    if data.ndim < 2 or 0 in data.shape[:2]:
        raise ValueError(f"hierarchical_bootstrap: values must be [seeds, problems, ...], got {data.shape}")
    if not np.isfinite(data).all():
        raise ValueError("hierarchical_bootstrap: non-finite values")
    stat = statistic if statistic is not None else (lambda means: means)
    num_seeds, num_problems, rest = data.shape[0], data.shape[1], data.shape[2:]
    per_seed = np.asarray(stat(data.mean(axis=1)), dtype=np.float64)
    if per_seed.shape != (num_seeds,):
        raise ValueError(
            f"hierarchical_bootstrap: the statistic gave shape {per_seed.shape}, not ({num_seeds},)"
        )
    estimate = float(per_seed.mean())
    mode = problems if num_problems > 1 else "none"
    method = f"hierarchical-bootstrap ({mode} problems)"
    if num_seeds < 2:
        interval = Interval(estimate, None, None, num_seeds, method, level, per_seed.tolist())
        return BootstrapResult(estimate, interval, None, num_seeds, num_problems, mode, 0)
    flat = data.reshape(num_seeds, num_problems, -1)
    width = flat.shape[2]
    rng = np.random.default_rng(seed)
    uniform = np.full(num_problems, 1.0 / num_problems)

    def replicate(b: int) -> np.ndarray:
        seeds = rng.integers(0, num_seeds, size=(b, num_seeds))
        if mode == "none":
            means = flat[:, 0, :][seeds]
        elif mode == "shared":
            weights = rng.multinomial(num_problems, uniform, size=b).astype(np.float64)
            every_seed = np.einsum("bp,spr->bsr", weights, flat) / num_problems
            means = np.take_along_axis(every_seed, seeds[:, :, None], axis=1)
        else:
            weights = rng.multinomial(num_problems, uniform, size=(b, num_seeds)).astype(np.float64)
            means = np.einsum("bip,bipr->bir", weights, flat[seeds]) / num_problems
        return np.asarray(stat(means.reshape(b, num_seeds, *rest))).mean(axis=1)

    draws = _bootstrap_replicates(replicate, resamples, num_seeds * num_problems * width)
    low, high = _percentile_interval(draws, level)
    below, above = int((draws <= null).sum()), int((draws >= null).sum())
    p_value = min(1.0, 2 * (min(below, above) + 1) / (resamples + 1))
    interval = Interval(estimate, low, high, num_seeds, method, level, per_seed.tolist())
    return BootstrapResult(estimate, interval, p_value, num_seeds, num_problems, mode, resamples)


# ---------------------------------------------------------------------------------------- variance components


def variance_components(values: Any) -> dict[str, float]:
    """Variance components of a seeds × problems table with one value per cell (e.g. a paired difference
    per seed and problem), by the two-way crossed random-effects ANOVA y_sj = µ + a_s + b_j + e_sj.

    Returns `seed_var`, the variance of the seed means (σ_a² + σ_e²/P: what a t-test over seeds sees),
    `problem_var` = max(0, (MS_problems − MS_residual)/S), the variance of a problem's effect (σ_b²),
    `residual_var` = MS_residual (σ_e²), and the table's `seeds` and `problems`. Needs S >= 2 and P >= 2.
    """
    y = np.asarray(values, dtype=np.float64)
    if y.ndim != 2 or y.shape[0] < 2 or y.shape[1] < 2:
        raise ValueError(f"variance_components: need a [seeds >= 2, problems >= 2] table, got {y.shape}")
    seeds, problems = y.shape
    seed_means, problem_means = y.mean(axis=1), y.mean(axis=0)
    residual = y - seed_means[:, None] - problem_means[None, :] + y.mean()
    ms_residual = float((residual**2).sum() / ((seeds - 1) * (problems - 1)))
    ms_problems = float(seeds * problem_means.var(ddof=1))
    return {
        "seed_var": float(seed_means.var(ddof=1)),
        "problem_var": max(0.0, (ms_problems - ms_residual) / seeds),
        "residual_var": ms_residual,
        "seeds": seeds,
        "problems": problems,
    }


# ---------------------------------------------------------------------------------------- rank correlation


def spearman(x: ArrayLike, y: ArrayLike) -> float:
    """Spearman rank correlation (average ranks for ties); NaN with fewer than 3 points or a constant."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(a) != len(b):
        raise ValueError(f"spearman needs equal lengths; got {len(a)} and {len(b)}")
    if len(a) < 3:
        return float("nan")
    ra, rb = _average_ranks(a), _average_ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(len(values), dtype=np.float64)
    # Ties share the mean of their ranks.
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return (sums / counts)[inverse]
