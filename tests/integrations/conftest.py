"""Offline fixtures for the integration tests: a random 2-layer Llama and a word-level tokenizer."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def tiny_model_and_tokenizer() -> tuple[Any, Any]:
    """A random `LlamaForCausalLM` (2 layers, hidden 32) and its `PreTrainedTokenizerFast`, built offline."""
    pytest.importorskip("torch")
    from .random_llama import build_random_llama

    return build_random_llama()
