"""Scoring a rollout under a policy: each response token's log-prob, the entropy and Σπ² of the policy's
next-token distribution there, without gradients (π_old, π_ref, and the entropy after an update).

The one place that runs a model over a `RolloutBatch` for scores; the trainer, `eapo gradients`, the
gradient cosine and the benchmarks call it, and the math is `eapo.core.token_logprobs_and_entropy`.
"""

from __future__ import annotations

from typing import Any

import torch

from eapo.core import token_logprobs_and_entropy
from eapo.rollout import RolloutBatch, response_logits


def row_chunks(num_rows: int, chunk: int) -> list[slice]:
    """Consecutive row slices of at most `chunk` rows covering `num_rows` (micro- and mini-batches)."""
    return [slice(i, min(i + chunk, num_rows)) for i in range(0, num_rows, chunk)]


@torch.no_grad()
def score_policy(
    model: Any,
    batch: RolloutBatch,
    chunk_size: int | None,
    micro_batch_rows: int,
    autocast: Any,
    temperature: float = 1.0,
    share_prompts: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Log-probs, entropy and Σπ² of the rollout's response tokens under `model`, without gradients, for
    the distribution softmax(logits / temperature) (pass the sampling temperature). `share_prompts`: one
    forward per distinct prompt (`eapo.rollout.response_logits`).

    Returns three [B,T] tensors (zero outside the response mask); the last is float64.
    """
    outs: list[tuple[torch.Tensor, ...]] = []
    for rows in row_chunks(batch.sequences.shape[0], micro_batch_rows):
        with autocast():
            logits = response_logits(
                model,
                batch.sequences[rows],
                batch.attention_mask[rows],
                batch.prompt_length,
                share_prompts=share_prompts,
            )
        outs.append(
            token_logprobs_and_entropy(
                logits,
                batch.response_ids[rows],
                batch.response_mask[rows],
                chunk_size,
                return_sum_sq_probs=True,
                temperature=temperature,
            )
        )
    logprobs, entropy, sum_sq = (torch.cat(parts) for parts in zip(*outs, strict=True))
    # Σπ² stays float64: Eq. 5's 1 − 2π_y + Σπ² cancels to ~1e-8 at near-deterministic tokens.
    return logprobs.float(), entropy.float(), sum_sq
