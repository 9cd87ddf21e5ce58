"""Sampling configuration for rollouts and evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SamplingConfig:
    """How responses are sampled. Training defaults follow PAPER.md §6 (T = 1.0, top-p 0.95)."""

    temperature: float = 1.0
    top_p: float = 0.95
    max_new_tokens: int = 64
    stop_strings: list[str] = field(default_factory=list)
    # Rows sampled in one `generate` call (prompts x G are split into chunks of this many rows).
    batch_rows: int = 256
