"""Pure pieces of `eapo credit`: position sampling, rank correlation and the summary's bound test.

The CMI estimator itself is tested in test_information.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from eapo.analysis.credit import choose_positions
from eapo.analysis.stats import spearman


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
    from eapo.analysis.credit import PositionCredit, credit_summary
    from eapo.analysis.information import CMIEstimate

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


def test_the_rule_agreement_counts_precision_and_recall_by_hand() -> None:
    """EAPO's rule against high estimated credit, on eight hand-made positions: four above their group's
    mean, three with an interval above 0; precision = 2/4, recall = 2/3, base rate 3/8. Positions whose
    flag was never recorded are left out."""
    from eapo.analysis.credit import PositionCredit
    from eapo.analysis.credit_rule import rule_agreement, rule_markdown
    from eapo.analysis.information import CMIEstimate

    def position(above: bool | None, corrected: float, ci_low: float) -> PositionCredit:
        estimate = CMIEstimate(corrected, corrected, ci_low, corrected + 0.1, corrected, 1.0, corrected)
        return PositionCredit(
            row=0, problem=0, position=0, entropy=0.5, quadrant="PHR", reward=1.0, token="1",
            alternatives=["1"], probs=[1.0], successes=[1], trials=[1], remainder_entropy=0.0,
            estimate=estimate, above_group_mean=above,
        )  # fmt: skip

    results = [
        position(True, 0.30, 0.10),  # above, detectable, top quarter
        position(True, 0.20, 0.05),  # above, detectable, top quarter
        position(True, 0.01, -0.02),
        position(True, 0.00, -0.01),
        position(False, 0.05, 0.01),  # detectable, below the mean
        position(False, 0.00, -0.03),
        position(False, 0.02, -0.01),
        position(False, 0.01, -0.02),
        position(None, 0.50, 0.40),  # not recorded: left out
    ]
    rule = rule_agreement(results, n_bootstrap=200)
    assert rule["n"] == 8 and rule["above_share"] == pytest.approx(0.5)
    detectable = rule["detectable"]
    assert detectable["n_high"] == 3
    assert detectable["precision"] == pytest.approx(2 / 4) and detectable["recall"] == pytest.approx(2 / 3)
    assert detectable["base_rate"] == pytest.approx(3 / 8)
    low, high = detectable["precision_ci"]
    assert 0.0 <= low <= 0.5 <= high <= 1.0
    top = rule["top_quarter"]  # the two largest estimates, both above the mean
    assert (
        top["n_high"] == 2 and top["precision"] == pytest.approx(0.5) and top["recall"] == pytest.approx(1.0)
    )
    table = "\n".join(rule_markdown(rule))
    assert "| interval above 0 | 3 | 0.500" in table
    assert rule_agreement(results[-1:]) == {"n": 0} and rule_markdown({"n": 0}) == []
