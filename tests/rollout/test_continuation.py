"""`continue_sequences`: one continuation per token-id prefix, exact from the prefix's last token, cut at
each row's own budget and after its first eos."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import LlamaForCausalLM, PreTrainedModel, PreTrainedTokenizerFast

from eapo.rollout import SamplingConfig, continuation
from eapo.rollout.continuation import continue_sequences, journal_fingerprint
from eapo.rollout.generate import model_eos_token_ids


def _greedy(model: PreTrainedModel, prefix: list[int], budget: int, eos_ids: list[int]) -> list[int]:
    """Greedy decoding of one unpadded prefix, one full forward per token (no KV cache, no padding)."""
    ids = list(prefix)
    new: list[int] = []
    with torch.no_grad():
        for _ in range(budget):
            token = int(model(torch.tensor([ids])).logits[0, -1].argmax())
            ids.append(token)
            new.append(token)
            if token in eos_ids:
                break
    return new


def _prefixes(tokenizer: PreTrainedTokenizerFast) -> list[list[int]]:
    # Different lengths, so that rows of one chunk are left-padded by different amounts.
    return [tokenizer.encode(text) for text in ("Calculate 1 + 2.\nAnswer:", "x", "10 - 3 + 7 = 1")]


def test_greedy_continuations_equal_unpadded_decoding_within_each_budget(
    llama: PreTrainedModel, tokenizer: PreTrainedTokenizerFast
) -> None:
    prefixes = _prefixes(tokenizer)
    budgets = [7, 0, 3]
    sampling = SamplingConfig(temperature=0.0, batch_rows=8)
    outputs = continue_sequences(llama, tokenizer, prefixes, budgets, sampling)
    eos_ids = model_eos_token_ids(llama, tokenizer)
    assert outputs[1] == []  # a zero budget samples nothing
    for prefix, budget, new in zip(prefixes, budgets, outputs, strict=True):
        assert len(new) <= budget
        assert new == _greedy(llama, prefix, budget, eos_ids)


def test_sampled_continuations_are_seeded_and_leave_the_model_mode_alone(
    llama: PreTrainedModel, tokenizer: PreTrainedTokenizerFast
) -> None:
    prefixes = _prefixes(tokenizer) * 3
    budgets = [5, 2, 9] * 3
    sampling = SamplingConfig(temperature=1.0, top_p=1.0, batch_rows=4)  # three chunks
    llama.train()
    try:
        first = continue_sequences(llama, tokenizer, prefixes, budgets, sampling, seed=3)
        assert llama.training  # restored after generating in eval mode
    finally:
        llama.eval()
    assert first == continue_sequences(llama, tokenizer, prefixes, budgets, sampling, seed=3)
    assert first != continue_sequences(llama, tokenizer, prefixes, budgets, sampling, seed=4)
    eos_ids = set(model_eos_token_ids(llama, tokenizer))
    for budget, new in zip(budgets, first, strict=True):
        assert len(new) <= budget
        assert all(token not in eos_ids for token in new[:-1])  # nothing after the first eos


def test_each_row_stops_after_its_first_eos_while_the_chunk_goes_on(
    llama: PreTrainedModel, tokenizer: PreTrainedTokenizerFast
) -> None:
    prefixes = _prefixes(tokenizer)
    sampling = SamplingConfig(temperature=0.0, batch_rows=8)
    free = continue_sequences(llama, tokenizer, prefixes, [7, 7, 7], sampling)
    stop = free[0][1]  # declare row 0's second greedy token an eos of the model
    original = llama.generation_config.eos_token_id
    llama.generation_config.eos_token_id = [int(tokenizer.eos_token_id), stop]
    try:
        cut = continue_sequences(llama, tokenizer, prefixes, [7, 7, 7], sampling)
    finally:
        llama.generation_config.eos_token_id = original
    assert cut[0] == free[0][:2]  # the eos is kept, nothing after it
    for before, after in zip(free, cut, strict=True):
        end = next((k for k, t in enumerate(before) if t == stop), len(before) - 1)
        assert after == before[: end + 1]


def test_a_journal_resumes_where_a_stopped_call_left_off_with_the_same_samples(
    llama: LlamaForCausalLM,
    tokenizer: PreTrainedTokenizerFast,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prefixes = _prefixes(tokenizer) * 3
    budgets = [5, 2, 9] * 3
    sampling = SamplingConfig(temperature=1.0, top_p=1.0, batch_rows=4)  # three chunks
    uninterrupted = continue_sequences(llama, tokenizer, prefixes, budgets, sampling, seed=3)
    journal = tmp_path / "journal.jsonl"

    appended = 0
    real_append = continuation.append_row

    def stop_after_one_chunk(path: Path, row: dict[str, Any]) -> None:
        nonlocal appended
        if appended == 1:
            raise KeyboardInterrupt  # the probe is stopped while its second chunk is being written
        real_append(path, row)
        appended += 1

    monkeypatch.setattr(continuation, "append_row", stop_after_one_chunk)
    with pytest.raises(KeyboardInterrupt):
        continue_sequences(llama, tokenizer, prefixes, budgets, sampling, seed=3, journal=journal)
    monkeypatch.setattr(continuation, "append_row", real_append)
    with journal.open("a") as f:
        f.write('{"chunk": 1, "outp')  # and a torn line left by a kill: that chunk is sampled again

    calls = 0
    real_generate = llama.generate

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(llama, "generate", counted)
    resumed = continue_sequences(llama, tokenizer, prefixes, budgets, sampling, seed=3, journal=journal)
    assert resumed == uninterrupted
    assert calls == 2  # only the two chunks the journal did not hold
    assert len(journal.read_text().splitlines()) == 1 + 3  # the header and 3 chunks; the torn line dropped

    # A journal written for other inputs (another seed here) is not mixed in: everything is sampled again.
    calls = 0
    other = continue_sequences(llama, tokenizer, prefixes, budgets, sampling, seed=4, journal=journal)
    assert calls == 3
    assert other == continue_sequences(llama, tokenizer, prefixes, budgets, sampling, seed=4)
    fingerprint = json.loads(journal.read_text().splitlines()[0])["fingerprint"]
    assert fingerprint == journal_fingerprint(prefixes, budgets, sampling, 4)
    assert fingerprint != journal_fingerprint(prefixes, budgets, sampling, 4, {"cpu": "another"})


def test_a_row_ends_after_its_first_stop_string_and_the_chunk_stops_early(
    llama: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefixes = _prefixes(tokenizer)
    sampling = SamplingConfig(temperature=0.0, batch_rows=8)
    free = continue_sequences(llama, tokenizer, prefixes, [12, 12, 12], sampling)
    stop = tokenizer.decode(free[0][2:4])  # a string row 0 writes with its 3rd and 4th new tokens
    assert isinstance(stop, str)
    steps = []
    real_generate = llama.generate

    def counted(*args: Any, **kwargs: Any) -> Any:
        out = real_generate(*args, **kwargs)
        steps.append(out.shape[1] - kwargs["input_ids"].shape[1])
        return out

    monkeypatch.setattr(llama, "generate", counted)
    cut = continue_sequences(
        llama,
        tokenizer,
        prefixes,
        [12, 12, 12],
        SamplingConfig(temperature=0.0, batch_rows=8, stop_strings=[stop]),
    )
    for before, after in zip(free, cut, strict=True):
        assert after == before[: len(after)]  # the same greedy tokens, cut
        text = tokenizer.decode(after, skip_special_tokens=True)
        if stop in tokenizer.decode(before, skip_special_tokens=True):
            assert stop in text and stop not in tokenizer.decode(after[:-1], skip_special_tokens=True)
    assert cut[0] == free[0][:4]
    if all(stop in tokenizer.decode(row) for row in free):
        assert steps[0] < 12  # every row stopped: the chunk ended before its budget


def test_branches_of_one_position_share_one_prefix_prefill_and_sample_as_without_it(
    llama: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A credit probe's rows hold the same prompt + response head and differ in the branched last token: the
    head's keys and values are computed once for all of them, and (fp32) the samples are the plain path's."""
    head = tokenizer.encode("Calculate 1 + 2.\nAnswer: 3")
    branches = [tokenizer.encode(c)[-1] for c in ("a", "b", "c")]
    prefixes = [[*head, v] for v in branches for _ in range(4)]  # 3 branches x 4 completions
    budgets = [6] * len(prefixes)
    plain = SamplingConfig(temperature=1.0, top_p=1.0, batch_rows=12, shared_prompt_prefill=False)
    expected = continue_sequences(llama, tokenizer, prefixes, budgets, plain, seed=1)

    from eapo.rollout import shared_prompt

    prefill_rows = []
    real_distinct = shared_prompt.distinct_prompts

    def recording(*args: Any, **kwargs: Any) -> Any:
        first_row, row_to_prompt = real_distinct(*args, **kwargs)
        prefill_rows.append(int(first_row.numel()))
        return first_row, row_to_prompt

    monkeypatch.setattr(shared_prompt, "distinct_prompts", recording)
    shared = dataclasses.replace(plain, shared_prompt_prefill=True)
    assert continue_sequences(llama, tokenizer, prefixes, budgets, shared, seed=1) == expected
    assert prefill_rows[-1] == 1  # one forward of the common head for all 12 rows


def test_phases_continue_exactly_and_rows_that_ended_leave(
    llama: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Greedy over budgets longer than a phase equals one uninterrupted greedy decode of each row; a row
    that has written its stop string is not decoded in the next phase."""
    prefixes = _prefixes(tokenizer)
    budget = 2 * continuation.PHASE_TOKENS + 5  # three phases
    eos_ids = model_eos_token_ids(llama, tokenizer)
    whole = [_greedy(llama, p, budget, eos_ids) for p in prefixes]
    rows_per_call = []
    real_generate = llama.generate

    def counted(*args: Any, **kwargs: Any) -> Any:
        rows_per_call.append(int(kwargs["input_ids"].shape[0]))
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(llama, "generate", counted)
    greedy = SamplingConfig(temperature=0.0, batch_rows=8)
    assert continue_sequences(llama, tokenizer, prefixes, [budget] * 3, greedy) == whole
    if all(len(w) == budget for w in whole):  # no row ended early: every phase decodes all three
        assert rows_per_call == [3, 3, 3]
    rows_per_call.clear()
    stop = tokenizer.decode(whole[0][1:3])  # row 0 writes it within the first phase
    assert isinstance(stop, str)
    stopping = SamplingConfig(temperature=0.0, batch_rows=8, stop_strings=[stop])
    cut = continue_sequences(llama, tokenizer, prefixes, [budget] * 3, stopping)
    assert cut[0] == whole[0][:3]
    assert rows_per_call[0] == 3 and all(n < 3 for n in rows_per_call[1:])
