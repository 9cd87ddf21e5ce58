"""The shared prompt forward (`eapo.rollout.shared_prompt`): each distinct prompt run once and reused by its
rows through the key/value cache gives the plain forward's logits and gradients (fp32, 1e-4), with left
padding, right padding, several prompts, a row whose prompt is its own, and absolute positions (GPT-2)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from eapo.rollout import response_logits
from eapo.rollout.shared_prompt import distinct_prompts, response_logits_shared_prompt, shares_prompts


def _grouped_batch(vocab: int, pad: int, group: int = 3) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Three prompts (the first left-padded by 3) x `group` responses, plus one row with a prompt of its
    own; some responses end early (right padding)."""
    gen = torch.Generator().manual_seed(0)
    P, T = 9, 6
    prompts = torch.randint(5, vocab, (3, P), generator=gen)
    prompt_mask = torch.ones(3, P, dtype=torch.long)
    prompts[0, :3], prompt_mask[0, :3] = pad, 0
    lone = torch.randint(5, vocab, (1, P), generator=gen)
    rows = torch.cat([prompts.repeat_interleave(group, 0), lone])
    masks = torch.cat([prompt_mask.repeat_interleave(group, 0), torch.ones(1, P, dtype=torch.long)])
    B = rows.shape[0]
    responses = torch.randint(5, vocab, (B, T), generator=gen)
    response_mask = torch.ones(B, T, dtype=torch.long)
    response_mask[1, 3:] = 0
    response_mask[-1, 2:] = 0
    responses[response_mask == 0] = pad
    return torch.cat([rows, responses], 1), torch.cat([masks, response_mask], 1), P


@pytest.mark.parametrize("model_name", ["llama", "gpt2"])
def test_shared_prompt_logits_and_gradients_equal_the_plain_forward(
    model_name: str, request: pytest.FixtureRequest, tokenizer: PreTrainedTokenizerFast
) -> None:
    model = request.getfixturevalue(model_name)
    sequences, mask, P = _grouped_batch(len(tokenizer), tokenizer.pad_token_id)
    params = [p for p in model.parameters() if p.requires_grad]
    plain = response_logits(model, sequences, mask, P)
    shared = response_logits_shared_prompt(model, sequences, mask, P)
    assert shared.shape == plain.shape
    valid = mask[:, P:].bool()
    assert torch.allclose(shared[valid], plain[valid], atol=1e-4)
    # The gradient of a response-token objective flows back into each prompt's single forward.
    weights = torch.randn(plain.shape[-1], generator=torch.Generator().manual_seed(1))
    grads_plain = torch.autograd.grad((plain[valid] @ weights).sum(), params)
    grads_shared = torch.autograd.grad((shared[valid] @ weights).sum(), params)
    for a, b in zip(grads_plain, grads_shared, strict=True):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4)
    assert max(float(g.abs().max()) for g in grads_plain) > 1e-3  # the check is not vacuous


def test_distinct_prompts_groups_rows_by_prompt_and_padding(tokenizer: PreTrainedTokenizerFast) -> None:
    sequences, mask, P = _grouped_batch(len(tokenizer), tokenizer.pad_token_id, group=2)
    first_row, row_to_prompt = distinct_prompts(sequences, mask, P)
    assert first_row.numel() == 4
    # Every row maps to the distinct prompt whose first row holds the same prompt tokens and mask.
    for row, prompt in enumerate(row_to_prompt.tolist()):
        first = int(first_row[prompt])
        assert first <= row
        assert torch.equal(sequences[row, :P], sequences[first, :P])
        assert torch.equal(mask[row, :P], mask[first, :P])
    assert row_to_prompt[0] == row_to_prompt[1] and row_to_prompt[1] != row_to_prompt[2]


def test_response_logits_shares_only_when_rows_repeat_a_prompt(
    llama: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, monkeypatch: pytest.MonkeyPatch
) -> None:
    import eapo.rollout.generate as generate

    calls: list[int] = []
    real = generate.response_logits_shared_prompt

    def counting(model: Any, sequences: torch.Tensor, mask: torch.Tensor, prompt_length: int) -> torch.Tensor:
        calls.append(sequences.shape[0])
        return real(model, sequences, mask, prompt_length)

    monkeypatch.setattr(generate, "response_logits_shared_prompt", counting)
    sequences, mask, P = _grouped_batch(len(tokenizer), tokenizer.pad_token_id)
    assert shares_prompts(sequences, mask, P)
    response_logits(llama, sequences, mask, P, share_prompts=True)
    assert calls == [sequences.shape[0]]
    response_logits(llama, sequences, mask, P)  # off by default
    unique = sequences[[0, 3, 6, 9]], mask[[0, 3, 6, 9]]
    assert not shares_prompts(*unique, P)
    response_logits(llama, *unique, P, share_prompts=True)  # nothing to share: the plain forward
    assert not shares_prompts(sequences, mask, 1)
    assert calls == [sequences.shape[0]]
    with pytest.raises(ValueError, match="prompt of >= 2 tokens"):
        response_logits_shared_prompt(llama, sequences, mask, 1)


@pytest.mark.parametrize("model_name", ["llama", "gpt2"])
def test_shared_prompt_prefill_draws_the_same_samples(
    model_name: str,
    request: pytest.FixtureRequest,
    tokenizer: PreTrainedTokenizerFast,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """fp32: `generate_rollouts` with each distinct prompt prefilled once draws exactly the samples of the
    plain prefill (the logits differ by rounding only), for left-padded prompts of several widths."""
    import eapo.rollout.generate as generate
    from eapo.rollout import SamplingConfig, generate_rollouts

    made: list[object] = []
    real = generate.shared_prompt_cache

    def recording(*a: Any) -> Any:
        made.append(real(*a))
        return made[-1]

    monkeypatch.setattr(generate, "shared_prompt_cache", recording)
    model = request.getfixturevalue(model_name)
    prompts = ["12+3=", "7-1+40=", "abc"]
    batches = {}
    for prefill in (False, True):
        sampling = SamplingConfig(
            temperature=1.0, top_p=0.95, max_new_tokens=12, shared_prompt_prefill=prefill
        )
        batches[prefill] = generate_rollouts(
            model, tokenizer, prompts, 4, sampling, seed=3, with_logprobs=True
        )
    plain, shared = batches[False], batches[True]
    assert len(made) == 1 and made[0] is not None  # called for the shared run only, and it made a cache
    assert torch.equal(plain.sequences, shared.sequences)
    assert plain.completions == shared.completions
    assert len(set(plain.completions)) > 3  # sampled, not one repeated string
    assert plain.logprobs is not None and shared.logprobs is not None
    assert plain.entropy is not None and shared.entropy is not None
    assert torch.allclose(plain.logprobs, shared.logprobs, atol=1e-4)
    assert torch.allclose(plain.entropy, shared.entropy, atol=1e-4)


def test_shared_prompt_cache_only_when_prompts_repeat(
    llama: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast
) -> None:
    from eapo.rollout.shared_prompt import shared_prompt_cache

    ids = torch.tensor([[5, 6, 7], [5, 6, 7], [8, 9, 10]])
    mask = torch.ones_like(ids)
    made = shared_prompt_cache(llama, ids, mask)
    assert made is not None
    name, cache = made
    assert name in ("cache", "past_key_values")
    assert cache.get_seq_length() == 2  # all but each prompt's last token
    assert cache.layers[0].keys.shape[0] == 3  # one copy per row
    assert shared_prompt_cache(llama, ids[1:], mask[1:]) is None  # nothing repeats
    assert shared_prompt_cache(llama, ids[:, :1], mask[:, :1]) is None  # a one-token prompt
