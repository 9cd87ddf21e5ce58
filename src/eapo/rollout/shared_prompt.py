"""Each distinct prompt run once: the forward of a GRPO group's shared prompt, made once and reused by its G
responses through the key/value cache, when scoring and training on a rollout and when sampling it.

A RolloutBatch holds every prompt G times (PAPER.md Eq. 2: G responses per prompt), and on short answers the
prompt is most of each row (SmolLM2 arithmetic: ~45 prompt tokens, ~24 response tokens). The plain forward
(`eapo.rollout.response_logits`) runs all B x (P + T) positions; this one runs the U distinct prompts'
P - 1 positions once, copies their keys and values to the B rows (by indexing, which is differentiable,
so each row's gradient flows back into its prompt's single forward), and runs only the B x T response
positions on top. The math is the same causal forward: the logits agree with the plain path up to float
rounding (tested to 1e-4 in fp32, gradients included), and the FLOPs of the transformer body drop from
B(P + T) to U(P - 1) + BT.

Sampling uses the same idea (`shared_prompt_cache`): `generate` starts every row from a copy of its prompt's
keys and values, prefilled once per distinct prompt.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

PromptGroups = tuple[torch.Tensor, torch.Tensor]


def distinct_prompts(
    sequences: torch.Tensor, attention_mask: torch.Tensor, prompt_length: int
) -> PromptGroups:
    """The distinct (left-padded) prompts among the rows: (first row of each distinct prompt [U],
    each row's prompt number [B])."""
    prompt = torch.cat([sequences[:, :prompt_length], attention_mask[:, :prompt_length].long()], dim=1)
    _, row_to_prompt = torch.unique(prompt, dim=0, return_inverse=True)
    num_prompts = int(row_to_prompt.max()) + 1
    first_row = torch.full((num_prompts,), sequences.shape[0], dtype=torch.long, device=sequences.device)
    rows = torch.arange(sequences.shape[0], device=sequences.device)
    first_row = first_row.scatter_reduce(0, row_to_prompt, rows, reduce="amin")
    return first_row, row_to_prompt


def shares_prompts(sequences: torch.Tensor, attention_mask: torch.Tensor, prompt_length: int) -> bool:
    """Whether any two rows hold the same prompt (else the shared path saves nothing)."""
    if prompt_length < 2:
        return False
    first_row, _ = distinct_prompts(sequences, attention_mask, prompt_length)
    return first_row.numel() < sequences.shape[0]


def response_logits_shared_prompt(
    model: Any, sequences: torch.Tensor, attention_mask: torch.Tensor, prompt_length: int
) -> torch.Tensor:
    """Logits [B, T, V] that predict each response token, as `eapo.rollout.response_logits` returns them,
    computing each distinct prompt's forward once.

    `sequences`, `attention_mask` [B, P + T] (a `RolloutBatch`'s, left-padded prompts of width P). Needs a
    model whose forward takes a key/value cache (`cache` or `past_key_values`) and `logits_to_keep`
    (transformers' causal LMs), and P >= 2.
    """
    length = sequences.shape[1]
    if prompt_length < 2 or length <= prompt_length:
        raise ValueError(f"need a prompt of >= 2 tokens and a response; got {prompt_length=}, {length=}")
    input_mask = attention_mask[:, :-1]
    # Positions from the attention mask, as `response_logits` and `generate` number them.
    position_ids = (input_mask.long().cumsum(dim=-1) - 1).clamp(min=0)
    cache_arg, cache = _prompt_cache(model, sequences, attention_mask, prompt_length)
    prefix = prompt_length - 1  # the prompt's last token is fed with the responses: it predicts token 1
    return model(
        input_ids=sequences[:, prefix:-1],
        attention_mask=input_mask,
        position_ids=position_ids[:, prefix:],
        use_cache=True,
        **{cache_arg: cache},
    ).logits


def shared_prompt_cache(
    model: Any, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor
) -> tuple[str, Any] | None:
    """A key/value cache of every row's prompt but its last token, each distinct prompt computed once, for
    `generate` to start from: (the keyword `generate` takes it by, the cache), or None where there is nothing
    to share (no repeated prompt, a prompt of one token) or the model takes no cache object.

    `generate` then runs only the prompts' last tokens before decoding; the logits are the full prefill's up
    to float rounding, so the samples are the same ones wherever the rounding does not move a draw (fp32).
    """
    width = prompt_ids.shape[1]
    if not shares_prompts(prompt_ids, prompt_mask, width - 1):  # the cache holds all but the last token
        return None
    parameters = forward_parameters(model)
    if "logits_to_keep" not in parameters or not {"cache", "past_key_values"} & set(parameters):
        return None
    return _prompt_cache(model, prompt_ids, prompt_mask, width)


def _prompt_cache(
    model: Any, sequences: torch.Tensor, attention_mask: torch.Tensor, prompt_length: int
) -> tuple[str, Any]:
    """(the forward's cache keyword, a DynamicCache of every row's first prompt_length - 1 columns), run once
    per distinct prompt and copied to the rows by indexing (differentiable: under autograd each
    row's gradient reaches its prompt's one forward)."""
    from transformers.cache_utils import DynamicCache

    prefix = prompt_length - 1
    # Rows are grouped by the columns the cache holds: rows that differ only in their last prompt token (a
    # credit probe's branches) share one forward too.
    first_row, row_to_prompt = distinct_prompts(sequences, attention_mask, prefix)
    mask = attention_mask[first_row, :prefix]
    cache = DynamicCache(config=getattr(model, "config", None))
    cache_arg = cache_argument(model)
    model(
        input_ids=sequences[first_row, :prefix],
        attention_mask=mask,
        position_ids=(mask.long().cumsum(dim=-1) - 1).clamp(min=0),
        use_cache=True,
        logits_to_keep=1,
        **{cache_arg: cache},
    )
    cache.batch_select_indices(row_to_prompt)
    return cache_arg, cache


def forward_parameters(model: Any) -> Any:
    """The parameters of the model's forward; a peft model's are those of the transformers model it wraps."""
    get_base_model = getattr(model, "get_base_model", None)
    base = get_base_model() if get_base_model is not None else model
    return inspect.signature(base.forward).parameters


def cache_argument(model: Any) -> str:
    """The forward's name for the key/value cache: `cache` in newer transformers, `past_key_values` before."""
    return "cache" if "cache" in forward_parameters(model) else "past_key_values"
