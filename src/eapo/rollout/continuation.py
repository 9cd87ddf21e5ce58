"""Continuations of token-id prefixes: one sampled continuation per prefix, each within its own budget.

`eapo credit` branches a sampled response at a position: prefix + an alternative token, then M completions
at the run's sampling settings, scored by the verifier (PAPER.md §3, Proposition 1). The sampling itself
is the rollout's (same generation config, seeding and eos handling as `generate_rollouts`), only started
from token ids instead of prompt text.

A probe samples tens of thousands of continuations (hours on a CPU), so they can be journaled: with
`journal=<path>`, each finished chunk is appended to that file, and a later call with the same inputs reads
the chunks already done instead of sampling them again. Chunks are seeded by their number, so a resumed call
returns exactly what an uninterrupted one would have.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import LogitsProcessorList, StoppingCriteriaList

from eapo.journal import append_row, fingerprint, open_journal
from eapo.rollout.attention import decode_attention
from eapo.rollout.config import SamplingConfig
from eapo.rollout.generate import (
    StopStringsInText,
    model_eos_token_ids,
    sampling_generation_config,
    sampling_processors,
    seeded_sampling,
    stop_string_end,
)
from eapo.rollout.shared_prompt import shared_prompt_cache

__all__ = ["continue_sequences", "journal_fingerprint"]

# Raised whenever the way a chunk is sampled changes (2: the shared prefix prefill), so that a journal of
# chunks sampled the old way is started afresh rather than mixed with new ones.
JOURNAL_FORMAT = 2

logger = logging.getLogger(__name__)


def journal_fingerprint(
    prefixes: Sequence[Sequence[int]],
    budgets: Sequence[int],
    sampling: SamplingConfig,
    seed: int,
    context: Mapping[str, Any] | None = None,
) -> str:
    """What a journal's chunks depend on: the rows, their budgets, the sampling settings, the seed, and the
    caller's `context` (the model and the machine: chunks sampled elsewhere must not be mixed in)."""
    return fingerprint(
        {
            "prefixes": [list(map(int, p)) for p in prefixes],
            "budgets": [int(b) for b in budgets],
            "sampling": dataclasses.asdict(sampling),
            "seed": int(seed),
            "torch": torch.__version__,
            "format": JOURNAL_FORMAT,
            "context": dict(context or {}),
        }
    )


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
    journal: Path | None = None,
    journal_context: Mapping[str, Any] | None = None,
) -> list[list[int]]:
    """Sample one continuation of each token-id prefix, each within its own new-token budget.

    Works on token ids, not text, so a prefix that ends inside a word continues exactly from its last
    token (re-tokenising decoded text could merge or split tokens). Rows are sorted by budget and generated
    in left-padded chunks of `sampling.batch_rows` with the KV cache; each chunk generates up to its
    largest budget (or until every row has ended with an eos or a stop string of `sampling.stop_strings`,
    which the scorer cuts the text after anyway) and every row is then cut at its own budget, after its
    first eos and after the first stop string in its new text.

    Args:
        prefixes: token ids (prompt + response so far) per row. budgets: max new tokens per row (>= 0).
        sampling: a `SamplingConfig` (temperature, top-p; its max_new_tokens is ignored).
        journal: a file that keeps finished chunks across calls (module docstring); `journal_context` goes
            into its fingerprint (`journal_fingerprint`), so that a journal of another model or machine
            is started afresh rather than mixed in.
    Returns: the new token ids of each row (eos included when one was sampled).
    """
    if len(prefixes) != len(budgets):
        raise ValueError(f"{len(prefixes)} prefixes for {len(budgets)} budgets")
    eos_ids = model_eos_token_ids(model, tokenizer)
    stops = list(sampling.stop_strings)
    pad = int(tokenizer.pad_token_id)
    device = next(model.parameters()).device
    outputs: list[list[int]] = [[] for _ in prefixes]
    order = sorted((i for i in range(len(prefixes)) if budgets[i] > 0), key=lambda i: budgets[i])
    chunks = [order[i : i + sampling.batch_rows] for i in range(0, len(order), sampling.batch_rows)]
    done: dict[int, list[list[int]]] = {}
    if journal is not None:
        journal = Path(journal)
        key = journal_fingerprint(prefixes, budgets, sampling, seed, journal_context)
        done = {int(row["chunk"]): row["outputs"] for row in open_journal(journal, key, chunks=len(chunks))}
        if done:
            logger.info("%s: %d of %d chunks already sampled", journal, len(done), len(chunks))
    was_training = model.training
    model.eval()
    try:
        for chunk_number, chunk in enumerate(
            tqdm(chunks, desc="continuations", unit="chunk", disable=not progress, leave=False)
        ):
            if chunk_number in done:
                for i, new in zip(chunk, done[chunk_number], strict=True):
                    outputs[i] = list(new)
                continue
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
            with (
                seeded_sampling(seed * 100_003 + chunk_number, device),
                decode_attention(model, sampling.attention, padded=not bool(mask.all())),
            ):
                # The rows of a probed position share prompt + response head (they differ in the branched
                # token only): its keys and values are computed once (eapo.rollout.shared_prompt).
                prefilled = (
                    shared_prompt_cache(model, ids.to(device), mask.to(device))
                    if sampling.shared_prompt_prefill and config.cache_implementation is None
                    else None
                )
                generated = model.generate(
                    input_ids=ids.to(device),
                    attention_mask=mask.to(device),
                    generation_config=config,
                    **dict([prefilled] if prefilled is not None else []),
                    logits_processor=LogitsProcessorList(sampling_processors(sampling)),
                    stopping_criteria=StoppingCriteriaList(
                        [StopStringsInText(tokenizer, stops, width)] if stops else []
                    ),
                )[:, width:].cpu()
            for j, i in enumerate(chunk):
                new = generated[j, : budgets[i]].tolist()
                end = next((k for k, t in enumerate(new) if t in eos_ids), None)
                new = new if end is None else new[: end + 1]
                stop_end = stop_string_end(new, tokenizer, stops)
                outputs[i] = new if stop_end is None else new[:stop_end]
            if journal is not None:
                append_row(journal, {"chunk": chunk_number, "outputs": [outputs[i] for i in chunk]})
    finally:
        model.train(was_training)
    return outputs
