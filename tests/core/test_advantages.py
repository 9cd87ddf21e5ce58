"""group_advantages: GRPO (Eq. 2, unbiased std), Dr. GRPO, RLOO; zero-variance groups; validation."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from eapo.core import group_advantages, token_advantages

rewards_and_groups = st.tuples(
    st.integers(1, 4),  # groups
    st.integers(1, 6),  # G
    st.integers(0, 2**31 - 1),  # seed
    st.booleans(),  # binary rewards?
)


def draw_rewards(groups: int, group_size: int, seed: int, binary: bool) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    if binary:
        return torch.randint(0, 2, (groups * group_size,), generator=gen).float()
    return torch.randn(groups * group_size, generator=gen)


def test_grpo_uses_the_unbiased_std_like_verl_and_trl() -> None:
    # Group [1, 0, 0, 1]: mean 0.5; unbiased std sqrt((4 · 0.25) / 3) = 0.57735;
    # A = ±0.5 / 0.57735 = ±0.86603.
    adv, zero = group_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0]), 4)
    expected = 0.5 / (math.sqrt(1.0 / 3.0) + 1e-6)
    torch.testing.assert_close(adv, torch.tensor([expected, -expected, -expected, expected]))
    assert zero == 0


def test_dr_grpo_and_rloo_by_hand() -> None:
    rewards = torch.tensor([3.0, 1.0, 2.0])  # one group, mean 2
    dr, _ = group_advantages(rewards, 3, "dr_grpo")
    torch.testing.assert_close(dr, torch.tensor([1.0, -1.0, 0.0]))
    rloo, _ = group_advantages(rewards, 3, "rloo")
    # Leave-one-out baselines: (1+2)/2 = 1.5, (3+2)/2 = 2.5, (3+1)/2 = 2.
    torch.testing.assert_close(rloo, torch.tensor([1.5, -1.5, 0.0]))


@settings(max_examples=50, deadline=None)
@given(rewards_and_groups)
def test_properties(case: tuple[int, int, int, bool]) -> None:
    groups, group_size, seed, binary = case
    rewards = draw_rewards(groups, group_size, seed, binary)
    grouped = rewards.view(groups, group_size)
    constant = grouped.amax(dim=1) == grouped.amin(dim=1)
    for method in ("grpo", "dr_grpo", "rloo"):
        adv, zero = group_advantages(rewards, group_size, method)
        assert adv.shape == rewards.shape and bool(torch.isfinite(adv).all())
        assert zero == int(constant.sum())
        per_group = adv.view(groups, group_size)
        assert bool((per_group[constant] == 0).all()), "zero-variance groups must give exactly 0"
        torch.testing.assert_close(per_group.sum(dim=1), torch.zeros(groups), atol=1e-5, rtol=0)
        if method == "grpo" and group_size > 1:
            std = grouped.double().std(dim=1, keepdim=True)
            want = ((grouped.double() - grouped.double().mean(dim=1, keepdim=True)) / (std + 1e-6)).float()
            torch.testing.assert_close(per_group[~constant], want[~constant])
        if method == "rloo" and group_size > 1:
            for i in range(groups * group_size):
                g = i // group_size
                others = torch.cat([grouped[g, : i % group_size], grouped[g, i % group_size + 1 :]])
                expected = 0.0 if bool(constant[g]) else float(rewards[i] - others.mean())
                assert abs(float(adv[i]) - expected) < 1e-5


def test_single_response_groups_are_zero_variance() -> None:
    adv, zero = group_advantages(torch.tensor([1.0, 0.0, 0.5]), 1)
    assert adv.tolist() == [0.0, 0.0, 0.0] and zero == 3


def test_validation_names_the_values() -> None:
    with pytest.raises(ValueError, match=r"group_size 4 .* 6"):
        group_advantages(torch.zeros(6), 4)
    with pytest.raises(ValueError, match="'gae' is unknown; choose from grpo, dr_grpo, rloo"):
        group_advantages(torch.zeros(4), 2, "gae")
    with pytest.raises(ValueError, match=r"finite; got nan at index 1"):
        group_advantages(torch.tensor([0.0, float("nan")]), 2)
    with pytest.raises(ValueError, match="1-D"):
        group_advantages(torch.zeros(2, 2), 2)


def test_token_advantages_broadcasts_under_the_mask() -> None:
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]], dtype=torch.bool)
    out = token_advantages(torch.tensor([0.5, -2.0]), mask)
    assert out.tolist() == [[0.5, 0.5, 0.0], [-2.0, 0.0, 0.0]]
