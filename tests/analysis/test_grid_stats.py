"""eapo.analysis.stats: intervals, paired differences and the Pass@k curve: known answers and invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eapo.analysis.stats import (
    Interval,
    _bootstrap_replicates,
    bootstrap_mean_interval,
    curve_interval,
    hierarchical_bootstrap,
    mean_interval,
    paired_difference,
    pass_at_k_curve,
    t_quantile,
)

# Two-sided 95% critical values of Student's t (any statistics table).
T_975 = {1: 12.7062, 2: 4.3027, 3: 3.1824, 4: 2.7764, 9: 2.2622, 30: 2.0423}


def _bounds(interval: Interval) -> tuple[float, float]:
    """The interval's (low, high); every interval here has them (it is over 2 or more values)."""
    assert interval.low is not None and interval.high is not None
    return interval.low, interval.high


@pytest.mark.parametrize(("df", "expected"), sorted(T_975.items()))
def test_t_quantile_matches_the_table(df: int, expected: float) -> None:
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=1e-4)
    assert t_quantile(0.025, df) == pytest.approx(-expected, abs=1e-4)


@pytest.mark.parametrize(
    ("p", "df", "expected"),
    # scipy.stats.t.ppf(p, df), computed once offline (scipy is not a runtime dependency).
    [
        (0.995, 5, 4.032143),
        (0.95, 10, 1.812461),
        (0.9, 20, 1.325341),
        (0.6, 200, 0.253684),
        (0.975, 1.5, 6.016663),
    ],
)
def test_t_quantile_matches_scipy_off_the_table(p: float, df: float, expected: float) -> None:
    assert t_quantile(p, df) == pytest.approx(expected, abs=2e-6)


def test_t_quantile_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="p = 1"):
        t_quantile(1, 3)
    with pytest.raises(ValueError, match="df = 0"):
        t_quantile(0.9, 0)


def test_mean_interval_known_answer() -> None:
    # values 1, 2, 3: mean 2, sample sd 1, half-width t(0.975, 2) / sqrt(3).
    interval = mean_interval([1.0, 2.0, 3.0])
    half = 4.302653 / math.sqrt(3)
    assert interval.mean == pytest.approx(2.0)
    assert interval.low == pytest.approx(2.0 - half, abs=1e-5)
    assert interval.high == pytest.approx(2.0 + half, abs=1e-5)
    assert interval.n == 3 and interval.method == "t"


def test_one_value_has_no_interval_and_supports_no_claim() -> None:
    interval = mean_interval([0.4])
    assert (interval.mean, interval.low, interval.high) == (0.4, None, None)
    diff = paired_difference({0: 0.5}, {0: 0.1})
    assert diff.differences == [pytest.approx(0.4)]
    assert not diff.beats and not diff.worse and diff.verdict() == "no claim"


def test_constant_shift_is_a_claim_with_a_zero_width_interval() -> None:
    reference = {0: 0.30, 1: 0.45, 2: 0.38, 3: 0.52}
    arm = {seed: value + 0.05 for seed, value in reference.items()}
    diff = paired_difference(arm, reference, arm="eapo", reference="grpo", metric="avg")
    assert diff.interval.mean == pytest.approx(0.05)
    assert diff.interval.low == pytest.approx(0.05) and diff.interval.high == pytest.approx(0.05)
    assert diff.beats and not diff.worse and diff.wins == 4
    flipped = paired_difference(reference, arm)
    assert flipped.worse and not flipped.beats


def test_pairing_removes_the_seed_effect() -> None:
    # Seeds differ a lot, the arm is always 0.02 ahead: unpaired intervals overlap, the paired one does not.
    reference = {0: 0.10, 1: 0.50, 2: 0.30, 3: 0.70, 4: 0.20}
    arm = {s: v + 0.02 + 0.002 * (s % 2) for s, v in reference.items()}
    unpaired_a, unpaired_b = mean_interval(list(arm.values())), mean_interval(list(reference.values()))
    assert _bounds(unpaired_a)[0] < _bounds(unpaired_b)[1]  # overlapping: no claim without pairing
    assert paired_difference(arm, reference).beats


def test_symmetric_differences_support_no_claim() -> None:
    reference = {0: 0.5, 1: 0.5, 2: 0.5, 3: 0.5}
    arm = {0: 0.6, 1: 0.4, 2: 0.55, 3: 0.45}
    diff = paired_difference(arm, reference)
    assert diff.interval.mean == pytest.approx(0.0)
    low, high = _bounds(diff.interval)
    assert low < 0 < high
    assert diff.verdict() == "no claim"


def test_paired_difference_uses_shared_seeds_only_and_needs_one() -> None:
    diff = paired_difference({0: 1.0, 1: 2.0, 5: 9.0}, {1: 1.5, 0: 0.5, 7: 0.0})
    assert diff.seeds == [0, 1]
    assert diff.differences == [pytest.approx(0.5), pytest.approx(0.5)]
    with pytest.raises(ValueError, match="share no seed"):
        paired_difference({0: 1.0}, {1: 1.0}, arm="a", reference="b")


def test_bootstrap_is_reproducible_and_rejects_non_finite() -> None:
    values = [0.1, 0.4, 0.35, 0.2, 0.3]
    assert bootstrap_mean_interval(values, seed=3) == bootstrap_mean_interval(values, seed=3)
    with pytest.raises(ValueError, match="non-finite"):
        mean_interval([0.1, float("nan")])


def test_bootstrap_replicates_drawn_in_chunks_equal_one_draw() -> None:
    # Both bootstraps draw their replicates in memory-bounded chunks; the chunk size must change nothing.
    values = np.random.default_rng(0).random(9)

    def replicates(cells: int) -> np.ndarray:
        rng = np.random.default_rng(5)

        def resampled_means(b: int) -> np.ndarray:
            return values[rng.integers(0, 9, size=(b, 9))].mean(axis=1)

        return _bootstrap_replicates(resampled_means, 1001, cells)

    assert np.array_equal(replicates(1), replicates(4_000_000 // 7))  # one chunk, then chunks of 7


def test_seed_bootstrap_is_the_hierarchical_bootstrap_with_one_problem_per_seed() -> None:
    values = [0.1, 0.4, 0.35, 0.2, 0.3]
    seeds_only = bootstrap_mean_interval(values, seed=2)
    hierarchical = hierarchical_bootstrap(np.asarray(values)[:, None], seed=2).interval
    assert (seeds_only.mean, seeds_only.low, seeds_only.high) == (
        hierarchical.mean,
        hierarchical.low,
        hierarchical.high,
    )


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-10, 10, allow_nan=False), min_size=2, max_size=8))
def test_intervals_contain_the_mean_and_bootstrap_stays_in_the_range(values: list[float]) -> None:
    t = mean_interval(values)
    boot = bootstrap_mean_interval(values, resamples=500)
    t_low, t_high = _bounds(t)
    assert t_low <= t.mean + 1e-12 and t.mean <= t_high + 1e-12
    boot_low, boot_high = _bounds(boot)
    assert min(values) - 1e-9 <= boot_low <= boot_high <= max(values) + 1e-9
    wider_low, wider_high = _bounds(mean_interval(values, level=0.99))
    assert wider_high - wider_low >= t_high - t_low - 1e-12


def test_curve_interval_aligns_steps_and_skips_missing_points() -> None:
    curves: list[tuple[list[int], list[float | None]]] = [
        ([0, 50, 100], [0.2, 0.3, 0.4]),
        ([0, 50, 100], [0.4, None, 0.6]),
        ([0, 100], [0.3, 0.5]),
    ]
    out = curve_interval(curves)
    assert out["x"] == [0.0, 50.0, 100.0]
    assert out["mean"] == pytest.approx([0.3, 0.3, 0.5])
    assert out["n"] == [3.0, 1.0, 3.0]
    assert out["low"][1] is None  # one value: no interval
    low, high = out["low"][2], out["high"][2]
    assert low is not None and high is not None and low < 0.5 < high


def test_pass_at_k_curve_known_answers() -> None:
    # n = 4. A problem with c = 1: Pass@1 = 1/4, Pass@2 = 1 − C(3,2)/C(4,2) = 1/2, Pass@4 = 1.
    assert pass_at_k_curve([1], 4) == pytest.approx({"1": 0.25, "2": 0.5, "4": 1.0})
    # all-correct and all-wrong problems average to 1/2 at every k.
    assert pass_at_k_curve([4, 0], 4) == pytest.approx({"1": 0.5, "2": 0.5, "4": 0.5})
    # n not a power of two: k = 1, 2, 4, 8 and n itself.
    curve = pass_at_k_curve([3, 0, 12], 12)
    assert list(curve) == ["1", "2", "4", "8", "12"]
    assert curve["1"] == pytest.approx(np.mean([3 / 12, 0, 1]))
    assert all(a <= b + 1e-12 for a, b in zip(list(curve.values()), list(curve.values())[1:], strict=False))
