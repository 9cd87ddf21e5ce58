"""Save a randomly initialised Llama-shaped model and a tokenizer to a folder, for `gpu_check.sh`.

Speed needs no trained weights: `step_bound.py --model-path DIR` measures a ~0.5B model of this shape
(Qwen2.5-0.5B's: hidden 896, MLP 4,864, 24 layers, 14 heads, 2 KV heads) on a machine that has no network
and no SmolLM2 weights. The tokenizer is eapo's character tokenizer padded with placeholder tokens to a
32,768-entry vocabulary, so the output projection has a realistic size and every sampled id decodes.

    python benchmarks/gpu_random_llama.py OUT_DIR [--small]   # --small: a 2-layer model for a CPU dry run
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def build(out_dir: Path, small: bool) -> dict[str, int]:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from eapo.models import build_char_tokenizer

    tokenizer = build_char_tokenizer()
    vocab = 1024 if small else 32768
    tokenizer.add_tokens([f"<x{i}>" for i in range(vocab - len(tokenizer))])
    shape: dict[str, Any] = (
        dict(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
        )
        if small
        else dict(
            hidden_size=896,
            intermediate_size=4864,
            num_hidden_layers=24,
            num_attention_heads=14,
            num_key_value_heads=2,
        )
    )
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=2048,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
        **shape,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return {"params": sum(p.numel() for p in model.parameters()), "vocab": len(tokenizer)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--small", action="store_true", help="a 2-layer model (CPU dry run)")
    args = parser.parse_args()
    print(build(args.out_dir, args.small))


if __name__ == "__main__":
    main()
