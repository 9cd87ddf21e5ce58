"""The step metrics (eapo.train.step_metrics), each checked on hand-made tensors against values worked out
by hand, so that a metric that silently changes meaning fails here and not in a training curve."""

from __future__ import annotations

import math

import pytest
import torch

from eapo.rollout import RolloutBatch
from eapo.train.scored_rollout import ScoredRollout
from eapo.train.step_metrics import (
    clip_rate,
    entropy_change_metrics,
    rollout_metrics,
    run_totals,
    skipped_step_metrics,
    step_quadrant_metrics,
    timing_metrics,
    token_metrics,
    update_metrics,
    update_size,
)
from eapo.train.update import UpdateRecord

# Two groups of G = 2, T = 3: row lengths 3, 1, 2, 0 (the last an empty response).
MASK = torch.tensor([[1, 1, 1], [1, 0, 0], [1, 1, 0], [0, 0, 0]], dtype=torch.bool)


def scored_rollout(rewards: list[float], correct: list[float]) -> ScoredRollout:
    batch = RolloutBatch(
        sequences=torch.zeros(4, 4, dtype=torch.long),
        attention_mask=torch.ones(4, 4, dtype=torch.long),
        prompt_length=1,
        response_ids=torch.zeros(4, 3, dtype=torch.long),
        response_mask=MASK,
        truncated=torch.tensor([True, False, False, False]),
        completions=["<answer>1</answer>", "x", "<answer>2</answer>", ""],
        prompt_index=torch.tensor([0, 0, 1, 1]),
        num_generated_tokens=int(MASK.sum()),
    )
    return ScoredRollout(
        problems=[],
        prompts=["p0", "p1"],
        batch=batch,
        correct=torch.tensor(correct),
        rewards=torch.tensor(rewards),
        group_size=2,
        verifier_errors=1,
        verifier_timeouts=2,
        extracted=torch.tensor([True, False, True, False]),
        sampling_time=0.0,
        scoring_time=0.0,
    )


def record(**overrides: object) -> UpdateRecord:
    values: dict[str, object] = {
        "loss_metric_sums": {"clip_fraction": 3.0, "ratio_mean": 12.0},
        "counted_tokens": 12,
        "mini_batch_losses": [0.5, 1.5],
        "mini_batch_pg_losses": [-0.25, 0.75],
        "grad_norms": [1.0, float("nan"), 3.0],
        "skipped_updates": 1,
        "per_token_loss": torch.zeros(4, 3),
        "clip_counts": torch.tensor([[2.0, 0, 0], [0, 0, 0], [1, 0, 0], [0, 0, 0]]),
        "ppo_epochs": 2,
        "forward_backward_time": 0.0,
        "optimizer_time": 0.0,
    }
    return UpdateRecord(**(values | overrides))  # type: ignore[arg-type]


def test_rollout_metrics() -> None:
    # Group 0 mixed (1, 0), group 1 all equal (0.5, 0.5): one informative group.
    rollout = scored_rollout(rewards=[1.0, 0.0, 0.5, 0.5], correct=[1.0, 0.0, 1.0, 0.0])
    got = rollout_metrics(rollout, zero_variance_groups=1, refill_rounds=2, extra_prompts=4, format_rate=0.5)
    assert got == {
        "reward/mean": 0.5,
        "accuracy": 0.5,
        "reward/zero_variance_groups": 1.0,
        "response/length_mean": 1.5,  # (3 + 1 + 2 + 0) / 4
        "response/truncated_frac": 0.25,
        "verifier/errors": 1.0,
        "verifier/timeouts": 2.0,
        "verifier/extracted_frac": 0.5,
        "verifier/format_rate": 0.5,
        "sampling/refill_rounds": 2.0,
        "sampling/extra_prompts": 4.0,
        "sampling/informative_groups": 1.0,
    }


def test_token_metrics_average_over_response_tokens_only() -> None:
    entropy = torch.tensor([[0.0, 1.0, 2.0], [3.0, 99.0, 99.0], [4.0, 5.0, 99.0], [99.0, 99.0, 99.0]])
    advantages = torch.tensor([[1.0, 1.0, 1.0], [-1.0, 0, 0], [0.5, 0.5, 0], [0, 0, 0]])
    shaped = 2 * advantages
    got = token_metrics(entropy * MASK, advantages, shaped, MASK)
    assert got["tokens/generated"] == 6.0
    assert got["entropy/mean"] == pytest.approx(15.0 / 6)  # 0 + 1 + 2 + 3 + 4 + 5
    # Quantiles of {0, 1, 2, 3, 4, 5} by linear interpolation: 0.5, 2.5, 4.5.
    assert [got["entropy/p10"], got["entropy/p50"], got["entropy/p90"]] == pytest.approx([0.5, 2.5, 4.5])
    assert got["advantage/mean_abs"] == pytest.approx(5.0 / 6)
    assert got["advantage/shaped_mean_abs"] == pytest.approx(10.0 / 6)


def test_token_metrics_of_an_empty_batch_are_zero_not_nan() -> None:
    empty = torch.zeros(2, 3, dtype=torch.bool)
    got = token_metrics(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 3), empty)
    assert all(value == 0.0 for value in got.values())


def test_update_metrics_average_over_tokens_and_optimizer_steps() -> None:
    got = update_metrics(record())
    assert got == {
        "clip_fraction": 0.25,  # Σ (rate × tokens) / tokens = 3 / 12
        "ratio_mean": 1.0,
        "loss": 1.0,  # mean over the two optimizer steps, not their sum
        "pg_loss": 0.25,
        "grad_norm": 2.0,  # the NaN norm of the skipped update is left out
        "skipped_updates": 1.0,
        "updates_per_rollout": 2.0,
    }
    assert math.isnan(update_metrics(record(grad_norms=[float("inf")]))["grad_norm"])


def test_clip_rate_is_the_share_of_updates_that_clipped_the_token() -> None:
    rate = clip_rate(record())
    assert rate[0, 0] == 1.0 and rate[2, 0] == 0.5 and float(rate.sum()) == 1.5


def test_step_quadrant_metrics_split_by_the_grpo_sign_and_carry_the_update() -> None:
    # One group of G = 2: row 0 positive, row 1 negative; entropy 1 (high) then 0 (low) in each row.
    mask = torch.ones(2, 2, dtype=torch.bool)
    advantages = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
    shaped = torch.tensor([[3.0, 1.0], [-2.0, -1.0]])  # a shaper may change |Â|, not the quadrant
    entropy = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    update = record(clip_counts=torch.tensor([[2.0, 0.0], [0.0, 1.0]]), per_token_loss=torch.zeros(2, 2))
    logprobs, sum_sq = torch.zeros(2, 2), torch.ones(2, 2, dtype=torch.float64)
    got = step_quadrant_metrics(update, advantages, shaped, entropy, logprobs, sum_sq, mask, 2)
    for quadrant, share in (("PHR", 0.25), ("PLR", 0.25), ("NHR", 0.25), ("NLR", 0.25)):
        assert got[f"quadrant/{quadrant}/share"] == pytest.approx(share)
    assert got["quadrant/PHR/clip_frac"] == 1.0 and got["quadrant/NLR/clip_frac"] == 0.5
    assert got["quadrant/PLR/clip_frac"] == 0.0 and got["quadrant/NHR/clip_frac"] == 0.0


def test_entropy_change_per_quadrant() -> None:
    mask = torch.ones(2, 2, dtype=torch.bool)
    advantages = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
    before = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    after = before + torch.tensor([[0.1, 0.2], [0.3, 0.4]])
    got = entropy_change_metrics(before, after, advantages, mask, 2)
    want = {"all": 0.25, "PHR": 0.1, "PLR": 0.2, "NHR": 0.3, "NLR": 0.4}
    assert {k.split("/")[1]: v for k, v in got.items()} == pytest.approx(want)
    # A zero-advantage batch has no quadrant tokens: 0, not NaN.
    empty = entropy_change_metrics(before, after, torch.zeros(2, 2), mask, 2)
    assert empty["entropy_change/PHR"] == 0.0 and empty["entropy_change/all"] == pytest.approx(0.25)


def test_update_size_is_the_norm_of_the_weight_change() -> None:
    before = [torch.tensor([3.0, 0.0]), torch.tensor([[0.0], [4.0]])]  # ‖θ‖ = 5
    after = [torch.tensor([3.0, 1.0]), torch.tensor([[0.0], [4.0]])]
    got = update_size(before, after)
    assert got == pytest.approx({"drift/update_norm": 1.0, "drift/update_relative": 0.2})
    assert update_size([], []) == {"drift/update_norm": 0.0, "drift/update_relative": 0.0}


def test_skipped_step_run_totals_and_timings() -> None:
    rollout = scored_rollout(rewards=[1.0, 0.0, 0.0, 0.0], correct=[1.0, 0.0, 0.0, 0.0])
    skipped = skipped_step_metrics(rollout)
    assert skipped["reward/mean"] == 0.25 and skipped["skipped_updates"] == 1.0
    assert skipped["non_finite_scores"] == 1.0 and math.isnan(skipped["entropy/mean"])
    counters = {"skipped_steps": 1, "verifier_errors": 2, "verifier_timeouts": 3, "failed_saves": 4}
    assert run_totals(counters) == {
        "skipped_steps_total": 1.0,
        "verifier/errors_total": 2.0,
        "verifier/timeouts_total": 3.0,
        "checkpoint/failed_saves_total": 4.0,
    }
    timings = {"rollout": 1.0, "step": 4.0}
    assert timing_metrics(timings, tokens=100.0) == {
        "tokens_per_s": 25.0,
        "time/rollout": 1.0,
        "time/step": 4.0,
    }
    assert timing_metrics(timings) == {"time/rollout": 1.0, "time/step": 4.0}
