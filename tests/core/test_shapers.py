"""Advantage shapers: EAPO (PAPER.md Eq. 6-7) by hand and by property, the baselines, the registry."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from eapo.core import QUADRANTS, SHAPERS, eapo_advantages, quadrant_masks, shape_advantages
from eapo.core.shapers import grpo_advantages, register_shaper

from .helpers import Batch, batches

EXPECTED_SHAPERS = {"grpo", "eapo", "eapo_shuffled", "forking", "entro_adv", "w_reinf", "gtpo", "quadrant"}


def test_eapo_worked_example_by_hand() -> None:
    """Three groups of G = 2, T = 3 (α = 0.2, φ = 2), every number worked out below.

    Group 1 (rows 0-1): valid entropies {1, 3, 3 | 1} (row 1 has one valid token).
        µ_H = 8/4 = 2;  σ_H = sqrt(((−1)² + 1² + 1² + (−1)²)/4) = 1 (population std).
        z = (H − 2)/1: row 0 → [−1, +1, +1], row 1 → [−1].
        row 0: Â = +0.8, bound |Â|/φ = 0.4 → scores clip(z) = [−0.4, +0.4, +0.4]
               Â^CA = 0.8 + 0.2·(+1)·score = [0.72, 0.88, 0.88]
        row 1: Â = −0.8, bound 0.4 → score clip(−1) = −0.4
               Â^CA = −0.8 + 0.2·(−1)·(−0.4) = −0.72  (a low-entropy token of a wrong answer: less blame)
    Group 2 (rows 2-3): valid entropies {1, 2 | 2, 1}.
        µ_H = 6/4 = 1.5;  σ_H = sqrt(4 · 0.25 / 4) = 0.5.  z: row 2 → [−1, +1], row 3 → [+1, −1].
        row 2: Â = +3.0, bound 1.5 → scores unclipped [−1, +1] → Â^CA = 3 + 0.2·[−1, +1] = [2.8, 3.2]
        row 3: Â = −1.0, bound 0.5 → scores [+0.5, −0.5] → Â^CA = −1 − 0.2·[0.5, −0.5] = [−1.1, −0.9]
    Group 3 (rows 4-5): valid entropies all 0.7 → σ_H = 0 → score 0 → Â^CA = Â = [0.5, 0.5, 0.5 | −0.5].
    Masked positions (entropy 9.0 there is ignored) stay 0.
    """
    advantages = torch.tensor([[0.8] * 3, [-0.8] * 3, [3.0] * 3, [-1.0] * 3, [0.5] * 3, [-0.5] * 3])
    entropy = torch.tensor(
        [
            [1.0, 3.0, 3.0],
            [1.0, 9.0, 9.0],
            [1.0, 2.0, 9.0],
            [2.0, 1.0, 9.0],
            [0.7, 0.7, 0.7],
            [0.7, 9.0, 9.0],
        ]
    )
    mask = torch.tensor(
        [[1, 1, 1], [1, 0, 0], [1, 1, 0], [1, 1, 0], [1, 1, 1], [1, 0, 0]],
        dtype=torch.bool,
    )
    expected = torch.tensor(
        [
            [0.72, 0.88, 0.88],
            [-0.72, 0.0, 0.0],
            [2.8, 3.2, 0.0],
            [-1.1, -0.9, 0.0],
            [0.5, 0.5, 0.5],
            [-0.5, 0.0, 0.0],
        ]
    )
    got = eapo_advantages(advantages * mask, entropy, mask, 2, alpha=0.2, phi=2.0)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(shape_advantages("eapo", advantages * mask, entropy, mask, 2), got)


@settings(max_examples=50, deadline=None)
@given(batches())
def test_every_shaper_is_finite_masked_and_detached(batch: Batch) -> None:
    entropy = batch.entropy.clone().requires_grad_()
    for name in SHAPERS:
        out = shape_advantages(name, batch.advantages, entropy, batch.mask, batch.group_size)
        assert out.shape == batch.mask.shape and out.dtype == torch.float32
        assert bool(torch.isfinite(out).all()), name
        assert bool((out[~batch.mask] == 0).all()), name
        assert not out.requires_grad, name


@settings(max_examples=50, deadline=None)
@given(batches())
def test_zero_advantage_stays_zero(batch: Batch) -> None:
    zero = batch.mask & (batch.advantages == 0)
    for name in SHAPERS:
        out = shape_advantages(name, batch.advantages, batch.entropy, batch.mask, batch.group_size)
        assert bool((out[zero] == 0).all()), name


@settings(max_examples=50, deadline=None)
@given(batches())
def test_eapo_with_alpha_zero_is_grpo(batch: Batch) -> None:
    # Bit for bit, not just close: the controls grid's α = 0 arm reads the grpo arm's runs (Arm.runs_of).
    args = (batch.advantages, batch.entropy, batch.mask, batch.group_size)
    for phi in (1.0, 2.0):
        assert torch.equal(eapo_advantages(*args, alpha=0.0, phi=phi), grpo_advantages(*args))


@settings(max_examples=50, deadline=None)
@given(batches(), st.floats(0.0, 1.0), st.floats(1.0, 4.0))
def test_eapo_keeps_the_sign_and_stays_within_the_bound(batch: Batch, alpha: float, phi: float) -> None:
    # PAPER.md §5: |Â^CA| ∈ |Â|·[1 − α/φ, 1 + α/φ]; with α ≤ 1 ≤ φ the sign of Â is kept.
    a = batch.advantages
    out = eapo_advantages(a, batch.entropy, batch.mask, batch.group_size, alpha=alpha, phi=phi)
    tol = 1e-6 * (1.0 + a.abs())
    assert bool((torch.sign(out) == torch.sign(a)).all() | (alpha == phi))
    assert bool((out.abs() >= a.abs() * (1 - alpha / phi) - tol).all())
    assert bool((out.abs() <= a.abs() * (1 + alpha / phi) + tol).all())


@settings(max_examples=30, deadline=None)
@given(batches())
def test_eapo_moves_credit_toward_above_mean_entropy(batch: Batch) -> None:
    # Above the group's mean entropy |Â^CA| ≥ |Â|, below it ≤ (PAPER.md §5 "consequences").
    out = eapo_advantages(batch.advantages, batch.entropy, batch.mask, batch.group_size)
    high = quadrant_masks(batch.advantages, batch.entropy, batch.mask, batch.group_size)
    above = high["PHR"] | high["NHR"]
    below = (high["PLR"] | high["NLR"]) & batch.mask
    a = batch.advantages.abs()
    assert bool((out.abs()[above] >= a[above] - 1e-6).all())
    assert bool((out.abs()[below] <= a[below] + 1e-6).all())


def test_eapo_constant_entropy_group_and_validation() -> None:
    adv = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
    mask = torch.ones(2, 2, dtype=torch.bool)
    assert eapo_advantages(adv, torch.full((2, 2), 0.3), mask, 2).tolist() == adv.tolist()
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        eapo_advantages(adv, adv.abs(), mask, 2, alpha=-0.1)
    with pytest.raises(ValueError, match="phi must be > 0"):
        eapo_advantages(adv, adv.abs(), mask, 2, phi=0.0)


def test_entro_adv_adds_a_positive_capped_bonus() -> None:
    # ψ = min(α·H, |Â|/κ) with α = 0.4, κ = 2: H = 0.5 → 0.2; H = 5 → min(2, 0.5) = 0.5 (cap, |Â| = 1).
    adv = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
    entropy = torch.tensor([[0.5, 5.0], [0.5, 5.0]])
    out = shape_advantages("entro_adv", adv, entropy, torch.ones(2, 2), 2)
    torch.testing.assert_close(out, torch.tensor([[1.2, 1.5], [-0.8, -0.5]]))


def test_w_reinf_scales_only_positive_advantages() -> None:
    adv = torch.tensor([[2.0, 2.0], [-1.0, -1.0]])
    out = shape_advantages("w_reinf", adv, torch.ones(2, 2), torch.ones(2, 2), 2)
    torch.testing.assert_close(out, torch.tensor([[0.2, 0.2], [-1.0, -1.0]]))
    out = shape_advantages("w_reinf", adv, torch.ones(2, 2), torch.ones(2, 2), 2, positive_weight=0.5)
    torch.testing.assert_close(out, torch.tensor([[1.0, 1.0], [-1.0, -1.0]]))


def test_forking_keeps_the_top_fifth_of_the_batch() -> None:
    # 10 valid tokens with distinct entropies: the top ceil(0.2 · 10) = 2 keep their advantage.
    entropy = torch.arange(12, dtype=torch.float32).view(2, 6)
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1, 4:] = False  # entropies 10 and 11 are padding
    adv = torch.tensor([[1.0] * 6, [-1.0] * 6]) * mask
    out = shape_advantages("forking", adv, entropy, mask, 2)
    kept = (out != 0).nonzero().tolist()
    assert kept == [[1, 2], [1, 3]]  # entropies 9 and 8


def test_gtpo_by_hand_and_its_entropy_ordering() -> None:
    # One correct and one incorrect response, T = 2, equal entropies: d_t = h_t = 1, so
    # r̃⁺ = α₁ + α₂ = 1.1 on the correct row (0 on the other), r̃⁻ = −1.1 on the incorrect row.
    # Over the group's 4 tokens: mean R̃⁺ = 0.55, population std 0.55 → Ã⁺ = 0.55 / (0.55 + 1e-6);
    # symmetrically Ã⁻ = −0.55 / (0.55 + 1e-6).
    adv = torch.tensor([[0.7, 0.7], [-0.7, -0.7]])
    mask = torch.ones(2, 2, dtype=torch.bool)
    out = shape_advantages("gtpo", adv, torch.ones(2, 2), mask, 2)
    one = 0.55 / (0.55 + 1e-6)
    torch.testing.assert_close(out, torch.tensor([[one, one], [-one, -one]]))
    # Two correct and two incorrect rows: at each position the higher-entropy correct token earns more,
    # the lower-entropy (confident) incorrect token is blamed more.
    adv = torch.tensor([[1.0] * 2, [1.0] * 2, [-1.0] * 2, [-1.0] * 2])
    entropy = torch.tensor([[3.0, 1.0], [1.0, 3.0], [0.5, 2.0], [2.0, 0.5]])
    out = shape_advantages("gtpo", adv, entropy, torch.ones(4, 2), 4)
    assert out[0, 0] > out[1, 0] and out[1, 1] > out[0, 1]
    assert out[2, 0] < out[3, 0] and out[3, 1] < out[2, 1]
    assert bool((out[:2] > 0).all()) and bool((out[2:] < 0).all())


@settings(max_examples=30, deadline=None)
@given(batches())
def test_quadrant_modes_recompose_grpo(batch: Batch) -> None:
    args = (batch.advantages, batch.entropy, batch.mask, batch.group_size)
    isolated = [shape_advantages("quadrant", *args, mode="isolate", quadrants=(q,)) for q in QUADRANTS]
    # §4.2: the four single-quadrant advantages sum to GRPO's.
    torch.testing.assert_close(sum(isolated), batch.advantages)
    for q, only in zip(QUADRANTS, isolated, strict=True):
        dropped = shape_advantages("quadrant", *args, mode="drop", quadrants=[q])
        torch.testing.assert_close(only + dropped, batch.advantages)
    # Table 3: EAPO without every quadrant is GRPO; without PHR it is EAPO outside PHR and GRPO inside.
    assert torch.equal(
        shape_advantages("quadrant", *args, mode="eapo_without", quadrants=QUADRANTS), batch.advantages
    )
    without_phr = shape_advantages("quadrant", *args, mode="eapo_without", quadrants="PHR")
    phr = quadrant_masks(*args)["PHR"]
    eapo = eapo_advantages(*args)
    torch.testing.assert_close(without_phr, torch.where(phr, batch.advantages, eapo))


def test_registry_and_errors() -> None:
    assert set(SHAPERS) == EXPECTED_SHAPERS
    adv, ent, mask = torch.ones(2, 2), torch.ones(2, 2), torch.ones(2, 2)
    unknown = "'nope' is unknown; choose from eapo, eapo_shuffled, entro_adv, forking"
    with pytest.raises(ValueError, match=unknown):
        shape_advantages("nope", adv, ent, mask, 2)
    with pytest.raises(ValueError, match=r"unknown parameter.*beta; valid: alpha, phi"):
        shape_advantages("eapo", adv, ent, mask, 2, beta=1.0)
    with pytest.raises(ValueError, match="valid: none"):
        shape_advantages("grpo", adv, ent, mask, 2, alpha=0.1)
    with pytest.raises(ValueError, match="quadrants must name one or more of PHR, PLR, NHR, NLR"):
        shape_advantages("quadrant", adv, ent, mask, 2, quadrants=["PHX"])
    with pytest.raises(ValueError, match="quadrant mode 'keep' is unknown"):
        shape_advantages("quadrant", adv, ent, mask, 2, mode="keep")
    with pytest.raises(ValueError, match="group_size 3"):
        shape_advantages("grpo", adv, ent, mask, 3)
    with pytest.raises(ValueError, match="top_fraction must be > 0"):
        shape_advantages("forking", adv, ent, mask, 2, top_fraction=0.0)
    with pytest.raises(ValueError, match="already registered"):
        register_shaper("grpo")(SHAPERS["grpo"])


def test_sequence_advantages_are_broadcast() -> None:
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]], dtype=torch.bool)
    out = shape_advantages("grpo", torch.tensor([1.0, -1.0]), torch.ones(2, 3), mask, 2)
    assert out.tolist() == [[1.0, 1.0, 0.0], [-1.0, 0.0, 0.0]]
    assert math.isclose(float(out.sum()), 1.0)


@settings(max_examples=50, deadline=None)
@given(batches(), st.integers(0, 1000))
def test_eapo_shuffled_is_eapo_on_a_within_group_permutation(batch: Batch, seed: int) -> None:
    """The negative control: each group keeps its entropy multiset (so µ_H, σ_H and the distribution of the
    shaping term), only the token each value sits on changes; reproducible from its seed."""
    from eapo.core.shapers import shuffle_within_groups

    args = (batch.advantages, batch.entropy, batch.mask, batch.group_size)
    shuffled = shuffle_within_groups(
        batch.entropy, batch.mask, batch.group_size, torch.Generator().manual_seed(seed)
    )
    G = batch.group_size
    for start in range(0, batch.mask.shape[0], G):
        rows = slice(start, start + G)
        before = batch.entropy[rows][batch.mask[rows]].sort().values
        after = shuffled[rows][batch.mask[rows]].sort().values
        assert torch.equal(before, after)
    assert torch.equal(shuffled[~batch.mask], batch.entropy[~batch.mask])
    got = shape_advantages("eapo_shuffled", *args, seed=seed)
    want = eapo_advantages(batch.advantages, shuffled, batch.mask, G)
    assert torch.equal(got, want)
    assert torch.equal(got, shape_advantages("eapo_shuffled", *args, seed=seed))
    # Same bound as EAPO (PAPER.md §5), since only which token gets which entropy changed.
    a = batch.advantages.abs()
    assert bool((got.abs() <= a * 1.1 + 1e-6).all()) and bool((got.abs() >= a * 0.9 - 1e-6).all())


def test_eapo_shuffled_breaks_the_link_to_the_token_entropy() -> None:
    """On one large group with distinct entropies, shuffling moves credit off the high-entropy tokens."""
    gen = torch.Generator().manual_seed(0)
    entropy = torch.rand(8, 50, generator=gen) * 3
    advantages = torch.tensor([1.0, -1.0] * 4)[:, None].expand(8, 50).contiguous()
    mask = torch.ones(8, 50, dtype=torch.bool)
    eapo = eapo_advantages(advantages, entropy, mask, 8)
    shuffled = shape_advantages("eapo_shuffled", advantages, entropy, mask, 8, seed=1)
    high = entropy > entropy.mean()
    positive = advantages > 0
    # EAPO: every above-mean-entropy token of a correct answer gets at least its Â; shuffled: about half.
    assert bool((eapo[high & positive] >= 1.0).all())
    share = float((shuffled[high & positive] >= 1.0).float().mean())
    assert 0.3 < share < 0.7


@settings(max_examples=50, deadline=None)
@given(batches(), st.sampled_from(QUADRANTS), st.integers(0, 1000))
def test_random_isolate_matches_each_quadrants_count_and_polarity(
    batch: Batch, quadrant: str, seed: int
) -> None:
    args = (batch.advantages, batch.entropy, batch.mask, batch.group_size)
    masks = quadrant_masks(*args)
    isolated = shape_advantages("quadrant", *args, mode="isolate", quadrants=[quadrant])
    random = shape_advantages("quadrant", *args, mode="random_isolate", quadrants=[quadrant], seed=seed)
    kept = random != 0
    same_polarity = masks[quadrant[0] + "HR"] | masks[quadrant[0] + "LR"]
    assert bool((kept <= same_polarity).all()), "random tokens must have the quadrant's polarity"
    torch.testing.assert_close(random[kept], batch.advantages[kept])  # GRPO's advantage, unchanged
    G = batch.group_size
    for start in range(0, batch.mask.shape[0], G):
        rows = slice(start, start + G)
        assert int(kept[rows].sum()) == int((isolated[rows] != 0).sum())
    assert torch.equal(
        random, shape_advantages("quadrant", *args, mode="random_isolate", quadrants=[quadrant], seed=seed)
    )


def test_random_isolate_draws_from_both_entropy_levels() -> None:
    """A quadrant's random control is not the quadrant: over a large group it mixes high and low entropy."""
    gen = torch.Generator().manual_seed(3)
    entropy = torch.rand(8, 60, generator=gen) * 3
    advantages = torch.tensor([1.0, -1.0] * 4)[:, None].expand(8, 60).contiguous()
    mask = torch.ones(8, 60, dtype=torch.bool)
    masks = quadrant_masks(advantages, entropy, mask, 8)
    random = shape_advantages(
        "quadrant", advantages, entropy, mask, 8, mode="random_isolate", quadrants="PHR", seed=0
    )
    kept = random != 0
    assert int(kept.sum()) == int(masks["PHR"].sum())
    assert 0.25 < float((kept & masks["PLR"]).sum()) / float(kept.sum()) < 0.75
