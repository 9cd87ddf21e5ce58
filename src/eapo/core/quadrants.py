"""The Four Quadrant Decomposition (PAPER.md §4.1, Appendix B.1) and per-quadrant statistics.

Every valid token with a non-zero advantage falls in exactly one quadrant: polarity is the sign of its
advantage (P: Â > 0, N: Â < 0) and entropy is high (H) or low (L) against a threshold, by default the
mean token entropy of its group (Appendix B.1). Tokens with Â = 0 (zero-variance groups) are in no
quadrant and are reported apart.

Convention shared by every host (eapo's trainer, TRL, verl, the dump analysis): the advantage that decides
polarity is the GRPO advantage before any shaping (PAPER.md §4.1 defines polarity by the outcome), and the
shaped advantage's mean |Â| is reported beside it. `quadrant_metrics` builds the flat `quadrant/<Q>/<stat>`
dict all three hosts log.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from eapo.core.checks import check_same_shape
from eapo.core.entropy import group_entropy_stats

__all__ = [
    "QUADRANTS",
    "high_entropy_mask",
    "logit_grad_norm",
    "quadrant_masks",
    "quadrant_metrics",
    "quadrant_stats",
    "top_entropy_mask",
]

QUADRANTS = ("PHR", "PLR", "NHR", "NLR")
_THRESHOLD_FORMS = "'group_mean', ('batch_quantile', rho) or a number"


def top_entropy_mask(entropy: torch.Tensor, response_mask: torch.Tensor, fraction: float) -> torch.Tensor:
    """Bool [B,T]: the top `fraction` of the batch's valid tokens by entropy.

    Forking tokens (arXiv 2506.01939) and the `("batch_quantile", ρ)` quadrant threshold. The cut is the
    k-th largest valid entropy with k = ceil(fraction × valid tokens); ties at the cut are all kept.

    Args:
        entropy: [B,T]; response_mask: [B,T] bool or 0/1; fraction: in (0, 1].
    """
    if not 0.0 < float(fraction) <= 1.0:
        raise ValueError(f"top entropy fraction must be in (0, 1]; got {fraction}")
    valid = response_mask != 0
    values = entropy.detach()[valid]
    if values.numel() == 0:
        return valid.clone()
    k = max(1, math.ceil(float(fraction) * values.numel() - 1e-9))
    cut = torch.topk(values, k).values[-1]
    return valid & (entropy.detach() >= cut)


def high_entropy_mask(
    entropy: torch.Tensor,
    response_mask: torch.Tensor,
    group_size: int,
    threshold: str | float | Sequence[Any] = "group_mean",
) -> torch.Tensor:
    """Bool [B,T]: valid tokens whose entropy counts as high.

    threshold:
        - `"group_mean"` (PAPER.md Appendix B.1): H ≥ µ_H, the mean entropy of the group's valid tokens.
        - `("batch_quantile", ρ)`: the top ρ fraction of the batch's valid tokens (see `top_entropy_mask`).
        - a number: H ≥ that absolute entropy (nats).
    """
    valid = response_mask != 0
    if isinstance(threshold, str):
        if threshold != "group_mean":
            raise ValueError(f"entropy threshold {threshold!r} is unknown; use {_THRESHOLD_FORMS}")
        mean, _, _, _ = group_entropy_stats(entropy, response_mask, group_size)
        per_row = mean.repeat_interleave(group_size)[:, None]
        return valid & (entropy.detach().double() >= per_row)
    if isinstance(threshold, bool):
        raise ValueError(f"entropy threshold must be {_THRESHOLD_FORMS}; got {threshold!r}")
    if isinstance(threshold, int | float):
        if not math.isfinite(float(threshold)):
            raise ValueError(f"an absolute entropy threshold must be finite; got {threshold}")
        return valid & (entropy.detach() >= float(threshold))
    if (
        isinstance(threshold, Sequence)
        and len(threshold) == 2
        and threshold[0] == "batch_quantile"
        and isinstance(threshold[1], int | float)
    ):
        return top_entropy_mask(entropy, response_mask, float(threshold[1]))
    raise ValueError(f"entropy threshold must be {_THRESHOLD_FORMS}; got {threshold!r}")


def quadrant_masks(
    advantages: torch.Tensor,
    entropy: torch.Tensor,
    response_mask: torch.Tensor,
    group_size: int,
    threshold: str | float | Sequence[Any] = "group_mean",
) -> dict[str, torch.Tensor]:
    """The four quadrant masks of PAPER.md §4.1: {"PHR", "PLR", "NHR", "NLR"} → bool [B,T], in that order.

    Polarity is the sign of the token's advantage (for a group with mixed outcomes this is the paper's
    correct/incorrect split); zero-advantage and masked tokens are in no quadrant. The masks are disjoint
    and together cover exactly the valid tokens with Â ≠ 0.

    Args:
        advantages: [B,T] token advantages; entropy: [B,T]; response_mask: [B,T]; group_size: G.
        threshold: see `high_entropy_mask` (default: the group mean, Appendix B.1).
    """
    if advantages.shape != entropy.shape or advantages.shape != response_mask.shape:
        raise ValueError(
            f"advantages, entropy and response_mask must share a [B,T] shape; got {tuple(advantages.shape)}, "
            f"{tuple(entropy.shape)}, {tuple(response_mask.shape)}"
        )
    valid = response_mask != 0
    high = high_entropy_mask(entropy, response_mask, group_size, threshold)
    low = valid & ~high
    positive = valid & (advantages > 0)
    negative = valid & (advantages < 0)
    return {"PHR": positive & high, "PLR": positive & low, "NHR": negative & high, "NLR": negative & low}


def logit_grad_norm(
    advantages: torch.Tensor, logprobs: torch.Tensor, sum_sq_probs: torch.Tensor
) -> torch.Tensor:
    """Closed-form norm of the logit gradient of the per-token loss −Â·log π_y (PAPER.md Eq. 5).

    ∂(−Â log π_y)/∂z_v = −Â (1[v = y] − π_v), so the norm over the vocabulary is
    |Â| · sqrt((1 − π_y)² + Σ_{v≠y} π_v²) = |Â| · sqrt(1 − 2π_y + Σ_v π_v²), with π_y = exp(log π_y).
    Evaluated as (−expm1(log π_y))² + (Σ π² − π_y²) in float64, which keeps the ~1e-8 values of
    near-deterministic tokens (pass the float64 `sum_sq_probs` of `token_logprobs_and_entropy`).

    Args: advantages, logprobs, sum_sq_probs: [B,T]. Returns: [B,T] fp32 (≥ 0).
    """
    check_same_shape("advantages", advantages.shape, logprobs=logprobs, sum_sq_probs=sum_sq_probs)
    logprobs = logprobs.detach().double()
    one_minus_pi = -torch.expm1(logprobs)
    others = (sum_sq_probs.detach().double() - logprobs.mul(2.0).exp()).clamp(min=0.0)
    norm = (one_minus_pi.square() + others).sqrt()
    return (advantages.detach().double().abs() * norm).float()


def _summary(
    selected: torch.Tensor,
    n_valid: int,
    entropy: torch.Tensor,
    abs_advantage: torch.Tensor,
    per_token_loss: torch.Tensor | None,
    grad_norm: torch.Tensor | None,
    abs_shaped: torch.Tensor | None = None,
    clipped: torch.Tensor | None = None,
) -> dict[str, float]:
    count = int(selected.sum())

    def mean_of(values: torch.Tensor) -> float:
        return float(values[selected].double().sum() / count) if count else 0.0

    stats = {
        "count": float(count),
        "share": count / n_valid if n_valid else 0.0,
        "mean_entropy": mean_of(entropy),
        "mean_abs_advantage": mean_of(abs_advantage),
    }
    if abs_shaped is not None:
        stats["mean_abs_shaped_adv"] = mean_of(abs_shaped)
    if clipped is not None:
        stats["clip_frac"] = mean_of(clipped)
    if per_token_loss is not None:
        stats["loss_sum"] = float(per_token_loss[selected].double().sum())
    if grad_norm is not None:
        stats["grad_norm_sum"] = float(grad_norm[selected].double().sum())
        stats["grad_norm_mean"] = mean_of(grad_norm)
    return stats


def quadrant_stats(
    advantages: torch.Tensor,
    entropy: torch.Tensor,
    response_mask: torch.Tensor,
    group_size: int,
    *,
    logprobs: torch.Tensor | None = None,
    sum_sq_probs: torch.Tensor | None = None,
    per_token_loss: torch.Tensor | None = None,
    threshold: str | float | Sequence[Any] = "group_mean",
    shaped_advantages: torch.Tensor | None = None,
    clipped: torch.Tensor | None = None,
) -> dict[str, dict[str, float]]:
    """Per-quadrant token statistics (PAPER.md §4.1, §4.3).

    Args:
        advantages, entropy, response_mask: [B,T]; group_size: G; threshold: see `high_entropy_mask`.
            `advantages` decide polarity: pass the GRPO (unshaped) advantages, the paper's convention.
        logprobs, sum_sq_probs: [B,T], optional; with both, the Eq. 5 logit-gradient norm is reported, of
            the loss actually applied: |shaped_advantages| when given, else |advantages|.
        per_token_loss: [B,T], optional; its sum over each quadrant is reported (the quadrant's share of
            a linear aggregate such as token-mean when it is pre-divided by the token count).
        shaped_advantages: [B,T], optional; the advantages after the algorithm's shaper (e.g. Eq. 7).
            Quadrants stay those of `advantages`; this only adds `mean_abs_shaped_adv`.
        clipped: [B,T] bool, optional; True where the token's PPO ratio was clipped in the update (Eq. 2),
            or the fraction of the token's updates that clipped it. Adds `clip_frac`, its quadrant mean.

    Returns:
        {"PHR", "PLR", "NHR", "NLR", "ZERO"} → {name: float}. "ZERO" holds the valid tokens with Â = 0,
        which belong to no quadrant. Fields: `count`, `share` (of all valid tokens), `mean_entropy`,
        `mean_abs_advantage`; `mean_abs_shaped_adv` when shaped_advantages is given; `clip_frac` when
        clipped is given; `loss_sum` when per_token_loss is given; `grad_norm_sum` and `grad_norm_mean`
        when logprobs and sum_sq_probs are given. Empty sets give 0 counts and 0.0 means.
    """
    check_same_shape(
        "advantages",
        advantages.shape,
        shaped_advantages=shaped_advantages,
        clipped=clipped,
        logprobs=logprobs,
        sum_sq_probs=sum_sq_probs,
        per_token_loss=per_token_loss,
    )
    masks = quadrant_masks(advantages, entropy, response_mask, group_size, threshold)
    valid = response_mask != 0
    masks["ZERO"] = valid & (advantages == 0)
    n_valid = int(valid.sum())
    grad_norm = None
    if logprobs is not None and sum_sq_probs is not None:
        applied = advantages if shaped_advantages is None else shaped_advantages
        grad_norm = logit_grad_norm(applied, logprobs, sum_sq_probs)
    loss = per_token_loss.detach() if per_token_loss is not None else None
    abs_advantage = advantages.detach().abs()
    abs_shaped = shaped_advantages.detach().abs() if shaped_advantages is not None else None
    clipped_float = clipped.detach().to(torch.float64) if clipped is not None else None
    entropy = entropy.detach()
    return {
        name: _summary(selected, n_valid, entropy, abs_advantage, loss, grad_norm, abs_shaped, clipped_float)
        for name, selected in masks.items()
    }


def quadrant_metrics(
    advantages: torch.Tensor,
    entropy: torch.Tensor,
    response_mask: torch.Tensor,
    group_size: int,
    *,
    shaped_advantages: torch.Tensor | None = None,
    clipped: torch.Tensor | None = None,
    logprobs: torch.Tensor | None = None,
    sum_sq_probs: torch.Tensor | None = None,
    per_token_loss: torch.Tensor | None = None,
    threshold: str | float | Sequence[Any] = "group_mean",
    prefix: str = "quadrant",
) -> dict[str, float]:
    """The flat per-quadrant metrics every host logs: `{f"{prefix}/{Q}/{stat}": value}`.

    One function for eapo's trainer, TRL's `EAPOTrainer` and verl's `eapo` trainer, so that a metric of the
    same name means the same thing in all three. Quadrants by the sign of `advantages` (pass the GRPO,
    unshaped advantages: PAPER.md §4.1) and the group-mean entropy threshold (Appendix B.1); the stats are
    those of `quadrant_stats` with the same arguments, Q in PHR, PLR, NHR, NLR, ZERO.
    """
    stats = quadrant_stats(
        advantages,
        entropy,
        response_mask,
        group_size,
        logprobs=logprobs,
        sum_sq_probs=sum_sq_probs,
        per_token_loss=per_token_loss,
        threshold=threshold,
        shaped_advantages=shaped_advantages,
        clipped=clipped,
    )
    return {
        f"{prefix}/{name}/{key}": float(value)
        for name, values in stats.items()
        for key, value in values.items()
    }
