"""Sampling configuration for rollouts and evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field

# `sampling.attention`: "auto" (eapo.rollout.attention's rule), "model" (always the model's own), or a
# transformers attention implementation.
ATTENTION_CHOICES = (
    "auto",
    "model",
    "eager",
    "sdpa",
    "flash_attention_2",
    "flash_attention_3",
    "flex_attention",
)


@dataclass
class SamplingConfig:
    """How responses are sampled. Training defaults follow PAPER.md §6 (T = 1.0, top-p 0.95)."""

    temperature: float = 1.0
    top_p: float = 0.95
    max_new_tokens: int = 64
    stop_strings: list[str] = field(default_factory=list)
    # Rows sampled in one `generate` call (prompts x G are split into chunks of this many rows).
    batch_rows: int = 256
    # Top-p from the this many most likely tokens, with a full sort only for rows whose nucleus is wider
    # (eapo.rollout.nucleus; the same kept set as transformers' warper, without sorting V logits per row
    # and step). 0: transformers' own temperature and top-p warpers.
    top_p_candidates: int = 64
    # With top_p_candidates > 0: draw each token among the nucleus's candidates (eapo.rollout.nucleus
    # nucleus_draw), skipping generate's softmax and multinomial over all V tokens (a faster decode). The same
    # distribution from another random stream, so not the tokens generate draws under the same seed: off by
    # default, so that a seed gives transformers' own samples.
    candidate_draw: bool = False
    # Prefill each distinct prompt of a chunk once and start every row of its group from a copy of its
    # keys and values (eapo.rollout.shared_prompt): the same logits up to float rounding (the same samples
    # in fp32), 1/G of the prompt's FLOPs.
    shared_prompt_prefill: bool = True
    # The attention kernel `generate` decodes a chunk with (eapo.rollout.attention): "auto" (eager on CPU for
    # a chunk without padding under grouped-query attention, where transformers' SDPA route is slow; the
    # model's own otherwise), "model", or a transformers name. The same attention up to float rounding;
    # training and scoring keep the model's own.
    attention: str = "auto"
    # > 0: sample in phases of this many new tokens, the rows that have ended leaving after each phase
    # (eapo.rollout.generate.sample_in_phases; the others go on from their key/value cache), so that one
    # response running to max_new_tokens no longer makes every row of its chunk decode that far. The same
    # distribution, but a seed need not give the samples of the default 0: one `generate` call per chunk.
    phase_tokens: int = 0
