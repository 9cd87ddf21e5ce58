"""The attention kernel that `generate` decodes a chunk with (`sampling.attention`).

A decode step attends one query per row to the rows' cached keys. With grouped-query attention (fewer key
than query heads, as in SmolLM2 and most recent LMs) transformers' SDPA path takes one of two routes: where
the chunk's attention mask has padding it folds the query groups into the key heads and calls torch's SDPA
with the mask; where the mask is all ones it drops the mask and asks torch's SDPA to expand the groups
itself (`enable_gqa`), which torch's CPU kernel does slowly. Measured on SmolLM2-135M in bf16, one thread,
8 prompts x 8 rows, 24 new tokens (alternating rounds, the study's runs paused):

| prompts (tokens)                  | SDPA            | eager            |
|-----------------------------------|-----------------|------------------|
| the study's, left-padded (48)     | 7.2-7.4 s       | 7.6-7.7 s        |
| one length, no padding (48)       | 8.6-9.0 s       | 6.9-7.0 s        |
| chain_sum, one length (54)        | 11.1-11.6 s     | 8.8-8.9 s        |
| left-padded (229)                 | 11.6-12.2 s     | 14.0-17.5 s      |
| one length, no padding (229)      | 17.8-18.3 s     | 11.7-16.0 s      |

So `"auto"` decodes a chunk with the eager attention only where that route would be taken: on CPU, with
grouped-query attention, and when no row of the chunk is padded; everywhere else (and on CUDA, where the
fused kernels win) the model keeps its own. The eager path computes the same softmax(q k^T / sqrt(d)) v up
to float rounding. Only the sampling is affected: the training forward and π_old's scoring keep the
model's implementation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

__all__ = ["decode_attention", "resolve_decode_attention"]


def _implementation(model: Any) -> str | None:
    config = getattr(model, "config", None)
    return getattr(config, "_attn_implementation", None)


def _grouped_query(model: Any) -> bool:
    config = getattr(model, "config", None)
    heads = getattr(config, "num_attention_heads", None)
    kv_heads = getattr(config, "num_key_value_heads", None)
    return heads is not None and kv_heads is not None and kv_heads < heads


def resolve_decode_attention(model: Any, choice: str, *, padded: bool) -> str | None:
    """The implementation to decode one chunk with for `choice` (`padded`: whether any row of the chunk's
    prompt mask is padded), or None to leave the model as it is."""
    if choice == "model":
        return None
    if choice == "auto":
        on_cpu = next(model.parameters()).device.type == "cpu"
        return "eager" if on_cpu and _grouped_query(model) and not padded else None
    return choice


@contextlib.contextmanager
def decode_attention(model: Any, choice: str, *, padded: bool) -> Iterator[None]:
    """Run the body with the model's attention switched to what `choice` resolves to, then switch it back.

    Models that cannot switch (no `set_attn_implementation`, or no attention implementation recorded in
    their config, as with custom modules) decode as they are.
    """
    wanted = resolve_decode_attention(model, choice, padded=padded)
    current = _implementation(model)
    switchable = current is not None and hasattr(model, "set_attn_implementation")
    if wanted is None or wanted == current or not switchable:
        yield
        return
    model.set_attn_implementation(wanted)
    try:
        yield
    finally:
        model.set_attn_implementation(current)
