"""Quadrant masks and statistics (PAPER.md §4.1, App. B.1) and the Eq. 5 gradient norm vs autograd."""

from __future__ import annotations

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from eapo.core import (
    QUADRANTS,
    logit_grad_norm,
    quadrant_masks,
    quadrant_metrics,
    quadrant_stats,
    token_logprobs_and_entropy,
)

from .helpers import Batch, batches

thresholds = st.one_of(
    st.just("group_mean"),
    st.tuples(st.just("batch_quantile"), st.floats(0.05, 1.0)),
    st.floats(0.0, 5.0),
)


@settings(max_examples=50, deadline=None)
@given(batches(), thresholds)
def test_masks_partition_the_valid_nonzero_advantage_tokens(
    batch: Batch, threshold: str | float | tuple[str, float]
) -> None:
    masks = quadrant_masks(batch.advantages, batch.entropy, batch.mask, batch.group_size, threshold)
    assert tuple(masks) == QUADRANTS
    stacked = torch.stack([masks[q] for q in QUADRANTS]).int()
    assert bool((stacked.sum(dim=0) <= 1).all()), "quadrants overlap"
    covered = stacked.sum(dim=0) == 1
    assert torch.equal(covered, batch.mask & (batch.advantages != 0))
    assert torch.equal(masks["PHR"] | masks["PLR"], batch.mask & (batch.advantages > 0))


def test_group_mean_threshold_by_hand() -> None:
    # Group 1 entropies {1, 3 | 2, 0}: mean 1.5 → high: 3 and 2. Group 2 {5, 5 | 5, 9(masked)}: mean 5 → all
    # three high (H >= µ_H, Appendix B.1).
    advantages = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [2.0, 2.0], [-2.0, 0.0]])
    entropy = torch.tensor([[1.0, 3.0], [2.0, 0.0], [5.0, 5.0], [5.0, 9.0]])
    mask = torch.tensor([[1, 1], [1, 1], [1, 1], [1, 0]], dtype=torch.bool)
    masks = quadrant_masks(advantages, entropy, mask, 2)
    assert masks["PHR"].nonzero().tolist() == [[0, 1], [2, 0], [2, 1]]
    assert masks["PLR"].nonzero().tolist() == [[0, 0]]
    assert masks["NHR"].nonzero().tolist() == [[1, 0], [3, 0]]
    assert masks["NLR"].nonzero().tolist() == [[1, 1]]
    # Top 25% of the 7 valid tokens (ceil → 2): the entropies 5, 5, 5 tie at the cut, all three kept.
    quantile = quadrant_masks(advantages, entropy, mask, 2, ("batch_quantile", 0.25))
    assert int((quantile["PHR"] | quantile["NHR"]).sum()) == 3
    absolute = quadrant_masks(advantages, entropy, mask, 2, 2.5)
    assert (absolute["PHR"] | absolute["NHR"]).nonzero().tolist() == [[0, 1], [2, 0], [2, 1], [3, 0]]


def test_invalid_thresholds_raise() -> None:
    x = torch.ones(2, 2)
    for bad in ("median", ("batch_quantile", 0.0), ("quantile", 0.5), float("nan"), True):
        with pytest.raises(ValueError, match=r"threshold|fraction"):
            quadrant_masks(x, x, x, 2, bad)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 2**31 - 1),
    st.integers(1, 30),
    st.sampled_from([1.0, 5.0, 50.0, 1e4]),
)
@example(seed=17, vocab=18, scale=50.0)  # π_y ≈ 1 − 1e-4: 1 − 2π_y + Σπ² ≈ 1e-8, lost in fp32
def test_closed_form_grad_norm_matches_autograd(seed: int, vocab: int, scale: float) -> None:
    # PAPER.md Eq. 5: for the loss −Â·log π_y, ‖∂/∂z‖ = |Â|·sqrt(1 − 2π_y + Σ π²).
    gen = torch.Generator().manual_seed(seed)
    positions = 6
    logits = (torch.randn(1, positions, vocab, generator=gen, dtype=torch.float64) * scale).float()
    tokens = torch.randint(0, vocab, (1, positions), generator=gen)
    advantages = torch.randn(1, positions, generator=gen)
    mask = torch.ones(1, positions, dtype=torch.bool)
    logprobs, _, sum_sq = token_logprobs_and_entropy(logits, tokens, mask, 4, return_sum_sq_probs=True)
    closed_form = logit_grad_norm(advantages, logprobs, sum_sq)

    z = logits.double().requires_grad_()
    token_loss = -advantages.double() * z.log_softmax(-1).gather(-1, tokens[..., None]).squeeze(-1)
    (grad,) = torch.autograd.grad(token_loss.sum(), z)
    torch.testing.assert_close(closed_form.double(), grad.norm(dim=-1), atol=1e-5, rtol=1e-4)


@settings(max_examples=40, deadline=None)
@given(batches())
def test_stats_are_consistent_and_never_nan(batch: Batch) -> None:
    gen = torch.Generator().manual_seed(0)
    shape = batch.mask.shape
    per_token_loss = torch.randn(shape, generator=gen) * batch.mask
    logprobs = -torch.rand(shape, generator=gen) * 3
    sum_sq = torch.rand(shape, generator=gen)
    stats = quadrant_stats(
        batch.advantages,
        batch.entropy,
        batch.mask,
        batch.group_size,
        logprobs=logprobs,
        sum_sq_probs=sum_sq,
        per_token_loss=per_token_loss,
    )
    assert tuple(stats) == (*QUADRANTS, "ZERO")
    n_valid = int(batch.mask.sum())
    assert sum(s["count"] for s in stats.values()) == n_valid
    assert stats["ZERO"]["count"] == int((batch.mask & (batch.advantages == 0)).sum())
    if n_valid:
        assert abs(sum(s["share"] for s in stats.values()) - 1.0) < 1e-9
        assert abs(sum(s["loss_sum"] for s in stats.values()) - float(per_token_loss.sum())) < 1e-4
    for s in stats.values():
        assert all(v == v for v in s.values()), "NaN in quadrant stats"
        if s["count"] == 0:
            assert s["mean_entropy"] == s["mean_abs_advantage"] == s["grad_norm_mean"] == 0.0


def test_stats_fields_follow_the_inputs() -> None:
    adv = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
    entropy = torch.tensor([[0.5, 1.5], [1.0, 1.0]])
    mask = torch.ones(2, 2, dtype=torch.bool)
    stats = quadrant_stats(adv, entropy, mask, 2)
    assert set(stats["PHR"]) == {"count", "share", "mean_entropy", "mean_abs_advantage"}
    # Group mean 1.0: PHR {1.5}, PLR {0.5}, NHR {1.0, 1.0}, NLR empty.
    assert [stats[q]["count"] for q in QUADRANTS] == [1.0, 1.0, 2.0, 0.0]
    assert stats["NLR"] == {"count": 0.0, "share": 0.0, "mean_entropy": 0.0, "mean_abs_advantage": 0.0}
    assert stats["NHR"]["mean_entropy"] == 1.0 and stats["PHR"]["share"] == 0.25


def test_shaped_advantages_and_clipped_are_reported_by_the_grpo_quadrants() -> None:
    # GRPO advantages decide the quadrants; forking zeroes a positive token, which stays in PLR (by the GRPO
    # sign) with shaped |Â| 0. Group mean entropy 1.0: PHR {1.5}, PLR {0.5}, NHR {1.0, 1.0}.
    adv = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
    shaped = torch.tensor([[1.2, 0.0], [-0.5, -1.5]])
    entropy = torch.tensor([[0.5, 1.5], [1.0, 1.0]])
    mask = torch.ones(2, 2, dtype=torch.bool)
    clipped = torch.tensor([[True, False], [True, False]])
    stats = quadrant_stats(adv, entropy, mask, 2, shaped_advantages=shaped, clipped=clipped)
    assert [stats[q]["count"] for q in QUADRANTS] == [1.0, 1.0, 2.0, 0.0]
    assert stats["PHR"]["mean_abs_advantage"] == 1.0 and stats["PHR"]["mean_abs_shaped_adv"] == 0.0
    assert stats["PLR"]["mean_abs_shaped_adv"] == pytest.approx(1.2)
    assert stats["NHR"]["mean_abs_shaped_adv"] == pytest.approx(1.0)
    assert [stats[q]["clip_frac"] for q in QUADRANTS] == [0.0, 1.0, 0.5, 0.0]
    # Without the new inputs the old fields and values are unchanged.
    assert {k: v for k, v in stats["NHR"].items() if k in quadrant_stats(adv, entropy, mask, 2)["NHR"]} == (
        quadrant_stats(adv, entropy, mask, 2)["NHR"]
    )
    with pytest.raises(ValueError, match="shaped_advantages"):
        quadrant_stats(adv, entropy, mask, 2, shaped_advantages=shaped[:1])


def test_grad_norm_uses_the_applied_shaped_advantages() -> None:
    adv = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
    shaped = 3.0 * adv
    entropy = torch.tensor([[0.5, 1.5], [1.0, 1.0]])
    mask = torch.ones(2, 2, dtype=torch.bool)
    logprobs = torch.full((2, 2), -1.0)
    sum_sq = torch.full((2, 2), 0.5, dtype=torch.float64)
    base = quadrant_stats(adv, entropy, mask, 2, logprobs=logprobs, sum_sq_probs=sum_sq)
    with_shaped = quadrant_stats(
        adv, entropy, mask, 2, logprobs=logprobs, sum_sq_probs=sum_sq, shaped_advantages=shaped
    )
    for q in QUADRANTS:
        assert with_shaped[q]["grad_norm_sum"] == pytest.approx(3.0 * base[q]["grad_norm_sum"])


def test_quadrant_metrics_is_the_flat_prefixed_quadrant_stats() -> None:
    adv = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [0.0, 0.0], [0.0, 0.0]])
    entropy = torch.tensor([[0.5, 1.5], [1.0, 1.0], [2.0, 0.1], [0.3, 0.3]])
    mask = torch.tensor([[1, 1], [1, 1], [1, 0], [1, 1]], dtype=torch.bool)
    shaped = adv * 1.1
    clipped = torch.zeros(4, 2, dtype=torch.bool)
    metrics = quadrant_metrics(adv, entropy, mask, 2, shaped_advantages=shaped, clipped=clipped)
    stats = quadrant_stats(adv, entropy, mask, 2, shaped_advantages=shaped, clipped=clipped)
    assert metrics == {f"quadrant/{q}/{k}": v for q, s in stats.items() for k, v in s.items()}
    assert metrics["quadrant/ZERO/share"] == pytest.approx(3 / 7)
    assert all(isinstance(v, float) for v in metrics.values())
