"""Shared hypothesis strategies for eapo.core's property tests: small random GRPO-shaped batches."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from hypothesis import strategies as st

from eapo.core import group_advantages, token_advantages


@dataclass
class Batch:
    """One random batch: B = groups × G rows of T tokens."""

    advantages: torch.Tensor  # [B,T], 0 outside the mask
    entropy: torch.Tensor  # [B,T], >= 0
    mask: torch.Tensor  # [B,T] bool
    group_size: int


@st.composite
def batches(draw: st.DrawFn, max_groups: int = 3, max_group_size: int = 4, max_len: int = 6) -> Batch:
    """Batches with binary or continuous rewards, ragged or empty masks and awkward entropies.

    Entropy kinds cover the edge cases the shapers must survive: zeros, one constant per group
    (σ_H = 0), ordinary values, and very large values.
    """
    groups = draw(st.integers(1, max_groups))
    group_size = draw(st.integers(1, max_group_size))
    length = draw(st.integers(1, max_len))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    rows = groups * group_size
    if draw(st.booleans()):
        rewards = torch.randint(0, 2, (rows,), generator=gen).float()
    else:
        rewards = torch.randn(rows, generator=gen)
    method = draw(st.sampled_from(["grpo", "dr_grpo", "rloo"]))
    keep = draw(st.sampled_from([0.0, 0.3, 0.8, 1.0]))
    mask = torch.rand(rows, length, generator=gen) < keep
    kind = draw(st.sampled_from(["random", "zeros", "constant", "huge"]))
    if kind == "random":
        entropy = torch.rand(rows, length, generator=gen) * 4.0
    elif kind == "zeros":
        entropy = torch.zeros(rows, length)
    elif kind == "constant":
        entropy = (
            torch.rand(groups, generator=gen).repeat_interleave(group_size)[:, None].expand(rows, length)
        )
        entropy = entropy.contiguous()
    else:
        entropy = torch.rand(rows, length, generator=gen) * 1e4
    advantages = token_advantages(group_advantages(rewards, group_size, method).advantages, mask)
    return Batch(advantages, entropy, mask, group_size)
