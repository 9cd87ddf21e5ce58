"""Numerical faults in a real training run.

A step whose loss or gradient is NaN/inf skips its update (weights and Adam moments bitwise unchanged), is
counted and logged; `train.max_bad_steps` consecutive bad steps stop the run with a checkpoint of the last
good weights. Degenerate batches (all-equal rewards, empty or max-length responses, an empty quadrant,
extreme logits) train without a NaN anywhere.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

import eapo.train.trainer as trainer_module
import eapo.train.update as update_module
from eapo.cli import main
from eapo.train.checkpoint import read_trainer_state
from eapo.train.dumps import dump_paths, load_dump
from eapo.train.logging import read_metrics as read_metrics_rows
from eapo.train.trainer import Trainer

from .reliability_support import (
    ALWAYS_A_GRADIENT,
    mixed_reward,
    non_finite_metrics,
    tiny_config,
    tiny_values,
    training_rows,
    write_config,
)

NAN = float("nan")
NO_DROP = ALWAYS_A_GRADIENT["train"]


def _poison_policy_loss(monkeypatch: pytest.MonkeyPatch, bad_call: Callable[[int], bool], how: str) -> None:
    """Make the trainer's policy loss non-finite on the calls `bad_call(n)` picks (n = 1, 2, ...).

    `loss_nan`: loss x NaN (NaN gradients too). `loss_nan_grad_finite`: loss + a NaN constant (gradients
    stay finite, so only the loss check can catch it).
    """
    real = update_module.policy_loss
    calls = itertools.count(1)

    def poisoned(*args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
        loss, token_loss, metrics = real(*args, **kwargs)
        if bad_call(next(calls)):
            loss = loss * NAN if how == "loss_nan" else loss + torch.tensor(NAN)
        return loss, token_loss, metrics

    monkeypatch.setattr(update_module, "policy_loss", poisoned)


def _weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return load_file(checkpoint / "model" / "model.safetensors")


def _adam_state(checkpoint: Path) -> dict[int, dict[str, torch.Tensor]]:
    state = read_trainer_state(checkpoint)["optimizer"]["state"]
    return {k: {name: t.clone() for name, t in v.items()} for k, v in state.items()}


def _same(a: dict[Any, Any], b: dict[Any, Any]) -> bool:
    """Bitwise equality of two (nested) dicts of tensors."""
    if a.keys() != b.keys():
        return False
    return all(_same(a[k], b[k]) if isinstance(a[k], dict) else torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("how", ["loss_nan", "loss_nan_grad_finite", "grad_inf"])
def test_a_non_finite_step_is_skipped_counted_and_leaves_the_optimizer_untouched(
    how: str, tmp_path: Path, problems_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tiny_config(
        problems_file, tmp_path / "runs", algo=ALWAYS_A_GRADIENT["algo"], train={"steps": 3, **NO_DROP}
    )
    if how != "grad_inf":
        _poison_policy_loss(monkeypatch, lambda call: call == 2, how)
    trainer = Trainer(config, progress=False)
    if how == "grad_inf":
        weight = next(trainer.model.parameters())
        weight.register_hook(lambda g: torch.full_like(g, float("inf")) if trainer.step == 1 else g)
    result = trainer.run()

    assert result.stopped == "completed"
    rows = training_rows(result.run_dir)
    assert [r["skipped_updates"] for r in rows] == [0.0, 1.0, 0.0]
    assert [r["skipped_steps_total"] for r in rows] == [1.0 * (r["step"] >= 2) for r in rows]
    # NaN/inf are logged as null; each fault is caught by the check that sees it.
    assert (rows[1]["loss"] is None) == (how != "grad_inf")
    assert (rows[1]["grad_norm"] is None) == (how != "loss_nan_grad_finite")
    step = {n: result.run_dir / "checkpoints" / f"step_{n:06d}" for n in (1, 2, 3)}
    # The bad step changed nothing: weights and Adam state (moments and step count) are bitwise equal ...
    assert _same(_weights(step[1]), _weights(step[2]))
    assert _same(_adam_state(step[1]), _adam_state(step[2]))
    # ... while the good steps around it did update (so the comparison above can fail).
    assert not _same(_weights(step[2]), _weights(step[3]))
    assert not _same(_adam_state(step[2]), _adam_state(step[3]))


def test_one_bad_mini_batch_does_not_veto_the_others(
    tmp_path: Path, problems_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tiny_config(
        problems_file,
        tmp_path / "runs",
        algo=ALWAYS_A_GRADIENT["algo"],
        train={"steps": 1, "mini_batches": 2, **NO_DROP},
    )
    _poison_policy_loss(monkeypatch, lambda call: call == 1, "loss_nan")  # the first of the two
    result = trainer_module.train(config, progress=False)
    assert training_rows(result.run_dir)[0]["skipped_updates"] == 1.0
    assert result.checkpoint is not None
    adam = _adam_state(result.checkpoint)
    assert {float(s["step"]) for s in adam.values()} == {1.0}  # the second mini-batch did update


def test_consecutive_bad_steps_stop_the_run_with_the_last_good_weights(
    tmp_path: Path, problems_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    values = tiny_values(
        problems_file,
        tmp_path / "runs",
        algo=ALWAYS_A_GRADIENT["algo"],
        train={"steps": 20, "max_bad_steps": 2, **NO_DROP},
    )
    _poison_policy_loss(monkeypatch, lambda call: call >= 2, "loss_nan")
    code = main(["train", "--config", str(write_config(tmp_path / "c.yaml", values)), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 3
    run = tmp_path / "runs" / "run"
    assert [r["step"] for r in training_rows(run)] == [1, 2, 3]
    checkpoints = run / "checkpoints"
    assert "Stopping at step 3: 2 consecutive steps had a non-finite loss or gradient" in out
    assert f"checkpoint {checkpoints / 'step_000003'} holds the weights of the last good update" in out
    assert "stopped early (bad_steps) at step 3" in out and "eapo train --resume" in out
    assert _same(_weights(checkpoints / "step_000001"), _weights(checkpoints / "step_000003"))
    assert _same(_adam_state(checkpoints / "step_000001"), _adam_state(checkpoints / "step_000003"))


def test_non_finite_scores_skip_the_step_and_stop_the_run_like_a_bad_loss(
    tmp_path: Path, problems_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """NaN log-probs or entropies (diverged weights) are not shaped (a shaper refuses non-finite entropy):
    the step is skipped and counted, and train.max_bad_steps stops the run with a checkpoint."""
    values = tiny_values(
        problems_file,
        tmp_path / "runs",
        algo={"name": "eapo"},
        train={"steps": 20, "max_bad_steps": 2, "rollout_logprobs": False, **NO_DROP},
    )
    real = trainer_module.score_policy
    calls = itertools.count(1)

    def poisoned(*args: Any, **kwargs: Any) -> tuple[torch.Tensor, ...]:
        logprobs, entropy, sum_sq = real(*args, **kwargs)
        if next(calls) >= 2:
            entropy = entropy.masked_fill(entropy == entropy, NAN)
        return logprobs, entropy, sum_sq

    monkeypatch.setattr(trainer_module, "score_policy", poisoned)
    code = main(["train", "--config", str(write_config(tmp_path / "c.yaml", values)), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 3, captured.err
    assert "Traceback" not in captured.err
    run = tmp_path / "runs" / "run"
    rows = [r for r in read_metrics_rows(run) if r.get("step", 0) > 0 and "reward/mean" in r]
    assert [r.get("non_finite_scores", 0.0) for r in rows] == [0.0, 1.0, 1.0]
    assert "the policy's log-probs or entropies are not finite" in captured.out
    assert "stopped early (bad_steps) at step 3" in captured.out


# --- degenerate batches ------------------------------------------------------------------------------------


def _logit_hook(kind: str, eos: int) -> Callable[[Any, Any, torch.Tensor], torch.Tensor]:
    """A forward hook on the LM head that replaces the model's logits by a degenerate distribution."""

    def hook(module: Any, inputs: Any, logits: torch.Tensor) -> torch.Tensor:
        # `logits * 0 + ...` keeps the autograd graph (with zero gradients), as a real model would.
        if kind == "uniform":  # every token equally likely: constant entropy log V, so no low-entropy token
            return logits * 0.0
        if kind == "eos_first":  # the eos token right away: empty completions
            favour_eos = torch.full_like(logits, -1e4)
            favour_eos[..., eos] = 0.0
            return logits * 0.0 + favour_eos
        if kind == "no_eos":  # the eos token never: every response runs to max_new_tokens
            return logits.index_fill(-1, torch.tensor([eos]), -1e4)
        return logits * 1e4  # extreme logits: near one-hot distributions, entropy ~0, log-probs ~-1e4

    return hook


def _constant_reward(completion: str, problem: Any) -> float:
    return 1.0


def _check_all_equal(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        assert row["reward/zero_variance_groups"] == 2.0
        assert row["quadrant/ZERO/share"] == 1.0
        assert all(row[f"quadrant/{q}/count"] == 0.0 for q in ("PHR", "PLR", "NHR", "NLR"))


def _check_empty(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    assert all(r["response/length_mean"] == 1.0 for r in rows)  # the eos token alone
    assert dump_paths(run_dir)
    for dump in dump_paths(run_dir):
        assert load_dump(dump)["completions"] == [""] * 8


def _check_max_length(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    assert all(r["response/truncated_frac"] == 1.0 for r in rows)
    assert all(r["reward/mean"] < 0 for r in rows)  # DAPO's overlong penalty applies at max length


def _check_uniform(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        assert row["quadrant/PLR/count"] == row["quadrant/NLR/count"] == 0.0
        assert row["quadrant/PHR/count"] + row["quadrant/NHR/count"] > 0
        assert row["quadrant/PLR/mean_entropy"] == 0.0  # an empty quadrant reports 0, not 0/0


def _check_extreme(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    assert all(r["entropy/mean"] < 1e-3 for r in rows)


# (case, algorithm, reward function, logit hook, what else to check). The algorithms vary so that the
# edge cases also pass through different shapers and losses.
DEGENERATE = [
    ("all_equal_rewards", "eapo", _constant_reward, None, _check_all_equal),
    ("all_equal_rewards_kept_in_the_loss", "gtpo", _constant_reward, None, _check_all_equal),
    ("empty_responses", "eapo", mixed_reward, "eos_first", _check_empty),
    ("max_length_responses", "dapo", mixed_reward, "no_eos", _check_max_length),
    ("no_low_entropy_quadrant", "eapo", mixed_reward, "uniform", _check_uniform),
    ("extreme_logits", "forking", mixed_reward, "extreme", _check_extreme),
]


@pytest.mark.parametrize(
    ("case", "algo", "reward_fn", "hook", "check"), DEGENERATE, ids=[d[0] for d in DEGENERATE]
)
def test_degenerate_batches_train_without_nan(
    case: str,
    algo: str,
    reward_fn: Callable[[str, Any], float],
    hook: str | None,
    check: Callable[[Path, list[dict[str, Any]]], None],
    tmp_path: Path,
    problems_file: Path,
) -> None:
    config = tiny_config(
        problems_file,
        tmp_path / "runs",
        algo={"name": algo},
        train={
            "steps": 2,
            "group_size": 4,
            "drop_zero_variance_groups": case != "all_equal_rewards_kept_in_the_loss",
        },
        run={"entropy_change_every": 1, "dump_rollouts_every": 1},
    )
    trainer = Trainer(config, progress=False, reward_fn=reward_fn)
    if hook:
        trainer.model.lm_head.register_forward_hook(_logit_hook(hook, trainer.tokenizer.eos_token_id))
    result = trainer.run()
    assert result.stopped == "completed"
    rows = training_rows(result.run_dir)
    assert non_finite_metrics(result.run_dir) == []
    assert all(r["skipped_updates"] == 0.0 for r in rows)
    for dump in dump_paths(result.run_dir):
        record = load_dump(dump)
        for key in ("rewards", "entropy", "logprobs", "advantages", "shaped_advantages"):
            assert torch.isfinite(record[key]).all(), (dump.name, key)
    check(result.run_dir, rows)
