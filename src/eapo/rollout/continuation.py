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

from eapo.journal import append_row, fingerprint, open_journal
from eapo.rollout.config import SamplingConfig
from eapo.rollout.generate import model_eos_token_ids, sample_in_phases

__all__ = ["continue_sequences", "journal_fingerprint"]

# Raised whenever the way a chunk is sampled changes (2: the shared prefix prefill; 3: phases of
# PHASE_TOKENS; 4: the rows left go on from their key/value cache instead of a prefill per phase), so that
# a journal of chunks sampled the old way is started afresh rather than mixed in.
JOURNAL_FORMAT = 4
# New tokens per phase of a chunk (`_sample_chunk`). Measured on the SmolLM2 study's credit probe at
# T = 1.4: most branches end within ~15 tokens, but a chunk of 64 almost always holds one that writes on,
# and one generate call decodes all 64 rows until it stops (~45 s a chunk at one thread). With phases the
# rows left were prefilled again each phase; keeping their cache (format 4) took the study's end probe
# from ~80 s to ~23 s a chunk over its first chunks (fp32, AVX2, one thread beside a training run).
PHASE_TOKENS = 16

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
            # Continuations always sample in phases of PHASE_TOKENS (JOURNAL_FORMAT): the rollouts'
            # phase_tokens plays no part, and leaving it out keeps journals written before it existed.
            "sampling": {k: v for k, v in dataclasses.asdict(sampling).items() if k != "phase_tokens"},
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
    in left-padded chunks of `sampling.batch_rows` with the KV cache, each chunk in phases of
    `PHASE_TOKENS` new tokens after which the rows that have ended leave and the others go on from their
    key/value cache (`_sample_chunk`). A row ends at
    its budget, after its first eos, or after the first stop string of `sampling.stop_strings` in its new
    text (which the scorer cuts the text after anyway).

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
            _sample_chunk(
                model, tokenizer, prefixes, budgets, chunk, outputs, sampling, eos_ids,
                seed * 100_003 + chunk_number,
            )  # fmt: skip
            if journal is not None:
                append_row(journal, {"chunk": chunk_number, "outputs": [outputs[i] for i in chunk]})
    finally:
        model.train(was_training)
    return outputs


def _sample_chunk(
    model: Any,
    tokenizer: Any,
    prefixes: Sequence[Sequence[int]],
    budgets: Sequence[int],
    chunk: list[int],
    outputs: list[list[int]],
    sampling: SamplingConfig,
    eos_ids: list[int],
    seed: int,
) -> None:
    """Continue the rows `chunk` (indices into `prefixes`) into `outputs`, in phases of `PHASE_TOKENS` new
    tokens after which the rows that have ended leave (`sample_in_phases`): one row that keeps writing then
    no longer makes the whole chunk decode to its budget. The rows left keep their key/value cache: a
    probe's prefixes are long (prompt + response head), and prefilling them again each phase cost more
    than the decoding it saved. Phase k is seeded with `seed`·1000 + k."""
    sample = sample_in_phases(
        model,
        tokenizer,
        [prefixes[i] for i in chunk],
        [budgets[i] for i in chunk],
        sampling,
        eos_token_ids=eos_ids,
        phase_tokens=PHASE_TOKENS,
        phase_seed=lambda phase: seed * 1000 + phase,
        reuse_cache=True,
    )
    for i, new in zip(chunk, sample.tokens, strict=True):
        outputs[i] = new
