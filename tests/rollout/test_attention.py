"""`sampling.attention`: the attention kernel `generate` decodes with (eapo.rollout.attention). On CPU
"auto" decodes with the eager attention; the samples and their log-probs are those of the model's own."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from eapo.errors import ConfigError
from eapo.rollout import SamplingConfig, generate_rollouts
from eapo.rollout.attention import decode_attention, resolve_decode_attention
from eapo.rollout.continuation import continue_sequences
from eapo.train.config import load_config

PROMPTS = ["Calculate 1 + 2.\nAnswer:", "x", "10 - 3 + 7 = 1"]


def test_auto_is_eager_on_cpu_and_model_leaves_the_model_alone(llama: LlamaForCausalLM) -> None:
    assert resolve_decode_attention(llama, "auto") == "eager"
    assert resolve_decode_attention(llama, "model") is None
    assert resolve_decode_attention(llama, "sdpa") == "sdpa"
    own = llama.config._attn_implementation
    assert own != "eager"  # transformers' default on CPU is the fused SDPA kernel
    seen = []

    def spy(*args: object, **kwargs: object) -> None:
        seen.append(llama.config._attn_implementation)
        raise RuntimeError("generate failed")

    with pytest.raises(RuntimeError), decode_attention(llama, "auto"):
        spy()
    assert seen == ["eager"] and llama.config._attn_implementation == own  # switched back, even on error
    with decode_attention(llama, "model"):
        assert llama.config._attn_implementation == own


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_eager_decoding_samples_what_the_model_samples(
    llama: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, temperature: float
) -> None:
    """fp32: the same tokens under a seed, greedy or sampled, and the same decode-loop log-probs."""
    batches = {}
    for choice in ("model", "auto"):
        sampling = SamplingConfig(temperature=temperature, top_p=0.9, max_new_tokens=12, attention=choice)
        batches[choice] = generate_rollouts(
            llama, tokenizer, PROMPTS, 4, sampling, seed=5, with_logprobs=temperature > 0
        )
    own, eager = batches["model"], batches["auto"]
    assert torch.equal(own.response_ids, eager.response_ids)
    assert torch.equal(own.response_mask, eager.response_mask)
    if temperature > 0:
        assert torch.allclose(own.logprobs, eager.logprobs, atol=1e-5)
        assert torch.allclose(own.entropy, eager.entropy, atol=1e-5)

    prefixes = [tokenizer.encode(p) for p in PROMPTS]
    sampling = SamplingConfig(temperature=1.0, top_p=1.0, batch_rows=2, attention="model")
    assert continue_sequences(llama, tokenizer, prefixes, [6, 3, 9], sampling, seed=2) == continue_sequences(
        llama, tokenizer, prefixes, [6, 3, 9], dataclasses.replace(sampling, attention="eager"), seed=2
    )


def test_an_unknown_attention_is_a_config_error(
    llama: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast
) -> None:
    with pytest.raises(ConfigError, match=r"sampling\.attention"):
        load_config("smoke", {"sampling": {"attention": "fastest"}})
    with pytest.raises(ConfigError, match=r"sampling\.attention"):
        generate_rollouts(llama, tokenizer, PROMPTS, 2, SamplingConfig(attention="fastest"))
