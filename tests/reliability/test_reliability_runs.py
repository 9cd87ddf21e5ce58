"""Runs never collide or rewrite their history (issue #20, classes 1, 2, 8 and 9).

- Parallel starts into one output folder (real `eapo train` processes) get one folder each; two processes
  asking for the same name: one wins, the other exits 2 naming the folder.
- A run folder is locked by the process that trains it; a leftover lock file of a dead process is no lock.
- `--resume` continues the recorded config: a change of the math is refused unless asked for, and then
  recorded with its step; config.yaml is never rewritten; a finished run has nothing to do and writes nothing.
- Checkpoints load without unpickling (an old pickled trainer.pt needs an explicit opt-in) and follow the
  umask.
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
from pathlib import Path
from typing import Any

import pytest
import torch

from eapo.cli import main
from eapo.errors import CheckpointError
from eapo.train.checkpoint import (
    LEGACY_TRAINER_STATE,
    MANIFEST,
    TRAINER_JSON,
    TRAINER_TENSORS,
    _sha256,
    read_trainer_state,
    verify_checkpoint,
)
from eapo.train.config import load_config
from eapo.train.run_dir import CHANGES_FILE, RunLock
from eapo.train.trainer import train

from .reliability_support import HERE, start_eapo, tiny_values, training_rows, wait_until, write_config

START_TIMEOUT_S = 300


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of every file under `folder`: equal snapshots mean nothing was written."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def finished_run(tmp_path: Path, problems_file: Path) -> Path:
    """A completed 2-step run named `run` (checkpoints at steps 1 and 2)."""
    config = load_config(overrides=tiny_values(problems_file, tmp_path / "runs", train={"steps": 2}))
    result = train(config, progress=False)
    assert result.stopped == "completed"
    return result.run_dir


def test_parallel_starts_into_one_output_folder_never_share_a_run_folder(
    tmp_path: Path, problems_file: Path
) -> None:
    runs = tmp_path / "runs"
    values = tiny_values(problems_file, runs, train={"steps": 1})
    default_named = dict(values, run={**values["run"], "name": None})
    config_default = write_config(tmp_path / "default.yaml", default_named)
    config_named = write_config(tmp_path / "named.yaml", values)  # run.name: run
    children = []
    for i in range(3):
        log = tmp_path / f"default{i}.log"
        children.append((start_eapo(["train", "--config", str(config_default), "--no-progress"], log), log))
    for i in range(2):
        log = tmp_path / f"named{i}.log"
        children.append((start_eapo(["train", "--config", str(config_named), "--no-progress"], log), log))
    codes = [process.wait(timeout=START_TIMEOUT_S) for process, _ in children]
    outputs = [log.read_text() for _, log in children]

    # Three default names in the same second: three folders, each a whole run of its own.
    assert codes[:3] == [0, 0, 0], outputs[:3]
    folders = [re.search(r"run folder:\s+(\S+)", out).group(1) for out in outputs[:3]]  # type: ignore[union-attr]
    assert len(set(folders)) == 3
    for folder, out in zip(folders, outputs[:3], strict=True):
        assert Path(folder).name.startswith("eapo-"), folder
        assert re.search(r"-\d{8}-\d{6}-[0-9a-f]{6}$", folder), folder
        checkpoint = Path(re.search(r"checkpoint:\s+(\S+)", out).group(1))  # type: ignore[union-attr]
        assert checkpoint.is_dir() and verify_checkpoint(checkpoint) is None
        steps = [
            json.loads(line)["step"] for line in (Path(folder) / "metrics.jsonl").read_text().splitlines()
        ]
        assert steps == [0, 1, 1]  # start eval, one step, final eval: nothing interleaved
    # Two processes asking for the same name: exactly one trains it; the other is refused with exit 2.
    assert sorted(codes[3:]) == [0, 2], outputs[3:]
    loser = outputs[3:][codes[3:].index(2)]
    assert f"eapo: error: run folder {runs / 'run'} already exists" in loser
    assert "--resume" in loser and "Traceback" not in loser
    assert sorted(p.name for p in runs.iterdir() if p.name.startswith("run")) == ["run"]


def test_a_new_run_never_writes_into_an_existing_run_folder(
    finished_run: Path, problems_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _snapshot(finished_run)
    config = write_config(finished_run.parent / "again.yaml", tiny_values(problems_file, finished_run.parent))
    assert main(["train", "--config", str(config), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"run folder {finished_run} already exists" in err
    assert f"eapo train --resume {finished_run}" in err and "another --run.name" in err
    assert _snapshot(finished_run) == before


def test_a_run_folder_in_use_is_refused_and_a_dead_process_lock_is_no_lock(
    finished_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = RunLock(finished_run).acquire()  # as a training process holds it
    try:
        assert main(["train", "--resume", str(finished_run), "--steps", "3", "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert f"run folder {finished_run} is in use by pid {os.getpid()}" in err
    finally:
        lock.release()
    # A lock file left by a process that died (the kernel dropped its flock): taken over, no message needed.
    (finished_run / ".lock").write_text(json.dumps({"pid": 999_999_999, "host": "elsewhere"}))
    assert main(["train", "--resume", str(finished_run), "--steps", "3", "--no-progress"]) == 0
    assert json.loads((finished_run / ".lock").read_text())["pid"] == os.getpid()


def test_resume_refuses_a_change_of_the_math_and_keeps_config_yaml(
    finished_run: Path, tmp_path: Path, problems_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recorded = (finished_run / "config.yaml").read_bytes()
    before = _snapshot(finished_run)
    argv = ["train", "--resume", str(finished_run), "--steps", "4", "--no-progress"]
    assert main([*argv, "--algo", "grpo", "--train.lr", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "algo.name: 'eapo' -> 'grpo'; train.lr: 0.01 -> 0.5" in err
    assert "--allow-config-change" in err
    # --config beside --resume is compared too (it used to be ignored).
    other = write_config(
        tmp_path / "other.yaml", tiny_values(problems_file, tmp_path / "x", train={"lr": 0.3})
    )
    assert main([*argv, "--config", str(other)]) == 2
    assert "train.lr: 0.01 -> 0.3" in capsys.readouterr().err
    # A resumed run stays in its folder.
    assert main([*argv, "--run.name", "elsewhere"]) == 2
    assert "run.name: 'run' -> 'elsewhere'" in capsys.readouterr().err
    assert _snapshot(finished_run) == before and (finished_run / "config.yaml").read_bytes() == recorded


def test_an_explicit_config_change_and_a_longer_run_are_recorded_with_their_step(
    finished_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recorded = (finished_run / "config.yaml").read_bytes()
    argv = ["train", "--resume", str(finished_run), "--no-progress"]
    assert main([*argv, "--steps", "3", "--train.lr", "0.02", "--allow-config-change"]) == 0
    assert main([*argv, "--steps", "4"]) == 0  # the recorded lr (0.02) goes on without being restated
    rows = [json.loads(line) for line in (finished_run / CHANGES_FILE).read_text().splitlines()]
    assert rows == [
        {"step": 2, "field": "train.steps", "old": 2, "new": 3},
        {"step": 2, "field": "train.lr", "old": 0.01, "new": 0.02},
        {"step": 3, "field": "train.steps", "old": 3, "new": 4},
    ]
    assert (finished_run / "config.yaml").read_bytes() == recorded
    capsys.readouterr()


def test_resuming_a_finished_run_says_so_and_writes_nothing(
    finished_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _snapshot(finished_run)
    capsys.readouterr()
    assert main(["train", "--resume", str(finished_run), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"{finished_run} already finished at step 2: nothing to do, nothing written" in out
    assert _snapshot(finished_run) == before  # no duplicate final-eval row, no new file
    assert main(["train", "--resume", str(finished_run), "--steps", "1", "--no-progress"]) == 2
    assert "train.steps = 1 is below the checkpoint's step 2" in capsys.readouterr().err


class _RunsCode:
    """A pickled object that runs code when loaded (writes a marker file)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.write_text, (self.marker, "code ran"))


def _make_legacy(checkpoint: Path, payload: Any) -> None:
    """Turn a checkpoint into the pre-issue-#20 layout: a pickled trainer.pt instead of safetensors + JSON."""
    state = read_trainer_state(checkpoint)
    torch.save(
        {**state, "extra": payload} if payload is not None else state, checkpoint / LEGACY_TRAINER_STATE
    )
    (checkpoint / TRAINER_TENSORS).unlink()
    (checkpoint / TRAINER_JSON).unlink()
    manifest = json.loads((checkpoint / MANIFEST).read_text())
    files = {k: v for k, v in manifest["files"].items() if k not in (TRAINER_TENSORS, TRAINER_JSON)}
    files[LEGACY_TRAINER_STATE] = _sha256(checkpoint / LEGACY_TRAINER_STATE)
    (checkpoint / MANIFEST).write_text(json.dumps({"step": manifest["step"], "files": files}))


def test_loading_a_run_executes_no_code_from_it(
    finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = finished_run / "checkpoints" / "step_000002"
    assert sorted(p.name for p in checkpoint.iterdir() if p.suffix in (".pt", ".pkl", ".bin")) == []
    for path in [checkpoint / TRAINER_TENSORS, *checkpoint.joinpath("model").glob("*.safetensors")]:
        assert path.read_bytes()[8:9] == b"{"  # a safetensors header, not a pickle

    marker = tmp_path / "pwned"
    _make_legacy(checkpoint, _RunsCode(marker))
    monkeypatch.delenv("EAPO_TRUST_CHECKPOINT", raising=False)
    with pytest.raises(CheckpointError, match="--trust-checkpoint"):
        read_trainer_state(checkpoint)
    assert main(["train", "--resume", str(finished_run), "--steps", "3", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "would run code from the file" in err and "EAPO_TRUST_CHECKPOINT=1" in err
    assert not marker.exists()
    # The explicit opt-in loads it (and so runs its code: that is what trusting it means).
    read_trainer_state(checkpoint, trust=True)
    assert marker.read_text() == "code ran"


def test_an_old_checkpoint_of_plain_tensors_still_resumes_without_an_opt_in(
    finished_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EAPO_TRUST_CHECKPOINT", raising=False)
    _make_legacy(finished_run / "checkpoints" / "step_000002", None)
    assert main(["train", "--resume", str(finished_run), "--steps", "3", "--no-progress"]) == 0
    newest = finished_run / "checkpoints" / "step_000003"
    assert (newest / TRAINER_JSON).is_file() and not (newest / LEGACY_TRAINER_STATE).exists()


@pytest.mark.parametrize("umask", [0o022, 0o027], ids=["umask_022", "umask_027"])
def test_checkpoint_files_follow_the_umask(umask: int, tmp_path: Path, problems_file: Path) -> None:
    previous = os.umask(umask)
    try:
        values = tiny_values(
            problems_file, tmp_path / "runs", train={"steps": 1}, run={"dump_rollouts_every": 1}
        )
        checkpoint = train(load_config(overrides=values), progress=False).checkpoint
    finally:
        os.umask(previous)
    assert checkpoint is not None
    dumps = sorted((checkpoint.parents[1] / "rollouts").iterdir())
    assert [p.suffix for p in dumps] == [".json", ".safetensors"]
    for path in [checkpoint, *checkpoint.rglob("*"), *dumps]:
        expected = (0o777 if path.is_dir() else 0o666) & ~umask
        assert stat.S_IMODE(path.stat().st_mode) == expected, path


def test_a_run_started_under_nohup_keeps_ignoring_sighup(tmp_path: Path, problems_file: Path) -> None:
    """SIGHUP stops a run gracefully (test_reliability_process.py) unless the run was started ignoring it."""
    config = write_config(
        tmp_path / "c.yaml", tiny_values(problems_file, tmp_path / "runs", train={"steps": 1000})
    )
    log = tmp_path / "nohup.log"
    process = start_eapo(
        ["train", "--config", str(config), "--no-progress"], log, script=HERE / "nohup_eapo.py"
    )
    run = tmp_path / "runs" / "run"

    def steps() -> int:
        return len(training_rows(run)) if (run / "metrics.jsonl").exists() else 0

    wait_until(lambda: steps() >= 1, START_TIMEOUT_S, process, log)
    process.send_signal(signal.SIGHUP)
    hup_at = steps()
    wait_until(lambda: steps() >= hup_at + 3, START_TIMEOUT_S, process, log)  # still training
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 0, log.read_text()
    output = log.read_text()
    assert "SIGHUP" not in output and "Stopped by SIGTERM" in output


@pytest.mark.parametrize("state", [{"step": "2", "data_position": 4}, {"step": 2, "data_position": -1}, [2]])
def test_a_crafted_state_json_is_a_checkpoint_error(
    state: Any, finished_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A state.json with a valid checksum but nonsense values (written by hand or by another tool)."""
    checkpoint = finished_run / "checkpoints" / "step_000002"
    (checkpoint / "state.json").write_text(json.dumps(state))
    manifest = json.loads((checkpoint / MANIFEST).read_text())
    manifest["files"]["state.json"] = _sha256(checkpoint / "state.json")
    (checkpoint / MANIFEST).write_text(json.dumps(manifest))
    assert main(["train", "--resume", str(finished_run), "--steps", "3", "--no-progress"]) == 2
    assert "state.json" in _one_line(capsys)


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("eapo: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]
