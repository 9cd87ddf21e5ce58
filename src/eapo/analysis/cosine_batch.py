"""One fixed, scored rollout batch for `eapo gradients --cosine` (`eapo.analysis.gradient_cosine`), and
each algorithm's token advantages on it.

The batch is G responses to each of P training prompts from a checkpoint, seeded, rewarded by the task's
verifier, with π_old's entropies at the sampling temperature (logits / T) and the GRPO advantages (PAPER.md
Eq. 2). Its tokens fall into five parts: the four quadrants of §4.1 (the sign of the GRPO advantage and the
group-mean entropy rule, `eapo.core.quadrant_masks`) and ZERO, the tokens of all-equal groups (Â = 0).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from eapo.core import QUADRANTS
from eapo.errors import DataError

__all__ = ["MAX_ROUNDS", "PARTS", "CosineBatch", "batch_from_rewards", "sample_batch", "shaped_advantages"]

# The four quadrants of PAPER.md §4.1, then the valid tokens with a zero GRPO advantage.
PARTS = (*QUADRANTS, "ZERO")


@dataclass
class CosineBatch:
    """One scored rollout batch: everything an algorithm's loss needs except the model's gradient."""

    rollout: Any  # eapo.rollout.RolloutBatch
    correct: torch.Tensor  # [B] verifier reward in {0, 1}
    entropy: torch.Tensor  # [B,T] at the sampling temperature, detached
    grpo_advantages: torch.Tensor  # [B,T] Eq. 2, 0 outside the mask
    parts: dict[str, torch.Tensor]  # PARTS -> bool [B,T]
    group_size: int
    prompts_sampled: int = 0  # prompts whose groups were sampled to fill the batch
    rounds: int = 1  # sampling rounds


# Sampling rounds `sample_batch` may use to fill a batch with informative groups.
MAX_ROUNDS = 8


def sample_batch(
    model: Any,
    tokenizer: Any,
    task: Any,
    config: Any,
    problems: Sequence[Any],
    *,
    seed: int,
    autocast: Callable[[], Any] = contextlib.nullcontext,
    informative_groups: int | None = None,
) -> CosineBatch:
    """G responses per problem from `model` at `config.sampling`, scored by the task's verifier and by
    the trainer's own no-grad pass at the sampling temperature.

    With `informative_groups` = n, the batch is n groups with mixed rewards, filled as DAPO's dynamic
    sampling (the paper's GRPO, PAPER.md Eq. 2) fills one: rounds of n prompts taken in order from
    `problems` (round r sampled with seed + r), keeping only groups whose rewards differ, for up to
    MAX_ROUNDS rounds (fewer groups when the problems or rounds run out). Groups with equal rewards have
    Â = 0 and no weight in a trainer whose `drop_zero_variance_groups` is on; they would cost gradient
    passes and add nothing. Otherwise every problem's group is kept.
    """
    from eapo.rollout import concat_rollouts, generate_rollouts, select_rollout_rows
    from eapo.tasks import build_prompt, score_completions
    from eapo.train.scoring import score_policy

    G = config.train.group_size
    chunk = informative_groups or len(problems)
    kept: list[Any] = []
    kept_correct: list[torch.Tensor] = []
    groups = sampled = rounds = 0
    while sampled < len(problems) and rounds < (MAX_ROUNDS if informative_groups else 1):
        round_problems = list(problems[sampled : sampled + chunk])
        prompts = [build_prompt(p, tokenizer, config.task) for p in round_problems]
        model.eval()
        with autocast():
            rollout = generate_rollouts(model, tokenizer, prompts, G, config.sampling, seed=seed + rounds)
        row_problems = [round_problems[i] for i in rollout.prompt_index.tolist()]
        scored = score_completions(rollout.completions, row_problems, task, config.task.verifier_timeout_s)
        correct = torch.tensor(scored.rewards, dtype=torch.float32)
        sampled += len(round_problems)
        rounds += 1
        if informative_groups:
            mixed = (correct.view(-1, G).std(dim=1) > 0).nonzero().flatten()[: informative_groups - groups]
            rows = (mixed[:, None] * G + torch.arange(G)).flatten()
            groups += len(mixed)
            if not len(mixed):
                continue
            rollout, correct = select_rollout_rows(rollout, rows), correct[rows]
        kept.append(rollout)
        kept_correct.append(correct)
        if informative_groups and groups >= informative_groups:
            break
    if not kept:
        raise DataError(
            f"no group with mixed rewards in {rounds} rounds of {chunk} prompts x G = {G}: every group was "
            "all right or all wrong, so GRPO's gradient is 0 (try an easier task or more --prompts)"
        )
    rollout = concat_rollouts(kept, tokenizer.pad_token_id)
    correct = torch.cat(kept_correct)
    _, entropy, _ = score_policy(
        model,
        rollout,
        config.train.logprob_chunk_size,
        config.train.micro_batch_rows,
        autocast,
        config.sampling.temperature,
    )
    batch = batch_from_rewards(rollout, correct, entropy, G)
    batch.prompts_sampled, batch.rounds = sampled, rounds
    return batch


def batch_from_rewards(
    rollout: Any, correct: torch.Tensor, entropy: torch.Tensor, group_size: int
) -> CosineBatch:
    """A CosineBatch from a rollout, its 0/1 rewards [B] and token entropies [B,T]: GRPO advantages
    (Eq. 2) and the parts (quadrants by the GRPO advantage's sign and the group-mean entropy rule)."""
    from eapo.core import group_advantages, quadrant_masks

    mask = rollout.response_mask
    advantages = group_advantages(correct, group_size, "grpo")[0][:, None] * mask
    parts = quadrant_masks(advantages, entropy, mask, group_size)
    parts["ZERO"] = (mask != 0) & (advantages == 0)
    return CosineBatch(rollout, correct, entropy, advantages, parts, group_size)


def shaped_advantages(algorithm: Any, batch: CosineBatch, max_new_tokens: int) -> torch.Tensor:
    """The algorithm's token advantages [B,T] on `batch`, computed as the trainer computes them."""
    from eapo.core import group_advantages, overlong_penalty, shape_advantages

    mask = batch.rollout.response_mask
    window = algorithm.overlong_window(max_new_tokens)
    rewards = batch.correct + overlong_penalty(mask.sum(dim=1), max_new_tokens, window)
    seq_adv, _ = group_advantages(rewards, batch.group_size, algorithm.advantage)
    advantages = seq_adv[:, None] * mask
    return shape_advantages(
        algorithm.shaper, advantages, batch.entropy, mask, batch.group_size, **algorithm.shaper_params
    )
