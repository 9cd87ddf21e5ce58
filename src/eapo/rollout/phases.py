"""Sampling in phases: rows that have ended leave the batch between phases.

`generate` decodes every row of a batch until the last one stops. When one response out of 64 runs to the
token budget while the others end within ~25 tokens (the SmolLM2 study's slow steps, docs/reliability.md),
the whole batch decodes to the budget: ~4x the rollout's time on a CPU. Sampling in phases of a few tokens,
with the rows that have ended (an eos, a stop string, their budget) leaving after each phase, bounds that
waste. The rows still writing go on either from the last phase's key/value cache, its rows selected
(`reuse_cache`: a phase then costs nothing extra; rollouts with `sampling.phase_tokens` > 0 and
`eapo credit`'s continuations), or from a fresh prefill of their prefix plus what they wrote.

The distribution sampled is the same; the tokens need not be those of one `generate` call under the same
seed (the rows left draw from the random stream without the others, and rounding differs with the batch).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import LogitsProcessorList, PreTrainedModel, PreTrainedTokenizerBase, StoppingCriteriaList
from transformers.cache_utils import DynamicCache

from eapo.rollout.attention import decode_attention
from eapo.rollout.config import SamplingConfig
from eapo.rollout.generate import (
    DecodeStatistics,
    StopStringsInText,
    model_generate,
    prefilled_prompts,
    sampling_generation_config,
    sampling_processors,
    seeded_sampling,
    stop_string_end,
)
from eapo.rollout.shared_prompt import cache_argument

__all__ = ["PhasedSample", "sample_in_phases"]


@dataclass
class _Carried:
    """What a phase hands on to the next with `reuse_cache`: the rows left, laid out as its generate call
    returned them (ids and mask [n, W]), and their key/value cache (all W columns but the last)."""

    ids: torch.Tensor
    mask: torch.Tensor
    keyword: str
    cache: Any


def _left_padded(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token rows left-padded to the longest (ids and attention mask [n, W]), so that every row's next token
    is at column W."""
    width = max(len(tokens) for tokens in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for j, tokens in enumerate(rows):
        ids[j, width - len(tokens) :] = torch.tensor(tokens, dtype=torch.long)
        mask[j, width - len(tokens) :] = 1
    return ids, mask


@dataclass
class PhasedSample:
    """What `sample_in_phases` wrote for each row.

    - `tokens`: the new token ids of each row, its eos included when it sampled one, cut after the first
      stop string of `sampling.stop_strings` when one appeared.
    - `stats`: with `with_logprobs`, each row's (logprobs, entropy, sum_sq_probs) [len(tokens[row])], as
      `DecodeStatistics` records them in the decode loop; else None.
    """

    tokens: list[list[int]]
    stats: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] | None = None


def sample_in_phases(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prefixes: Sequence[Sequence[int]],
    budgets: Sequence[int],
    sampling: SamplingConfig,
    *,
    eos_token_ids: list[int],
    phase_tokens: int,
    phase_seed: Callable[[int], int] | None = None,
    reuse_cache: bool = False,
    with_logprobs: bool = False,
    logprob_chunk_size: int | None = None,
) -> PhasedSample:
    """Continue each token-id prefix (its row) by up to its budget of new tokens, in phases of at most
    `phase_tokens` new tokens, in one batch: after each phase the rows that have ended leave.

    A row ends after its first eos, after the first stop string in its new text, or at its budget. Phase k
    runs under `seeded_sampling(phase_seed(k))` when `phase_seed` is given, else on the caller's RNG (the
    phases then draw one after another from it). `with_logprobs`: also record the decode statistics of
    every kept token (`PhasedSample.stats`), from the logits of the phase that sampled it.

    `reuse_cache`: the rows that go on keep their keys and values from the phase before (the cache's rows
    are selected, nothing is computed again), so a phase costs no prefill; without it each phase prefills
    the rows left from their tokens. A phase that a stop string ended early for the batch falls back to the
    prefill.
    """
    if phase_tokens < 1:
        raise ValueError(f"phase_tokens must be >= 1; got {phase_tokens}")
    if len(prefixes) != len(budgets):
        raise ValueError(f"{len(prefixes)} prefixes for {len(budgets)} budgets")
    pad = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)
    device = next(model.parameters()).device
    stops = list(sampling.stop_strings)
    written: list[list[int]] = [[] for _ in prefixes]
    stats: list[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = [[] for _ in prefixes]
    active = [row for row, budget in enumerate(budgets) if budget > 0]
    carried: _Carried | None = None
    phase = 0
    while active:
        if carried is not None:  # the rows left, as the last phase's generate laid them out, and its cache
            ids, mask = carried.ids, carried.mask
            cache_kwargs: dict[str, Any] = {carried.keyword: carried.cache}
        else:
            ids, mask = _left_padded([list(prefixes[row]) + written[row] for row in active], pad)
            cache_kwargs = {}
        width = ids.shape[1]
        length = min(phase_tokens, max(budgets[row] - len(written[row]) for row in active))
        config = sampling_generation_config(
            dataclasses.replace(sampling, max_new_tokens=length), eos_token_ids, pad
        )
        recorder = (
            DecodeStatistics(width, sampling.temperature, logprob_chunk_size) if with_logprobs else None
        )
        if not cache_kwargs:
            # Rows that share their prefix (a group's first phase; a probed position's branches) share one
            # prefill of it.
            cache_kwargs = prefilled_prompts(model, ids, mask, sampling, config)
            if reuse_cache and not cache_kwargs:  # a cache of our own, to hand on to the next phase
                cache_kwargs = {cache_argument(model): DynamicCache(config=getattr(model, "config", None))}
        seed = None if phase_seed is None else phase_seed(phase)
        with (
            seeded_sampling(seed, device),
            decode_attention(model, sampling.attention, padded=not bool(mask.all())),
        ):
            output = model_generate(
                model,
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                generation_config=config,
                **cache_kwargs,
                logits_processor=LogitsProcessorList(
                    ([recorder] if recorder is not None else []) + sampling_processors(sampling)
                ),
                stopping_criteria=StoppingCriteriaList(
                    [StopStringsInText(tokenizer, stops, width)] if stops else []
                ),
            )
        generated = output[:, width:]
        phase_stats = recorder.finish(generated) if recorder is not None else None
        generated = generated.cpu()
        still = []
        going_on = []  # positions in this call of the rows in `still`
        for j, row in enumerate(active):
            room = budgets[row] - len(written[row])
            new = generated[j, : min(length, room)].tolist()
            end = next((k for k, token in enumerate(new) if token in eos_token_ids), None)
            ended = end is not None
            kept_before = len(written[row])
            written[row] += new if end is None else new[: end + 1]
            # A stop string may span two phases: look for it in all the row has written.
            stop_end = stop_string_end(written[row], tokenizer, stops)
            if stop_end is not None:
                written[row] = written[row][:stop_end]
                ended = True
            if phase_stats is not None:
                kept = len(written[row]) - kept_before  # this phase's tokens, up to the row's end
                logprobs, entropy, sum_sq = (values[j, :kept].cpu() for values in phase_stats)
                stats[row].append((logprobs, entropy, sum_sq))
            if not ended and len(written[row]) < budgets[row]:
                still.append(row)
                going_on.append(j)
        carried = None
        if reuse_cache and still and generated.shape[1] == length:
            # Every row left wrote the whole phase: its cache holds all its columns but the newest token.
            keyword, cache = next(iter(cache_kwargs.items()))
            cache.batch_select_indices(torch.tensor(going_on, device=device))
            keep = torch.tensor(going_on)
            carried = _Carried(
                ids=output[keep.to(output.device)].cpu(),
                mask=torch.cat([mask[keep], torch.ones((len(going_on), length), dtype=mask.dtype)], dim=1),
                keyword=keyword,
                cache=cache,
            )
        active = still
        phase += 1
    if not with_logprobs:
        return PhasedSample(tokens=written)
    empty = (torch.zeros(0), torch.zeros(0), torch.zeros(0, dtype=torch.float64))
    joined = [
        (
            torch.cat([part[0] for part in parts]),
            torch.cat([part[1] for part in parts]),
            torch.cat([part[2] for part in parts]),
        )
        if parts
        else empty
        for parts in stats
    ]
    return PhasedSample(tokens=written, stats=joined)
