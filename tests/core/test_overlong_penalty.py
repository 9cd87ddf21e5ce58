"""DAPO's soft overlong penalty (eapo.core.overlong_penalty): its values and its invariants."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from eapo.core import overlong_penalty


def test_zero_up_to_the_window_then_linear_down_to_minus_one() -> None:
    # L_max = 16, buffer 4: free up to 12 tokens, then −1/4 per token, −1 at 16 and beyond.
    lengths = torch.tensor([0, 12, 13, 14, 16, 20])
    penalty = overlong_penalty(lengths, max_new_tokens=16, buffer=4)
    assert penalty.dtype == torch.float32
    assert penalty.tolist() == [0.0, 0.0, -0.25, -0.5, -1.0, -1.0]


def test_a_buffer_of_zero_or_less_switches_it_off() -> None:
    lengths = torch.tensor([3, 16, 40])
    for buffer in (0, -1):
        penalty = overlong_penalty(lengths, max_new_tokens=16, buffer=buffer)
        assert penalty.dtype == torch.float32 and penalty.tolist() == [0.0, 0.0, 0.0]


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 64),
    st.integers(1, 64),
    st.lists(st.integers(0, 80), min_size=1, max_size=12),
)
def test_penalty_is_in_minus_one_to_zero_and_never_rewards_a_longer_response(
    max_new_tokens: int, buffer: int, lengths: list[int]
) -> None:
    ordered = torch.tensor(sorted(lengths))
    penalty = overlong_penalty(ordered, max_new_tokens, buffer)
    assert bool((penalty <= 0).all()) and bool((penalty >= -1).all())
    assert bool((penalty[1:] <= penalty[:-1]).all())  # monotone: longer is never better
    assert bool((penalty[ordered <= max_new_tokens - buffer] == 0).all())
    assert bool((penalty[ordered >= max_new_tokens] == -1).all())
