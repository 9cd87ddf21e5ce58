"""Every algorithm preset, on one hand-made batch: its shaped advantages and its per-token loss differ from
GRPO's exactly where the method says they should, and equal GRPO's everywhere else (issue #21, item 6).

The batch goes through the preset's own path, as `eapo train` runs it (step 4 and the loss of step 5):
rewards (+ DAPO's overlong penalty) -> `group_advantages` (PAPER.md Eq. 2) -> `token_advantages` ->
`shape_advantages` (the preset's shaper) -> `policy_loss` (its loss, clip, aggregation, entropy bonus).
A preset that silently equals GRPO, or changes tokens it should leave alone, fails here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch

from eapo.core import group_advantages, policy_loss, shape_advantages, token_advantages
from eapo.train.algorithms import ALGORITHMS, AlgoConfig, Algorithm, resolve_algorithm

G, T = 4, 6  # group size, response positions (= sampling.max_new_tokens)
# Group 0: two correct, two wrong; group 1: one wrong; group 2: all correct (zero variance: no signal).
CORRECT = torch.tensor([1, 0, 0, 1, 0, 1, 1, 1, 1, 1, 1, 1], dtype=torch.float32)
# Response lengths; row 5 (correct) fills all T positions, so DAPO's overlong penalty (buffer T // 4 = 1)
# takes its reward to 0. No other row is longer than T - buffer.
LENGTHS = torch.tensor([5, 3, 4, 5, 2, 6, 5, 4, 3, 4, 5, 2])
B = CORRECT.numel()
MASK = torch.arange(T)[None, :] < LENGTHS[:, None]
_INDEX = torch.arange(B * T, dtype=torch.float64).view(B, T)
# Distinct entropies in [0.05, 2.45] nats (7919 is prime to 97, so no two tokens tie).
ENTROPY = ((_INDEX * 7919) % 97 / 40 + 0.05).float()
# π_θ log-probs spread over [-5.25, -0.05] (Clip-Cov's covariance window needs |log π − mean| > 1), and
# ratios π_θ / π_old in {0.9, 0.95, 1.05, 1.1, 1.25}: inside GRPO's clip [0.8, 1.28], so GRPO clips nothing,
# while 1.25 is above Dr. GRPO's 1.2.
LOGPROBS = (-((_INDEX * 31) % 53) / 10 - 0.05).float()
RATIOS = torch.tensor([0.9, 1.1, 1.25, 0.95, 1.05])[(_INDEX.long() % 5)]
OLD_LOGPROBS = LOGPROBS - RATIOS.log()
# PAPER.md Eq. 2 by hand: group 0 rewards (1, 0, 0, 1): mean 0.5, unbiased std sqrt(1/3); group 1
# (0, 1, 1, 1): mean 0.75, std 0.5.
GRPO_ADVANTAGES = torch.tensor([0.5, -0.5, -0.5, 0.5, -1.5, 0.5, 0.5, 0.5, 0, 0, 0, 0]) / torch.tensor(
    [math.sqrt(1 / 3)] * 4 + [1.0] * 4 + [1.0] * 4
)
GRPO_ADVANTAGES[4:8] = torch.tensor([-0.75, 0.25, 0.25, 0.25]) / 0.5


@dataclass
class Outputs:
    advantages: torch.Tensor  # [B,T] GRPO-style token advantages of the preset's estimator (before shaping)
    shaped: torch.Tensor  # [B,T] after the preset's shaper
    per_token_loss: torch.Tensor  # [B,T] the preset's loss per token (before aggregation)
    loss: float


def run_preset(name: str, seed: int = 0) -> Outputs:
    """The preset's advantage, shaping and loss path on the fixed batch (the trainer's steps 4-5)."""
    algorithm = resolve_algorithm(AlgoConfig(name=name))
    torch.manual_seed(seed)  # the shuffled control and Clip-Cov draw from torch's global RNG, as in a step
    rewards = CORRECT.clone()
    buffer = algorithm.overlong_buffer if algorithm.overlong_buffer >= 0 else T // 4
    if buffer > 0:  # DAPO's soft overlong punishment: 0 up to T - buffer, then down to -1 at T
        rewards = rewards - ((LENGTHS.float() - (T - buffer)).clamp(min=0) / buffer).clamp(max=1.0)
    sequence = group_advantages(rewards, G, algorithm.advantage).advantages
    advantages = token_advantages(sequence, MASK)
    shaped = shape_advantages(algorithm.shaper, advantages, ENTROPY, MASK, G, **algorithm.shaper_params)
    loss, per_token, _ = policy_loss(
        LOGPROBS,
        OLD_LOGPROBS,
        shaped,
        MASK,
        loss_type=algorithm.loss,
        clip_low=algorithm.clip_low,
        clip_high=algorithm.clip_high,
        dual_clip=algorithm.dual_clip,
        kl_coef=algorithm.kl_coef,
        entropy=ENTROPY if algorithm.entropy_coef else None,
        entropy_coef=algorithm.entropy_coef,
        agg=algorithm.agg,
        num_tokens=int(MASK.sum()),
        num_seqs=B,
        **algorithm.loss_params,
    )
    return Outputs(advantages, shaped, per_token, float(loss))


@pytest.fixture(scope="module")
def grpo() -> Outputs:
    return run_preset("grpo")


def moved(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-6) -> torch.Tensor:
    """[B,T] bool: where two tensors differ."""
    return (a - b).abs() > atol


def group_mean_entropy() -> torch.Tensor:
    """[B,T] each token's group mean entropy µ_H over the group's valid tokens (PAPER.md Eq. 6)."""
    sums = torch.where(MASK, ENTROPY, 0.0).double().view(-1, G * T).sum(1)
    counts = MASK.view(-1, G * T).sum(1)
    return (sums / counts).repeat_interleave(G)[:, None].expand(B, T).float()


def assert_loss_moves_exactly_where_advantages_move(out: Outputs, grpo: Outputs) -> None:
    """Same PPO-clip, clip range and aggregation as GRPO and no clipping on this batch: the per-token loss
    −ρ·Â differs from GRPO's on exactly the tokens whose shaped advantage differs."""
    assert torch.equal(moved(out.per_token_loss, grpo.per_token_loss), moved(out.shaped, grpo.shaped))


# ---- one expectation per preset ----------------------------------------------------------------


def expect_grpo(out: Outputs, grpo: Outputs) -> None:
    # The reference itself, checked against Eq. 2 by hand rather than against itself.
    torch.testing.assert_close(
        out.shaped, torch.where(MASK, GRPO_ADVANTAGES[:, None], 0.0), atol=1e-5, rtol=0
    )
    expected_loss = torch.where(MASK, -out.shaped * RATIOS, 0.0)  # nothing clipped: −ρ·Â
    torch.testing.assert_close(out.per_token_loss, expected_loss, atol=1e-6, rtol=0)
    assert out.loss == pytest.approx(float(expected_loss.sum() / MASK.sum()), abs=1e-6)  # token-mean


def expect_dr_grpo(out: Outputs, grpo: Outputs) -> None:
    # Mean-centred, no std: group 0 ±0.5 (GRPO's × sqrt(1/3)), group 1 GRPO's × 0.5.
    centred = torch.tensor([0.5, -0.5, -0.5, 0.5, -0.75, 0.25, 0.25, 0.25, 0, 0, 0, 0])
    torch.testing.assert_close(out.shaped, torch.where(MASK, centred[:, None], 0.0), atol=1e-6, rtol=0)
    # Symmetric clip 0.2: positive-advantage tokens at ρ = 1.25 are clipped to 1.2, the rest are −ρ·Â.
    clipped = MASK & (RATIOS > 1.2) & (out.shaped > 0)
    assert int(clipped.sum()) > 0
    expected = torch.where(clipped, -out.shaped * 1.2, torch.where(MASK, -out.shaped * RATIOS, 0.0))
    torch.testing.assert_close(out.per_token_loss, expected, atol=1e-6, rtol=0)
    # seq_mean_token_sum_norm: each row's token sum over the budget T, averaged over rows.
    assert out.loss == pytest.approx(float((expected.sum(1) / T).mean()), abs=1e-6)


def expect_dapo(out: Outputs, grpo: Outputs) -> None:
    # Row 5's overlong penalty makes group 1's rewards (0, 0, 1, 1): only group 1's advantages move.
    changed_rows = moved(out.shaped, grpo.shaped).any(dim=1)
    assert changed_rows.tolist() == [False] * 4 + [True] * 4 + [False] * 4
    penalised = torch.tensor([-0.5, -0.5, 0.5, 0.5]) / math.sqrt(1 / 3)  # Eq. 2 on (0, 0, 1, 1)
    torch.testing.assert_close(out.shaped[4:8], torch.where(MASK[4:8], penalised[:, None], 0.0))
    assert_loss_moves_exactly_where_advantages_move(out, grpo)


def expect_w_reinf(out: Outputs, grpo: Outputs) -> None:
    positive = grpo.shaped > 0
    torch.testing.assert_close(out.shaped[positive], 0.1 * grpo.shaped[positive])
    torch.testing.assert_close(out.shaped[~positive], grpo.shaped[~positive])
    assert torch.equal(moved(out.shaped, grpo.shaped), positive)
    assert_loss_moves_exactly_where_advantages_move(out, grpo)


def expect_entro_reg(out: Outputs, grpo: Outputs) -> None:
    # Same advantages; the loss gets −0.001·H on every valid token (the entropy bonus).
    torch.testing.assert_close(out.shaped, grpo.shaped, atol=0, rtol=0)
    bonus = torch.where(MASK, 0.001 * ENTROPY, 0.0)
    torch.testing.assert_close(out.per_token_loss, grpo.per_token_loss - bonus, atol=1e-7, rtol=0)
    assert torch.equal(moved(out.per_token_loss, grpo.per_token_loss, atol=1e-5), MASK)


def expect_forking(out: Outputs, grpo: Outputs) -> None:
    # GRPO's advantage on the top 20% entropy tokens of the batch (k = ceil(0.2 N)), 0 elsewhere.
    k = math.ceil(0.2 * int(MASK.sum()))
    cut = ENTROPY[MASK].sort(descending=True).values[k - 1]
    top = MASK & (cut <= ENTROPY)
    assert int(top.sum()) == k
    torch.testing.assert_close(out.shaped, torch.where(top, grpo.shaped, 0.0), atol=0, rtol=0)
    assert bool(moved(out.shaped, grpo.shaped)[MASK & ~top & (grpo.shaped != 0)].all())
    assert_loss_moves_exactly_where_advantages_move(out, grpo)


def expect_entro_adv(out: Outputs, grpo: Outputs) -> None:
    # Â + min(α·H, |Â|/κ), α = 0.4, κ = 2, on tokens with Â ≠ 0; the bonus is positive for either sign.
    signal = MASK & (grpo.shaped != 0)
    bonus = torch.minimum(0.4 * ENTROPY, grpo.shaped.abs() / 2)
    torch.testing.assert_close(out.shaped, torch.where(signal, grpo.shaped + bonus, 0.0), atol=1e-6, rtol=0)
    assert torch.equal(moved(out.shaped, grpo.shaped), signal)
    assert_loss_moves_exactly_where_advantages_move(out, grpo)


def expect_kl_cov(out: Outputs, grpo: Outputs) -> None:
    # Same advantages; the unclipped surrogate equals GRPO's (nothing clipped here) except on the one
    # token (max(1, ⌊0.0002 N⌋) = 1) with the largest centred covariance, which pays + |log ρ|.
    torch.testing.assert_close(out.shaped, grpo.shaped, atol=0, rtol=0)
    valid = MASK
    adv, logp = out.shaped.double(), LOGPROBS.double()
    covariance = (adv - adv[valid].mean()) * (logp - logp[valid].mean())
    top = torch.where(valid, covariance, -torch.inf).flatten().argmax()
    expected = torch.zeros(B * T, dtype=torch.bool)
    expected[top] = True
    assert torch.equal(moved(out.per_token_loss, grpo.per_token_loss).flatten(), expected)
    delta = (out.per_token_loss - grpo.per_token_loss).flatten()[top]
    assert float(delta) == pytest.approx(float(RATIOS.log().abs().flatten()[top]), abs=1e-6)


def expect_clip_cov(out: Outputs, grpo: Outputs) -> None:
    # Same advantages; one token (max(1, ⌊0.0002 N⌋) = 1) whose centred covariance lies in (1, 5) loses its
    # loss (detached), every other token's loss is GRPO's.
    torch.testing.assert_close(out.shaped, grpo.shaped, atol=0, rtol=0)
    adv, logp = out.shaped.double(), LOGPROBS.double()
    covariance = (adv - adv[MASK].mean()) * (logp - logp[MASK].mean())
    candidates = MASK & (covariance > 1) & (covariance < 5)
    changed = moved(out.per_token_loss, grpo.per_token_loss)
    assert int(changed.sum()) == 1 and bool(candidates[changed].all())
    assert float(out.per_token_loss[changed]) == 0.0


def expect_gtpo(out: Outputs, grpo: Outputs) -> None:
    # Tokens without signal stay 0; at one position of one group, a correct response's token gets more
    # credit the higher its entropy (Eq. 3) and a wrong one's more blame the lower its entropy (Eq. 5).
    assert bool((out.shaped[~MASK | (grpo.shaped == 0)] == 0).all())
    assert bool(moved(out.shaped, grpo.shaped)[MASK & (grpo.shaped != 0)].any())
    pairs = 0
    for group in range(B // G):
        rows = range(group * G, group * G + G)
        for t in range(T):
            for polarity in (1, -1):
                same = [r for r in rows if MASK[r, t] and polarity * grpo.shaped[r, t] > 0]
                for i in same:
                    for j in same:
                        if ENTROPY[i, t] > ENTROPY[j, t]:
                            pairs += 1
                            assert out.shaped[i, t] > out.shaped[j, t]
    assert pairs >= 4
    assert_loss_moves_exactly_where_advantages_move(out, grpo)


def expect_eapo(out: Outputs, grpo: Outputs) -> None:
    # PAPER.md Eq. 6-7 by hand: Â + α·sign(Â)·clip(z(H), ±|Â|/φ), z by the group's µ_H and population σ_H.
    mean = group_mean_entropy()
    centred = torch.where(MASK, ENTROPY - mean, 0.0).double().view(-1, G * T)
    std = (centred.square().sum(1) / MASK.view(-1, G * T).sum(1)).sqrt().repeat_interleave(G)[:, None]
    z = ((ENTROPY - mean).double() / std).float()
    bound = grpo.shaped.abs() / 2.0
    expected = grpo.shaped + 0.2 * grpo.shaped.sign() * torch.maximum(torch.minimum(z, bound), -bound)
    torch.testing.assert_close(out.shaped, torch.where(MASK, expected, 0.0), atol=1e-6, rtol=0)
    # The sign is kept; |Â^CA| grows above the group's mean entropy and shrinks below it.
    signal = MASK & (grpo.shaped != 0)
    assert torch.equal(out.shaped.sign(), grpo.shaped.sign())
    assert torch.equal(out.shaped.abs() > grpo.shaped.abs(), signal & (mean < ENTROPY))
    assert torch.equal(out.shaped.abs() < grpo.shaped.abs(), signal & (mean > ENTROPY))
    assert_loss_moves_exactly_where_advantages_move(out, grpo)


def expect_eapo_shuffled(out: Outputs, grpo: Outputs) -> None:
    # EAPO's terms, dealt to other tokens of the group: in group 0 (every |Â| equal, so every clip bound
    # equal) the multiset of sign(Â)·(Â^CA − Â) is EAPO's, but token by token it is not.
    eapo = run_preset("eapo")
    group = slice(0, G)
    valid = MASK[group]
    term = ((out.shaped - grpo.shaped) * grpo.shaped.sign())[group][valid]
    eapo_term = ((eapo.shaped - grpo.shaped) * grpo.shaped.sign())[group][valid]
    torch.testing.assert_close(term.sort().values, eapo_term.sort().values, atol=1e-6, rtol=0)
    assert bool(moved(out.shaped[group], eapo.shaped[group])[valid].any())
    assert torch.equal(out.shaped.sign(), grpo.shaped.sign())
    assert_loss_moves_exactly_where_advantages_move(out, grpo)


def expect_quadrant(out: Outputs, grpo: Outputs) -> None:
    # The preset isolates PHR: positive Â and H ≥ the group's mean entropy keep GRPO's advantage, the
    # rest get 0 (PAPER.md §4.2).
    phr = MASK & (grpo.shaped > 0) & (group_mean_entropy() <= ENTROPY)
    assert 0 < int(phr.sum()) < int((MASK & (grpo.shaped > 0)).sum())
    torch.testing.assert_close(out.shaped, torch.where(phr, grpo.shaped, 0.0), atol=0, rtol=0)
    assert_loss_moves_exactly_where_advantages_move(out, grpo)


EXPECTATIONS: dict[str, Callable[[Outputs, Outputs], None]] = {
    "grpo": expect_grpo,
    "dr_grpo": expect_dr_grpo,
    "dapo": expect_dapo,
    "w_reinf": expect_w_reinf,
    "entro_reg": expect_entro_reg,
    "forking": expect_forking,
    "entro_adv": expect_entro_adv,
    "kl_cov": expect_kl_cov,
    "clip_cov": expect_clip_cov,
    "gtpo": expect_gtpo,
    "eapo": expect_eapo,
    "eapo_shuffled": expect_eapo_shuffled,
    "quadrant": expect_quadrant,
}


def test_every_preset_has_an_expectation() -> None:
    assert set(EXPECTATIONS) == set(ALGORITHMS)


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_preset_moves_grpo_where_its_method_says(name: str, grpo: Outputs) -> None:
    out = run_preset(name)
    EXPECTATIONS[name](out, grpo)
    if name != "grpo":  # no preset may be GRPO in disguise
        assert bool(moved(out.per_token_loss, grpo.per_token_loss).any()) or out.loss != grpo.loss


def test_zero_variance_group_gets_no_credit_in_any_preset() -> None:
    """Group 2 (all correct) has Â = 0: every shaper leaves it at 0 (no preset invents a signal)."""
    for name in ALGORITHMS:
        assert bool((run_preset(name).shaped[2 * G :] == 0).all()), name


def test_presets_are_what_the_descriptions_say() -> None:
    """The resolved settings behind the behaviour above (clip range, aggregation, estimator, shaper)."""
    resolved: dict[str, Algorithm] = {name: resolve_algorithm(AlgoConfig(name=name)) for name in ALGORITHMS}
    assert (resolved["grpo"].clip_low, resolved["grpo"].clip_high, resolved["grpo"].agg) == (
        0.2,
        0.28,
        "token_mean",
    )
    assert (resolved["dr_grpo"].advantage, resolved["dr_grpo"].clip_high) == ("dr_grpo", 0.2)
    assert resolved["eapo"].shaper_params == {"alpha": 0.2, "phi": 2.0}
    assert resolved["quadrant"].shaper_params == {"mode": "isolate", "quadrants": ["PHR"]}
