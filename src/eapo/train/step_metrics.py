"""The metrics of one training step, each group computed by a pure function of the step's tensors (no model,
no state, no I/O), so that each can be tested on hand-made tensors.

The trainer calls them after the update, on what the step produced: the scored rollout, π_old's entropy,
the GRPO and shaped advantages, and the update's raw sums (`UpdateRecord`). The per-quadrant metrics come
from `eapo.core.quadrant_metrics`, one function for the trainer, TRL and verl. Means over tokens are over the
response mask; a batch with no token gives 0, not NaN.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from eapo.core import QUADRANTS, masked_quantiles, quadrant_masks, quadrant_metrics
from eapo.train.scored_rollout import ScoredRollout
from eapo.train.update import UpdateRecord

ENTROPY_QUANTILES = (0.1, 0.5, 0.9)


def rollout_metrics(
    rollout: ScoredRollout,
    *,
    zero_variance_groups: int,
    refill_rounds: int,
    extra_prompts: int,
    format_rate: float,
) -> dict[str, float]:
    """Rewards, responses, verifier and DAPO's dynamic sampling (the extra rounds and prompts drawn to fill
    the batch with informative groups, and how many informative groups the update finally got)."""
    batch = rollout.batch
    lengths = batch.response_mask.sum(dim=1)
    return {
        "reward/mean": float(rollout.rewards.mean()),
        "accuracy": float(rollout.correct.mean()),
        "reward/zero_variance_groups": float(zero_variance_groups),
        "response/length_mean": float(lengths.float().mean()),
        "response/truncated_frac": float(batch.truncated.float().mean()),
        "verifier/errors": float(rollout.verifier_errors),
        "verifier/timeouts": float(rollout.verifier_timeouts),
        "verifier/extracted_frac": float(rollout.extracted.float().mean()),
        "verifier/format_rate": format_rate,
        "sampling/refill_rounds": float(refill_rounds),
        "sampling/extra_prompts": float(extra_prompts),
        "sampling/informative_groups": float(rollout.informative_groups()),
    }


def token_metrics(
    entropy: torch.Tensor, advantages: torch.Tensor, shaped: torch.Tensor, mask: torch.Tensor
) -> dict[str, float]:
    """π_old's entropy (mean and p10/p50/p90, nats) and the mean |Â| before and after the shaper, over the
    response tokens ([B,T] each, `mask` bool); `tokens/generated` counts those tokens."""
    n_tokens = int(mask.sum())
    quantiles = masked_quantiles(entropy, mask, ENTROPY_QUANTILES).tolist()
    return {
        "entropy/mean": float((entropy * mask).sum() / max(n_tokens, 1)),
        **{
            f"entropy/p{round(100 * q)}": value for q, value in zip(ENTROPY_QUANTILES, quantiles, strict=True)
        },
        "advantage/mean_abs": float(advantages.abs().sum() / max(n_tokens, 1)),
        "advantage/shaped_mean_abs": float(shaped.abs().sum() / max(n_tokens, 1)),
        "tokens/generated": float(n_tokens),
    }


def update_metrics(record: UpdateRecord) -> dict[str, float]:
    """The update's metrics, independent of the micro-batch size: each `policy_loss` metric as a per-token
    mean over all updates (weighted by each micro-batch's valid tokens); `loss` and `pg_loss` the mean over
    optimizer steps of each mini-batch's aggregated loss; `grad_norm` the mean of the finite pre-clip norms
    (NaN when none is finite)."""
    finite_norms = [g for g in record.grad_norms if math.isfinite(g)]
    out = {key: value / max(record.counted_tokens, 1) for key, value in record.loss_metric_sums.items()}
    out["loss"] = float(np.mean(record.mini_batch_losses))
    out["pg_loss"] = float(np.mean(record.mini_batch_pg_losses))
    out["grad_norm"] = float(np.mean(finite_norms)) if finite_norms else float("nan")
    out["skipped_updates"] = float(record.skipped_updates)
    out["updates_per_rollout"] = float(len(record.mini_batch_losses))
    return out


def clip_rate(record: UpdateRecord) -> torch.Tensor:
    """[B,T] the share of this token's updates in which PPO's clip was active (0 with one on-policy
    update), for the per-quadrant `clip_frac`."""
    return record.clip_counts / record.ppo_epochs


def step_quadrant_metrics(
    record: UpdateRecord,
    advantages: torch.Tensor,
    shaped: torch.Tensor,
    entropy: torch.Tensor,
    logprobs: torch.Tensor,
    sum_sq_probs: torch.Tensor,
    mask: torch.Tensor,
    group_size: int,
) -> dict[str, float]:
    """`quadrant/<Q>/...` (PAPER.md §4.1): quadrants by the sign of the GRPO `advantages` (the outcome), as
    TRL, verl and the dump analysis split them, and π_old's entropy; the shaped |Â| beside it, and from the
    update each quadrant's clip rate and loss (`eapo.core.quadrant_metrics`)."""
    return quadrant_metrics(
        advantages,
        entropy,
        mask,
        group_size,
        shaped_advantages=shaped,
        clipped=clip_rate(record),
        logprobs=logprobs,
        sum_sq_probs=sum_sq_probs,
        per_token_loss=record.per_token_loss,
    )


@torch.no_grad()
def update_size(before: list[torch.Tensor], after: list[torch.Tensor]) -> dict[str, float]:
    """How far one step moved the trainable weights: ‖θ_after − θ_before‖₂, and that over ‖θ_before‖₂.

    `before` (the snapshot taken before the update) is overwritten with the difference: no second copy of
    the weights, and fused per-tensor norms (about 0.1 s for SmolLM2's 135M parameters on one CPU core).
    """
    if not before:
        return {"drift/update_norm": 0.0, "drift/update_relative": 0.0}
    norm_before = float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(before))))
    torch._foreach_sub_(before, [a.detach() for a in after])
    delta = float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(before))))
    return {
        "drift/update_norm": delta,
        "drift/update_relative": delta / norm_before if norm_before > 0 else 0.0,
    }


def entropy_change_metrics(
    entropy_before: torch.Tensor,
    entropy_after: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    group_size: int,
) -> dict[str, float]:
    """Mean entropy change of each quadrant's tokens caused by one update (PAPER.md Fig. 6b): the same
    batch scored before and after ([B,T] each). Quadrants by the sign of the GRPO (unshaped) `advantages`
    and π_old's entropy, as in the step's `quadrant/<Q>/...` metrics; an empty quadrant gives 0."""
    delta = entropy_after - entropy_before
    masks = quadrant_masks(advantages, entropy_before, mask, group_size)
    out = {"entropy_change/all": float((delta * mask).sum() / mask.sum().clamp(min=1))}
    for name in QUADRANTS:
        count = masks[name].sum()
        out[f"entropy_change/{name}"] = float((delta * masks[name]).sum() / count) if count else 0.0
    return out


def skipped_step_metrics(rollout: ScoredRollout) -> dict[str, float]:
    """A step whose π_old scores were not finite: its rewards, and the flags that count it as a bad step."""
    return {
        "reward/mean": float(rollout.rewards.mean()),
        "accuracy": float(rollout.correct.mean()),
        "entropy/mean": float("nan"),
        "skipped_updates": 1.0,
        "non_finite_scores": 1.0,
    }


def run_totals(counters: dict[str, int]) -> dict[str, float]:
    """The run's running totals (skipped steps, verifier errors and timeouts, failed checkpoint saves),
    logged on every step so that a resumed run's rows carry them on."""
    return {
        "skipped_steps_total": float(counters["skipped_steps"]),
        "verifier/errors_total": float(counters["verifier_errors"]),
        "verifier/timeouts_total": float(counters["verifier_timeouts"]),
        "checkpoint/failed_saves_total": float(counters["failed_saves"]),
    }


def timing_metrics(timings: dict[str, float], tokens: float | None = None) -> dict[str, float]:
    """`time/<part>` in seconds, and when `tokens` (generated this step) is given the throughput
    `tokens_per_s` over the whole step (`timings["step"]`)."""
    out = {} if tokens is None else {"tokens_per_s": tokens / max(timings["step"], 1e-9)}
    return out | {f"time/{key}": value for key, value in timings.items()}
