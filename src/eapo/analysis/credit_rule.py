"""How well EAPO's rule finds the tokens that carry credit: the precision and recall of "H_t ≥ the mean
entropy of its group's tokens" (PAPER.md Appendix B.1; the rule EAPO's Eq. 6-7 scale advantages by) at
picking the probed positions whose estimated credit Î(o_t; r | s_t) is high.

High credit, two ways:
- `detectable`: the 95% bootstrap interval of Î lies above 0 (credit told apart from none);
- `top_quarter`: Î among the top quarter of the probed positions (the largest credit, whatever its noise).

Precision = P(high credit | above the mean); recall = P(above the mean | high credit); `base_rate` =
P(high credit), the precision of picking positions at random, which the rule has to beat. Positions drawn
with equal counts per entropy decile sample the rollout's tokens in proportion (each decile holds a tenth
of them), so the figures estimate the rule on the rollout's tokens; intervals are percentile bootstraps
over positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

RULE_CREDIT_LEVELS = ("detectable", "top_quarter")


def _rates(above: np.ndarray, high: np.ndarray) -> tuple[float, float, float]:
    """(precision, recall, base rate); NaN where a denominator is 0."""
    hits = float((above & high).sum())
    precision = hits / above.sum() if above.sum() else float("nan")
    recall = hits / high.sum() if high.sum() else float("nan")
    return precision, recall, float(high.mean()) if len(high) else float("nan")


def rule_agreement(results: Sequence[Any], *, n_bootstrap: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Precision, recall and base rate of the above-group-mean rule for each level of high credit, with
    95% bootstrap intervals. `results`: `eapo.analysis.credit.PositionCredit`s; positions probed before
    the rule's flag was recorded (`above_group_mean` None) are left out."""
    items = [p for p in results if p.above_group_mean is not None]
    if not items:
        return {"n": 0}
    above = np.array([bool(p.above_group_mean) for p in items])
    corrected = np.array([p.estimate.corrected for p in items])
    levels = {
        "detectable": np.array([p.estimate.ci_low > 0 for p in items]),
        "top_quarter": corrected >= np.quantile(corrected, 0.75),
    }
    rng = np.random.default_rng(seed)
    picks = [rng.integers(0, len(items), len(items)) for _ in range(n_bootstrap)] if len(items) >= 5 else []
    out: dict[str, Any] = {"n": len(items), "above_share": float(above.mean())}
    for name, high in levels.items():
        precision, recall, base = _rates(above, high)
        entry: dict[str, Any] = {"n_high": int(high.sum()), "precision": precision, "recall": recall}
        entry["base_rate"] = base
        if picks:
            draws = np.array([_rates(above[pick], high[pick]) for pick in picks])
            for column, key in enumerate(("precision", "recall", "base_rate")):
                finite = draws[:, column][np.isfinite(draws[:, column])]
                if len(finite):
                    entry[f"{key}_ci"] = [
                        float(np.quantile(finite, 0.025)),
                        float(np.quantile(finite, 0.975)),
                    ]
        out[name] = entry
    return out


def rule_markdown(rule: dict[str, Any]) -> list[str]:
    """Lines for summary.md: the rule's precision and recall at each level of high credit."""
    if not rule.get("n"):
        return []

    def cell(entry: dict[str, Any], key: str) -> str:
        value, ci = entry[key], entry.get(f"{key}_ci")
        text = "n/a" if not np.isfinite(value) else f"{value:.3f}"
        return text + (f" ({ci[0]:.3f} to {ci[1]:.3f})" if ci else "")

    lines = [
        f"EAPO's rule (H_t ≥ its group's mean entropy) marks {rule['above_share']:.3f} of {rule['n']} "
        "positions; at finding the positions of high estimated credit (95% bootstrap intervals):",
        "",
        "| high credit | n high | precision | recall | base rate (random pick) |",
        "|---|---|---|---|---|",
    ]
    labels = {"detectable": "interval above 0", "top_quarter": "top quarter of Î"}
    for level in RULE_CREDIT_LEVELS:
        entry = rule[level]
        lines.append(
            f"| {labels[level]} | {entry['n_high']} | {cell(entry, 'precision')} | {cell(entry, 'recall')} | "
            f"{cell(entry, 'base_rate')} |"
        )
    return [*lines, ""]
