"""policy_loss (PAPER.md Eq. 2 PPO-clip, dual-clip, k3 KL, entropy bonus, Clip-Cov, KL-Cov) and agg_loss."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from eapo.core import AGG_MODES, POLICY_LOSSES, agg_loss, policy_loss


def ratios_case() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Six tokens with hand-picked ratios ρ and advantages (old log-probs 0, so log π_θ = log ρ)."""
    ratios = torch.tensor([[1.1, 1.5, 1.25, 0.5, 0.9, 5.0]])
    advantages = torch.tensor([[1.0, 1.0, 1.0, -1.0, -1.0, -1.0]])
    logprobs = ratios.log()
    return logprobs, torch.zeros_like(logprobs), advantages, torch.ones_like(logprobs, dtype=torch.bool)


def test_ppo_clip_asymmetric_by_hand() -> None:
    logprobs, old, adv, mask = ratios_case()
    x = logprobs.clone().requires_grad_()
    loss, per_token, metrics = policy_loss(x, old, adv, mask)
    # −min(ρÂ, clip(ρ, 0.8, 1.28)Â): 1.1 → −1.1; 1.5 → −1.28 (clipped high); 1.25 → −1.25 (inside
    # ε_high = 0.28, would be clipped by a symmetric 0.2); 0.5, Â < 0 → 0.8 (clipped low); 0.9 → 0.9;
    # 5.0 → 5.0.
    expected = torch.tensor([[-1.1, -1.28, -1.25, 0.8, 0.9, 5.0]])
    torch.testing.assert_close(per_token, expected)
    torch.testing.assert_close(loss, expected.mean())
    assert metrics["clip_fraction"] == pytest.approx(2 / 6)
    assert metrics["ratio_mean"] == pytest.approx(float(torch.tensor([1.1, 1.5, 1.25, 0.5, 0.9, 5.0]).mean()))
    approx_kl = sum(r - 1 - math.log(r) for r in [1.1, 1.5, 1.25, 0.5, 0.9, 5.0]) / 6
    assert metrics["approx_kl"] == pytest.approx(approx_kl, rel=1e-5)
    loss.backward()
    # d/d log ρ of −Âρ is −Âρ where unclipped, 0 where the clip is active; token-mean divides by 6.
    expected_grad = torch.tensor([[-1.1, 0.0, -1.25, 0.0, 0.9, 5.0]]) / 6
    torch.testing.assert_close(x.grad, expected_grad)


def test_dual_clip_caps_negative_advantages() -> None:
    logprobs, old, adv, mask = ratios_case()
    _, per_token, metrics = policy_loss(logprobs, old, adv, mask, dual_clip=3.0)
    assert float(per_token[0, 5]) == pytest.approx(3.0)  # min(5.0, −Â·c) = 3
    assert metrics["clip_fraction_dual"] == pytest.approx(1 / 6)
    with pytest.raises(ValueError, match="dual_clip must be > 1"):
        policy_loss(logprobs, old, adv, mask, dual_clip=1.0)


def test_kl_and_entropy_terms() -> None:
    logprobs, old, adv, mask = ratios_case()
    ref = logprobs - 0.3
    entropy = torch.tensor([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6]])
    base, _, _ = policy_loss(logprobs, old, adv, mask)
    # k3(π_θ ‖ π_ref) with d = log π_ref − log π_θ = −0.3: exp(−0.3) + 0.3 − 1 per token.
    k3 = math.exp(-0.3) + 0.3 - 1
    with_kl, _, metrics = policy_loss(logprobs, old, adv, mask, ref_logprobs=ref, kl_coef=0.5)
    assert metrics["kl"] == pytest.approx(k3, rel=1e-5)
    assert float(with_kl) == pytest.approx(float(base) + 0.5 * k3, rel=1e-5)
    with_entropy, _, metrics = policy_loss(logprobs, old, adv, mask, entropy=entropy, entropy_coef=0.1)
    assert float(with_entropy) == pytest.approx(float(base) - 0.1 * 0.35, rel=1e-5)
    assert metrics["entropy"] == pytest.approx(0.35)
    with pytest.raises(ValueError, match="needs ref_logprobs"):
        policy_loss(logprobs, old, adv, mask, kl_coef=0.1)
    with pytest.raises(ValueError, match="needs the entropy"):
        policy_loss(logprobs, old, adv, mask, entropy_coef=0.1)


def test_aggregation_modes_by_hand() -> None:
    per_token = torch.tensor([[1.0, 2.0, 3.0], [4.0, 100.0, 100.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]], dtype=torch.bool)
    assert float(agg_loss(per_token, mask, "token_mean")) == pytest.approx(10 / 4)
    assert float(agg_loss(per_token, mask, "seq_mean_token_mean")) == pytest.approx((2 + 4) / 2)
    # Dr. GRPO: Σ_t / max_len per sequence (max_len = T = 3), mean over sequences.
    assert float(agg_loss(per_token, mask, "seq_mean_token_sum_norm")) == pytest.approx((6 / 3 + 4 / 3) / 2)
    assert float(agg_loss(per_token, mask, "seq-mean-token-sum-norm", max_len=4)) == pytest.approx(
        (6 + 4) / 8
    )
    with pytest.raises(ValueError, match="'sum' is unknown; choose from token_mean"):
        agg_loss(per_token, mask, "sum")


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 5), st.integers(1, 7), st.integers(0, 2**31 - 1))
def test_aggregation_modes_agree_on_equal_length_sequences(rows: int, length: int, seed: int) -> None:
    per_token = torch.randn(rows, length, generator=torch.Generator().manual_seed(seed))
    mask = torch.ones(rows, length, dtype=torch.bool)
    values = [float(agg_loss(per_token, mask, mode)) for mode in AGG_MODES]
    assert max(values) - min(values) < 1e-5


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 6), st.integers(1, 6), st.integers(0, 2**31 - 1), st.sampled_from(list(POLICY_LOSSES)))
def test_token_mean_micro_batches_sum_to_the_full_batch(
    rows: int, length: int, seed: int, loss_type: str
) -> None:
    gen = torch.Generator().manual_seed(seed)
    logprobs = -torch.rand(rows, length, generator=gen) * 2
    old = logprobs + 0.3 * torch.randn(rows, length, generator=gen)
    adv = torch.randn(rows, length, generator=gen)
    mask = torch.rand(rows, length, generator=gen) < 0.7
    # Clip-Cov / KL-Cov pick tokens per call; a ratio that selects nothing keeps the comparison exact.
    params: dict[str, Any] = {"clip_cov_lb": 1e9} if loss_type == "clip_cov" else {}
    if loss_type == "kl_cov":
        params = {"ppo_kl_coef": 0.0}
    full_x = logprobs.clone().requires_grad_()
    full, _, _ = policy_loss(full_x, old, adv, mask, loss_type=loss_type, **params)
    full.backward()
    micro_x = logprobs.clone().requires_grad_()
    total = torch.zeros(())
    num_tokens = int(mask.sum())
    for rows_slice in (slice(0, 1), slice(1, rows)):
        part, _, _ = policy_loss(
            micro_x[rows_slice],
            old[rows_slice],
            adv[rows_slice],
            mask[rows_slice],
            loss_type=loss_type,
            num_tokens=num_tokens,
            **params,
        )
        part.backward()
        total = total + part.detach()
    torch.testing.assert_close(total, full.detach(), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(micro_x.grad, full_x.grad, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("loss_type", sorted(POLICY_LOSSES))
@pytest.mark.parametrize("agg", AGG_MODES)
def test_no_nan_on_degenerate_inputs(loss_type: str, agg: str) -> None:
    cases = {
        "all-zero advantages": (
            torch.full((2, 3), -1.0),
            torch.zeros(2, 3),
            torch.ones(2, 3, dtype=torch.bool),
        ),
        "empty mask": (torch.full((2, 3), -1.0), torch.ones(2, 3), torch.zeros(2, 3, dtype=torch.bool)),
        "single token": (torch.full((1, 1), -0.5), torch.ones(1, 1), torch.ones(1, 1, dtype=torch.bool)),
        "extreme log-probs": (
            torch.tensor([[-1e4, 0.0, -float("inf")]]),
            torch.tensor([[1.0, -1.0, 1.0]]),
            torch.tensor([[True, True, False]]),
        ),
    }
    for name, (logprobs, adv, mask) in cases.items():
        x = logprobs.clone().requires_grad_()
        old = torch.zeros_like(logprobs)
        ref = torch.full_like(logprobs, 1e4)
        entropy = torch.where(mask, torch.ones_like(logprobs), float("nan"))
        loss, per_token, metrics = policy_loss(
            x, old, adv, mask, loss_type=loss_type, agg=agg, ref_logprobs=ref, kl_coef=0.1, entropy=entropy
        )
        loss.backward()
        assert math.isfinite(float(loss.detach())), name
        assert x.grad is not None, name
        assert bool(torch.isfinite(per_token).all()) and bool(torch.isfinite(x.grad).all()), name
        assert all(math.isfinite(v) for v in metrics.values()), name
        if name == "empty mask":
            assert float(loss.detach()) == 0.0
        if name == "all-zero advantages" and loss_type != "kl_cov":
            # No advantage: only the KL term is left; d = log π_ref − log π_θ is clamped at 20 (verl's bound).
            expected = 0.1 * float(agg_loss(torch.full((2, 3), math.exp(20) - 21), mask, agg))
            assert float(loss.detach()) == pytest.approx(expected, rel=1e-5)


def test_clip_cov_detaches_a_random_share_of_high_covariance_tokens() -> None:
    # Â deviations ±2 and log π deviations ±1 in step: every token's covariance is 2 ∈ (1, 5); ratio 1.
    adv = torch.tensor([[2.0, -2.0, 2.0, -2.0]])
    logprobs = torch.tensor([[-0.5, -2.5, -0.5, -2.5]])
    mask = torch.ones(1, 4, dtype=torch.bool)
    grads = []
    for _ in range(2):
        x = logprobs.clone().requires_grad_()
        loss, _, metrics = policy_loss(
            x,
            logprobs,
            adv,
            mask,
            loss_type="clip_cov",
            clip_cov_ratio=0.5,
            generator=torch.Generator().manual_seed(7),
        )
        loss.backward()
        assert x.grad is not None
        grads.append(x.grad.clone())
        assert metrics["cov_clip_fraction"] == 0.5  # max(1, int(0.5 · 4)) = 2 tokens
    assert torch.equal(grads[0], grads[1]), "the same generator seed must pick the same tokens"
    detached = grads[0] == 0
    assert int(detached.sum()) == 2
    torch.testing.assert_close(grads[0][~detached], (-adv / 4)[~detached])


def test_kl_cov_penalises_the_top_covariance_tokens() -> None:
    adv = torch.tensor([[3.0, -1.0, 1.0, -3.0]])
    logprobs = torch.tensor([[-0.1, -1.0, -2.0, -3.0]])
    old = logprobs - 0.2  # ratio e^0.2, |log ρ| = 0.2
    mask = torch.ones(1, 4, dtype=torch.bool)
    _, per_token, metrics = policy_loss(logprobs, old, adv, mask, loss_type="kl_cov", kl_cov_ratio=0.25)
    # Covariances (Â − 0)(log π + 1.525): 4.275, 0.525, −0.475, 4.425 → the top one is token 3.
    unclipped = -adv * math.exp(0.2)
    expected = unclipped.clone()
    expected[0, 3] += 1.0 * 0.2
    torch.testing.assert_close(per_token, expected)
    assert metrics["kl_cov_fraction"] == 0.25


def test_per_token_loss_decomposes_the_scalar() -> None:
    logprobs, old, adv, mask = ratios_case()
    mask[0, 4] = False
    for agg in AGG_MODES:
        loss, per_token, _ = policy_loss(logprobs, old, adv, mask, agg=agg)
        torch.testing.assert_close(agg_loss(per_token, mask, agg), loss)
        assert float(per_token[0, 4]) == 0.0


def test_registry_and_validation() -> None:
    assert set(POLICY_LOSSES) == {"ppo_clip", "clip_cov", "kl_cov"}
    logprobs, old, adv, mask = ratios_case()
    with pytest.raises(ValueError, match="'ppo' is unknown; choose from clip_cov, kl_cov, ppo_clip"):
        policy_loss(logprobs, old, adv, mask, loss_type="ppo")
    with pytest.raises(ValueError, match=r"unknown parameter.*kl_cov_ratio; valid: clip_cov_ratio"):
        policy_loss(logprobs, old, adv, mask, loss_type="clip_cov", kl_cov_ratio=0.1)
    with pytest.raises(ValueError, match="clip_low must be < 1"):
        policy_loss(logprobs, old, adv, mask, clip_low=1.0)
    with pytest.raises(ValueError, match="shape"):
        policy_loss(logprobs, old[:, :2], adv, mask)
