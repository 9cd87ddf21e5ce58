from __future__ import annotations

import pytest
import torch
from transformers import GPT2LMHeadModel, LlamaForCausalLM, PreTrainedModel, PreTrainedTokenizerFast

from eapo.errors import ConfigError
from eapo.rollout import SamplingConfig, generate_rollouts, response_logits, response_mask_from_ids
from eapo.rollout.generate import _end_at_stop_strings, model_generate

EOS, PAD = 1, 0
# Prompts of different lengths, so that rows are left-padded by different amounts.
PROMPTS = ["Calculate 1 + 2.\nAnswer:", "Calculate 10 - 3 + 7.\nAnswer:", "x"]


def test_response_mask_hand_built() -> None:
    response_ids = torch.tensor(
        [
            [5, 6, EOS, PAD, PAD],  # eos inside, padding after it
            [EOS, PAD, PAD, PAD, PAD],  # empty answer: only the eos counts
            [5, 6, 7, 8, 9],  # no eos: truncated, every token counts
            [5, EOS, 7, EOS, 9],  # tokens after the first eos do not count, even a second eos
            [5, 6, 7, 8, EOS],  # eos on the last column
        ]
    )
    mask, truncated = response_mask_from_ids(response_ids, [EOS])
    expected = torch.tensor(
        [
            [1, 1, 1, 0, 0],
            [1, 0, 0, 0, 0],
            [1, 1, 1, 1, 1],
            [1, 1, 0, 0, 0],
            [1, 1, 1, 1, 1],
        ],
        dtype=torch.bool,
    )
    assert torch.equal(mask, expected)
    assert truncated.tolist() == [False, False, True, False, False]


def test_response_mask_with_several_eos_ids() -> None:
    mask, truncated = response_mask_from_ids(torch.tensor([[5, 9, 6, 1], [5, 6, 7, 8]]), [1, 9])
    assert mask.tolist() == [[True, True, False, False], [True, True, True, True]]
    assert truncated.tolist() == [False, True]


def test_stop_string_ends_the_mask_at_its_last_token(tokenizer: PreTrainedTokenizerFast) -> None:
    rows = ["12</answer>xyz", "no stop here", "<answer>3</ans", "a</answer>b</answer>"]
    ids = [tokenizer(text)["input_ids"] for text in rows]
    width = max(len(row) for row in ids)
    response_ids = torch.tensor([row + [PAD] * (width - len(row)) for row in ids])
    mask = torch.tensor([[True] * len(row) + [False] * (width - len(row)) for row in ids])
    truncated = torch.ones(len(rows), dtype=torch.bool)
    mask, truncated = _end_at_stop_strings(response_ids, mask, truncated, tokenizer, ["</answer>"])
    kept = [tokenizer.decode(row[m]) for row, m in zip(response_ids, mask, strict=True)]
    assert kept == ["12</answer>", "no stop here", "<answer>3</ans", "a</answer>"]
    assert truncated.tolist() == [False, True, True, False]


@pytest.fixture
def sampling() -> SamplingConfig:
    return SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=24, batch_rows=4)


def test_batch_layout(
    llama: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, sampling: SamplingConfig
) -> None:
    group_size = 3
    batch = generate_rollouts(llama, tokenizer, PROMPTS, group_size, sampling, seed=0)
    rows = len(PROMPTS) * group_size
    width = batch.sequences.shape[1]
    assert batch.prompt_length == max(len(tokenizer(p)["input_ids"]) for p in PROMPTS)
    assert batch.response_ids.shape == (rows, width - batch.prompt_length)
    assert batch.response_ids.shape[1] <= sampling.max_new_tokens
    assert torch.equal(batch.sequences[:, batch.prompt_length :], batch.response_ids)
    assert batch.prompt_index.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]  # groups contiguous
    assert batch.num_generated_tokens == int(batch.response_mask.sum())
    assert torch.equal(batch.attention_mask[:, batch.prompt_length :].bool(), batch.response_mask)
    for row in range(rows):
        prompt = PROMPTS[int(batch.prompt_index[row])]
        prompt_ids = batch.sequences[row, : batch.prompt_length][
            batch.attention_mask[row, : batch.prompt_length].bool()
        ]
        assert tokenizer.decode(prompt_ids) == prompt  # left padding, then the prompt
        response = batch.response_ids[row][batch.response_mask[row]].tolist()
        assert tokenizer.decode(response, skip_special_tokens=True) == batch.completions[row]
        ends_with_eos = response[-1] == tokenizer.eos_token_id
        assert ends_with_eos != bool(batch.truncated[row])
        if batch.truncated[row]:
            assert len(response) == sampling.max_new_tokens
        # After the end of the response there is only padding.
        assert (batch.response_ids[row][~batch.response_mask[row]] == tokenizer.pad_token_id).all()


def test_same_seed_same_samples(
    llama: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, sampling: SamplingConfig
) -> None:
    outer_state = torch.get_rng_state()
    first = generate_rollouts(llama, tokenizer, PROMPTS, 4, sampling, seed=7)
    assert torch.equal(torch.get_rng_state(), outer_state)  # the caller's RNG is untouched
    second = generate_rollouts(llama, tokenizer, PROMPTS, 4, sampling, seed=7)
    other = generate_rollouts(llama, tokenizer, PROMPTS, 4, sampling, seed=8)
    assert torch.equal(first.sequences, second.sequences) and first.completions == second.completions
    assert first.completions != other.completions


def test_global_rng_drives_sampling_without_seed(
    llama: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, sampling: SamplingConfig
) -> None:
    torch.manual_seed(11)
    first = generate_rollouts(llama, tokenizer, PROMPTS, 2, sampling)
    torch.manual_seed(11)
    second = generate_rollouts(llama, tokenizer, PROMPTS, 2, sampling)
    assert first.completions == second.completions


def test_greedy_gives_identical_rows_per_group(
    llama: PreTrainedModel, tokenizer: PreTrainedTokenizerFast
) -> None:
    greedy = SamplingConfig(temperature=0.0, max_new_tokens=12, batch_rows=5)
    batch = generate_rollouts(llama, tokenizer, PROMPTS, 3, greedy)
    for prompt in range(len(PROMPTS)):
        group = batch.response_ids[batch.prompt_index == prompt]
        assert (group == group[0]).all()


def test_stop_strings_during_generation(llama: PreTrainedModel, tokenizer: PreTrainedTokenizerFast) -> None:
    """With a frequent stop character, rows end right after its first occurrence."""
    stop = "e"
    sampling = SamplingConfig(
        temperature=1.0, top_p=1.0, max_new_tokens=40, batch_rows=16, stop_strings=[stop]
    )
    batch = generate_rollouts(llama, tokenizer, PROMPTS, 8, sampling, seed=0)
    stopped = 0
    for row, text in enumerate(batch.completions):
        if stop in text:
            stopped += 1
            assert text.index(stop) == len(text) - 1  # cut right after the first stop string
            assert not batch.truncated[row]
            last = batch.response_ids[row][batch.response_mask[row]][-1]
            assert tokenizer.decode([int(last)]) == stop
    assert stopped > 0  # the test exercised the stop path


def test_response_logits_match_generate(
    llama: LlamaForCausalLM, gpt2: GPT2LMHeadModel, tokenizer: PreTrainedTokenizerFast
) -> None:
    """Log-probs of the sampled tokens from one forward equal those `generate` computed (fp32, 1e-4), for
    left-padded prompts of different lengths, with RoPE (Llama) and absolute positions (GPT-2)."""
    for model in (llama, gpt2):
        encoded = tokenizer(PROMPTS, padding=True, return_tensors="pt")
        torch.manual_seed(0)
        output = model.generate(
            **encoded,
            do_sample=True,
            top_k=0,
            max_new_tokens=16,
            output_logits=True,
            return_dict_in_generate=True,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        prompt_length = encoded["input_ids"].shape[1]
        response_ids = output.sequences[:, prompt_length:]
        response_mask, _ = response_mask_from_ids(response_ids, [tokenizer.eos_token_id])
        attention_mask = torch.cat([encoded["attention_mask"], response_mask.long()], dim=1)
        with torch.no_grad():
            logits = response_logits(model, output.sequences, attention_mask, prompt_length)
        assert logits.shape == (len(PROMPTS), response_ids.shape[1], len(tokenizer))
        sampled = (
            torch.stack(output.logits, dim=1).log_softmax(-1).gather(-1, response_ids[..., None])[..., 0]
        )
        scored = logits.log_softmax(-1).gather(-1, response_ids[..., None])[..., 0]
        assert (sampled - scored).abs()[response_mask].max() < 1e-4


def test_response_logits_on_a_rollout_batch(
    gpt2: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, sampling: SamplingConfig
) -> None:
    batch = generate_rollouts(gpt2, tokenizer, PROMPTS, 2, sampling, seed=0)
    with torch.no_grad():
        logits = response_logits(gpt2, batch.sequences, batch.attention_mask, batch.prompt_length)
    assert logits.shape[:2] == batch.response_ids.shape
    assert torch.isfinite(logits[batch.response_mask]).all()


def test_rejects_bad_sampling(llama: PreTrainedModel, tokenizer: PreTrainedTokenizerFast) -> None:
    with pytest.raises(ConfigError, match="top_p"):
        generate_rollouts(llama, tokenizer, PROMPTS, 2, SamplingConfig(top_p=0.0))
    with pytest.raises(ConfigError, match="group_size"):
        generate_rollouts(llama, tokenizer, PROMPTS, 0, SamplingConfig())
    with pytest.raises(ConfigError, match="no prompts"):
        generate_rollouts(llama, tokenizer, [], 2, SamplingConfig())


def test_a_model_that_cannot_generate_is_named(llama: PreTrainedModel) -> None:
    # The bare decoder under the LM head has no `generate` (transformers 5 keeps it on GenerationMixin).
    with pytest.raises(ConfigError, match="LlamaModel cannot generate"):
        model_generate(llama.model, input_ids=torch.tensor([[5, 6]]))
