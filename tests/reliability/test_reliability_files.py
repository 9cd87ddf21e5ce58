"""Storage and environment faults are one `eapo: error:` line naming the path and the fix, found before the
work starts (issue #20, classes 5 and 8): damaged or empty metrics files, unwritable or misplaced output
paths, an unusable model cache, an unreachable Hugging Face Hub.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

import eapo.models.loading as loading
import eapo.models.pretrained as pretrained
from eapo.cli import main
from eapo.errors import ConfigError, DataError, ModelLoadError
from eapo.train.logging import read_metrics

ROW = {"step": 1, "loss": 0.1, "reward/mean": 0.5, "entropy/mean": 1.0, "quadrant/PHR/share": 0.25}


def _run(folder: Path, text: str | bytes) -> Path:
    folder.mkdir(parents=True)
    path = folder / "metrics.jsonl"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return folder


def _one_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("eapo: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


GOOD = json.dumps(ROW) + "\n"
BAD_METRICS: dict[str, tuple[str | bytes, str]] = {
    "a_row_that_is_a_list": (GOOD + "[1, 2, 3]\n" + GOOD, "metrics.jsonl, line 2: expected a JSON object"),
    "a_row_without_a_step": (GOOD + '{"loss": 1}\n' + GOOD, "line 2: expected a JSON object"),
    "garbage_before_the_end": (GOOD + "{not json\n" + GOOD, "metrics.jsonl, line 2: not JSON"),
    "not_utf8": (GOOD.encode() + b'{"step": 2, "note": "\xe9"}\n', "metrics.jsonl, line 2: not UTF-8"),
}


@pytest.mark.parametrize("command", ["report", "quadrants"])
@pytest.mark.parametrize("case", sorted(BAD_METRICS))
def test_damaged_metrics_name_the_file_and_line(
    case: str, command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, fragment = BAD_METRICS[case]
    run = _run(tmp_path / "run", text)
    argv = ["report", "--runs", str(run), "--out", str(tmp_path / "r.html")]
    if command == "quadrants":
        argv = ["quadrants", "--run", str(run), "--no-progress"]
    assert main(argv) == 2
    message = _one_error(capsys)
    assert fragment in message and str(run) in message
    assert not (tmp_path / "r.html").exists()


def test_a_torn_last_line_is_still_tolerated(tmp_path: Path) -> None:
    run = _run(tmp_path / "run", GOOD + GOOD + '{"step": 3, "lo')
    assert [row["step"] for row in read_metrics(run)] == [1, 1]


@pytest.mark.parametrize("command", ["report", "quadrants"])
def test_nothing_to_show_is_an_error_not_an_empty_page(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _run(tmp_path / "run", "")
    out = tmp_path / "r.html"
    argv = ["report", "--runs", str(run), "--out", str(out)]
    if command == "quadrants":
        argv = ["quadrants", "--run", str(run), "--no-progress"]
    assert main(argv) == 2
    assert "metrics.jsonl" in _one_error(capsys)
    assert not out.exists()


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["report", "--runs", "{run}", "--out", "{tmp}"], "--out {tmp} is a folder"),
        (["report", "--runs", "{run}", "--out", "{file}/r.html"], "its folder {file} is a file"),
        (["report", "--runs", "{tmp}/none"], "run folder {tmp}/none does not exist"),
        (["quadrants", "--run", "{run}", "--out", "{file}/q"], "--out {file}/q lies under"),
        (["gradients", "--run", "{file}"], "is not a folder"),
        (["gradients", "--run", "{run}", "--steps", "a,b"], "--steps 'a,b': expected comma-separated"),
        (["compare", "--out", "{file}/c", "--seeds", "1"], "--out {file}/c lies under"),
        (["ablate", "--mode", "isolate", "--runs-dir", "{file}"], "--runs-dir {file} is a file"),
    ],
)
def test_output_paths_are_checked_before_any_work(
    argv: list[str], fragment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _run(tmp_path / "run", GOOD)
    file = tmp_path / "a_file"
    file.write_text("x")
    places = {"{run}": str(run), "{tmp}": str(tmp_path), "{file}": str(file)}
    for key, value in places.items():
        argv = [a.replace(key, value) for a in argv]
        fragment = fragment.replace(key, value)
    assert main([*argv, "--no-progress"]) == 2
    assert fragment in _one_error(capsys)


def test_a_read_only_output_folder_is_refused_before_the_model_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    if os.access(locked, os.W_OK):  # root writes anywhere: let the permission check see what a user would
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode: real_access(p, mode) and Path(p) != locked)
    argv = ["train", "--config", "smoke", "--run.output_dir", str(locked / "runs"), "--no-progress"]
    assert main(argv) == 2
    message = _one_error(capsys)
    assert f"run.output_dir {locked / 'runs'}: {locked} is not writable by this user" in message
    assert not (locked / "runs").exists()


def test_an_unwritable_model_cache_is_an_error_when_chosen_and_a_fallback_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "a_file"
    file.write_text("x")
    monkeypatch.setenv(loading.CACHE_ENV, str(file / "cache"))
    with pytest.raises(
        ConfigError, match=rf"model cache {file}/cache lies under {file}, which is a file; set"
    ):
        loading.usable_cache_dir()
    # HOME unset (the user cache dir cannot be resolved) or read-only: the default falls back, and says so.
    monkeypatch.delenv(loading.CACHE_ENV)
    monkeypatch.setattr(loading.platformdirs, "user_cache_dir", lambda name: "~/.cache/eapo")
    monkeypatch.setattr(loading.tempfile, "gettempdir", lambda: str(tmp_path))
    fallback = loading.usable_cache_dir()
    assert fallback.parent == tmp_path and fallback.name.startswith("eapo-cache-")
    assert "HOME is not set" in capsys.readouterr().out


def test_an_unreachable_hub_id_fails_fast_with_one_line_on_working_offline(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.monotonic()
    with pytest.raises(ModelLoadError, match="not a local folder nor in the local Hugging Face cache"):
        pretrained.hub_is_offline("eapo-tests/no-such-model")
    # Without the variable: a Hub that does not answer (no network here, or a closed port) also fails fast.
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    with pytest.raises(ModelLoadError, match="huggingface-cli download eapo-tests/no-such-model"):
        pretrained.hub_is_offline("eapo-tests/no-such-model")
    assert time.monotonic() - started < 2 * pretrained.HUB_TIMEOUT_S + 5


def test_a_data_error_names_the_file(tmp_path: Path) -> None:
    from eapo.errors import read_utf8

    path = tmp_path / "x.jsonl"
    path.write_bytes(b"ok\n\xff\n")
    with pytest.raises(DataError, match=r"x.jsonl, line 2: not UTF-8 text \(byte 0xff at offset 3\)"):
        read_utf8(path)
