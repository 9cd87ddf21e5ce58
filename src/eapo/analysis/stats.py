"""Statistics over seeds for the experiment grids: means with intervals, and paired differences.

Two intervals, chosen for what they are used on:

- **The mean of one arm over seeds**: a Student-t interval, mean ± t_{(1+level)/2, n−1} · s/√n. With the
  3-5 seeds a grid affords, a bootstrap percentile interval of the mean is too narrow (it can never be
  wider than the range of the values), so the t-interval is the honest choice here.
- **A paired difference** (arm minus reference, seed by seed, same data order, same initial weights):
  a paired bootstrap percentile interval of the mean difference (resampling seeds with replacement), as
  the experiment briefs ask, reported beside the paired t-interval. A claim "A beats B" is made only where
  the bootstrap interval excludes 0; with few seeds that interval is optimistic, so read it with the t one.

Pure functions of numbers: no torch, no I/O. The t quantile is computed here (the CDF by Simpson's rule
on the density, inverted by bisection) so that the library needs no scipy.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "Interval",
    "PairedDifference",
    "bootstrap_mean_interval",
    "curve_interval",
    "mean_interval",
    "paired_difference",
    "t_quantile",
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
    means = array[rng.integers(0, n, size=(resamples, n))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Interval(mean, float(low), float(high), n, "bootstrap-percentile", level, array.tolist())


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
    curves: Sequence[tuple[Sequence[float], Sequence[float | None]]], level: float = DEFAULT_LEVEL
) -> dict[str, list[float | None]]:
    """Pointwise mean and t-interval of several (x, y) curves, at the x values every curve has.

    Missing or None y values at an x are left out of that point (the point's n drops). Returns lists
    `x`, `mean`, `low`, `high`, `n`.
    """
    tables = [
        {float(x): float(y) for x, y in zip(xs, ys, strict=True) if y is not None and math.isfinite(y)}
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
