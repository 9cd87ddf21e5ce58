"""End-to-end: the trainer trains a tiny model for real, writes finite metrics, checkpoints and resumes."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from eapo.tasks import Problem
from eapo.train.checkpoint import latest_checkpoint, verify_checkpoint
from eapo.train.config import Config, load_config
from eapo.train.dumps import load_dump
from eapo.train.logging import read_metrics
from eapo.train.trainer import train


def tiny_config(tmp_path: Path, **sections: dict[str, Any]) -> Config:
    """The built-in `smoke` config (a 1-layer tiny model, 2 prompts x 4 samples, 3 steps) with overrides."""
    values: dict[str, Any] = {"run": {"output_dir": str(tmp_path / "runs")}}
    for section, fields in sections.items():
        values.setdefault(section, {}).update(fields)
    return load_config("smoke", values)


def _comparable(row: dict[str, Any]) -> dict[str, Any]:
    """A step's training metrics without wall-clock figures (the only thing allowed to differ)."""
    return {k: v for k, v in row.items() if not k.startswith(("time/", "eval/")) and k != "tokens_per_s"}


def test_train_end_to_end_writes_finite_metrics(tmp_path: Path) -> None:
    config = tiny_config(tmp_path, run={"name": "e2e", "tensorboard": True})
    result = train(config, progress=False)
    assert result.stopped == "completed"
    assert result.steps_done == 3
    rows = read_metrics(result.run_dir)
    train_rows = [r for r in rows if "loss" in r]
    assert [r["step"] for r in train_rows] == [1, 2, 3]
    for row in train_rows:
        for key in ("loss", "reward/mean", "entropy/mean", "grad_norm", "quadrant/PHR/share", "time/rollout"):
            assert row[key] is not None and math.isfinite(row[key]), key
        shares = sum(row[f"quadrant/{q}/share"] for q in ("PHR", "PLR", "NHR", "NLR"))
        assert 0.0 <= shares <= 1.0 + 1e-6
    assert "eval/pass@1" in rows[0] and "eval/pass@1" in rows[-1]
    assert rows[0]["time/eval"] > 0 and rows[-1]["time/eval"] > 0  # what each evaluation cost
    assert result.checkpoint is not None and verify_checkpoint(result.checkpoint) is None
    assert (result.run_dir / "config.yaml").is_file()
    assert any((result.run_dir / "tensorboard").iterdir())
    assert (result.run_dir / "samples.jsonl").read_text().strip()
    assert all(math.isfinite(r["entropy_change/all"]) for r in train_rows)  # PAPER.md Fig. 6b data
    dump = load_dump(result.run_dir / "rollouts" / "step_000002.safetensors")
    assert dump["temperature"] == config.sampling.temperature and dump["host"] == "eapo"
    assert dump["entropy"].shape == dump["shaped_advantages"].shape == dump["response_mask"].shape
    assert dump["sum_sq_probs"].shape == dump["entropy"].shape and dump["sum_sq_probs"].dtype == torch.float64
    assert len(dump["completions"]) == dump["response_mask"].shape[0] == 8


def test_resume_reproduces_uninterrupted_run(tmp_path: Path) -> None:
    full = train(tiny_config(tmp_path, train={"steps": 4}, run={"name": "full"}), progress=False)
    part = train(tiny_config(tmp_path, train={"steps": 2}, run={"name": "part"}), progress=False)
    assert latest_checkpoint(part.run_dir) is not None
    resumed = train(resume=part.run_dir, overrides=["--train.steps", "4"], progress=False)
    assert resumed.steps_done == 4
    full_rows = [_comparable(r) for r in read_metrics(full.run_dir) if "loss" in r]
    resumed_rows = [_comparable(r) for r in read_metrics(resumed.run_dir) if "loss" in r]
    assert [r["step"] for r in resumed_rows] == [1, 2, 3, 4]
    for resumed_row, full_row in zip(resumed_rows, full_rows, strict=True):
        assert resumed_row == full_row, {k for k in full_row if resumed_row.get(k) != full_row[k]}
    # The final held-out evaluation (same weights, same eval seed) matches too.
    final_resumed, final_full = read_metrics(resumed.run_dir)[-1], read_metrics(full.run_dir)[-1]
    assert final_resumed.pop("time/eval") > 0 and final_full.pop("time/eval") > 0  # wall clock may differ
    assert final_resumed == final_full


def test_raising_and_hanging_reward_functions_do_not_stop_training(tmp_path: Path) -> None:
    def flaky_reward(completion: str, problem: Problem) -> float:
        # Decided by the completion so that it does not depend on which worker process runs it.
        kind = len(completion) % 3
        if kind == 0:
            raise RuntimeError("verifier crashed")
        if kind == 1:
            time.sleep(30)  # hangs far past the timeout
        return 1.0

    config = tiny_config(
        tmp_path, task={"verifier_timeout_s": 0.2}, train={"steps": 2}, run={"name": "flaky"}
    )
    start = time.perf_counter()
    result = train(config, progress=False, reward_fn=flaky_reward)
    assert result.stopped == "completed"
    rows = [r for r in read_metrics(result.run_dir) if "loss" in r]
    assert sum(r["verifier/errors"] for r in rows) > 0
    assert sum(r["verifier/timeouts"] for r in rows) > 0
    assert all(math.isfinite(r["loss"]) for r in rows)
    assert time.perf_counter() - start < 120


@pytest.mark.parametrize("algo", ["grpo", "forking", "entro_reg", "kl_cov", "dapo"])
def test_other_algorithms_train(tmp_path: Path, algo: str) -> None:
    config = tiny_config(
        tmp_path, algo={"name": algo}, train={"steps": 1}, eval={"every": 0}, run={"name": algo}
    )
    result = train(config, progress=False)
    rows = [r for r in read_metrics(result.run_dir) if "loss" in r]
    assert len(rows) == 1 and math.isfinite(rows[0]["loss"])
