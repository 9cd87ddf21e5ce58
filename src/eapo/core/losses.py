"""Policy losses (PAPER.md Eq. 2 and the KL-Cov / Clip-Cov baselines) and the one aggregation function.

Each registered loss maps per-token log-probs to a per-token policy-gradient loss [B,T]; `policy_loss`
adds the optional k3 KL to a reference and the entropy bonus, then aggregates with `agg_loss`. Every
mode of `agg_loss` is linear in the per-token values, so the returned per-token loss decomposes the
scalar exactly (the quadrant statistics rely on that).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import torch

from eapo.core.checks import check_finite_number, check_integer

__all__ = [
    "AGG_MODES",
    "POLICY_LOSSES",
    "RATIO_CLIPPING_LOSSES",
    "agg_loss",
    "clipped_tokens",
    "policy_loss",
    "policy_loss_params",
    "register_policy_loss",
]

AGG_MODES = ("token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm")

# Same bound as verl: log-ratios beyond ±20 only arise from broken inputs and would overflow exp.
_LOG_RATIO_BOUND = 20.0

PolicyLossFn = Callable[..., tuple[torch.Tensor, dict[str, float]]]
POLICY_LOSSES: dict[str, PolicyLossFn] = {}
# The registered losses that clip the ratio to [1 − ε_low, 1 + ε_high] (Eq. 2), so `clipped_tokens` says
# which tokens they clipped; KL-Cov replaces the clip and is not in it.
RATIO_CLIPPING_LOSSES: set[str] = set()

# Arguments every registered loss receives; the rest of its keywords are loss-specific parameters.
_COMMON = ("logprobs", "old_logprobs", "advantages", "valid", "clip_low", "clip_high", "dual_clip")


def register_policy_loss(name: str, *, clips_ratio: bool = True) -> Callable[[PolicyLossFn], PolicyLossFn]:
    """Decorator: register `f(logprobs, old_logprobs, advantages, valid, *, clip_low, clip_high, dual_clip,
    **params) -> (per_token_loss [B,T] with grad, metrics)` as policy loss `name`. `clips_ratio`: the loss
    applies Eq. 2's ratio clip (then `clipped_tokens` describes it)."""

    def decorator(fn: PolicyLossFn) -> PolicyLossFn:
        if name in POLICY_LOSSES:
            raise ValueError(f"a policy loss named {name!r} is already registered")
        POLICY_LOSSES[name] = fn
        if clips_ratio:
            RATIO_CLIPPING_LOSSES.add(name)
        return fn

    return decorator


def policy_loss_params(name: str) -> dict[str, Any]:
    """The loss-specific parameters of policy loss `name` and their defaults."""
    signature = inspect.signature(POLICY_LOSSES[name])
    return {p.name: p.default for p in signature.parameters.values() if p.name not in _COMMON}


def _masked_mean(values: torch.Tensor, valid: torch.Tensor) -> float:
    count = int(valid.sum())
    return float(torch.where(valid, values.detach().double(), 0.0).sum() / count) if count else 0.0


def agg_loss(
    per_token: torch.Tensor,
    response_mask: torch.Tensor,
    mode: str = "token_mean",
    num_tokens: int | float | torch.Tensor | None = None,
    num_seqs: int | float | torch.Tensor | None = None,
    max_len: int | None = None,
) -> torch.Tensor:
    """Aggregate a per-token loss [B,T] into a scalar; the only aggregation in eapo (STYLE.md).

    Modes (verl's names, with `-` or `_`):
        - `token_mean` (PAPER.md Eq. 2, DAPO): Σ loss / total valid tokens. `num_tokens` overrides the
          denominator, so a trainer accumulating gradients over micro-batches passes the whole batch's
          token count and the micro-batch losses sum to the full-batch loss.
        - `seq_mean_token_mean`: mean over sequences of each sequence's token mean.
        - `seq_mean_token_sum_norm` (Dr. GRPO, arXiv 2503.20783): Σ_t loss / `max_len` per sequence,
          averaged over sequences. `max_len` defaults to T and should be the constant generation budget.
          This is TRL's `dr_grpo` (sum / (B · max_completion_length)); verl's mode of the same name
          omits the division by the number of sequences.
        In the sequence modes `num_seqs` overrides the number of sequences (default: rows with at least one
        valid token). With equal-length sequences filling T, all three modes agree.

    Args:
        per_token: [B,T]; response_mask: [B,T] bool or 0/1; mode: see above.

    Returns:
        0-dim fp32 tensor; 0 (still connected to the graph) when there is nothing to average.
    """
    mode = mode.replace("-", "_")
    if mode not in AGG_MODES:
        raise ValueError(f"loss aggregation {mode!r} is unknown; choose from {', '.join(AGG_MODES)}")
    if per_token.shape != response_mask.shape or per_token.dim() != 2:
        raise ValueError(
            f"per_token and response_mask must share a [B,T] shape; got {tuple(per_token.shape)} "
            f"and {tuple(response_mask.shape)}"
        )
    # A NaN count would make every comparison below False and the loss silently 0.
    if num_tokens is not None:
        num_tokens = check_finite_number("num_tokens", num_tokens, low=0.0)
    if num_seqs is not None:
        num_seqs = check_finite_number("num_seqs", num_seqs, low=0.0)
    if max_len is not None:
        max_len = check_integer("max_len", max_len, low=1)
    valid = response_mask != 0
    # where (not multiply), so inf/NaN in masked positions cannot leak into the sum or its gradient.
    masked = torch.where(valid, per_token.float(), 0.0)
    if mode == "token_mean":
        denominator = float(valid.sum()) if num_tokens is None else float(num_tokens)
        if denominator < 0:
            raise ValueError(f"num_tokens must be >= 0; got {num_tokens}")
        return masked.sum() / denominator if denominator > 0 else masked.sum() * 0.0
    lengths = valid.sum(dim=1)
    count = float((lengths > 0).sum()) if num_seqs is None else float(num_seqs)
    if count < 0:
        raise ValueError(f"num_seqs must be >= 0; got {num_seqs}")
    if mode == "seq_mean_token_mean":
        per_seq = masked.sum(dim=1) / lengths.clamp(min=1)
    else:
        norm = per_token.shape[1] if max_len is None else int(max_len)
        if norm < 1:
            raise ValueError(f"max_len must be >= 1; got {max_len}")
        per_seq = masked.sum(dim=1) / norm
    return per_seq.sum() / count if count > 0 else per_seq.sum() * 0.0


def clipped_tokens(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    valid: torch.Tensor,
    clip_low: float,
    clip_high: float,
) -> torch.Tensor:
    """[B,T] bool: tokens where PPO's clip is active, i.e. the clipped term of Eq. 2 is the larger loss:
    Â > 0 with ρ > 1 + ε_high, or Â < 0 with ρ < 1 − ε_low. Such tokens get no gradient from the ratio."""
    unclipped, clipped = _ratio_terms(logprobs, old_logprobs, advantages, clip_low, clip_high)
    return (valid != 0) & (clipped > unclipped)


def _ratio_terms(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    clip_low: float,
    clip_high: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 2's two per-token terms: −ρ·Â and −clip(ρ, 1 − ε_low, 1 + ε_high)·Â, with ρ = π_θ / π_old."""
    log_ratio = (logprobs - old_logprobs).clamp(-_LOG_RATIO_BOUND, _LOG_RATIO_BOUND)
    ratio = log_ratio.exp()
    return -advantages * ratio, -advantages * ratio.clamp(1.0 - clip_low, 1.0 + clip_high)


def _ppo_clip_terms(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    valid: torch.Tensor,
    clip_low: float,
    clip_high: float,
    dual_clip: float | None,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """PPO-clip with an asymmetric range [1 − ε_low, 1 + ε_high] (PAPER.md Eq. 2; DAPO's clip-higher)
    and optional dual-clip (arXiv 1912.09729: for Â < 0 the loss is capped at −c·Â).

    Returns (per-token loss [B,T], clipped-by-range mask, metrics).
    """
    unclipped, clipped = _ratio_terms(logprobs, old_logprobs, advantages, clip_low, clip_high)
    loss = torch.maximum(unclipped, clipped)
    clipped_by_range = (valid != 0) & (clipped > unclipped)
    metrics = {"clip_fraction": _masked_mean(clipped_by_range.float(), valid)}
    if dual_clip is not None:
        cap = -advantages * dual_clip
        dual_clipped = valid & (advantages < 0) & (loss > cap)
        loss = torch.where(advantages < 0, torch.minimum(loss, cap), loss)
        metrics["clip_fraction_dual"] = _masked_mean(dual_clipped.float(), valid)
    return loss, clipped_by_range, metrics


@register_policy_loss("ppo_clip")
def ppo_clip_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    valid: torch.Tensor,
    *,
    clip_low: float,
    clip_high: float,
    dual_clip: float | None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """PAPER.md Eq. 2: −min(ρ·Â, clip(ρ, 1 − ε_low, 1 + ε_high)·Â) per token, ρ = π_θ / π_old."""
    loss, _, metrics = _ppo_clip_terms(
        logprobs, old_logprobs, advantages, valid, clip_low, clip_high, dual_clip
    )
    return loss, metrics


def _centred_covariance(
    advantages: torch.Tensor, logprobs: torch.Tensor, valid: torch.Tensor
) -> torch.Tensor:
    """Per-token (Â − mean Â)·(log π − mean log π) over the valid tokens (arXiv 2505.22617, Eq. 12)."""
    adv = advantages.detach()
    logp = logprobs.detach()
    return (adv - _masked_mean(adv, valid)) * (logp - _masked_mean(logp, valid))


@register_policy_loss("clip_cov")
def clip_cov_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    valid: torch.Tensor,
    *,
    clip_low: float,
    clip_high: float,
    dual_clip: float | None,
    clip_cov_ratio: float = 0.0002,
    clip_cov_lb: float = 1.0,
    clip_cov_ub: float = 5.0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Clip-Cov (Cui et al. 2025, arXiv 2505.22617), as verl's `compute_policy_loss_clip_cov` does it.

    On top of PPO-clip, a random max(1, ⌊clip_cov_ratio · N⌋) of the valid tokens whose centred
    covariance (Â − mean Â)(log π − mean log π) lies in (clip_cov_lb, clip_cov_ub), among those PPO-clip
    did not already clip, are detached from the gradient (their loss is multiplied by 0). Defaults are
    verl's. `generator` makes the random pick reproducible.
    """
    if not clip_cov_ratio > 0:
        raise ValueError(f"clip_cov_ratio must be > 0; got {clip_cov_ratio}")
    loss, clipped_by_range, metrics = _ppo_clip_terms(
        logprobs, old_logprobs, advantages, valid, clip_low, clip_high, dual_clip
    )
    covariance = _centred_covariance(advantages, logprobs, valid)
    candidates = valid & ~clipped_by_range & (covariance > clip_cov_lb) & (covariance < clip_cov_ub)
    candidate_index = candidates.reshape(-1).nonzero().squeeze(-1)
    n_clip = max(int(clip_cov_ratio * int(valid.sum())), 1)
    keep = torch.ones(loss.numel(), dtype=loss.dtype, device=loss.device)
    if candidate_index.numel() > 0:
        order = torch.randperm(candidate_index.numel(), generator=generator, device="cpu").to(loss.device)
        keep[candidate_index[order[:n_clip]]] = 0.0
    keep = keep.view_as(loss)
    metrics["cov_clip_fraction"] = _masked_mean((keep == 0).float(), valid)
    return loss * keep, metrics


@register_policy_loss("kl_cov", clips_ratio=False)
def kl_cov_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    valid: torch.Tensor,
    *,
    clip_low: float,
    clip_high: float,
    dual_clip: float | None,
    kl_cov_ratio: float = 0.0002,
    ppo_kl_coef: float = 1.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """KL-Cov (Cui et al. 2025, arXiv 2505.22617), as verl's `compute_policy_loss_kl_cov` does it.

    The surrogate is unclipped, −ρ·Â (KL-Cov replaces the ratio clip; clip_low, clip_high and dual_clip
    are ignored), and the top max(1, ⌊kl_cov_ratio · N⌋) valid tokens by centred covariance
    (Â − mean Â)(log π − mean log π) get the penalty + ppo_kl_coef · |log π_θ − log π_old|. Defaults are
    verl's.
    """
    if not kl_cov_ratio > 0:
        raise ValueError(f"kl_cov_ratio must be > 0; got {kl_cov_ratio}")
    log_ratio = (logprobs - old_logprobs).clamp(-_LOG_RATIO_BOUND, _LOG_RATIO_BOUND)
    loss = -advantages * log_ratio.exp()
    covariance = _centred_covariance(advantages, logprobs, valid).reshape(-1)
    valid_index = valid.reshape(-1).nonzero().squeeze(-1)
    penalised = torch.zeros(loss.numel(), dtype=torch.bool, device=loss.device)
    if valid_index.numel() > 0:
        n_top = min(max(int(kl_cov_ratio * valid_index.numel()), 1), valid_index.numel())
        top = torch.topk(covariance[valid_index], n_top).indices
        penalised[valid_index[top]] = True
    penalised = penalised.view_as(loss)
    loss = torch.where(penalised, loss + ppo_kl_coef * log_ratio.abs(), loss)
    clipped = valid & ((log_ratio.exp() < 1.0 - clip_low) | (log_ratio.exp() > 1.0 + clip_high))
    return loss, {
        "clip_fraction": 0.0,
        "outside_clip_range_fraction": _masked_mean(clipped.float(), valid),
        "kl_cov_fraction": _masked_mean(penalised.float(), valid),
    }


def _k3_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """k3 estimator of KL(π_θ ‖ π_ref) per token: exp(d) − d − 1 with d = log π_ref − log π_θ (≥ 0)."""
    d = (ref_logprobs - logprobs).clamp(-_LOG_RATIO_BOUND, _LOG_RATIO_BOUND)
    return d.exp() - d - 1.0


def _check_finite(name: str, value: Any, *, minimum: float | None = None, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite number; got {value!r}")
    value = float(value)
    if minimum is not None and (value < minimum or (strict and value == minimum)):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {minimum}; got {value}")
    return value


def policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    *,
    loss_type: str = "ppo_clip",
    clip_low: float = 0.2,
    clip_high: float = 0.28,
    dual_clip: float | None = None,
    ref_logprobs: torch.Tensor | None = None,
    kl_coef: float = 0.0,
    entropy: torch.Tensor | None = None,
    entropy_coef: float = 0.0,
    agg: str = "token_mean",
    num_tokens: int | float | torch.Tensor | None = None,
    num_seqs: int | float | torch.Tensor | None = None,
    max_len: int | None = None,
    **loss_params: Any,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """The policy loss of PAPER.md Eq. 2 (or a registered variant), with optional KL and entropy terms.

    per-token loss = ℓ_pg + kl_coef · k3(π_θ ‖ π_ref) − entropy_coef · H, aggregated by `agg_loss`
    (so the entropy bonus is loss −= entropy_coef · agg(H), EntroReg). The paper's settings are the
    defaults: ε_low = 0.2, ε_high = 0.28, no KL, token-mean.

    Args:
        logprobs: [B,T] log π_θ of the sampled tokens (with grad). old_logprobs: [B,T] log π_old.
        advantages: [B,T] (detached here). response_mask: [B,T] bool or 0/1.
        loss_type: a key of POLICY_LOSSES (`ppo_clip`, `clip_cov`, `kl_cov`).
        clip_low, clip_high: ε_low ∈ [0, 1), ε_high ≥ 0. dual_clip: None or c > 1 (negative Â only).
        ref_logprobs: [B,T] log π_ref, needed when kl_coef > 0 (its mean k3 is reported whenever given).
        entropy: [B,T] token entropy with grad (`token_logprobs_and_entropy(..., entropy_grad=True)`),
            needed when entropy_coef ≠ 0.
        agg, num_tokens, num_seqs, max_len: see `agg_loss` (a trainer passes `max_len` = the generation
            budget, `sampling.max_new_tokens`: the batch's width is its longest response, which varies from
            step to step). loss_params: the loss's own parameters.

    Returns:
        (loss 0-dim tensor, per_token_loss [B,T] detached and 0 outside the mask, metrics) with metrics
        `clip_fraction`, `approx_kl` (k3 estimate of KL(π_old ‖ π_θ) over the valid tokens), `kl_new_old`
        (estimate of KL(π_θ ‖ π_old)), `ratio_mean`, `ratio_abs_dev` (mean |ρ − 1|),
        `pg_loss`, `kl` (when ref_logprobs is given), `entropy` (when given) and the loss's own metrics.
        Means are over this call's valid tokens.
    """
    if loss_type not in POLICY_LOSSES:
        raise ValueError(
            f"policy loss {loss_type!r} is unknown; choose from {', '.join(sorted(POLICY_LOSSES))}"
        )
    valid_params = policy_loss_params(loss_type)
    unknown = sorted(set(loss_params) - set(valid_params))
    if unknown:
        listed = ", ".join(valid_params) if valid_params else "none"
        raise ValueError(
            f"policy loss {loss_type!r} got unknown parameter(s) {', '.join(unknown)}; valid: {listed}"
        )
    shape = response_mask.shape
    named: dict[str, torch.Tensor | None] = {
        "logprobs": logprobs,
        "old_logprobs": old_logprobs,
        "advantages": advantages,
        "ref_logprobs": ref_logprobs,
        "entropy": entropy,
    }
    for name, tensor in named.items():
        if tensor is not None and tensor.shape != shape:
            raise ValueError(
                f"{name} must have the response_mask's shape {tuple(shape)}; got {tuple(tensor.shape)}"
            )
    if len(shape) != 2:
        raise ValueError(f"response_mask must be [B,T]; got shape {tuple(shape)}")
    clip_low = _check_finite("clip_low", clip_low, minimum=0.0)
    if clip_low >= 1.0:
        raise ValueError(f"clip_low must be < 1 (the ratio's lower bound 1 − clip_low > 0); got {clip_low}")
    clip_high = _check_finite("clip_high", clip_high, minimum=0.0)
    if dual_clip is not None:
        dual_clip = _check_finite("dual_clip", dual_clip, minimum=1.0, strict=True)
    kl_coef = _check_finite("kl_coef", kl_coef, minimum=0.0)
    entropy_coef = _check_finite("entropy_coef", entropy_coef)
    if kl_coef > 0 and ref_logprobs is None:
        raise ValueError(f"kl_coef = {kl_coef} needs ref_logprobs")
    if entropy_coef != 0 and entropy is None:
        raise ValueError(f"entropy_coef = {entropy_coef} needs the entropy tensor (with entropy_grad=True)")

    valid = response_mask != 0
    # Sanitise masked positions first, so padding values (even ±inf) never reach exp or the gradient.
    logprobs = torch.where(valid, logprobs.float(), 0.0)
    old_logprobs = torch.where(valid, old_logprobs.detach().float(), 0.0)
    advantages = torch.where(valid, advantages.detach().float(), 0.0)
    per_token, metrics = POLICY_LOSSES[loss_type](
        logprobs,
        old_logprobs,
        advantages,
        valid,
        clip_low=clip_low,
        clip_high=clip_high,
        dual_clip=dual_clip,
        **loss_params,
    )
    per_token = torch.where(valid, per_token, 0.0)
    log_ratio = (logprobs.detach() - old_logprobs).clamp(-_LOG_RATIO_BOUND, _LOG_RATIO_BOUND)
    metrics["approx_kl"] = _masked_mean(log_ratio.exp() - 1.0 - log_ratio, valid)
    metrics["ratio_mean"] = _masked_mean(log_ratio.exp(), valid)
    # Drift of π_θ from π_old on these tokens (sampled from π_old): KL(π_θ ‖ π_old) = E_old[ρ log ρ], with
    # the zero-mean control variate −(ρ − 1) so every term is >= 0; and the mean distance of ρ from 1.
    ratio = log_ratio.exp()
    metrics["kl_new_old"] = _masked_mean(ratio * log_ratio - ratio + 1.0, valid)
    metrics["ratio_abs_dev"] = _masked_mean((ratio - 1.0).abs(), valid)
    metrics["pg_loss"] = float(agg_loss(per_token.detach(), valid, agg, num_tokens, num_seqs, max_len))
    if ref_logprobs is not None:
        kl = _k3_kl(logprobs, torch.where(valid, ref_logprobs.detach().float(), 0.0))
        metrics["kl"] = _masked_mean(kl, valid)
        if kl_coef > 0:
            per_token = per_token + kl_coef * torch.where(valid, kl, 0.0)
    if entropy is not None:
        entropy = torch.where(valid, entropy.float(), 0.0)
        metrics["entropy"] = _masked_mean(entropy, valid)
        if entropy_coef != 0:
            per_token = per_token - entropy_coef * entropy
    loss = agg_loss(per_token, valid, agg, num_tokens, num_seqs, max_len)
    return loss, per_token.detach(), metrics
