"""A full disk while saving, and a second Ctrl-C during a step, in a real training run.

The disk is made full by making the write itself fail the way it does on a full disk: safetensors'
`save_file` raising OSError(ENOSPC) for the trainer state, transformers' safetensors writer raising its
SafetensorError for the weights. (A real full disk needs a small filesystem, which needs root; /dev/full is
not on every machine.)
"""

from __future__ import annotations

import errno
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import safetensors
import safetensors.torch
import transformers.modeling_utils

import eapo.train.checkpoint as checkpoint_module
import eapo.train.trainer as trainer_module
from eapo.cli import main
from eapo.train.checkpoint import verify_checkpoint

from .reliability_support import tiny_config, tiny_values, training_rows, write_config


def _fill_the_disk(monkeypatch: pytest.MonkeyPatch, what: str, from_step: int) -> None:
    """Make the writes of checkpoints `from_step` on fail as on a full disk (`what`: which file fails)."""
    failing = {f".tmp-step_{step:06d}" for step in range(from_step, 1000)}

    def in_failing_folder(path: Any) -> bool:
        return any(part in failing for part in Path(path).parts)

    if what == "trainer_state":
        real_save = safetensors.torch.save_file

        def save(tensors: Any, path: Any, *args: Any, **kwargs: Any) -> None:
            if in_failing_folder(path) and Path(path).name == checkpoint_module.TRAINER_TENSORS:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
            real_save(tensors, path, *args, **kwargs)

        monkeypatch.setattr(safetensors.torch, "save_file", save)
    else:
        real_save_file = transformers.modeling_utils.safe_save_file

        def save_file(tensors: Any, filename: Any, *args: Any, **kwargs: Any) -> None:
            if in_failing_folder(filename):  # the message safetensors gives for ENOSPC
                raise safetensors.SafetensorError(
                    'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space '
                    'left on device" })'
                )
            real_save_file(tensors, filename, *args, **kwargs)

        monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", save_file)


@pytest.mark.parametrize("what", ["trainer_state", "weights"])
def test_a_failed_periodic_save_keeps_the_old_checkpoint_and_training_goes_on(
    what: str,
    tmp_path: Path,
    problems_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tiny_config(problems_file, tmp_path / "runs", train={"steps": 3})
    _fill_the_disk(monkeypatch, what, from_step=2)
    trainer = trainer_module.Trainer(config, progress=False)
    checkpoints = trainer.run_dir / "checkpoints"

    def free_the_disk_after_step_2(original: Any = trainer.train_step) -> Any:
        if trainer.step == 2:
            monkeypatch.undo()
        return original()

    trainer.train_step = free_the_disk_after_step_2  # type: ignore[method-assign]
    result = trainer.run()

    out = capsys.readouterr().out
    reason = "No space left on device"
    assert f"error: could not write checkpoint {checkpoints / 'step_000002'}: " in out and reason in out
    assert f"the previous checkpoint is intact: {checkpoints / 'step_000001'}" in out
    assert "Training goes on; the next checkpoint will try again." in out
    assert result.stopped == "completed" and result.steps_done == 3
    assert result.checkpoint == checkpoints / "step_000003"  # the disk was freed: saving works again
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step_000001", "step_000003"]  # no .tmp left
    assert verify_checkpoint(checkpoints / "step_000001") is None
    assert training_rows(result.run_dir)[-1]["checkpoint/failed_saves_total"] == 1.0


def test_a_failed_final_save_is_an_error_and_keeps_the_old_checkpoint(
    tmp_path: Path, problems_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    values = tiny_values(problems_file, tmp_path / "runs", train={"steps": 2})
    _fill_the_disk(monkeypatch, "trainer_state", from_step=2)
    assert main(["train", "--config", str(write_config(tmp_path / "c.yaml", values)), "--no-progress"]) == 2
    checkpoints = tmp_path / "runs" / "run" / "checkpoints"
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (
        f"eapo: error: could not write checkpoint {checkpoints / 'step_000002'}: No space left on device; "
        f"the previous checkpoint is intact: {checkpoints / 'step_000001'}"
    )
    assert [p.name for p in checkpoints.iterdir()] == ["step_000001"]
    assert verify_checkpoint(checkpoints / "step_000001") is None


def test_a_second_ctrl_c_stops_at_once_without_saving(
    tmp_path: Path, problems_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    values = tiny_values(problems_file, tmp_path / "runs", train={"steps": 5})
    real_rollouts = trainer_module.generate_rollouts
    calls = []

    def rollouts_with_two_ctrl_c(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:  # step 2 (the evaluations sample through eapo.rollout.evaluate)
            os.kill(os.getpid(), signal.SIGINT)  # first: finish the step, then save
            os.kill(os.getpid(), signal.SIGINT)  # second: stop now
        return real_rollouts(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "generate_rollouts", rollouts_with_two_ctrl_c)
    code = main(["train", "--config", str(write_config(tmp_path / "c.yaml", values)), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 130
    assert "SIGINT received: finishing this step, then saving a checkpoint" in captured.out
    assert captured.err.strip().splitlines()[-1] == "eapo: interrupted"
    checkpoints = tmp_path / "runs" / "run" / "checkpoints"
    assert [p.name for p in checkpoints.iterdir()] == ["step_000001"]  # no step 2, no .tmp folder
    assert verify_checkpoint(checkpoints / "step_000001") is None
