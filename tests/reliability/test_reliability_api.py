"""The library API refuses arguments that would give a silent NaN, a silent cast or a silent broadcast.

Every `eapo.core` entry point raises ValueError naming the argument and what was expected (issue #20, class
7); valid inputs give the same numbers as before (tests/core).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch

from eapo.core import (
    SHAPERS,
    agg_loss,
    group_advantages,
    logit_grad_norm,
    pass_at_k,
    quadrant_stats,
    shape_advantages,
    token_logprobs_and_entropy,
)

B, T, G = 4, 3, 2


def _batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    advantages = torch.tensor([1.0, -1.0, 0.5, -0.5])[:, None].expand(B, T).clone()
    entropy = torch.rand(B, T, generator=torch.Generator().manual_seed(0)) + 0.1
    mask = torch.ones(B, T, dtype=torch.bool)
    return advantages, entropy, mask


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("shaper", sorted(SHAPERS))
def test_a_non_finite_entropy_is_refused_by_every_shaper(shaper: str, bad: float) -> None:
    advantages, entropy, mask = _batch()
    entropy[1, 2] = bad
    with pytest.raises(ValueError, match=r"entropy must be finite .* index \(1, 2\)"):
        shape_advantages(shaper, advantages, entropy, mask, G)


def test_a_non_finite_entropy_at_a_masked_position_is_ignored() -> None:
    advantages, entropy, mask = _batch()
    clean = shape_advantages("eapo", advantages, entropy, mask, G)
    entropy[1, 2] = math.nan
    mask[1, 2] = False
    shaped = shape_advantages("eapo", advantages, entropy, mask, G)
    assert torch.isfinite(shaped).all()
    assert torch.equal(shaped[2:], clean[2:])  # the other group is untouched


def _rewards() -> torch.Tensor:
    return torch.tensor([1.0, 0.0, 1.0, 1.0])


def _logits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return torch.randn(B, T, 5), torch.zeros(B, T, dtype=torch.long), torch.ones(B, T)


# (case id, call, the fragment of the ValueError)
CASES: list[tuple[str, Callable[[], Any], str]] = [
    (
        "group_advantages_eps_nan",
        lambda: group_advantages(_rewards(), G, eps=math.nan),
        "eps must be a finite",
    ),
    (
        "group_advantages_eps_inf",
        lambda: group_advantages(_rewards(), G, eps=math.inf),
        "eps must be a finite",
    ),
    (
        "group_advantages_float_group",
        lambda: group_advantages(_rewards(), 2.0),  # type: ignore[arg-type]  # the error path
        "group_size must be an integer",
    ),
    (
        "agg_loss_num_tokens_nan",
        lambda: agg_loss(torch.ones(B, T), torch.ones(B, T), num_tokens=math.nan),
        "num_tokens must be a finite number",
    ),
    (
        "agg_loss_num_seqs_inf",
        lambda: agg_loss(torch.ones(B, T), torch.ones(B, T), "seq_mean_token_mean", num_seqs=math.inf),
        "num_seqs must be a finite number",
    ),
    (
        "agg_loss_max_len_float",
        lambda: agg_loss(torch.ones(B, T), torch.ones(B, T), "seq_mean_token_sum_norm", max_len=2.5),  # type: ignore[arg-type]  # the error path
        "max_len must be an integer",
    ),
    (
        "quadrant_stats_logprobs_shape",
        lambda: quadrant_stats(*_batch(), G, logprobs=torch.zeros(B, 1), sum_sq_probs=torch.zeros(B, T)),
        "logprobs must have the shape of advantages",
    ),
    (
        "quadrant_stats_loss_shape",
        lambda: quadrant_stats(*_batch(), G, per_token_loss=torch.zeros(1, T)),
        "per_token_loss must have the shape of advantages",
    ),
    (
        "logit_grad_norm_shape",
        lambda: logit_grad_norm(torch.ones(B, 1), torch.zeros(B, T), torch.zeros(B, T)),
        "logprobs must have the shape of advantages",
    ),
    ("pass_at_k_float_n", lambda: pass_at_k(8.9, 3, 1), "n must hold integers; got 8.9"),
    ("pass_at_k_float_c", lambda: pass_at_k(8, [2.5, 3], 1), "c must hold integers; got 2.5"),
    ("pass_at_k_nan_c", lambda: pass_at_k(8, math.nan, 1), "c must hold integers"),
    (
        "float_token_ids",
        lambda: token_logprobs_and_entropy(_logits()[0], _logits()[1].float() + 0.7, _logits()[2]),
        "tokens must hold integer token ids",
    ),
]


@pytest.mark.parametrize(("call", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_argument_is_a_value_error_naming_it(call: Callable[[], Any], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        call()


def test_whole_number_floats_are_still_accepted_where_they_are_exact() -> None:
    assert pass_at_k(8.0, 3, 1) == pass_at_k(8, 3, 1)
    loss = agg_loss(torch.ones(B, T), torch.ones(B, T), num_tokens=torch.tensor(6.0))
    assert float(loss) == 2.0
