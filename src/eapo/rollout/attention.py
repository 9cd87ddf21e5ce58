"""The attention kernel that `generate` decodes with (`sampling.attention`).

A decode step attends one query per row to the rows' cached keys. On CPU, torch's fused SDPA kernel (what
transformers picks by default) is built for blocks of queries: measured on SmolLM2-135M in bf16, one thread,
64 rows, it took 29% of a rollout (4.4 ms a call against 0.7 ms for every matmul of a layer), and the plain
("eager") attention cut the rollout from 11.1-11.6 s to 8.8-8.9 s. The eager path computes the same
softmax(q k^T / sqrt(d)) v, up to float rounding; its [rows, heads, 1, keys] weights are small in decode.
On CUDA the fused kernels win, so `"auto"` keeps the model's own there.

Only the sampling is affected: the training forward and π_old's scoring keep the model's implementation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

__all__ = ["decode_attention", "resolve_decode_attention"]


def _implementation(model: Any) -> str | None:
    config = getattr(model, "config", None)
    return getattr(config, "_attn_implementation", None)


def resolve_decode_attention(model: Any, choice: str) -> str | None:
    """The implementation `generate` should decode with for `choice`, or None to leave the model as it is."""
    if choice == "model":
        return None
    if choice == "auto":
        device = next(model.parameters()).device
        return "eager" if device.type == "cpu" else None
    return choice


@contextlib.contextmanager
def decode_attention(model: Any, choice: str) -> Iterator[None]:
    """Run the body with the model's attention switched to what `choice` resolves to, then switch it back.

    Models that cannot switch (no `set_attn_implementation`, or no attention implementation recorded in
    their config, as with custom modules) decode as they are.
    """
    wanted = resolve_decode_attention(model, choice)
    current = _implementation(model)
    if (
        wanted is None
        or current is None
        or wanted == current
        or not hasattr(model, "set_attn_implementation")
    ):
        yield
        return
    model.set_attn_implementation(wanted)
    try:
        yield
    finally:
        model.set_attn_implementation(current)
