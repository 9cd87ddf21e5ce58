"""Continuations of token-id prefixes: one sampled continuation per prefix, each within its own budget.

`eapo credit` branches a sampled response at a position: prefix + an alternative token, then M completions
at the run's sampling settings, scored by the verifier (PAPER.md §3, Proposition 1). The sampling itself
is the rollout's (same generation config, seeding and eos handling as `generate_rollouts`), only started
from token ids instead of prompt text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import LogitsProcessorList

from eapo.rollout.config import SamplingConfig
from eapo.rollout.generate import (
    model_eos_token_ids,
    sampling_generation_config,
    sampling_processors,
    seeded_sampling,
)

__all__ = ["continue_sequences"]


@torch.no_grad()
def continue_sequences(
    model: Any,
    tokenizer: Any,
    prefixes: Sequence[Sequence[int]],
    budgets: Sequence[int],
    sampling: SamplingConfig,
    *,
    seed: int = 0,
    progress: bool = False,
) -> list[list[int]]:
    """Sample one continuation of each token-id prefix, each within its own new-token budget.

    Works on token ids, not text, so a prefix that ends inside a word continues exactly from its last
    token (re-tokenising decoded text could merge or split tokens). Rows are sorted by budget and generated
    in left-padded chunks of `sampling.batch_rows` with the KV cache; each chunk generates up to its
    largest budget and every row is then cut at its own budget and after its first eos.

    Args:
        prefixes: token ids (prompt + response so far) per row. budgets: max new tokens per row (>= 0).
        sampling: a `SamplingConfig` (temperature, top-p; its max_new_tokens is ignored).
    Returns: the new token ids of each row (eos included when one was sampled).
    """
    if len(prefixes) != len(budgets):
        raise ValueError(f"{len(prefixes)} prefixes for {len(budgets)} budgets")
    eos_ids = model_eos_token_ids(model, tokenizer)
    pad = int(tokenizer.pad_token_id)
    device = next(model.parameters()).device
    outputs: list[list[int]] = [[] for _ in prefixes]
    order = sorted((i for i in range(len(prefixes)) if budgets[i] > 0), key=lambda i: budgets[i])
    chunks = [order[i : i + sampling.batch_rows] for i in range(0, len(order), sampling.batch_rows)]
    was_training = model.training
    model.eval()
    try:
        for chunk_number, chunk in enumerate(
            tqdm(chunks, desc="continuations", unit="chunk", disable=not progress, leave=False)
        ):
            width = max(len(prefixes[i]) for i in chunk)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for j, i in enumerate(chunk):
                ids[j, width - len(prefixes[i]) :] = torch.tensor(list(prefixes[i]), dtype=torch.long)
                mask[j, width - len(prefixes[i]) :] = 1
            budget = max(budgets[i] for i in chunk)
            config = sampling_generation_config(
                dataclasses.replace(sampling, max_new_tokens=budget), eos_ids, pad
            )
            with seeded_sampling(seed * 100_003 + chunk_number, device):
                generated = model.generate(
                    input_ids=ids.to(device),
                    attention_mask=mask.to(device),
                    generation_config=config,
                    logits_processor=LogitsProcessorList(sampling_processors(sampling)),
                )[:, width:].cpu()
            for j, i in enumerate(chunk):
                new = generated[j, : budgets[i]].tolist()
                end = next((k for k, t in enumerate(new) if t in eos_ids), None)
                outputs[i] = new if end is None else new[: end + 1]
    finally:
        model.train(was_training)
    return outputs
