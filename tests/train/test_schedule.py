"""The paper's update schedule and temperature-correct scoring, trained for real on the smoke setting.

- Log-probs and entropy are those of softmax(logits / T) at the sampling temperature (PAPER.md Eq. 2, §5).
- Several mini-batch updates per rollout move π_θ away from π_old, so the ratio differs from 1 and the clip
  binds; with one update the ratio is exactly 1.
- Step metrics and the update do not depend on the micro-batch size.
- DAPO's dynamic sampling refills the batch with informative groups.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from eapo.core import QUADRANTS
from eapo.rollout import SamplingConfig, concat_rollouts, generate_rollouts, response_logits
from eapo.tasks import Problem, RewardFn, build_prompt
from eapo.train.config import Config, load_config
from eapo.train.scoring import score_policy
from eapo.train.trainer import Trainer


def smoke(tmp_path: Path, name: str, **sections: dict[str, Any]) -> Config:
    values: dict[str, Any] = {"run": {"output_dir": str(tmp_path / "runs"), "name": name}}
    for section, fields in sections.items():
        values.setdefault(section, {}).update(fields)
    return load_config("smoke", values)


def flat_params(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1).double() for p in model.parameters()])


def test_scoring_is_at_the_sampling_temperature_and_step_one_ratio_is_one(
    tmp_path: Path, parity_reward: RewardFn
) -> None:
    config = smoke(tmp_path, "t07", sampling={"temperature": 0.7}, algo={"name": "grpo"})
    trainer = Trainer(config, progress=False, reward_fn=parity_reward)
    rollout = trainer._sample_and_score(trainer._next_problems())
    batch = rollout.batch
    logprobs, entropy, _ = score_policy(trainer.model, batch, None, 64, trainer.autocast, 0.7)
    with torch.no_grad():
        logits = response_logits(trainer.model, batch.sequences, batch.attention_mask, batch.prompt_length)
    log_p = (logits.float() / 0.7).log_softmax(dim=-1)
    mask = batch.response_mask
    want_entropy = torch.where(mask, -(log_p.exp() * log_p).sum(-1), 0.0)
    want_logprobs = torch.where(mask, log_p.gather(-1, batch.response_ids[..., None]).squeeze(-1), 0.0)
    torch.testing.assert_close(entropy, want_entropy, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logprobs, want_logprobs, atol=1e-5, rtol=1e-5)
    # At T = 1 the same logits give a different (higher-variance) distribution: the test would see it.
    at_one = score_policy(trainer.model, batch, None, 64, trainer.autocast, 1.0)[1]
    assert float((at_one - entropy).abs().max()) > 1e-3

    # One on-policy update: π_θ = π_old when the gradient is taken, so the ratio is exactly 1 at T = 0.7 too
    # (it would not be if the update scored at T = 1 and π_old at T = 0.7).
    metrics = trainer.train_step().metrics
    assert metrics["ratio_mean"] == pytest.approx(1.0, abs=1e-6)
    assert metrics["ratio_abs_dev"] == pytest.approx(0.0, abs=1e-6)
    assert metrics["kl_new_old"] == pytest.approx(0.0, abs=1e-9)
    assert metrics["clip_fraction"] == 0.0
    assert metrics["updates_per_rollout"] == 1.0


def test_several_mini_batches_move_the_ratio_and_the_clip_binds(
    tmp_path: Path, parity_reward: RewardFn
) -> None:
    config = smoke(
        tmp_path,
        "minis",
        algo={"name": "grpo"},
        train={"mini_batches": 2, "lr": 3e-2, "steps": 4},
        run={"update_size_every": 1},
    )
    trainer = Trainer(config, progress=False, reward_fn=parity_reward)
    rows = [trainer.train_step().metrics for _ in range(4)]
    for metrics in rows:
        assert metrics["updates_per_rollout"] == 2.0
        assert metrics["drift/update_norm"] > 0 and 0 < metrics["drift/update_relative"] < 1
    # The second mini-batch is scored by weights the first one moved: the ratio leaves 1 and PPO clips.
    assert max(m["ratio_abs_dev"] for m in rows) > 1e-3
    assert max(m["kl_new_old"] for m in rows) > 0
    assert max(m["clip_fraction"] for m in rows) > 0
    clip_by_quadrant = [m[f"quadrant/{q}/clip_frac"] for m in rows for q in QUADRANTS]
    assert max(clip_by_quadrant) > 0 and min(clip_by_quadrant) >= 0


@pytest.mark.parametrize("shared_prompt", [False, True])
def test_step_metrics_and_update_do_not_depend_on_the_micro_batch_size(
    tmp_path: Path, shared_prompt: bool, parity_reward: RewardFn
) -> None:
    """One batch in 1 and in 4 micro-batches: the same pg_loss, loss, clip fraction, quadrant metrics and
    parameter update (the issue's acceptance test; `pg_loss` used to be divided by the micro-batch count).

    The micro-batch size changes the order in which the rows' gradients are summed (more so with the shared
    prompt forward, which sums each group's rows into its prompt's one forward), so the gradient moves by
    rounding; Adam's first step divides by |g| and turns that into a visible update change only where |g|
    is far below its eps (1e-8): a few of the 19,680 weights moved by 2-3e-6 in the plain path. The update
    is compared to 1e-5 there and to 1e-4 with the shared forward, 0.03% and 0.3% of the largest step."""
    results = []
    for rows in (8, 2):
        config = smoke(
            tmp_path,
            f"micro{rows}-{shared_prompt}",
            algo={"name": "eapo"},
            train={
                "mini_batches": 2,
                "micro_batch_rows": rows,
                "lr": 3e-2,
                "shared_prompt_forward": shared_prompt,
            },
        )
        trainer = Trainer(config, progress=False, reward_fn=parity_reward)
        before = flat_params(trainer.model)
        metrics = trainer.train_step().metrics
        metrics = {k: v for k, v in metrics.items() if not k.startswith("time/") and k != "tokens_per_s"}
        results.append((metrics, flat_params(trainer.model) - before))
    (one, update_one), (four, update_four) = results
    assert set(one) == set(four)
    for key in one:
        assert one[key] == pytest.approx(four[key], rel=1e-5, abs=1e-6), key
    torch.testing.assert_close(update_one, update_four, atol=1e-4 if shared_prompt else 1e-5, rtol=1e-5)
    assert float(update_one.abs().max()) > 0


def test_dapo_refills_the_batch_with_informative_groups(tmp_path: Path) -> None:
    """A reward that is constant on half the problems makes their groups uninformative; DAPO's dynamic
    sampling draws new prompts until the batch holds only informative groups (or the rounds run out)."""

    def reward(completion: str, problem: Problem) -> float:
        if sum(map(ord, problem.question)) % 2:
            return 0.0  # always wrong on this problem: its group has zero variance
        return float(len(completion) % 2)

    # No overlong penalty here: its length-dependent term would make every group informative.
    config = smoke(
        tmp_path, "dapo", algo={"name": "dapo", "overlong_buffer": 0}, train={"prompts_per_step": 4}
    )
    trainer = Trainer(config, progress=False, reward_fn=reward)
    metrics = [trainer.train_step().metrics for _ in range(2)]
    for m in metrics:
        assert 0 <= m["sampling/refill_rounds"] <= 4
        assert m["sampling/extra_prompts"] == 4 * m["sampling/refill_rounds"]
        assert m["sampling/informative_groups"] <= 4
        assert 0.0 <= m["verifier/extracted_frac"] <= 1.0  # of the kept rows, not of every round's
    assert sum(m["sampling/refill_rounds"] for m in metrics) >= 1
    assert max(m["sampling/informative_groups"] for m in metrics) == 4
    drawn = sum(4 + m["sampling/extra_prompts"] for m in metrics)
    assert trainer.data_position == drawn  # every drawn prompt is consumed from the data order


def test_concatenated_rollouts_score_like_their_parts(tmp_path: Path) -> None:
    """DAPO's refill joins rollouts of different prompt widths; scores of each row must not change."""
    config = smoke(tmp_path, "concat")
    trainer = Trainer(config, progress=False)
    problems = trainer.task.train[:4]
    prompts = [build_prompt(p, trainer.tokenizer, config.task) for p in problems]
    sampling = SamplingConfig(max_new_tokens=12)
    short = generate_rollouts(trainer.model, trainer.tokenizer, prompts[:1], 2, sampling, seed=1)
    long = generate_rollouts(trainer.model, trainer.tokenizer, prompts[1:], 2, sampling, seed=2)
    joined = concat_rollouts([short, long], trainer.tokenizer.pad_token_id)
    assert joined.completions == short.completions + long.completions
    assert joined.prompt_index.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    parts = [score_policy(trainer.model, b, None, 64, trainer.autocast, 1.0)[0] for b in (short, long)]
    whole = score_policy(trainer.model, joined, None, 64, trainer.autocast, 1.0)[0]
    offset = 0
    for part in parts:
        width = part.shape[1]
        torch.testing.assert_close(whole[offset : offset + part.shape[0], :width], part, atol=1e-5, rtol=1e-5)
        assert bool((whole[offset : offset + part.shape[0], width:] == 0).all())
        offset += part.shape[0]


def test_kl_cov_reports_no_clipped_tokens_since_it_does_not_clip(
    tmp_path: Path, parity_reward: RewardFn
) -> None:
    """KL-Cov replaces the ratio clip: its per-quadrant clip rate is 0, as its own clip_fraction is, even
    when the ratio has left [1 − ε_low, 1 + ε_high] (outside_clip_range_fraction > 0)."""
    config = smoke(
        tmp_path, "klcov", algo={"name": "kl_cov"}, train={"mini_batches": 2, "lr": 3e-2, "steps": 4}
    )
    trainer = Trainer(config, progress=False, reward_fn=parity_reward)
    rows = [trainer.train_step().metrics for _ in range(4)]
    assert max(m["outside_clip_range_fraction"] for m in rows) > 0
    for m in rows:
        assert m["clip_fraction"] == 0.0
        assert all(m[f"quadrant/{q}/clip_frac"] == 0.0 for q in QUADRANTS)
