"""Process faults on real `eapo train` processes: SIGINT/SIGTERM/SIGHUP save and exit 0; SIGKILL during a
checkpoint write leaves the previous checkpoint loadable; `--resume` says where it resumes from and what it
skipped, and reproduces the uninterrupted run's metrics exactly (CPU, same seed, one thread on both sides).
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

import eapo.train.trainer as trainer_module
from eapo.cli import main
from eapo.train.checkpoint import load_trainer_state, scan_checkpoints, verify_checkpoint
from eapo.train.config import load_config
from eapo.train.trainer import train

from .reliability_support import (
    ALWAYS_A_GRADIENT,
    HERE,
    comparable,
    start_eapo,
    tiny_values,
    training_rows,
    wait_until,
    write_config,
)

REFERENCE_STEPS = 12
START_TIMEOUT_S = 240  # a cold child imports torch + transformers and may warm up the tiny model


def _values(problems: Path, runs: Path, steps: int, checkpoint_every: int) -> dict[str, Any]:
    # Every step updates the weights (entro_reg, all groups kept), so an inexact resume would show.
    return tiny_values(
        problems,
        runs,
        algo=ALWAYS_A_GRADIENT["algo"],
        train={"steps": steps, **ALWAYS_A_GRADIENT["train"]},
        run={"checkpoint_every": checkpoint_every, "keep_checkpoints": 2},
    )


@pytest.fixture(scope="module")
def reference_rows(problems_file: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The training rows of an uninterrupted run of REFERENCE_STEPS steps, in this process."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the children (OMP_NUM_THREADS=1): float sums in the same order
    try:
        runs = tmp_path_factory.mktemp("reference")
        config = load_config(overrides=_values(problems_file, runs, REFERENCE_STEPS, 0))
        return [comparable(r) for r in training_rows(train(config, progress=False).run_dir)]
    finally:
        torch.set_num_threads(previous)


def _resume(run: Path, steps: int, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--steps", str(steps), "--no-progress"]) == 0
    return capsys.readouterr().out


def _assert_matches_reference(run: Path, steps: int, reference: list[dict[str, Any]]) -> None:
    rows = [comparable(r) for r in training_rows(run)]
    assert [r["step"] for r in rows] == list(range(1, steps + 1))  # each step once: replayed rows trimmed
    for row, expected in zip(rows, reference[:steps], strict=True):
        assert row == expected, {k for k in expected if row.get(k) != expected[k]}
    samples = [json.loads(line)["step"] for line in (run / "samples.jsonl").read_text().splitlines()]
    assert samples == list(range(1, steps + 1))


def test_sigint_sigterm_and_sighup_save_exit_0_and_resume_matches_the_uninterrupted_run(
    tmp_path: Path,
    problems_file: Path,
    reference_rows: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    # One child per signal, started together so that their imports overlap on a multi-core machine.
    children = {}
    # SIGHUP: the terminal or SSH session of the run closed (issue #20, class 6).
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        runs = tmp_path / signum.name
        config = write_config(tmp_path / f"{signum.name}.yaml", _values(problems_file, runs, 1000, 0))
        log = tmp_path / f"{signum.name}.log"
        process = start_eapo(["train", "--config", str(config), "--no-progress"], log)
        children[signum] = (process, log, runs / "run")
    waiting = dict(children)

    def signalled(signum: signal.Signals) -> bool:
        """Send each child its signal as soon as it has logged a training step; has `signum`'s been sent?"""
        for pending, (process, _, run) in list(waiting.items()):
            if (run / "metrics.jsonl").exists() and training_rows(run):
                process.send_signal(pending)
                del waiting[pending]
        return signum not in waiting

    for signum, (process, log, _) in children.items():
        wait_until(lambda signum=signum: signalled(signum), START_TIMEOUT_S, process, log)
    for signum, (process, log, run) in children.items():
        assert process.wait(timeout=120) == 0, log.read_text()
        output = log.read_text()
        stopped_at = training_rows(run)[-1]["step"]
        checkpoint = run / "checkpoints" / f"step_{stopped_at:06d}"
        assert f"{signum.name} received: finishing this step, then saving a checkpoint" in output
        assert f"Stopped by {signum.name} at step {stopped_at}; saved {checkpoint}." in output
        assert "Traceback" not in output
        assert verify_checkpoint(checkpoint) is None
        assert load_trainer_state(checkpoint)[1]["step"] == stopped_at

        steps = stopped_at + 2
        assert steps <= REFERENCE_STEPS
        out = _resume(run, steps, capsys)
        assert f"Resuming from {checkpoint} (step {stopped_at})." in out
        _assert_matches_reference(run, steps, reference_rows)


def test_sigkill_during_a_checkpoint_write_keeps_the_previous_one_and_resume_matches(
    tmp_path: Path,
    problems_file: Path,
    reference_rows: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Two children, killed at two moments of the write of checkpoint 3 (see pause_in_checkpoint.py).
    children = {}
    for phase in ("files", "rename"):
        runs = tmp_path / phase
        config = write_config(tmp_path / f"{phase}.yaml", _values(problems_file, runs, 1000, 1))
        log = tmp_path / f"{phase}.log"
        args = ["3", phase, "train", "--config", str(config), "--no-progress"]
        children[phase] = (start_eapo(args, log, script=HERE / "pause_in_checkpoint.py"), log, runs / "run")
    for process, log, _ in children.values():
        wait_until(lambda log=log: "PAUSED" in log.read_text(), START_TIMEOUT_S, process, log)
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=60) == -signal.SIGKILL
    for phase, (_, _, run) in children.items():
        checkpoints = run / "checkpoints"
        unfinished = checkpoints / ".tmp-step_000003"
        assert unfinished.is_dir()  # the kill did land inside the write of step 3 ...
        assert not (checkpoints / "step_000003").exists()
        assert (unfinished / "manifest.json").exists() == (phase == "rename")
        scan = scan_checkpoints(run)  # ... and step 2 is intact and loadable
        assert scan.latest == checkpoints / "step_000002"
        assert load_trainer_state(scan.latest)[1]["step"] == 2

        out = _resume(run, 5, capsys)
        assert "Removed .tmp-step_000003: a checkpoint write that never finished" in out
        assert f"Resuming from {checkpoints / 'step_000002'} (step 2)." in out
        assert not unfinished.exists()
        _assert_matches_reference(run, 5, reference_rows)


def test_resume_skips_a_damaged_newer_checkpoint_and_says_which(
    tmp_path: Path, problems_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = load_config(overrides=_values(problems_file, tmp_path / "runs", 3, 1))
    run = train(config, progress=False).run_dir
    newest = run / "checkpoints" / "step_000003"
    with (newest / "trainer_state.safetensors").open("r+b") as f:  # one flipped byte, as a bad disk would do
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    out = _resume(run, 4, capsys)
    aside = run / "checkpoints" / "damaged-step_000003"
    skipped = "Skipped damaged checkpoint step_000003 (checksum mismatch in trainer_state.safetensors)"
    assert f"{skipped}; moved to {aside}." in out
    assert f"Resuming from {run / 'checkpoints' / 'step_000002'} (step 2)." in out
    assert aside.is_dir() and verify_checkpoint(run / "checkpoints" / "step_000003") is None  # rewritten


def test_resume_recovers_a_step_whose_re_save_was_killed_between_its_renames(
    tmp_path: Path, problems_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Re-saving step N renames step_N aside, then the new folder into place; a kill between the two leaves
    `.tmp-old-step_N` and the finished `.tmp-step_N`. That state is made here by hand, with keep = 1 so that
    no older checkpoint could hide a failure to recover."""
    values = _values(problems_file, tmp_path / "runs", 2, 1)
    values["run"]["keep_checkpoints"] = 1
    run = train(load_config(overrides=values), progress=False).run_dir
    checkpoints = run / "checkpoints"
    (checkpoints / "step_000002").rename(checkpoints / ".tmp-old-step_000002")
    (checkpoints / ".tmp-step_000002").mkdir()
    assert scan_checkpoints(run).latest == checkpoints / ".tmp-old-step_000002"
    out = _resume(run, 3, capsys)
    assert "Recovered step_000002: a re-save of it was killed halfway." in out
    assert f"Resuming from {checkpoints / 'step_000002'} (step 2)." in out
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step_000003"]


def test_sigkill_at_random_moments_of_repeated_saves(tmp_path: Path) -> None:
    """A real process saving 8 MB checkpoints in a loop, killed at random moments, three times over."""
    rng = random.Random(0)
    first = 1
    for _ in range(3):
        log = tmp_path / f"writer-{first}.log"
        process = start_eapo([str(tmp_path), str(first)], log, script=HERE / "checkpoint_writer.py")
        wait_until(lambda log=log: log.read_text().count("saved") >= 2, START_TIMEOUT_S, process, log)
        time.sleep(rng.uniform(0.0, 0.3))  # a save takes ~0.1-0.3 s here: most moments are mid-write
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        last_reported = int(log.read_text().split("saved")[-1].split()[0])

        scan = scan_checkpoints(tmp_path)
        assert scan.latest is not None
        step = int(scan.latest.name.split("_")[1])
        assert step >= last_reported  # nothing that was reported saved is lost
        trainer_state, state = load_trainer_state(scan.latest)
        assert state["step"] == step
        assert torch.equal(trainer_state["optimizer"]["exp_avg"], torch.full((256, 256), float(step)))
        weight = load_file(scan.latest / "model" / "model.safetensors")["weight"]
        assert bool((weight == step).all())  # not a mix of two saves
        first = step + 1


def test_sigterm_before_training_starts_exits_130_without_a_traceback(
    tmp_path: Path, problems_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """While the model loads there is nothing to save: SIGTERM stops `eapo` like Ctrl-C, with code 130."""

    def load_policy_then_terminated(*args: Any, **kwargs: Any) -> Any:
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM should have stopped the load")

    monkeypatch.setattr(trainer_module, "load_run_policy", load_policy_then_terminated)
    config = write_config(tmp_path / "c.yaml", _values(problems_file, tmp_path / "runs", 3, 1))
    previous = signal.getsignal(signal.SIGTERM)
    assert main(["train", "--config", str(config), "--no-progress"]) == 130
    assert capsys.readouterr().err.strip() == "eapo: interrupted"
    assert signal.getsignal(signal.SIGTERM) is previous  # main() gives the handler back
