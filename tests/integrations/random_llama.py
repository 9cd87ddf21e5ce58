"""A random 2-layer Llama and a word-level tokenizer, built offline: the integration tests' model, also
used by benchmarks/gpu_trl_check.py on a GPU machine (which has the repository but no network)."""

from __future__ import annotations

from typing import Any


def build_random_llama() -> tuple[Any, Any]:
    """A random `LlamaForCausalLM` (2 layers, hidden 32, seed 0) and its `PreTrainedTokenizerFast`."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = ["<pad>", "<eos>", "<unk>"] + [str(digit) for digit in range(10)] + ["+", "=", "a", "b", "c", "d"]
    vocab = {word: index for index, word in enumerate(words)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
    )
    tokenizer.padding_side = "left"
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(words),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        pad_token_id=vocab["<pad>"],
        eos_token_id=vocab["<eos>"],
        bos_token_id=None,
    )
    return LlamaForCausalLM(config), tokenizer
