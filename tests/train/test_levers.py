"""The speed levers of issue #18 and precision as part of a run's identity.

- `train.rollout_logprobs`: π_old and the entropy from the decode loop (fp32) give the same first step as the
  separate forward (same samples, loss to 1e-4), and later steps drift only by rounding.
- `train.shared_prompt_forward`: each group's prompt run once gives the same first step as the plain forward.
- `train.fused_optimizer`: AdamW's fused kernel moves the weights as its per-tensor loop does (to rounding),
  also across a resume that switches it.
- `model.rollout_dtype`: a bf16 copy samples, refreshed before every rollout; π_old comes from the forward.
- `precision.json`: written by every run; `--resume` and `eapo compare` refuse another precision.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from eapo.errors import ConfigError
from eapo.models import device as device_module
from eapo.models import effective_precision, resolve_rollout_dtype
from eapo.tasks import RewardFn
from eapo.train.config import Config, load_config
from eapo.train.logging import read_metrics
from eapo.train.precision import check_same_precision, read_precision
from eapo.train.run_dir import recorded_config, resume_config
from eapo.train.trainer import Trainer, train


def tiny_config(tmp_path: Path, **sections: dict[str, Any]) -> Config:
    values: dict[str, Any] = {"run": {"output_dir": str(tmp_path / "runs")}}
    for section, fields in sections.items():
        values.setdefault(section, {}).update(fields)
    return load_config("smoke", values)


def _precision(run_dir: Path) -> dict[str, Any]:
    """The run's recorded precision (every run here records it)."""
    precision = read_precision(run_dir)
    assert precision is not None
    return precision


def _samples(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]


def _train_rows(run_dir: Path) -> list[dict[str, Any]]:
    return [r for r in read_metrics(run_dir) if "loss" in r]


def test_rollout_logprobs_on_and_off_give_the_same_first_step(tmp_path: Path) -> None:
    """No bf16 involved (the smoke config pins fp32): same first-step samples and loss (1e-4) with the
    decode-loop log-probs on and off; the separate forward is skipped when on; later steps stay within
    rounding drift (bounded here: losses within 1e-3, the same completions drawn)."""
    runs = {}
    for name, on in (("on", True), ("off", False)):
        config = tiny_config(
            tmp_path,
            train={"steps": 3, "rollout_logprobs": on},
            run={"name": name, "log_samples": 8, "entropy_change_every": 0},
        )
        runs[name] = train(config, progress=False).run_dir
    on_rows, off_rows = _train_rows(runs["on"]), _train_rows(runs["off"])
    assert _precision(runs["on"])["old_logprobs"] == "decode loop"
    assert _precision(runs["off"])["old_logprobs"] == "forward"
    samples_on, samples_off = _samples(runs["on"]), _samples(runs["off"])
    first_on = [s for s in samples_on if s["step"] == 1]
    assert first_on == [s for s in samples_off if s["step"] == 1]
    for key in ("loss", "pg_loss", "entropy/mean", "reward/mean", "grad_norm"):
        assert abs(on_rows[0][key] - off_rows[0][key]) < 1e-4, key
    # The old-log-prob forward is not run with the lever on (its time is the bookkeeping only).
    assert on_rows[0]["time/old_logprobs"] < off_rows[0]["time/old_logprobs"]
    for row_on, row_off in zip(on_rows[1:], off_rows[1:], strict=True):
        assert abs(row_on["loss"] - row_off["loss"]) < 1e-3
        assert abs(row_on["entropy/mean"] - row_off["entropy/mean"]) < 1e-3
    assert [s["completion"] for s in samples_on] == [s["completion"] for s in samples_off]


def test_shared_prompt_forward_on_and_off_give_the_same_first_step(tmp_path: Path) -> None:
    """`train.shared_prompt_forward` (each group's prompt run once) against the plain forward, fp32, with
    π_old from the forward so that both the scoring and the update take the path: same first-step samples
    and loss (1e-4); later steps within rounding drift."""
    runs = {}
    for name, on in (("on", True), ("off", False)):
        config = tiny_config(
            tmp_path,
            train={"steps": 3, "rollout_logprobs": False, "shared_prompt_forward": on},
            run={"name": name, "log_samples": 8, "entropy_change_every": 1},
        )
        runs[name] = train(config, progress=False).run_dir
    on_rows, off_rows = _train_rows(runs["on"]), _train_rows(runs["off"])
    samples_on, samples_off = _samples(runs["on"]), _samples(runs["off"])
    assert [s for s in samples_on if s["step"] == 1] == [s for s in samples_off if s["step"] == 1]
    for key in ("loss", "pg_loss", "entropy/mean", "grad_norm", "entropy_change/all"):
        assert abs(on_rows[0][key] - off_rows[0][key]) < 1e-4, key
    for row_on, row_off in zip(on_rows[1:], off_rows[1:], strict=True):
        assert abs(row_on["loss"] - row_off["loss"]) < 1e-3


def test_fused_optimizer_on_and_off_make_the_same_update(tmp_path: Path, parity_reward: RewardFn) -> None:
    """One step with AdamW's fused kernel and one with its per-tensor loop, from the same start: the same
    metrics and the same weight change up to float rounding; the flag reaches the optimizer."""
    updates, metrics = {}, {}
    for name, on in (("on", True), ("off", False)):
        config = tiny_config(tmp_path, train={"fused_optimizer": on}, run={"name": name})
        trainer = Trainer(config, progress=False, reward_fn=parity_reward)
        assert all(bool(group["fused"]) is on for group in trainer.optimizer.param_groups)
        before = torch.cat([p.detach().flatten().clone() for p in trainer.model.parameters()])
        metrics[name] = trainer.train_step().metrics
        updates[name] = torch.cat([p.detach().flatten() for p in trainer.model.parameters()]) - before
    assert float(updates["off"].abs().max()) > 0
    torch.testing.assert_close(updates["on"], updates["off"], atol=1e-7, rtol=1e-4)
    for key in ("loss", "grad_norm", "drift/update_norm"):
        assert metrics["on"][key] == pytest.approx(metrics["off"][key], rel=1e-5, abs=1e-7), key


def test_a_resume_may_switch_the_fused_optimizer(tmp_path: Path) -> None:
    """Saved with the per-tensor loop, resumed with the fused kernel (a field free on resume): the Adam
    moments continue from the checkpoint under the config's kernel, and the run tracks the uninterrupted
    per-tensor one within rounding."""
    per_tensor = {"fused_optimizer": False}
    full = train(
        tiny_config(tmp_path, train={"steps": 4, **per_tensor}, run={"name": "full"}), progress=False
    )
    part = train(
        tiny_config(tmp_path, train={"steps": 2, **per_tensor}, run={"name": "part"}), progress=False
    )
    overrides = ["--train.steps", "4", "--train.fused_optimizer", "true"]
    requested = resume_config(part.run_dir, recorded_config(part.run_dir), None, overrides)
    resumed = Trainer(requested, run_dir=part.run_dir, resume=True, progress=False)
    assert all(group["fused"] for group in resumed.optimizer.param_groups)
    steps = {p: s["step"] for p, s in resumed.optimizer.state.items()}
    assert steps and all(s.dtype == torch.float32 and float(s) == 2.0 for s in steps.values())
    resumed.run()
    full_rows, resumed_rows = _train_rows(full.run_dir), _train_rows(part.run_dir)
    assert [r["step"] for r in resumed_rows] == [1, 2, 3, 4]
    for row, reference in zip(resumed_rows, full_rows, strict=True):
        assert row["loss"] == pytest.approx(reference["loss"], abs=1e-4)
        assert row["grad_norm"] == pytest.approx(reference["grad_norm"], rel=1e-3)


def test_bf16_rollout_copy_samples_and_is_refreshed(tmp_path: Path) -> None:
    config = tiny_config(
        tmp_path, model={"rollout_dtype": "bfloat16"}, train={"steps": 2}, run={"name": "bf16"}
    )
    trainer = Trainer(config, progress=False)
    assert not trainer.rollout_logprobs  # rollout precision differs from training: keep the forward
    assert trainer.precision["rollout"] == "bfloat16" and trainer.precision["weights"] == "float32"
    metrics = trainer.train_step().metrics
    assert metrics["tokens/generated"] > 0 and torch.isfinite(torch.tensor(metrics["loss"]))
    copy = trainer.rollout_model()  # refreshed with the weights after the update
    assert copy is not trainer.model
    for target, source in zip(copy.parameters(), trainer.model.parameters(), strict=True):
        assert target.dtype == torch.bfloat16 and not target.requires_grad
        assert torch.equal(target, source.detach().to(torch.bfloat16))
    # Buffers (e.g. RoPE's inverse frequencies) keep their dtype.
    assert all(b.dtype == s.dtype for b, s in zip(copy.buffers(), trainer.model.buffers(), strict=True))
    trainer.run()
    assert _precision(trainer.run_dir)["rollout"] == "bfloat16"


def test_rollout_dtype_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    """auto: bf16 only where the training precision already uses bf16 units; fp32 pinned stays fp32."""
    monkeypatch.setattr(device_module, "cpu_has_fast_bf16", lambda: True)
    assert resolve_rollout_dtype("cpu", "auto", "auto") == torch.bfloat16
    assert resolve_rollout_dtype("cpu", "float32", "auto") == torch.float32
    assert resolve_rollout_dtype("cpu", "auto", "float32") == torch.float32
    assert effective_precision("cpu", "auto")["training_forward"] == "bfloat16 autocast"
    monkeypatch.setattr(device_module, "cpu_has_fast_bf16", lambda: False)
    assert resolve_rollout_dtype("cpu", "auto", "auto") == torch.float32
    assert resolve_rollout_dtype("cpu", "auto", "bfloat16") == torch.bfloat16
    precision = effective_precision("cpu", "auto")
    assert precision["training_forward"] == "float32" and precision["autocast"] is False
    with pytest.raises(ConfigError, match=r"model\.rollout_dtype"):
        resolve_rollout_dtype("cpu", "auto", "fp8")
    with pytest.raises(ConfigError, match=r"model\.rollout_dtype"):
        tiny_config(Path("/tmp"), model={"rollout_dtype": "half"})


def test_resume_refuses_another_precision(tmp_path: Path) -> None:
    part = train(tiny_config(tmp_path, train={"steps": 1}, run={"name": "p"}), progress=False)
    recorded = read_precision(part.run_dir)
    assert recorded is not None and recorded["weights"] == "float32"
    # The same config on a machine where it would resolve to another precision (simulated by the record).
    (part.run_dir / "precision.json").write_text(
        json.dumps({**recorded, "training_forward": "bfloat16 autocast"})
    )
    with pytest.raises(ConfigError, match=r"precision\.training_forward"):
        train(resume=part.run_dir, overrides=["--train.steps", "2"], progress=False)
    result = train(
        resume=part.run_dir, overrides=["--train.steps", "2"], progress=False, allow_config_change=True
    )
    assert result.steps_done == 2
    assert _precision(part.run_dir)["training_forward"] == "float32"
    changes = [json.loads(line) for line in (part.run_dir / "config_changes.jsonl").read_text().splitlines()]
    assert any(c["field"] == "precision.training_forward" for c in changes)


def test_compare_refuses_mixed_precisions() -> None:
    fp32 = {"weights": "float32", "rollout": "float32", "training_forward": "float32", "autocast": False}
    bf16 = {**fp32, "rollout": "bfloat16", "training_forward": "bfloat16 autocast", "autocast": True}
    check_same_precision({"a": fp32, "b": dict(fp32, device="cuda"), "old": None})
    with pytest.raises(ConfigError, match="different precisions"):
        check_same_precision({"a": fp32, "b": bf16})


def test_decode_attention_eager_and_the_models_own_give_the_same_first_step(tmp_path: Path) -> None:
    """`sampling.attention`: the eager decode (what "auto" picks for unpadded chunks under grouped-query
    attention on CPU) against the model's own SDPA, fp32: the same samples at every step and the same
    first-step loss (1e-4), with π_old from the decode loop (the path the decode kernel reaches); later
    steps within rounding drift."""
    runs = {}
    for choice in ("eager", "model"):
        config = tiny_config(
            tmp_path,
            train={"steps": 3, "rollout_logprobs": True},
            sampling={"attention": choice},
            run={"name": choice, "log_samples": 8, "entropy_change_every": 0},
        )
        runs[choice] = train(config, progress=False).run_dir
    eager_rows, own_rows = _train_rows(runs["eager"]), _train_rows(runs["model"])
    for key in ("loss", "pg_loss", "entropy/mean", "reward/mean", "grad_norm"):
        assert abs(eager_rows[0][key] - own_rows[0][key]) < 1e-4, key
    for row_eager, row_own in zip(eager_rows[1:], own_rows[1:], strict=True):
        assert abs(row_eager["loss"] - row_own["loss"]) < 1e-3
    assert [s["completion"] for s in _samples(runs["eager"])] == [
        s["completion"] for s in _samples(runs["model"])
    ]


def test_the_documented_free_fields_are_the_free_fields() -> None:
    """docs/reliability.md lists what a resume may change; it must be FREE_ON_RESUME exactly."""
    import re

    from eapo.train.run_dir import FREE_ON_RESUME

    doc = (Path(__file__).resolve().parents[2] / "docs" / "reliability.md").read_text()
    paragraph = doc.split("Fields a resume may change without `--allow-config-change`", 1)[1].split(
        "\n\n", 1
    )[0]
    listed = set(re.findall(r"`([a-z_]+\.[a-z_]+)`", paragraph)) - {"eapo.train"}
    assert listed == set(FREE_ON_RESUME)
