"""The policy update of one rollout (PAPER.md Eq. 2, the paper's schedule in §6): PPO epochs × mini-batches
(whole groups, one optimizer step each) × micro-batches (gradient accumulation).

With more than one mini-batch per rollout, π_θ has moved away from π_old by the later mini-batches, so the
ratio differs from 1 and the clip binds. The loop only accumulates raw sums and tensors (`UpdateRecord`);
the step's metrics are computed from them afterwards by `eapo.train.step_metrics.update_metrics`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch

from eapo.core import RATIO_CLIPPING_LOSSES, clipped_tokens, policy_loss, token_logprobs_and_entropy
from eapo.rollout import RolloutBatch, response_logits
from eapo.train.algorithms import Algorithm
from eapo.train.config import TrainConfig
from eapo.train.scoring import row_chunks


def used_width(mask: torch.Tensor) -> int:
    """Columns of `mask` [rows, T] up to and including the last True one in any row (at least 1): the
    width a micro-batch needs, its other columns being padding."""
    used = mask.any(dim=0).nonzero()
    return int(used[-1]) + 1 if used.numel() else 1


@dataclass
class UpdateRecord:
    """What one rollout's update leaves for the step metrics, summed over every micro-batch so that the
    metrics do not depend on the micro-batch size.

    `loss_metric_sums`: Σ over micro-batches of (each `policy_loss` metric × the micro-batch's valid tokens),
    except `pg_loss`; `counted_tokens`: Σ of those valid tokens. `mini_batch_losses`, `mini_batch_pg_losses`:
    one per optimizer step, the mini-batch's aggregated loss (its micro-batch shares summed). `grad_norms`:
    one per optimizer step, before clipping. `per_token_loss` [B,T]: the first epoch's per-token loss over
    its mini-batch's token count. `clip_counts` [B,T]: updates in which the token's ratio was clipped.
    """

    loss_metric_sums: dict[str, float]
    counted_tokens: int
    mini_batch_losses: list[float]
    mini_batch_pg_losses: list[float]
    grad_norms: list[float]
    skipped_updates: int
    per_token_loss: torch.Tensor
    clip_counts: torch.Tensor
    ppo_epochs: int
    forward_backward_time: float
    optimizer_time: float


# The devices and dtypes for which torch's AdamW has a fused kernel.
_FUSED_DEVICES = frozenset({"cpu", "cuda"})
_FUSED_DTYPES = frozenset({torch.float64, torch.float32, torch.bfloat16, torch.float16})


def fused_optimizer_applies(params: list[torch.Tensor], wanted: bool) -> bool:
    """Whether AdamW runs its fused kernel: asked for (`train.fused_optimizer`) and every weight on a device
    and in a dtype the kernel supports (otherwise the per-tensor loop, which computes the same update)."""
    return wanted and all(p.device.type in _FUSED_DEVICES and p.dtype in _FUSED_DTYPES for p in params)


def set_optimizer_implementation(optimizer: torch.optim.Optimizer, wanted: bool) -> None:
    """Make `optimizer` run the kernel the current config asks for. A checkpoint's optimizer state carries the
    flag it was saved with; after loading it, the moments are the checkpoint's and the kernel the config's.
    The fused kernel keeps each step count on its weight's device as float32."""
    for group in optimizer.param_groups:
        fused = fused_optimizer_applies(group["params"], wanted)
        group["fused"] = True if fused else None
        if not fused:
            continue
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            if "step" in state:
                state["step"] = torch.as_tensor(state["step"], dtype=torch.float32, device=param.device)


def build_optimizer(model: Any, schedule: TrainConfig) -> tuple[torch.optim.Optimizer, Any]:
    """AdamW over the trainable parameters (fused where `schedule.fused_optimizer` and torch allow) and its
    learning-rate schedule: a linear warm-up over `schedule.warmup_steps` rollouts (stepped once per
    rollout), then constant."""
    params = [p for p in model.parameters() if p.requires_grad]
    fused = fused_optimizer_applies(params, schedule.fused_optimizer)
    optimizer = torch.optim.AdamW(
        params, lr=schedule.lr, weight_decay=schedule.weight_decay, fused=True if fused else None
    )
    warmup = max(schedule.warmup_steps, 0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) if warmup else 1.0
    )
    return optimizer, scheduler


def policy_update(
    model: Any,
    optimizer: torch.optim.Optimizer,
    batch: RolloutBatch,
    old_logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor | None,
    advantages: torch.Tensor,
    update_mask: torch.Tensor,
    *,
    algorithm: Algorithm,
    schedule: TrainConfig,
    temperature: float,
    autocast: Any,
    max_len: int,
) -> UpdateRecord:
    """Update `model` on one scored rollout: `schedule.ppo_epochs` passes over `schedule.mini_batches`
    mini-batches, each accumulated over micro-batches of `schedule.micro_batch_rows` rows, clipped to
    `schedule.max_grad_norm` and applied by `optimizer`. A mini-batch whose loss or gradient is not finite
    is skipped (weights and Adam moments unchanged) and counted. Log-probs at `temperature`, as π_old's.
    `max_len`: the generation budget (`sampling.max_new_tokens`), Dr. GRPO's constant length normaliser
    (`agg_loss`); required, since a batch's own width is its longest response and varies by step.
    """
    algo = algorithm
    B = batch.sequences.shape[0]
    rows_per_mini = B // schedule.mini_batches
    need_entropy_grad = algo.entropy_coef > 0
    record = UpdateRecord(
        loss_metric_sums={},
        counted_tokens=0,
        mini_batch_losses=[],
        mini_batch_pg_losses=[],
        grad_norms=[],
        skipped_updates=0,
        per_token_loss=torch.zeros_like(advantages),
        clip_counts=torch.zeros_like(advantages),
        ppo_epochs=schedule.ppo_epochs,
        forward_backward_time=0.0,
        optimizer_time=0.0,
    )
    params = [p for p in model.parameters() if p.requires_grad]
    model.train()
    for epoch in range(schedule.ppo_epochs):
        for mini in row_chunks(B, rows_per_mini):
            num_tokens = int(update_mask[mini].sum())
            num_seqs = mini.stop - mini.start
            mini_loss = mini_pg_loss = 0.0  # one bad mini-batch must not veto the others
            optimizer.zero_grad(set_to_none=True)
            t0 = time.perf_counter()
            for micro in row_chunks(num_seqs, schedule.micro_batch_rows):
                rows = slice(mini.start + micro.start, mini.start + micro.stop)
                # `rows` with every response column, or (trim_padding) only up to their last counted token.
                width = used_width(update_mask[rows]) if schedule.trim_padding else update_mask.shape[1]
                cols = (rows, slice(0, width))
                with autocast():
                    logits = response_logits(
                        model,
                        batch.sequences[rows, : batch.prompt_length + width],
                        batch.attention_mask[rows, : batch.prompt_length + width],
                        batch.prompt_length,
                        share_prompts=schedule.shared_prompt_forward,
                    )
                outs = token_logprobs_and_entropy(
                    logits,
                    batch.response_ids[cols],
                    update_mask[cols],
                    schedule.logprob_chunk_size,
                    entropy_grad=need_entropy_grad,
                    temperature=temperature,
                )
                logprobs, entropy = outs[0], outs[1]
                loss, token_loss, m = policy_loss(
                    logprobs.float(),
                    old_logprobs[cols],
                    advantages[cols],
                    update_mask[cols],
                    loss_type=algo.loss,
                    clip_low=algo.clip_low,
                    clip_high=algo.clip_high,
                    dual_clip=algo.dual_clip,
                    ref_logprobs=None if ref_logprobs is None else ref_logprobs[cols],
                    kl_coef=algo.kl_coef,
                    entropy=entropy.float() if need_entropy_grad else None,
                    entropy_coef=algo.entropy_coef,
                    agg=algo.agg,
                    num_tokens=num_tokens,
                    num_seqs=num_seqs,
                    max_len=max_len,
                    **algo.loss_params,
                )
                loss.backward()
                mini_loss += float(loss.detach())
                mini_pg_loss += m.pop("pg_loss")
                micro_tokens = int(update_mask[cols].sum())
                record.counted_tokens += micro_tokens
                for key, value in m.items():
                    sums = record.loss_metric_sums
                    sums[key] = sums.get(key, 0.0) + float(value) * micro_tokens
                if algo.loss in RATIO_CLIPPING_LOSSES:  # KL-Cov clips nothing: its rate stays 0
                    record.clip_counts[cols] += clipped_tokens(
                        logprobs.detach().float(),
                        old_logprobs[cols],
                        advantages[cols],
                        update_mask[cols],
                        algo.clip_low,
                        algo.clip_high,
                    ).float()
                if epoch == 0:
                    record.per_token_loss[cols] = token_loss.detach().float() / max(num_tokens, 1)
            record.mini_batch_losses.append(mini_loss)
            record.mini_batch_pg_losses.append(mini_pg_loss)
            record.forward_backward_time += time.perf_counter() - t0
            t0 = time.perf_counter()
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, schedule.max_grad_norm))
            record.grad_norms.append(grad_norm)
            if math.isfinite(grad_norm) and math.isfinite(mini_loss):
                optimizer.step()
            else:
                # A NaN/inf loss or gradient: skip this update; weights and Adam moments stay unchanged.
                record.skipped_updates += 1
            optimizer.zero_grad(set_to_none=True)
            record.optimizer_time += time.perf_counter() - t0
    return record
