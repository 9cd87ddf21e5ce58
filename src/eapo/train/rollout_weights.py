"""Which weights sample a rollout (`model.rollout_dtype`), and whether the decode loop's scores can stand in
for π_old's.

Rollouts sample from the training weights, or from a copy of them in the rollout dtype (e.g. bf16) that is
refreshed before every rollout; π_old then comes from the training-precision forward. When the sampling
weights are the training weights in fp32 without autocast, the decode loop's log-probs and entropy are
π_old's exactly (to rounding) and replace that forward (`train.rollout_logprobs`).
"""

from __future__ import annotations

import copy
from typing import Any

import torch


def decode_loop_scores_old_policy(
    requested: bool, rollout_dtype: torch.dtype, weights_dtype: torch.dtype, autocast: bool
) -> bool:
    """Whether π_old's log-probs and entropy may come from the decode loop (`requested` =
    train.rollout_logprobs): only when it samples from the training weights themselves, in fp32 and
    without autocast, so that its logits are the training forward's."""
    return bool(requested and rollout_dtype == weights_dtype == torch.float32 and not autocast)


@torch.no_grad()
def refresh_rollout_copy(model: Any, rollout_copy: Any, dtype: torch.dtype) -> Any:
    """`model`'s copy in `dtype` with its current weights: made when `rollout_copy` is None (frozen, in eval
    mode), else updated in place, every parameter copied and cast. Buffers such as RoPE's inverse
    frequencies keep their dtype."""
    if rollout_copy is None:
        rollout_copy = copy.deepcopy(model).requires_grad_(False).eval()
        for parameter in rollout_copy.parameters():
            parameter.data = parameter.data.to(dtype)
        return rollout_copy
    for target, source in zip(rollout_copy.parameters(), model.parameters(), strict=True):
        target.copy_(source)
    return rollout_copy
