"""The statistics behind `eapo compare`'s pre-stated analysis: AUC, steps to a threshold, Holm, the
hierarchical bootstrap and the minimum detectable effect, against hand computations and simulations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from eapo.analysis.power import (
    chi2_quantile,
    min_detectable_effect,
    min_detectable_effect_crossed,
    paired_t_power,
    sd_upper_bound,
)
from eapo.analysis.stats import (
    Interval,
    curve_auc,
    hierarchical_bootstrap,
    holm_adjust,
    steps_to_threshold,
    t_quantile,
    variance_components,
)


def _bounds(interval: Interval) -> tuple[float, float]:
    """The interval's (low, high); every interval here has them (it is over 2 or more values)."""
    assert interval.low is not None and interval.high is not None
    return interval.low, interval.high


def _width(interval: Interval) -> float:
    low, high = _bounds(interval)
    return high - low


# ------------------------------------------------------------------------------------------ AUC


def test_curve_auc_reads_as_a_mean_accuracy() -> None:
    assert curve_auc([0, 50, 100], [0.4, 0.4, 0.4]) == pytest.approx(0.4)  # flat curve: its value
    assert curve_auc([0, 10], [0.0, 1.0]) == pytest.approx(0.5)  # a ramp: its midpoint
    # Uneven steps, by hand: trapezoids (0.2 + 0.4)/2·10 + (0.4 + 0.7)/2·30 = 3 + 16.5 = 19.5, ÷ 40.
    assert curve_auc([0, 10, 40], [0.2, 0.4, 0.7]) == pytest.approx(19.5 / 40)


def test_curve_auc_is_linear_over_problems() -> None:
    rng = np.random.default_rng(0)
    steps = [0, 5, 10, 20]
    per_problem = rng.uniform(size=(7, 4))
    assert curve_auc(steps, per_problem).shape == (7,)
    assert curve_auc(steps, per_problem).mean() == pytest.approx(curve_auc(steps, per_problem.mean(axis=0)))


def test_curve_auc_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="at least 2 evaluated steps"):
        curve_auc([0], [0.5])
    with pytest.raises(ValueError, match="increase strictly"):
        curve_auc([0, 10, 10], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="3 points on their last axis, steps 2"):
        curve_auc([0, 10], [0.1, 0.2, 0.3])


def test_steps_to_threshold_first_step_or_censored() -> None:
    steps = [0, 10, 20, 30]
    curves = np.array([[0.1, 0.3, 0.5, 0.6], [0.1, 0.2, 0.2, 0.2], [0.6, 0.1, 0.7, 0.8]])
    assert steps_to_threshold(steps, curves, 0.5, censor=40).tolist() == [20, 40, 0]
    # A threshold per curve (each run's own start + 0.15).
    assert steps_to_threshold(steps, curves, curves[:, 0] + 0.15, censor=40).tolist() == [10, 40, 30]


# ------------------------------------------------------------------------------------------ Holm


def test_holm_matches_a_hand_computation() -> None:
    # Sorted 0.01, 0.03, 0.04, 0.5 -> ×4, ×3, ×2, ×1 = 0.04, 0.09, 0.08, 0.5, made monotone: 0.09 for 0.04.
    assert holm_adjust([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert holm_adjust([0.3, 0.9]) == pytest.approx([0.6, 0.9])
    assert holm_adjust([0.6, 0.7]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm_adjust([0.02]) == [0.02]  # one test: unchanged
    assert holm_adjust([]) == []


def test_holm_is_between_raw_and_bonferroni_and_monotone() -> None:
    rng = np.random.default_rng(1)
    for _ in range(50):
        p = rng.uniform(0, 0.2, size=rng.integers(1, 9)).tolist()
        adjusted = holm_adjust(p)
        for raw, adj in zip(p, adjusted, strict=True):
            assert raw - 1e-12 <= adj <= min(1.0, raw * len(p)) + 1e-12
        order = np.argsort(p)
        assert np.all(np.diff(np.asarray(adjusted)[order]) >= -1e-12)  # same order as the raw p-values


def test_holm_rejects_p_values_outside_0_1() -> None:
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        holm_adjust([0.2, 1.5])


# ------------------------------------------------------------------------------------------ bootstrap


def test_bootstrap_estimate_is_the_mean_and_needs_two_seeds() -> None:
    values = np.arange(12, dtype=float).reshape(3, 4)
    result = hierarchical_bootstrap(values, resamples=500)
    assert result.estimate == pytest.approx(values.mean())
    assert result.interval.values == pytest.approx(values.mean(axis=1).tolist())  # per-seed means
    assert (result.seeds, result.num_problems, result.problems) == (3, 4, "shared")
    single = hierarchical_bootstrap(values[:1])
    assert single.interval.low is None and single.p_value is None


def test_bootstrap_of_a_constant_difference_has_no_spread() -> None:
    # Paired by seed and problem: arm = reference + 0.1 everywhere, whatever the seed and problem effects.
    rng = np.random.default_rng(2)
    reference = rng.uniform(size=(4, 30))
    result = hierarchical_bootstrap(reference + 0.1 - reference, resamples=999)
    assert result.interval.low == pytest.approx(0.1) and result.interval.high == pytest.approx(0.1)
    assert result.p_value == pytest.approx(2 / 1000)  # the smallest p 999 resamples can give


def test_bootstrap_p_value_under_the_null_is_not_small() -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(size=(6, 40))
    values -= values.mean()  # estimate exactly 0
    result = hierarchical_bootstrap(values, resamples=2000)
    assert result.p_value is not None and result.p_value > 0.5
    low, high = _bounds(result.interval)
    assert low < 0 < high


def _crossed(
    rng: np.random.Generator, seeds: int, problems: int, sd_seed: float, sd_problem: float
) -> np.ndarray:
    """Seed and problem effects crossed, as in a grid (every seed evaluated on the same problems)."""
    seed_effect = rng.normal(0, sd_seed, size=(seeds, 1))
    problem_effect = rng.normal(0, sd_problem, size=(1, problems))
    return seed_effect + problem_effect + rng.normal(0, 0.1, size=(seeds, problems))


def test_shared_problem_draws_carry_a_problem_effect_common_to_all_seeds() -> None:
    # No seed effect, a large problem effect: the mean's standard error is about sd_problem / √P; drawing
    # problems anew for each seed (nested) divides that variance by the number of seeds.
    rng = np.random.default_rng(4)
    seeds, problems, sd_problem = 8, 50, 1.0
    values = _crossed(rng, seeds, problems, 0.0, sd_problem)
    shared = hierarchical_bootstrap(values, problems="shared", resamples=4000)
    nested = hierarchical_bootstrap(values, problems="nested", resamples=4000)
    width_shared = _width(shared.interval)
    width_nested = _width(nested.interval)
    expected = 2 * 1.96 * values.mean(axis=0).std(ddof=1) / math.sqrt(problems)
    assert width_shared == pytest.approx(expected, rel=0.15)
    assert width_nested < width_shared / 2  # about 1/√8 of it


def test_shared_bootstrap_covers_the_mean_of_crossed_effects() -> None:
    # Coverage over repeated crossed experiments (true mean 0): the shared two-stage bootstrap is
    # conservative rather than optimistic (it counts the residual twice); nested misses the problem effect.
    rng = np.random.default_rng(5)
    hits = {"shared": 0, "nested": 0}
    trials = 150
    for trial in range(trials):
        values = _crossed(rng, 6, 20, 0.3, 0.3)
        for mode in hits:
            r = hierarchical_bootstrap(values, problems=mode, resamples=400, seed=trial)
            low, high = _bounds(r.interval)
            hits[mode] += low <= 0 <= high
    assert hits["shared"] / trials >= 0.85
    assert hits["nested"] < hits["shared"]


def test_bootstrap_with_a_nonlinear_statistic_and_one_value_per_seed() -> None:
    steps = np.array([0.0, 10.0, 20.0])
    curves = np.array([[[0.1, 0.3, 0.6]] * 5, [[0.1, 0.2, 0.4]] * 5])  # [S=2, P=5, T=3]
    result = hierarchical_bootstrap(
        curves, lambda means: steps_to_threshold(steps, means, 0.35, censor=30.0), resamples=200
    )
    assert result.interval.values == [20.0, 20.0] and result.estimate == 20.0
    seeds_only = hierarchical_bootstrap(np.array([[0.1], [0.3], [0.2]]), resamples=200)
    assert seeds_only.problems == "none" and seeds_only.estimate == pytest.approx(0.2)


def test_bootstrap_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="seeds, problems"):
        hierarchical_bootstrap(np.zeros(3))
    with pytest.raises(ValueError, match="non-finite"):
        hierarchical_bootstrap(np.array([[0.1, np.nan], [0.2, 0.3]]))
    with pytest.raises(ValueError, match="problems='within'"):
        hierarchical_bootstrap(np.zeros((2, 2)), problems="within")


# ------------------------------------------------------------------------------------------ power

# scipy.stats.nct, computed once offline: the effect (in SDs) a two-sided paired t-test at α = 0.05
# detects with 80% power, by number of seeds; and the power at n = 10, effect 1 SD.
SCIPY_MDE = {3: 3.264044, 4: 2.127949, 5: 1.681997, 8: 1.156035, 16: 0.749466}
SCIPY_POWER_N10_D1 = 0.803097


def test_power_matches_the_noncentral_t() -> None:
    assert paired_t_power(1.0, 1.0, 10) == pytest.approx(SCIPY_POWER_N10_D1, abs=1e-6)
    assert paired_t_power(0.0, 1.0, 10) == pytest.approx(0.05, abs=1e-6)  # no effect: the test's level


@pytest.mark.parametrize(("n", "expected"), sorted(SCIPY_MDE.items()))
def test_mde_matches_the_noncentral_t(n: int, expected: float) -> None:
    assert min_detectable_effect(1.0, n) == pytest.approx(expected, abs=1e-5)
    assert min_detectable_effect(0.02, n) == pytest.approx(0.02 * expected, abs=1e-7)  # linear in sd


def test_mde_tends_to_the_normal_formula() -> None:
    # (z_0.975 + z_0.8) · sd / √n = (1.959964 + 0.841621) / √n for large n.
    n = 2000
    assert min_detectable_effect(1.0, n) * math.sqrt(n) == pytest.approx(1.959964 + 0.841621, abs=2e-3)


@pytest.mark.parametrize("n", [2, 4])
def test_mde_has_80_percent_power_in_simulation(n: int) -> None:
    rng = np.random.default_rng(n)
    sd = 0.03
    effect = min_detectable_effect(sd, n)
    differences = rng.normal(effect, sd, size=(200_000, n))
    t = differences.mean(axis=1) / (differences.std(axis=1, ddof=1) / math.sqrt(n))
    power = float((np.abs(t) > t_quantile(0.975, n - 1)).mean())
    assert power == pytest.approx(0.8, abs=0.005)


def test_mde_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="n = 1 seeds"):
        min_detectable_effect(1.0, 1)
    with pytest.raises(ValueError, match="sd = 0"):
        paired_t_power(0.1, 0.0, 4)
    with pytest.raises(ValueError, match=r"power = 1\.2"):
        min_detectable_effect(1.0, 4, power=1.2)


@pytest.mark.parametrize(
    ("p", "df", "expected"),
    # scipy.stats.chi2.ppf, computed once offline; 9.4877 is also in every table.
    [
        (0.2, 1, 0.0641848),
        (0.2, 3, 1.0051740),
        (0.95, 4, 9.4877290),
        (0.2, 15, 10.3069590),
        (0.5, 2.5, 1.8738478),
    ],
)
def test_chi2_quantile(p: float, df: float, expected: float) -> None:
    assert chi2_quantile(p, df) == pytest.approx(expected, abs=1e-6)


def test_sd_upper_bound_of_a_two_seed_pilot() -> None:
    # One degree of freedom: sd·√(1 / χ²_{0.2, 1}) = sd · 3.947 — a 2-seed pilot's SD may be 4x too small.
    assert sd_upper_bound(0.01, 1) == pytest.approx(0.01 / math.sqrt(0.0641848), rel=1e-5)
    assert sd_upper_bound(0.01, 1000) == pytest.approx(0.01, rel=0.05)


def test_variance_components_recover_crossed_effects() -> None:
    rng = np.random.default_rng(6)
    seeds, problems, sd_seed, sd_problem, sd_residual = 40, 400, 0.02, 0.3, 0.2
    values = (
        rng.normal(0, sd_seed, size=(seeds, 1))
        + rng.normal(0, sd_problem, size=(1, problems))
        + rng.normal(0, sd_residual, size=(seeds, problems))
    )
    parts = variance_components(values)
    assert parts["problem_var"] == pytest.approx(sd_problem**2, rel=0.15)
    assert parts["residual_var"] == pytest.approx(sd_residual**2, rel=0.05)
    # What a t-test over seeds sees: σ_seed² + σ_residual² / P.
    assert parts["seed_var"] == pytest.approx(sd_seed**2 + sd_residual**2 / problems, rel=0.4)
    assert (parts["seeds"], parts["problems"]) == (seeds, problems)
    with pytest.raises(ValueError, match="seeds >= 2, problems >= 2"):
        variance_components(values[:1])


def test_crossed_mde_adds_a_problem_floor() -> None:
    # No problem or residual variance: the t-test's MDE; with them, more seeds approach (z + z)·√(σ_b² / P).
    assert min_detectable_effect_crossed(0.0004, 0.0, 0.0, 8, 100) == pytest.approx(
        min_detectable_effect(0.02, 8)
    )
    # The residual enters once more (the bootstrap counts it in seed means and in problem means).
    with_residual = min_detectable_effect(math.sqrt(0.0004 + 0.05 / 100), 8)
    assert min_detectable_effect_crossed(0.0004, 0.0, 0.05, 8, 100) == pytest.approx(with_residual)
    few, many = (min_detectable_effect_crossed(0.0004, 0.01, 0.05, n, 100) for n in (4, 64))
    assert few > many
    floor = (1.959964 + 0.841621) * math.sqrt(0.01 / 100)
    assert min_detectable_effect_crossed(0.0004, 0.01, 0.05, 5000, 100) == pytest.approx(floor, rel=0.01)


def test_crossed_variance_predicts_the_shared_bootstrap_spread() -> None:
    # The hierarchical (shared) bootstrap's standard error is what the crossed MDE is sized on.
    rng = np.random.default_rng(8)
    values = _crossed(rng, 6, 60, 0.05, 0.2) + rng.normal(0, 0.5, size=(6, 60))  # a large residual
    parts = variance_components(values)
    predicted = math.sqrt(parts["seed_var"] / 6 + parts["problem_var"] / 60 + parts["residual_var"] / 360)
    result = hierarchical_bootstrap(values, resamples=4000)
    bootstrap_se = _width(result.interval) / (2 * 1.96)
    assert bootstrap_se == pytest.approx(predicted, rel=0.2)
