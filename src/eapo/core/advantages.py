"""Sequence-level advantages from a group's outcome rewards (PAPER.md Eq. 2 and two common variants), and
DAPO's length term that is added to those rewards before the advantages are taken.

Rows of one prompt's group are contiguous: rewards [B] with B = prompts × G, group p = rows p·G … p·G+G−1.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from eapo.core.checks import check_finite_number, check_integer

__all__ = [
    "ADVANTAGE_METHODS",
    "GroupAdvantages",
    "group_advantages",
    "overlong_penalty",
    "token_advantages",
    "zero_variance_groups",
]

ADVANTAGE_METHODS = ("grpo", "dr_grpo", "rloo")


class GroupAdvantages(NamedTuple):
    """`advantages` [B] and the number of groups whose rewards are all equal (they get exactly 0)."""

    advantages: torch.Tensor
    zero_variance_groups: int


def group_advantages(
    rewards: torch.Tensor, group_size: int, method: str = "grpo", eps: float = 1e-6
) -> GroupAdvantages:
    """Group-relative advantages of B responses, G per prompt.

    - `grpo` (PAPER.md Eq. 2): (r_i − mean_G r) / (std_G r + eps). The std is the **unbiased** (Bessel,
      divide by G − 1) sample standard deviation, the convention of verl's `compute_grpo_outcome_advantage`
      (`torch.std`, eps 1e-6 added to the std) and TRL's `GRPOTrainer` (`nanstd` with Bessel's correction,
      eps 1e-4).
    - `dr_grpo` (Dr. GRPO, arXiv 2503.20783): r_i − mean_G r, no std.
    - `rloo` (arXiv 2402.14740): r_i − mean_{j≠i} r_j = G/(G−1) · (r_i − mean_G r).

    A group whose rewards are all exactly equal (including any group when G = 1) has no learning signal:
    its advantages are exactly 0 (not "close to 0" from rounding) and it is counted in
    `zero_variance_groups`.

    Args:
        rewards: [B] float, the outcome reward of each response.
        group_size: G, the number of responses per prompt; must divide B.
        method: one of `grpo`, `dr_grpo`, `rloo`.
        eps: added to the std in `grpo`.

    Returns:
        GroupAdvantages(advantages [B] fp32 detached, zero_variance_groups int).
    """
    if method not in ADVANTAGE_METHODS:
        raise ValueError(
            f"advantage method {method!r} is unknown; choose from {', '.join(ADVANTAGE_METHODS)}"
        )
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be 1-D [B]; got shape {tuple(rewards.shape)}")
    batch = rewards.shape[0]
    group_size = check_integer("group_size", group_size, low=1)
    if batch % group_size != 0:
        raise ValueError(f"group_size {group_size} must be >= 1 and divide the number of rewards {batch}")
    eps = check_finite_number("eps", eps, low=0.0)
    finite = torch.isfinite(rewards)
    if not bool(finite.all()):
        first = int((~finite).nonzero()[0, 0])
        raise ValueError(f"rewards must be finite; got {float(rewards[first])} at index {first}")

    grouped = rewards.detach().double().view(-1, group_size)
    mean = grouped.mean(dim=1, keepdim=True)
    centred = grouped - mean
    if method == "grpo":
        # Bessel's correction as in verl and TRL; a single-response group is zero-variance below.
        std = grouped.std(dim=1, keepdim=True) if group_size > 1 else torch.zeros_like(mean)
        advantages = centred / (std + eps)
    elif method == "dr_grpo":
        advantages = centred
    else:
        advantages = centred * (group_size / (group_size - 1)) if group_size > 1 else centred
    zero_variance = zero_variance_groups(rewards.detach().double(), group_size)
    advantages = torch.where(zero_variance[:, None], 0.0, advantages)
    return GroupAdvantages(advantages.reshape(batch).float(), int(zero_variance.sum()))


def zero_variance_groups(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """[P] bool, True for each group whose G rewards are all exactly equal: its GRPO advantages are 0, so it
    carries no learning signal (DAPO's dynamic sampling drops or replaces such groups). rewards: [B]."""
    grouped = rewards.view(-1, group_size)
    return grouped.amax(dim=1) == grouped.amin(dim=1)


def token_advantages(advantages: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """Broadcast sequence advantages [B] to tokens [B,T] (PAPER.md Eq. 2), 0 where the mask is 0."""
    if advantages.dim() != 1 or advantages.shape[0] != response_mask.shape[0]:
        raise ValueError(
            f"advantages must be [B] with B = {response_mask.shape[0]}; got shape {tuple(advantages.shape)}"
        )
    return torch.where(response_mask != 0, advantages[:, None].float(), 0.0)


def overlong_penalty(lengths: torch.Tensor, max_new_tokens: int, buffer: int) -> torch.Tensor:
    """DAPO's soft overlong punishment (arXiv 2503.14476, "Overlong Reward Shaping"), added to the outcome
    reward.

    0 for a response of at most L_max − buffer tokens, then linear down to −1 at L_max = `max_new_tokens`
    (and −1 beyond). A `buffer` <= 0 switches the term off (all zeros).

    Args:
        lengths: [B] integer response lengths (the response mask's row sums).
        max_new_tokens: L_max, the sampling limit.
        buffer: the width of the linear window, in tokens.

    Returns:
        [B] fp32 penalties in [−1, 0].
    """
    if buffer <= 0:
        return torch.zeros_like(lengths, dtype=torch.float32)
    start = max_new_tokens - buffer
    return -((lengths.float() - start).clamp(min=0) / buffer).clamp(max=1.0)
