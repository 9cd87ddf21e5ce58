"""`sampling.attention`: the attention kernel `generate` decodes a chunk with (eapo.rollout.attention). The
eager path samples what the model's own samples; "auto" picks it only on CPU, under grouped-query attention,
for a chunk without padding."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from eapo.errors import ConfigError
from eapo.rollout import SamplingConfig, generate_rollouts
from eapo.rollout.attention import decode_attention, resolve_decode_attention
from eapo.rollout.continuation import continue_sequences
from eapo.train.config import load_config

PROMPTS = ["Calculate 1 + 2.\nAnswer:", "x", "10 - 3 + 7 = 1"]


@pytest.fixture(scope="module")
def grouped_query(tokenizer: PreTrainedTokenizerFast) -> LlamaForCausalLM:
    """A tiny Llama with 4 query heads sharing 2 key heads (SmolLM2 has 9 and 3)."""
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )  # fmt: skip
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() == 2:
                parameter.normal_(0.0, 0.3)
    return model.eval()


def test_auto_is_eager_only_for_unpadded_chunks_under_grouped_query_attention_on_cpu(
    llama: LlamaForCausalLM, grouped_query: LlamaForCausalLM
) -> None:
    assert resolve_decode_attention(grouped_query, "auto", padded=False) == "eager"
    assert resolve_decode_attention(grouped_query, "auto", padded=True) is None
    assert resolve_decode_attention(llama, "auto", padded=False) is None  # one key head per query head
    assert resolve_decode_attention(llama, "model", padded=False) is None
    assert resolve_decode_attention(llama, "sdpa", padded=True) == "sdpa"


def test_the_switch_is_undone_even_when_generate_fails(grouped_query: LlamaForCausalLM) -> None:
    own = grouped_query.config._attn_implementation
    assert own != "eager"  # transformers' default on CPU is SDPA
    seen = []
    with pytest.raises(RuntimeError), decode_attention(grouped_query, "auto", padded=False):
        seen.append(grouped_query.config._attn_implementation)
        raise RuntimeError("generate failed")
    assert seen == ["eager"] and grouped_query.config._attn_implementation == own
    with decode_attention(grouped_query, "auto", padded=True):
        assert grouped_query.config._attn_implementation == own


@pytest.mark.parametrize("temperature", [0.0, 1.0])
@pytest.mark.parametrize("prompts", [PROMPTS, PROMPTS[:1]], ids=["padded", "one_length"])
def test_eager_decoding_samples_what_the_model_samples(
    grouped_query: LlamaForCausalLM,
    tokenizer: PreTrainedTokenizerFast,
    temperature: float,
    prompts: list[str],
) -> None:
    """fp32: the same tokens under a seed, greedy or sampled, and the same decode-loop log-probs."""
    batches = {}
    for choice in ("model", "eager", "auto"):
        sampling = SamplingConfig(temperature=temperature, top_p=0.9, max_new_tokens=12, attention=choice)
        batches[choice] = generate_rollouts(
            grouped_query, tokenizer, prompts, 4, sampling, seed=5, with_logprobs=temperature > 0
        )
    own = batches["model"]
    for other in (batches["eager"], batches["auto"]):
        assert torch.equal(own.response_ids, other.response_ids)
        assert torch.equal(own.response_mask, other.response_mask)
        if temperature > 0:
            assert own.logprobs is not None and other.logprobs is not None
            assert own.entropy is not None and other.entropy is not None
            assert torch.allclose(own.logprobs, other.logprobs, atol=1e-5)
            assert torch.allclose(own.entropy, other.entropy, atol=1e-5)


def test_continuations_with_eager_decoding_are_the_models_own(
    grouped_query: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast
) -> None:
    prefixes = [tokenizer.encode(p) for p in PROMPTS]
    sampling = SamplingConfig(temperature=1.0, top_p=1.0, batch_rows=2, attention="model")
    own = continue_sequences(grouped_query, tokenizer, prefixes, [6, 3, 9], sampling, seed=2)
    eager = dataclasses.replace(sampling, attention="eager")
    assert own == continue_sequences(grouped_query, tokenizer, prefixes, [6, 3, 9], eager, seed=2)


def test_an_unknown_attention_is_a_config_error(
    llama: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast
) -> None:
    with pytest.raises(ConfigError, match=r"sampling\.attention"):
        load_config("smoke", {"sampling": {"attention": "fastest"}})
    with pytest.raises(ConfigError, match=r"sampling\.attention"):
        generate_rollouts(llama, tokenizer, PROMPTS, 2, SamplingConfig(attention="fastest"))
