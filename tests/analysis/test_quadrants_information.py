"""Pure pieces of `eapo quadrants`: the Eq. 14 proxy and the per-step series read from metrics rows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from eapo.analysis.quadrants import (
    entropy_change_series,
    entropy_reward_information,
    quadrant_series,
    tail_density_by_polarity,
)


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


def _row(step: int, grads: dict[str, float], change: float | None = None) -> dict[str, float]:
    row: dict[str, float] = {"step": step, "loss": 0.0}
    for q, g in grads.items():
        row[f"quadrant/{q}/share"] = 0.2
        row[f"quadrant/{q}/mean_entropy"] = 0.1
        row[f"quadrant/{q}/mean_abs_advantage"] = 1.0
        row[f"quadrant/{q}/grad_norm_sum"] = g
    if change is not None:
        row["entropy_change/all"] = change
        for q in grads:
            row[f"entropy_change/{q}"] = change
    return row


def test_series_from_metrics_rows() -> None:
    rows = [
        {"step": 0, "eval/pass@1": 0.3},
        _row(1, {"PHR": 3.0, "PLR": 1.0, "NHR": 4.0, "NLR": 2.0, "ZERO": 0.0}, change=-0.01),
        _row(2, {"PHR": 0.0, "PLR": 0.0, "NHR": 0.0, "NLR": 0.0, "ZERO": 0.0}),
    ]
    series = quadrant_series(rows)
    assert series["step"] == [1, 2]
    shares = [series[q]["grad_share"][0] for q in ("PHR", "PLR", "NHR", "NLR")]
    assert shares == pytest.approx([0.3, 0.1, 0.4, 0.2])
    assert series["PHR"]["grad_share"][1] is None  # no gradient that step: no share, not 0/0
    changes = entropy_change_series(rows)
    assert changes["step"] == [1] and changes["NHR"] == [-0.01]


def test_tail_density_ratio_detects_denser_negatives_and_not_independent_labels() -> None:
    rng = np.random.default_rng(2)
    entropy = rng.exponential(0.4, size=20000)
    responses = np.arange(20000) // 10
    # Polarity per response, independent of entropy: every ratio's interval contains 1.
    negative = (rng.random(2000) < 0.5)[responses]
    for row in tail_density_by_polarity(entropy, negative, responses, n_bootstrap=200):
        assert row["ratio_ci"][0] <= 1.0 <= row["ratio_ci"][1]
    # Negatives three times as likely in the top decile of entropy: the q90 ratio is about 3, beyond 1.
    tail = entropy >= np.quantile(entropy, 0.9)
    negative = np.where(tail, rng.random(20000) < 0.75, rng.random(20000) < 0.5)
    rows = {r["quantile"]: r for r in tail_density_by_polarity(entropy, negative, np.arange(20000))}
    expected = (0.75 * 0.1 / (0.75 * 0.1 + 0.5 * 0.9)) / (0.25 * 0.1 / (0.25 * 0.1 + 0.5 * 0.9))
    assert rows[0.9]["ratio"] == pytest.approx(expected, rel=0.15)
    assert rows[0.9]["ratio_ci"][0] > 1.0
