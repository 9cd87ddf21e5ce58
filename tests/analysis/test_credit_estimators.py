"""The CMI estimators of `eapo credit` on synthetic positions whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from eapo.analysis.credit import (
    choose_positions,
    cmi_estimate,
    conditional_mi,
    hindsight_kl,
    spearman,
)


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def _counts(rng: np.random.Generator, channel: np.ndarray, trials: int) -> np.ndarray:
    return np.stack([rng.multinomial(trials, row) for row in channel])


def test_deterministic_binary_reward_gives_the_entropy_of_the_choice() -> None:
    # Two tokens, one always right and one always wrong: knowing r reveals the token, so I = H(π).
    pi = np.array([0.3, 0.7])
    estimate = cmi_estimate(pi, [[16, 0], [0, 16]])
    assert estimate.corrected == pytest.approx(_entropy(pi), abs=1e-12)
    assert estimate.plugin == pytest.approx(_entropy(pi), abs=1e-12)
    assert estimate.ci_low == pytest.approx(_entropy(pi)) and estimate.ci_high == pytest.approx(_entropy(pi))
    assert estimate.hindsight_kl == pytest.approx(_entropy(pi), abs=1e-12)


def test_reward_an_injective_function_of_the_token_gives_the_full_entropy() -> None:
    # Reward value = token index (R = K outcomes): the bound I = H holds with equality (Prop. 1).
    pi = np.array([0.1, 0.2, 0.3, 0.4])
    estimate = cmi_estimate(pi, np.eye(4) * 12)
    assert estimate.corrected == pytest.approx(_entropy(pi), abs=1e-12)
    assert estimate.upper == pytest.approx(estimate.corrected)


def test_independent_reward_is_zero_within_the_interval() -> None:
    rng = np.random.default_rng(0)
    contains_zero, estimates = 0, []
    for _ in range(60):
        pi = rng.dirichlet(np.ones(6))
        p = rng.uniform(0.2, 0.8)  # the same success probability for every token: r ⟂ token
        estimate = cmi_estimate(pi, _counts(rng, np.tile([p, 1 - p], (6, 1)), 24), n_bootstrap=400, rng=rng)
        contains_zero += estimate.ci_low <= 0.0 <= estimate.ci_high
        estimates.append(estimate.corrected)
    assert contains_zero / 60 >= 0.9  # a 95% interval
    # The bias correction removes the plug-in's upward bias: the estimates centre on 0.
    assert abs(np.mean(estimates)) < 0.01


def test_bias_correction_and_interval_on_a_partly_informative_token() -> None:
    rng = np.random.default_rng(1)
    covered, errors_plugin, errors_corrected = 0, [], []
    for _ in range(60):
        pi = rng.dirichlet(np.ones(5))
        success = rng.uniform(0.1, 0.9, size=5)
        channel = np.stack([success, 1 - success], axis=1)
        truth = conditional_mi(pi, channel)
        estimate = cmi_estimate(pi, _counts(rng, channel, 32), n_bootstrap=400, rng=rng)
        covered += estimate.ci_low <= truth <= estimate.ci_high
        errors_plugin.append(estimate.plugin - truth)
        errors_corrected.append(estimate.corrected - truth)
    assert covered / 60 >= 0.85
    assert abs(np.mean(errors_corrected)) < abs(np.mean(errors_plugin))


def test_unexplored_mass_is_bracketed() -> None:
    # The full choice has 6 tokens; the probe sees only the first 3 (with exact outcome rates).
    rng = np.random.default_rng(2)
    for _ in range(30):
        pi = rng.dirichlet(np.ones(6))
        success = rng.uniform(0, 1, size=6)
        channel = np.stack([success, 1 - success], axis=1)
        truth = conditional_mi(pi, channel)
        seen = np.argsort(-pi)[:3]
        rest = np.setdiff1d(np.arange(6), seen)
        q = pi[rest] / pi[rest].sum()
        counts = channel[seen] * 1e6  # (near-)exact rates: the bracket, not the noise, is under test
        estimate = cmi_estimate(pi[seen], counts, remainder_entropy=_entropy(q), n_bootstrap=0)
        assert estimate.covered_mass == pytest.approx(pi[seen].sum())
        assert estimate.plugin <= truth + 1e-6
        assert truth <= estimate.upper + 1e-6
        assert estimate.upper <= math.log(2) + 1e-9


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0.01, 1.0), min_size=1, max_size=6),
    st.lists(st.floats(0.0, 1.0), min_size=6, max_size=6),
)
def test_proposition_2_hindsight_kl_equals_the_cmi(weights: list[float], success: list[float]) -> None:
    pi = np.array(weights) / sum(weights)
    channel = np.stack([np.array(success[: len(pi)]), 1 - np.array(success[: len(pi)])], axis=1)
    cmi = conditional_mi(pi, channel)
    assert hindsight_kl(pi, channel) == pytest.approx(cmi, abs=1e-10)
    # Proposition 1 and the binary-reward ceiling.
    assert -1e-12 <= cmi <= min(_entropy(pi), math.log(2)) + 1e-12


def test_estimator_rejects_malformed_input() -> None:
    with pytest.raises(ValueError, match="at least one completion"):
        cmi_estimate([0.5, 0.5], [[1, 0], [0, 0]])
    with pytest.raises(ValueError, match="sum"):
        cmi_estimate([0.9, 0.5], [[1, 0], [0, 1]])
    with pytest.raises(ValueError, match="distribution"):
        conditional_mi([0.2, 0.2], [[1, 0], [0, 1]])


def test_spearman_matches_known_values() -> None:
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # Ties get average ranks: ranks x = (1, 2.5, 2.5, 4), y = (1, 2, 3, 4).
    expected = np.corrcoef([1, 2.5, 2.5, 4], [1, 2, 3, 4])[0, 1]
    assert spearman([0, 1, 1, 2], [0, 1, 2, 3]) == pytest.approx(expected)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_positions_are_stratified_by_entropy_decile() -> None:
    torch.manual_seed(0)
    entropy = torch.rand(8, 25) ** 3
    mask = torch.ones(8, 25, dtype=torch.bool)
    mask[:, 20:] = False
    positions, deciles = choose_positions(entropy, mask, 50, seed=3)
    assert len(positions) == len(set(positions)) == 50
    assert all(bool(mask[r, t]) for r, t in positions)
    assert np.bincount([int(deciles[r, t]) for r, t in positions], minlength=10).tolist() == [5] * 10
    assert int((deciles[~mask] == -1).all())
    # Deciles follow entropy: every token of decile d has H <= every token of decile d + 1.
    values = entropy[mask]
    bins = deciles[mask]
    for d in range(9):
        assert values[bins == d].max() <= values[bins == d + 1].min()


def test_the_summary_tests_the_bound_only_below_log_2() -> None:
    """With a 0/1 reward I ≤ log 2, so positions with H ≥ log 2 cannot violate Proposition 1: the summary
    reports the test on the positions below log 2 and counts the others apart."""
    from eapo.analysis.credit import CMIEstimate, PositionCredit, credit_summary

    def position(entropy: float, ci_low: float) -> PositionCredit:
        estimate = CMIEstimate(ci_low, ci_low, ci_low, ci_low + 0.1, ci_low, 1.0, ci_low)
        return PositionCredit(
            row=0, problem=0, position=0, entropy=entropy, quadrant="PHR", reward=1.0, token="1",
            alternatives=["1"], probs=[1.0], successes=[1], trials=[1], remainder_entropy=0.0,
            estimate=estimate,
        )  # fmt: skip

    # Two low-entropy positions, one of them above its bound; three at H ≥ log 2, all within it.
    results = [position(0.1, 0.2), position(0.3, 0.0), *(position(h, 0.5) for h in (0.7, 1.0, 2.0))]
    summary = credit_summary(results, n_bootstrap=0)
    assert summary["all"]["n"] == 5 and summary["all"]["exceed_fraction"] == pytest.approx(0.2)
    assert summary["below_log2"]["n"] == 2 and summary["below_log2"]["exceed_fraction"] == pytest.approx(0.5)
    assert summary["at_or_above_log2"]["n"] == 3
