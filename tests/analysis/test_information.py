"""Information measures (`eapo.analysis.information`) on inputs whose answer is known: discrete entropy,
mutual information from counts, the CMI estimator of `eapo credit`, the Eq. 14 proxy of `eapo quadrants`."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eapo.analysis.information import (
    bootstrap_group_weights,
    cmi_estimate,
    conditional_mi,
    discrete_entropy,
    entropy_reward_information,
    hindsight_kl,
    mutual_information_from_counts,
)


# --------------------------------------------------------------------------- discrete entropy
def test_discrete_entropy_of_known_distributions() -> None:
    assert float(discrete_entropy([1.0, 0.0, 0.0])) == 0.0  # 0·log 0 = 0, no NaN
    assert float(discrete_entropy(np.full(8, 1 / 8))) == pytest.approx(math.log(8), abs=1e-15)
    p = 0.3
    assert float(discrete_entropy([p, 1 - p])) == pytest.approx(-p * math.log(p) - (1 - p) * math.log(1 - p))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.floats(0.0, 1.0), min_size=4, max_size=4), min_size=1, max_size=5))
def test_discrete_entropy_is_per_row_and_within_zero_and_log_r(rows: list[list[float]]) -> None:
    weights = np.array(rows) + 1e-9
    p = weights / weights.sum(axis=-1, keepdims=True)
    values = discrete_entropy(p)
    assert values.shape == (len(rows),)
    assert (values >= 0).all() and (values <= math.log(4) + 1e-12).all()
    for row, value in zip(p, values, strict=True):
        assert float(discrete_entropy(row)) == value


# ----------------------------------------------------------------------- mutual information from counts
def test_counts_of_independent_variables_give_zero_and_a_deterministic_pair_the_entropy() -> None:
    independent = np.outer([10.0, 30.0, 60.0], [1.0, 3.0])  # p(b, r) = p(b) p(r)
    plugin, corrected = mutual_information_from_counts(independent)
    assert float(plugin) == pytest.approx(0.0, abs=1e-12)
    # Miller–Madow: all 6 cells occupied, (3 − 1) + (2 − 1) − (6 − 1) = −2 cells over 2N = 400.
    assert float(corrected) == pytest.approx(-2 / 800, abs=1e-12)
    diagonal = np.array([[25.0, 0.0], [0.0, 75.0]])  # r is a function of b: I = H(r)
    plugin, corrected = mutual_information_from_counts(diagonal)
    assert float(plugin) == pytest.approx(float(discrete_entropy([0.25, 0.75])), abs=1e-12)
    # Miller–Madow: 2 cells occupied in each marginal and in the joint, (1 + 1 − 1) / 2N with N = 100.
    assert float(corrected) == pytest.approx(float(plugin) + 1 / 200, abs=1e-12)


def test_counts_are_vectorised_over_leading_axes_and_an_empty_joint_gives_zero() -> None:
    rng = np.random.default_rng(0)
    joints = rng.integers(0, 20, size=(4, 6, 2)).astype(np.float64)
    joints[2] = 0.0
    plugin, corrected = mutual_information_from_counts(joints)
    assert plugin.shape == corrected.shape == (4,)
    assert plugin[2] == 0.0 and corrected[2] == 0.0
    for j in (0, 1, 3):
        one_plugin, one_corrected = mutual_information_from_counts(joints[j])
        assert float(one_plugin) == pytest.approx(plugin[j], abs=1e-15)
        assert float(one_corrected) == pytest.approx(corrected[j], abs=1e-15)
        assert plugin[j] >= -1e-15


def test_bootstrap_group_weights_resample_every_group_count() -> None:
    weights = bootstrap_group_weights(7, 50, seed=3)
    assert weights.shape == (50, 7)
    assert (weights.sum(axis=1) == 7).all() and (weights >= 0).all()
    assert (weights == bootstrap_group_weights(7, 50, seed=3)).all()  # seeded


# ----------------------------------------------------------------------- the CMI estimator of `eapo credit`
def _entropy(p: np.ndarray) -> float:
    return float(discrete_entropy(p))


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


# ----------------------------------------------------------------------- Eq. 14 proxy of `eapo quadrants`
def test_proxy_is_zero_when_polarity_is_independent_of_entropy() -> None:
    rng = np.random.default_rng(0)
    entropy = rng.exponential(0.5, size=4000)
    positive = rng.random(4000) < 0.4
    info = entropy_reward_information(entropy, positive, groups=np.arange(4000) // 20, n_bootstrap=200)
    assert info["ci"][0] <= 0.0 <= info["ci"][1] or abs(info["corrected"]) < 2e-3
    assert info["plugin"] >= info["corrected"]  # Miller–Madow subtracts the plug-in's upward bias
    assert sum(b["contribution"] for b in info["bins"]) == pytest.approx(info["plugin"], abs=1e-12)


def test_proxy_equals_label_entropy_when_entropy_decides_polarity() -> None:
    # Negative tokens all above the median entropy, positive ones all below: I(H; r) = H(r) = log 2.
    entropy = np.linspace(0.0, 2.0, 1000)
    positive = entropy < 1.0
    info = entropy_reward_information(entropy, positive, n_bins=10, n_bootstrap=0)
    assert info["plugin"] == pytest.approx(math.log(2), abs=1e-9)
    # Where the information sits: every bin contributes equally here.
    contributions = [b["contribution"] for b in info["bins"]]
    assert max(contributions) == pytest.approx(min(contributions), rel=1e-6)


def test_proxy_locates_a_divergence_in_the_high_tail() -> None:
    # The paper's Fig. 4 picture: identical at low entropy, negative tokens denser in the high tail.
    rng = np.random.default_rng(1)
    entropy = rng.exponential(0.4, size=20000)
    tail = entropy > np.quantile(entropy, 0.8)
    positive = np.where(tail, rng.random(20000) < 0.2, rng.random(20000) < 0.5)
    info = entropy_reward_information(entropy, positive, n_bins=10, n_bootstrap=50)
    top = sum(b["contribution"] for b in info["bins"] if b["low"] >= np.quantile(entropy, 0.8) - 1e-9)
    assert info["ci"][0] > 0.0
    assert top > 0.5 * info["plugin"]


def test_ties_at_zero_entropy_merge_bins() -> None:
    entropy = np.concatenate([np.zeros(700), np.linspace(0.1, 1.0, 300)])
    positive = np.arange(1000) % 2 == 0
    info = entropy_reward_information(entropy, positive, n_bins=10, n_bootstrap=0)
    assert info["bins_used"] < 10
    assert sum(b["positive"] + b["negative"] for b in info["bins"]) == 1000
