"""Fixtures: untrained tiny models (Llama, and GPT-2 for absolute positions) over the character tokenizer."""

from __future__ import annotations

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaForCausalLM, PreTrainedTokenizerFast

from eapo.models import TinyConfig, build_char_tokenizer, build_tiny_model


@pytest.fixture(scope="session")
def tokenizer() -> PreTrainedTokenizerFast:
    return build_char_tokenizer()


@pytest.fixture(scope="session")
def llama(tokenizer: PreTrainedTokenizerFast) -> LlamaForCausalLM:
    model = build_tiny_model(TinyConfig(n_layer=2, n_embd=32, n_head=2, seed=0), tokenizer)
    # Larger weights than the default init, so that logits depend visibly on context and position.
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() == 2:
                parameter.normal_(0.0, 0.3)
    return model.eval()


@pytest.fixture(scope="session")
def gpt2(tokenizer: PreTrainedTokenizerFast) -> GPT2LMHeadModel:
    """Absolute position embeddings: a forward with the wrong position ids gives different log-probs."""
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_positions=128,
        initializer_range=0.3,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    return GPT2LMHeadModel(config).eval()
