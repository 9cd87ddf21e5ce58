"""Batched sampling of G responses per prompt with the KV cache, and the forward that scores them.

Layout of a rollout (DESIGN.md §3): B = prompts x G rows, the G rows of one prompt contiguous. Each row is
`[left-padded prompt | response, right-padded after its end]`, all rows with the same prompt width P, so
the response of every row starts at column P.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import (
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
)
from transformers.cache_utils import DynamicCache

from eapo.core.entropy import row_logprobs_and_entropy
from eapo.errors import ConfigError
from eapo.rollout.attention import decode_attention
from eapo.rollout.config import ATTENTION_CHOICES, SamplingConfig
from eapo.rollout.nucleus import NucleusSampling
from eapo.rollout.shared_prompt import (
    cache_argument,
    forward_parameters,
    response_logits_shared_prompt,
    shared_prompt_cache,
    shares_prompts,
)


@dataclass
class RolloutBatch:
    """G sampled responses for each of a list of prompts.

    Shapes: B = len(prompts) x G rows (rows of one prompt contiguous), P prompt columns, T response columns.
    - `sequences` [B, P+T] long: left-padded prompt, then the response, right-padded with the pad token.
    - `attention_mask` [B, P+T] long: 1 on prompt tokens and on response tokens inside `response_mask`.
    - `response_ids` [B, T] long: `sequences[:, P:]`.
    - `response_mask` [B, T] bool: the response's own tokens, up to and including its first eos (or the
      last token of its first stop string); False on padding and on anything after the end.
    - `truncated` [B] bool: the response hit `max_new_tokens` without an eos or stop string.
    - `completions`: the decoded responses without special tokens; a response that a stop string ended
      ends with that stop string (kept, so that e.g. `</answer>` still closes the answer tag).
    - `prompt_index` [B] long: which prompt each row answers.
    - `num_generated_tokens`: number of True entries of `response_mask`.
    - `logprobs`, `entropy` [B, T] fp32 and `sum_sq_probs` [B, T] float64 (optional, all three or none):
      the sampled token's log-prob, the full-vocabulary entropy and Σπ² of softmax(logits / T) at each
      response position, computed inside the decode loop from the logits `generate` made
      (`generate_rollouts(..., with_logprobs=True)`); 0 outside `response_mask`. They are π_old's only when
      the sampling model is the training model in the training precision (see the trainer).
    """

    sequences: torch.Tensor
    attention_mask: torch.Tensor
    prompt_length: int
    response_ids: torch.Tensor
    response_mask: torch.Tensor
    truncated: torch.Tensor
    completions: list[str]
    prompt_index: torch.Tensor
    num_generated_tokens: int
    logprobs: torch.Tensor | None = None
    entropy: torch.Tensor | None = None
    sum_sq_probs: torch.Tensor | None = None

    @property
    def response_lengths(self) -> torch.Tensor:
        """[B] long: number of tokens in each response (its eos or stop string included)."""
        return self.response_mask.sum(dim=-1)


def select_rollout_rows(batch: RolloutBatch, rows: torch.Tensor) -> RolloutBatch:
    """The rows `rows` ([N] long) of a rollout, in that order; `prompt_index` is renumbered 0.. by first
    appearance, so the result is again a rollout whose prompts are numbered densely."""
    rows = rows.to(batch.sequences.device)
    old_index = batch.prompt_index[rows]
    _, dense = torch.unique_consecutive(old_index, return_inverse=True)
    response_mask = batch.response_mask[rows]
    stats = {
        name: None if getattr(batch, name) is None else getattr(batch, name)[rows] for name in DECODE_STATS
    }
    return RolloutBatch(
        sequences=batch.sequences[rows],
        attention_mask=batch.attention_mask[rows],
        prompt_length=batch.prompt_length,
        response_ids=batch.response_ids[rows],
        response_mask=response_mask,
        truncated=batch.truncated[rows],
        completions=[batch.completions[int(i)] for i in rows.tolist()],
        prompt_index=dense,
        num_generated_tokens=int(response_mask.sum()),
        **stats,
    )


def concat_rollouts(batches: list[RolloutBatch], pad_token_id: int) -> RolloutBatch:
    """One rollout from several (e.g. DAPO's refill rounds): prompts are left-padded to the widest prompt
    and responses right-padded to the longest; `prompt_index` continues across batches.

    Extra left padding changes nothing the model sees: `response_logits` numbers positions from the
    attention mask, and the padded columns are masked out.
    """
    if not batches:
        raise ValueError("concat_rollouts needs at least one rollout")
    if len(batches) == 1:
        return batches[0]
    width_p = max(b.prompt_length for b in batches)
    width_t = max(b.response_ids.shape[1] for b in batches)
    parts: dict[str, list[torch.Tensor]] = {
        "seq": [],
        "att": [],
        "resp": [],
        "mask": [],
        "trunc": [],
        "idx": [],
    }
    offset = 0
    for b in batches:
        left = width_p - b.prompt_length
        right = width_t - b.response_ids.shape[1]
        prompt_ids = b.sequences[:, : b.prompt_length]
        prompt_mask = b.attention_mask[:, : b.prompt_length]
        response_ids = torch.nn.functional.pad(b.response_ids, (0, right), value=pad_token_id)
        response_mask = torch.nn.functional.pad(b.response_mask, (0, right), value=False)
        parts["seq"].append(
            torch.cat(
                [torch.nn.functional.pad(prompt_ids, (left, 0), value=pad_token_id), response_ids], dim=1
            )
        )
        parts["att"].append(
            torch.cat([torch.nn.functional.pad(prompt_mask, (left, 0), value=0), response_mask.long()], dim=1)
        )
        parts["resp"].append(response_ids)
        parts["mask"].append(response_mask)
        parts["trunc"].append(b.truncated)
        parts["idx"].append(b.prompt_index + offset)
        offset += int(b.prompt_index.max()) + 1 if b.prompt_index.numel() else 0
    response_mask = torch.cat(parts["mask"])
    # The decode-time statistics travel only when every part has them (else the trainer scores by forward).
    stats: dict[str, torch.Tensor | None] = {name: None for name in DECODE_STATS}
    if all(getattr(b, name) is not None for b in batches for name in DECODE_STATS):
        for name in DECODE_STATS:
            stats[name] = torch.cat(
                [
                    torch.nn.functional.pad(
                        getattr(b, name), (0, width_t - b.response_ids.shape[1]), value=0.0
                    )
                    for b in batches
                ]
            )
    return RolloutBatch(
        sequences=torch.cat(parts["seq"]),
        attention_mask=torch.cat(parts["att"]),
        prompt_length=width_p,
        response_ids=torch.cat(parts["resp"]),
        response_mask=response_mask,
        truncated=torch.cat(parts["trunc"]),
        completions=[text for b in batches for text in b.completions],
        prompt_index=torch.cat(parts["idx"]),
        num_generated_tokens=int(response_mask.sum()),
        **stats,
    )


def generate_rollouts(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    group_size: int,
    sampling: SamplingConfig,
    *,
    seed: int | None = None,
    progress: bool = False,
    with_logprobs: bool = False,
    logprob_chunk_size: int | None = None,
) -> RolloutBatch:
    """Sample `group_size` responses to each prompt in chunks of `sampling.batch_rows` rows.

    One `generate` call per chunk, with the KV cache; with `sampling.phase_tokens` > 0, one per phase of
    that many new tokens, the rows that have ended leaving between phases (`sample_in_phases`).
    `sampling.temperature == 0` means greedy decoding. Only the configured warpers act (temperature, top-p;
    top-k is switched off explicitly, since `transformers` would otherwise default to top-k 50).

    Reproducibility: `transformers` samples from the global torch RNG. With `seed` set, sampling runs in a
    forked RNG seeded with `seed`, so the same seed gives the same samples (on the same device and batch
    layout) and the caller's RNG state is left untouched. With `seed=None` the global RNG is used and
    advanced; the trainer passes `seed = run_seed + step` to make runs and resumes reproducible.

    `with_logprobs`: also fill the batch's `logprobs`, `entropy` and `sum_sq_probs` from the logits of each
    decode step (`DecodeStatistics`, chunks of `logprob_chunk_size` rows), for the full distribution
    softmax(logits / T) at `sampling.temperature` (not the top-p-truncated one the tokens were drawn from,
    as π_old is scored). The samples are the same with and without it. Needs a temperature > 0.
    """
    _check_sampling(sampling, group_size, prompts)
    if with_logprobs and sampling.temperature <= 0:
        raise ConfigError(
            f"generate_rollouts(with_logprobs=True): sampling.temperature = {sampling.temperature}; "
            "log-probs of softmax(logits / T) need T > 0"
        )
    if tokenizer.pad_token_id is None or tokenizer.eos_token_id is None:
        raise ConfigError("the tokenizer needs a pad and an eos token; load it with eapo.models.load_policy")
    device = model.device
    eos_token_ids = model_eos_token_ids(model, tokenizer)
    pad_token_id = tokenizer.pad_token_id

    # Tokenize every prompt once, left-padded to the widest, and repeat each G times (rows contiguous).
    # A chat template may already have written the bos token; adding another would change the prompt.
    bos = tokenizer.bos_token
    has_bos = bos is not None and all(prompt.startswith(bos) for prompt in prompts)
    encoded = tokenizer(
        prompts, padding=True, padding_side="left", add_special_tokens=not has_bos, return_tensors="pt"
    )
    prompt_index = torch.arange(len(prompts)).repeat_interleave(group_size)
    prompt_ids = encoded["input_ids"][prompt_index]
    prompt_mask = encoded["attention_mask"][prompt_index]
    prompt_length = prompt_ids.shape[1]

    generation_config = sampling_generation_config(sampling, eos_token_ids, pad_token_id)

    response_chunks: list[torch.Tensor] = []
    stat_chunks: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    rows = prompt_ids.shape[0]
    chunk_starts = range(0, rows, sampling.batch_rows)
    was_training = model.training
    model.eval()  # no dropout while sampling: the samples must come from the policy being scored
    try:
        with seeded_sampling(seed, device), torch.no_grad():
            for start in tqdm(chunk_starts, desc="sampling", unit="chunk", disable=not progress, leave=False):
                chunk_ids = prompt_ids[start : start + sampling.batch_rows]
                chunk_mask = prompt_mask[start : start + sampling.batch_rows]
                # Drop the pad columns that every row of this chunk shares, so short chunks cost less.
                first_used_column = int(chunk_mask.any(dim=0).nonzero()[0])
                chunk_ids, chunk_mask = chunk_ids[:, first_used_column:], chunk_mask[:, first_used_column:]
                if sampling.phase_tokens > 0:
                    responses, chunk_stats = _sample_chunk_in_phases(
                        model, tokenizer, chunk_ids, chunk_mask, sampling, eos_token_ids,
                        with_logprobs, logprob_chunk_size,
                    )  # fmt: skip
                    response_chunks.append(responses)
                    if chunk_stats is not None:
                        stat_chunks.append(chunk_stats)
                    continue
                stopping_criteria = StoppingCriteriaList()
                if sampling.stop_strings:
                    stopping_criteria.append(
                        StopStringsInText(tokenizer, sampling.stop_strings, chunk_ids.shape[1])
                    )
                recorder = (
                    DecodeStatistics(chunk_ids.shape[1], sampling.temperature, logprob_chunk_size)
                    if with_logprobs
                    else None
                )
                padded = not bool(chunk_mask.all())
                with decode_attention(model, sampling.attention, padded=padded):
                    output = model_generate(
                        model,
                        input_ids=chunk_ids.to(device),
                        attention_mask=chunk_mask.to(device),
                        generation_config=generation_config,
                        **prefilled_prompts(model, chunk_ids, chunk_mask, sampling, generation_config),
                        stopping_criteria=stopping_criteria,
                        logits_processor=LogitsProcessorList(
                            ([recorder] if recorder is not None else []) + sampling_processors(sampling)
                        ),
                    )
                response_chunks.append(output[:, chunk_ids.shape[1] :].cpu())
                if recorder is not None:
                    stat_chunks.append(recorder.finish(output[:, chunk_ids.shape[1] :]))
    finally:
        model.train(was_training)

    response_width = max(chunk.shape[1] for chunk in response_chunks)
    response_ids = torch.full((rows, response_width), pad_token_id, dtype=torch.long)
    row = 0
    for chunk in response_chunks:
        response_ids[row : row + chunk.shape[0], : chunk.shape[1]] = chunk
        row += chunk.shape[0]

    response_mask, truncated = response_mask_from_ids(response_ids, eos_token_ids)
    if sampling.stop_strings:
        response_mask, truncated = _end_at_stop_strings(
            response_ids, response_mask, truncated, tokenizer, sampling.stop_strings
        )
    # Whatever follows the end of a response is pad, so the stored sequences read cleanly.
    response_ids = response_ids.masked_fill(~response_mask, pad_token_id)
    completions = tokenizer.batch_decode(
        [ids[mask].tolist() for ids, mask in zip(response_ids, response_mask, strict=True)],
        skip_special_tokens=True,
    )
    completions = [cut_after_stop_string(text, sampling.stop_strings) for text in completions]
    stats: dict[str, torch.Tensor | None] = {name: None for name in DECODE_STATS}
    if with_logprobs:
        for index, name in enumerate(DECODE_STATS):
            dtype = torch.float64 if name == "sum_sq_probs" else torch.float32
            values = torch.zeros((rows, response_width), dtype=dtype)
            row = 0
            for stat_chunk in stat_chunks:
                part = stat_chunk[index].cpu()
                values[row : row + part.shape[0], : part.shape[1]] = part
                row += part.shape[0]
            stats[name] = values.masked_fill(~response_mask, 0.0).to(device)
    return RolloutBatch(
        sequences=torch.cat([prompt_ids, response_ids], dim=1).to(device),
        attention_mask=torch.cat([prompt_mask, response_mask.long()], dim=1).to(device),
        prompt_length=prompt_length,
        response_ids=response_ids.to(device),
        response_mask=response_mask.to(device),
        truncated=truncated.to(device),
        completions=completions,
        prompt_index=prompt_index.to(device),
        num_generated_tokens=int(response_mask.sum()),
        **stats,
    )


def _sample_chunk_in_phases(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    chunk_ids: torch.Tensor,
    chunk_mask: torch.Tensor,
    sampling: SamplingConfig,
    eos_token_ids: list[int],
    with_logprobs: bool,
    logprob_chunk_size: int | None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None]:
    """One chunk of `generate_rollouts` sampled in phases (`sample_in_phases`, `sampling.phase_tokens`):
    the response ids [rows, T] right-padded with the pad token as `generate` pads them, T the longest
    response, and with `with_logprobs` the decode statistics [rows, T] (0 past a row's end)."""
    prefixes = [ids[mask.bool()].tolist() for ids, mask in zip(chunk_ids, chunk_mask, strict=True)]
    sample = sample_in_phases(
        model,
        tokenizer,
        prefixes,
        [sampling.max_new_tokens] * len(prefixes),
        sampling,
        eos_token_ids=eos_token_ids,
        phase_tokens=sampling.phase_tokens,
        reuse_cache=True,
        with_logprobs=with_logprobs,
        logprob_chunk_size=logprob_chunk_size,
    )
    width = max(1, max(len(tokens) for tokens in sample.tokens))
    responses = torch.full((len(prefixes), width), int(tokenizer.pad_token_id), dtype=torch.long)
    for row, tokens in enumerate(sample.tokens):
        responses[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
    if sample.stats is None:
        return responses, None
    columns = []
    for index, dtype in enumerate((torch.float32, torch.float32, torch.float64)):
        values = torch.zeros((len(prefixes), width), dtype=dtype)
        for row, row_stats in enumerate(sample.stats):
            values[row, : row_stats[index].shape[0]] = row_stats[index]
        columns.append(values)
    return responses, (columns[0], columns[1], columns[2])


def response_mask_from_ids(
    response_ids: torch.Tensor, eos_token_ids: list[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask of each response's own tokens and whether it was truncated.

    `response_ids` [B, T] -> (`response_mask` [B, T] bool, True up to and including the first eos token of
    the row; `truncated` [B] bool, True for rows without any eos, whose every token counts).
    """
    is_eos = torch.isin(response_ids, torch.tensor(eos_token_ids, device=response_ids.device))
    # Count eos tokens strictly before each position: a token is in the response while that count is 0.
    eos_before = torch.cumsum(is_eos.long(), dim=-1) - is_eos.long()
    response_mask = eos_before == 0
    truncated = ~is_eos.any(dim=-1)
    return response_mask, truncated


def response_logits(
    model: torch.nn.Module,
    sequences: torch.Tensor,
    attention_mask: torch.Tensor,
    prompt_length: int,
    share_prompts: bool = False,
) -> torch.Tensor:
    """Logits that predict each response token, from one forward pass.

    `sequences`, `attention_mask` [B, L] with L = P + T (a `RolloutBatch`'s) -> logits [B, T, V] at positions
    P-1 .. L-2. Position ids come from the attention mask (cumsum - 1), the way `generate` numbers them, so
    the left padding of short prompts does not shift the positions: the log-probs then equal those the
    sampler used, and the importance ratio π_θ/π_old (PAPER.md Eq. 2) starts at 1. (RoPE models are
    blind to a shift that is the same for every token of a row; models with absolute position embeddings,
    such as GPT-2, are not: there a forward without these position ids is off by whole nats.)

    With `share_prompts`, rows that hold the same prompt (a GRPO group) share one forward of it
    (`eapo.rollout.shared_prompt`): the same logits up to float rounding, fewer FLOPs.
    """
    response_length = sequences.shape[1] - prompt_length
    if response_length < 1:
        raise ValueError(f"sequences of length {sequences.shape[1]} hold no response after {prompt_length=}")
    if (
        share_prompts
        and _accepts_logits_to_keep(model)
        and shares_prompts(sequences, attention_mask, prompt_length)
    ):
        return response_logits_shared_prompt(model, sequences, attention_mask, prompt_length)
    # The last token predicts nothing we need, so it is not fed; positions 0..L-2 remain.
    input_ids = sequences[:, :-1]
    input_mask = attention_mask[:, :-1]
    position_ids = (input_mask.long().cumsum(dim=-1) - 1).clamp(min=0)
    kwargs = {
        "input_ids": input_ids,
        "attention_mask": input_mask,
        "position_ids": position_ids,
        "use_cache": False,
    }
    if _accepts_logits_to_keep(model):
        # Skip the vocabulary projection on prompt positions (the [B, P, V] part is never used).
        logits = model(**kwargs, logits_to_keep=response_length).logits
    else:
        logits = model(**kwargs).logits[:, -response_length:]
    return logits


# The optional decode-time fields of a RolloutBatch, in the order `DecodeStatistics.finish` returns them.
DECODE_STATS = ("logprobs", "entropy", "sum_sq_probs")


class DecodeStatistics(LogitsProcessor):
    """Records, at every decode step, the sampled token's log-prob, the full-vocabulary entropy and Σπ² of
    softmax(logits / T), from the raw logits `generate` just made; it returns the scores unchanged.

    `generate` runs custom processors before its own temperature and top-p warpers, so this one sees the
    model's logits. The token drawn at step t is known only at step t + 1 (the last column of `input_ids`)
    or, for the last step, from the output: one [rows, V] fp32 copy is kept meanwhile, never [rows, T, V].
    Steps that `generate` computes and then undoes are dropped by `finish`.
    """

    def __init__(self, prompt_width: int, temperature: float, chunk_size: int | None = None) -> None:
        self.prompt_width = prompt_width
        self.temperature = float(temperature)
        self.chunk_size = chunk_size
        self._pending: torch.Tensor | None = None
        self._steps: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def _flush(self, tokens: torch.Tensor) -> None:
        assert self._pending is not None
        self._steps.append(row_logprobs_and_entropy(self._pending, tokens, self.temperature, self.chunk_size))
        self._pending = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self._pending is not None:
            self._flush(input_ids[:, -1])
        self._pending = scores.detach().to(dtype=torch.float32, copy=True)
        return scores

    def finish(self, response_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logprobs, entropy, sum_sq_probs), each [rows, T] for the T = `response_ids.shape[1]` columns
        that `generate` returned."""
        width = response_ids.shape[1]
        if self._pending is not None and len(self._steps) < width:
            self._flush(response_ids[:, len(self._steps)])
        self._pending = None
        steps = self._steps[:width]
        if len(steps) != width:
            raise RuntimeError(f"DecodeStatistics saw {len(steps)} decode steps for {width} response columns")
        return tuple(torch.stack(column, dim=1) for column in zip(*steps, strict=True))  # type: ignore[return-value]


class StopStringsInText(StoppingCriteria):
    """Stops a row once its decoded response text (special tokens skipped) contains a stop string.

    `transformers`' own `stop_strings` matches on raw token strings, where a special token such as `<pad>`
    can "contain" a stop string like `a`; matching on the decoded text agrees with how the response mask and
    the completions are cut afterwards. Only the last few tokens are decoded at each step: a stop string
    completed by the newest token lies within them.
    """

    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, stop_strings: list[str], prompt_width: int
    ) -> None:
        self.tokenizer = tokenizer
        self.stop_strings = list(stop_strings)
        self.prompt_width = prompt_width
        self.window = max(len(stop) for stop in stop_strings) + 8

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: object) -> torch.Tensor:
        start = max(self.prompt_width, input_ids.shape[1] - self.window)
        texts = self.tokenizer.batch_decode(input_ids[:, start:].tolist(), skip_special_tokens=True)
        stopped = [any(stop in text for stop in self.stop_strings) for text in texts]
        return torch.tensor(stopped, dtype=torch.bool, device=input_ids.device)


def sampling_generation_config(
    sampling: SamplingConfig, eos_token_ids: list[int], pad_token_id: int
) -> GenerationConfig:
    """A config with every sampling knob set, so nothing is inherited from the model's own defaults. With
    `sampling.top_p_candidates` > 0 its temperature and top-p are off: `sampling_processors` applies them."""
    greedy = sampling.temperature == 0
    own_warpers = not greedy and sampling.top_p_candidates > 0
    # eapo's processor draws the token itself: generate then only takes the argmax of its one-hot scores.
    own_draw = own_warpers and sampling.candidate_draw
    return GenerationConfig(
        do_sample=not greedy and not own_draw,
        temperature=None if greedy or own_draw else (1.0 if own_warpers else sampling.temperature),
        top_p=None if greedy or own_draw else (1.0 if own_warpers else sampling.top_p),
        top_k=None if greedy or own_draw else 0,
        typical_p=1.0,
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        min_length=0,
        epsilon_cutoff=0.0,
        eta_cutoff=0.0,
        max_new_tokens=sampling.max_new_tokens,
        eos_token_id=eos_token_ids,
        pad_token_id=pad_token_id,
        num_beams=1,
        use_cache=True,
    )


def sampling_processors(sampling: SamplingConfig) -> list[NucleusSampling]:
    """The logits processors that sample as `sampling` says where `sampling_generation_config` leaves it to
    them: temperature and top-p without a full sort (`eapo.rollout.nucleus`); none for greedy decoding or
    with `top_p_candidates` 0. They go last in the list, after any that must see the model's logits."""
    if sampling.temperature == 0 or sampling.top_p_candidates <= 0:
        return []
    return [
        NucleusSampling(
            sampling.temperature, sampling.top_p, sampling.top_p_candidates, draw=sampling.candidate_draw
        )
    ]


def model_eos_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The tokenizer's eos plus any the model's generation config declares (e.g. several for chat models)."""
    ids = {int(tokenizer.eos_token_id)}
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif isinstance(configured, list | tuple):
        ids.update(int(token_id) for token_id in configured)
    return sorted(ids)


def stop_string_end(
    ids: list[int], tokenizer: PreTrainedTokenizerBase, stop_strings: list[str]
) -> int | None:
    """The length of the shortest prefix of `ids` whose decoded text (special tokens skipped) contains a stop
    string, or None. A prefix that contains one contains it ever after, so the end is found by bisection:
    O(log T) decodes."""

    def contains_stop(prefix_length: int) -> bool:
        text = tokenizer.decode(ids[:prefix_length], skip_special_tokens=True)
        return any(stop in text for stop in stop_strings)

    if not ids or not stop_strings or not contains_stop(len(ids)):
        return None
    low, high = 1, len(ids)  # the shortest prefix that contains a stop string lies in [low, high]
    while low < high:
        middle = (low + high) // 2
        if contains_stop(middle):
            high = middle
        else:
            low = middle + 1
    return low


def _end_at_stop_strings(
    response_ids: torch.Tensor,
    response_mask: torch.Tensor,
    truncated: torch.Tensor,
    tokenizer: PreTrainedTokenizerBase,
    stop_strings: list[str],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shorten each response to end at the last token of its first stop string, if one occurs."""
    response_mask = response_mask.clone()
    truncated = truncated.clone()
    for row in range(response_ids.shape[0]):
        length = int(response_mask[row].sum())
        end = stop_string_end(response_ids[row, :length].tolist(), tokenizer, stop_strings)
        if end is None:
            continue
        response_mask[row, end:] = False
        truncated[row] = False
    return response_mask, truncated


def cut_after_stop_string(text: str, stop_strings: list[str]) -> str:
    """`text` up to the end of its first stop string (a token may run past the stop string's end)."""
    ends = [text.find(stop) + len(stop) for stop in stop_strings if stop in text]
    return text[: min(ends)] if ends else text


def prefilled_prompts(
    model: PreTrainedModel,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    sampling: SamplingConfig,
    generation_config: GenerationConfig,
) -> dict[str, Any]:
    """`generate`'s keyword arguments for a cache of the chunk's distinct prompts, each computed once
    (`sampling.shared_prompt_prefill`, eapo.rollout.shared_prompt), or {} where there is none to share or
    `generate` builds its own (a static cache)."""
    if not sampling.shared_prompt_prefill or generation_config.cache_implementation is not None:
        return {}
    device = next(model.parameters()).device
    prefilled = shared_prompt_cache(model, prompt_ids.to(device), prompt_mask.to(device))
    return dict([prefilled]) if prefilled is not None else {}


def _accepts_logits_to_keep(model: torch.nn.Module) -> bool:
    return "logits_to_keep" in forward_parameters(model)


def model_generate(model: PreTrainedModel, **kwargs: Any) -> torch.Tensor:
    """`model.generate(**kwargs)`: causal LMs and peft models have it, though `PreTrainedModel`'s type does
    not (transformers 5 keeps it on `GenerationMixin`); a model without it gets a clear error."""
    generate = getattr(model, "generate", None)
    if generate is None:
        raise ConfigError(
            f"{type(model).__name__} cannot generate: eapo needs a causal LM (AutoModelForCausalLM), "
            "not a bare transformer"
        )
    output: torch.Tensor = generate(**kwargs)
    return output


@contextlib.contextmanager
def seeded_sampling(seed: int | None, device: torch.device) -> Iterator[None]:
    """Run the body with the torch RNG seeded by `seed`, restoring the outer RNG state afterwards."""
    if seed is None:
        yield
        return
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _check_sampling(sampling: SamplingConfig, group_size: int, prompts: list[str]) -> None:
    if not prompts:
        raise ConfigError("generate_rollouts: no prompts given; expected at least one")
    if group_size < 1:
        raise ConfigError(f"group_size: {group_size} is not allowed; expected an integer >= 1")
    if sampling.temperature < 0:
        raise ConfigError(
            f"sampling.temperature: {sampling.temperature} is negative; expected >= 0 (0 = greedy)"
        )
    if not 0 < sampling.top_p <= 1:
        raise ConfigError(f"sampling.top_p: {sampling.top_p} is outside (0, 1]")
    if sampling.top_p_candidates < 0:
        raise ConfigError(
            f"sampling.top_p_candidates: {sampling.top_p_candidates}; expected >= 0 "
            "(0: transformers' own warpers)"
        )
    if sampling.attention not in ATTENTION_CHOICES:
        raise ConfigError(f"sampling.attention: {sampling.attention!r}; expected one of {ATTENTION_CHOICES}")
    if sampling.max_new_tokens < 1:
        raise ConfigError(f"sampling.max_new_tokens: {sampling.max_new_tokens} is not allowed; expected >= 1")
    if sampling.batch_rows < 1:
        raise ConfigError(f"sampling.batch_rows: {sampling.batch_rows} is not allowed; expected >= 1")
    if sampling.phase_tokens < 0:
        raise ConfigError(
            f"sampling.phase_tokens: {sampling.phase_tokens} is not allowed; expected >= 0 (0: one generate "
            "call per chunk)"
        )


# ---------------------------------------------------------------------------------------------- phases
# Sampling in phases: rows that have ended leave the batch between phases.
#
# `generate` decodes every row of a batch until the last one stops. When one response out of 64 runs to the
# token budget while the others end within ~25 tokens (the SmolLM2 study's slow steps, docs/reliability.md),
# the whole batch decodes to the budget: ~4x the rollout's time on a CPU. Sampling in phases of a few tokens,
# with the rows that have ended (an eos, a stop string, their budget) leaving after each phase, bounds that
# waste. The rows still writing go on either from the last phase's key/value cache, its rows selected
# (`reuse_cache`: a phase then costs nothing extra; rollouts with `sampling.phase_tokens` > 0 and
# `eapo credit`'s continuations), or from a fresh prefill of their prefix plus what they wrote.
#
# The distribution sampled is the same; the tokens need not be those of one `generate` call under the same
# seed (the rows left draw from the random stream without the others, and rounding differs with the batch).


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
