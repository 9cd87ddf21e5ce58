"""Pure pieces of `eapo quadrants`: the per-step series read from metrics rows and the tail density by
polarity. The Eq. 14 proxy it reports is tested in test_information.py."""

from __future__ import annotations

import numpy as np
import pytest

from eapo.analysis.quadrants import entropy_change_series, quadrant_series, tail_density_by_polarity


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
