"""Fuzzing the two places where untrusted numbers and strings enter eapo.

1. The trainer's math path as one chain, on random shapes, masks, dtypes (bf16 included) and extreme
   logits: token_logprobs_and_entropy -> group_advantages -> every shaper -> quadrant_stats -> every policy
   loss and aggregation -> backward. Everything finite. (tests/core fuzzes each function on its own.)
2. Scoring model output: `score_completions` (extraction + verifier, the built-in ones and math-verify in
   its worker) on random and adversarial completions. Never raises, rewards are 0 or 1, a correct answer
   at the end still scores 1, and it returns in bounded time. (tests/tasks fuzzes `extract_answer` alone.)
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eapo.core import (
    AGG_MODES,
    POLICY_LOSSES,
    SHAPERS,
    group_advantages,
    policy_loss,
    quadrant_stats,
    shape_advantages,
    token_advantages,
    token_logprobs_and_entropy,
)
from eapo.tasks import Problem, Task, TaskConfig, score_completions

# Shaper parameters beyond the defaults that the trainer can be configured with.
SHAPER_VARIANTS: list[tuple[str, dict[str, object]]] = [
    *((name, {}) for name in sorted(SHAPERS)),
    ("eapo", {"alpha": 1.0, "phi": 0.5}),
    ("forking", {"top_fraction": 1.0}),
    ("quadrant", {"mode": "drop", "quadrants": ["NLR"], "threshold": ["batch_quantile", 0.2]}),
    ("quadrant", {"mode": "eapo_without", "quadrants": ["PHR", "NHR"], "threshold": 0.5}),
]


@dataclass
class MathInputs:
    logits: torch.Tensor  # [B,T,V] in its dtype
    tokens: torch.Tensor  # [B,T]
    mask: torch.Tensor  # [B,T] bool
    rewards: torch.Tensor  # [B]
    old_shift: torch.Tensor  # [B,T]: log π_old − log π_θ, so the importance ratio is not 1
    group_size: int
    advantage: str


@st.composite
def math_inputs(draw: st.DrawFn) -> MathInputs:
    groups, group_size = draw(st.integers(1, 3)), draw(st.integers(2, 4))
    rows, length, vocab = groups * group_size, draw(st.integers(1, 6)), draw(st.integers(2, 12))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    scale = draw(st.sampled_from([1.0, 30.0, 1e4, 1e30]))
    logits = torch.randn(rows, length, vocab, generator=gen) * scale
    tokens = torch.randint(vocab, (rows, length), generator=gen)
    kind = draw(st.sampled_from(["random", "one_hot", "ties", "banned"]))
    if kind == "one_hot":  # a near-deterministic policy: π_y ~ 1 or ~ 0, entropy ~ 0
        logits = torch.full_like(logits, -scale).scatter(-1, tokens[..., None], scale)
    elif kind == "ties":
        logits = torch.full_like(logits, scale)
    elif kind == "banned":  # a −inf (banned) vocabulary entry that the sampled token never is
        logits[..., 0] = -float("inf")
        tokens = tokens.clamp(min=1)
    if draw(st.booleans()):  # response masks as rollouts make them: a prefix of each row
        lengths = torch.randint(0, length + 1, (rows,), generator=gen)
        mask = torch.arange(length)[None, :] < lengths[:, None]
    else:
        mask = torch.rand(rows, length, generator=gen) < draw(st.sampled_from([0.0, 0.3, 1.0]))
    reward_kind = draw(st.sampled_from(["binary", "continuous", "all_equal", "large"]))
    rewards = {
        "binary": lambda: torch.randint(0, 2, (rows,), generator=gen).float(),
        "continuous": lambda: torch.randn(rows, generator=gen),
        "all_equal": lambda: torch.ones(rows),
        "large": lambda: torch.randn(rows, generator=gen) * 1e6,
    }[reward_kind]()
    # |log π_old − log π_θ| up to ~15: far beyond what PPO epochs move a policy, within float32 for the
    # unclipped ratio·Â terms (kl_cov) at the reward scales drawn above.
    shift = torch.randn(rows, length, generator=gen) * draw(st.sampled_from([0.0, 0.1, 5.0]))
    return MathInputs(
        logits=logits.to(draw(st.sampled_from([torch.float32, torch.bfloat16]))),
        tokens=tokens,
        mask=mask,
        rewards=rewards,
        old_shift=shift,
        group_size=group_size,
        advantage=draw(st.sampled_from(["grpo", "dr_grpo", "rloo"])),
    )


def _all_finite(tensor: torch.Tensor) -> bool:
    return bool(torch.isfinite(tensor.float()).all())


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(math_inputs(), st.integers(1, 4), st.integers(0, 8))
def test_the_trainer_math_chain_is_finite(case: MathInputs, chunk_size: int, rotation: int) -> None:
    logits = case.logits.clone().requires_grad_()
    logprobs, entropy, sum_sq = token_logprobs_and_entropy(
        logits, case.tokens, case.mask, chunk_size, entropy_grad=True, return_sum_sq_probs=True
    )
    assert _all_finite(logprobs) and _all_finite(entropy) and _all_finite(sum_sq)
    seq_advantages, _ = group_advantages(case.rewards, case.group_size, case.advantage)
    advantages = token_advantages(seq_advantages, case.mask)
    assert _all_finite(advantages)
    old_logprobs = (logprobs.detach().float() + case.old_shift) * case.mask
    losses, aggs = sorted(POLICY_LOSSES), list(AGG_MODES)
    total = torch.zeros(())
    for index, (shaper, params) in enumerate(SHAPER_VARIANTS):
        shaped = shape_advantages(shaper, advantages, entropy, case.mask, case.group_size, **params)
        assert _all_finite(shaped), shaper
        # Every shaper meets a loss and an aggregation; `rotation` varies the pairing between examples.
        loss_type = losses[(index + rotation) % len(losses)]
        agg = aggs[(index + rotation // len(losses)) % len(aggs)]
        loss, per_token, metrics = policy_loss(
            logprobs,
            old_logprobs,
            shaped,
            case.mask,
            loss_type=loss_type,
            agg=agg,
            dual_clip=3.0,
            ref_logprobs=old_logprobs,
            kl_coef=0.01,
            entropy=entropy,
            entropy_coef=0.001,
            num_tokens=int(case.mask.sum()),
            num_seqs=case.mask.shape[0],
        )
        assert _all_finite(loss) and _all_finite(per_token), (shaper, loss_type, agg)
        assert all(torch.isfinite(torch.tensor(float(v))) for v in metrics.values()), metrics
        total = total + loss
        stats = quadrant_stats(
            shaped,
            entropy.detach(),
            case.mask,
            case.group_size,
            logprobs=logprobs.detach().float(),
            sum_sq_probs=sum_sq,
            per_token_loss=per_token,
        )
        for name, fields in stats.items():
            assert all(torch.isfinite(torch.tensor(v)) for v in fields.values()), (shaper, name, fields)
    total.backward()
    assert logits.grad is not None and _all_finite(logits.grad)


# --- scoring untrusted completions ------------------------------------------------------------------------

PIECES = st.sampled_from(
    [
        "<answer>",
        "</answer>",
        "<ANSWER >",
        "\\boxed{",
        "}",
        "{",
        "$",
        "\\frac{",
        "^{",
        "9^9^9",
        "\\sqrt{",
        "x",
        "=",
        "-",
        "/",
        "0",
        "7",
        "1e308",
        "1,000",
        "\n",
        " ",
        "\x00",
        "٣",
        "½",
        "\ud800",  # a lone surrogate, as a byte-level tokenizer can decode
        "\\",
    ]
)
COMPLETIONS = st.one_of(st.text(max_size=120), st.lists(PIECES, max_size=40).map("".join))


def _task(verifier: str, answer: str, timeout_s: float) -> tuple[Task, Problem]:
    config = TaskConfig(source="jsonl:unused", verifier=verifier, verifier_timeout_s=timeout_s)
    problem = Problem(question="q", answer=answer)
    return Task(name="fuzz", train=[problem], eval=[problem], config=config, verifier=verifier), problem


TIMEOUT_S = 0.5  # per guarded call; sympy on junk usually answers in well under that
VERIFIERS = [("numeric", "12"), ("exact", "12"), ("math_verify", "x^2 + 1")]


@pytest.mark.parametrize(("verifier", "gold"), VERIFIERS)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(completions=st.lists(COMPLETIONS, min_size=1, max_size=3))
def test_scoring_untrusted_completions_never_raises_and_stays_0_or_1(
    verifier: str, gold: str, completions: list[str]
) -> None:
    task, problem = _task(verifier, gold, timeout_s=TIMEOUT_S)
    candidates = [*completions, *(f"{c}\n<answer>{gold}</answer>" for c in completions)]
    start = time.perf_counter()
    result = score_completions(candidates, [problem] * len(candidates), task)
    assert set(result.rewards) <= {0.0, 1.0}
    assert len(result.predictions) == len(candidates)
    # A correct tagged answer at the very end scores 1 whatever came before it (unless math-verify had
    # to give up on the call: then it is counted, never silently wrong).
    right = result.rewards[len(completions) :]
    assert sum(right) + result.n_verifier_timeouts + result.n_verifier_errors >= len(completions)
    assert time.perf_counter() - start < len(candidates) * TIMEOUT_S + 10.0
