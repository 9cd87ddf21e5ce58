"""benchmarks/smollm2_study.sh, read as text and run only where it fails fast: every part its header lists
(and each grid its "also" names) reaches its own branch of the case statement, every branch is listed,
and what it collects lands under the names issue #19 asks for."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "smollm2_study.sh"
ISSUE_PREFIXES = (
    "compare_smollm2_",
    "ablation_",  # ablation_<mode>_smollm2.json
    "credit_smollm2_",
    "gradients_smollm2_",
    "gradients_cosine_smollm2_",
    "quadrants_smollm2_",
)


def _documented_parts() -> list[str]:
    parts = []
    for line in SCRIPT.read_text().splitlines():
        match = re.match(r"#   bash benchmarks/smollm2_study\.sh (\S+)\s+# (.*)", line)
        if match:
            parts.append(match.group(1))
            also = re.match(r"also (.*)", match.group(2))
            if also:  # "also exploratory, isolate, eapo_without": the same command with those parts
                parts += [p.strip() for p in also.group(1).split(",")]
    return parts


def _case_patterns() -> list[str]:
    """The top-level branches of `case "$part" in`, in order (the first match wins, as in bash)."""
    text = SCRIPT.read_text()
    body = text[text.index('    case "$part" in\n    gate)') :]
    return [p for line in re.findall(r"^    ([^\s#][^\n]*)\)$", body, re.M) for p in line.split(" | ")]


def test_every_documented_part_reaches_its_own_branch() -> None:
    patterns = _case_patterns()
    assert patterns[-1] == "*", "the last branch must reject unknown parts"
    parts = _documented_parts()
    assert {"gate", "headline", "isolate", "analyses_end", "complex_headline"} <= set(parts)
    for part in parts:
        first = next(p for p in patterns if fnmatch.fnmatchcase(part, p))
        assert first != "*", f"{part}: no branch"
        # A literal branch for the part when there is one: an earlier glob must not catch it first.
        assert first == part or part not in patterns, f"{part} is caught by {first} before its own branch"
    for pattern in patterns[:-1]:
        assert any(fnmatch.fnmatchcase(part, pattern) for part in parts), f"{pattern}: not documented"


def test_collected_reports_are_named_as_the_issue_asks() -> None:
    names = re.findall(r'collect(?:_with_figures)? "[^"]+" "?([\w$.-]+\.json)"?', SCRIPT.read_text())
    assert len(names) >= 10
    for name in names:
        assert name.startswith(ISSUE_PREFIXES), name
        assert "smollm2" in name, name


def test_an_unknown_part_fails_before_it_runs_anything() -> None:
    result = subprocess.run(["bash", str(SCRIPT), "no_such_part"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "unknown part: no_such_part" in result.stderr


def test_an_analysis_another_process_runs_is_left_to_it(tmp_path: Path) -> None:
    """The analyses hold a lock while they run; a second process skips them and goes on (exit 0)."""
    import fcntl

    (tmp_path / "analyses").mkdir()
    with open(tmp_path / "analyses" / ".analyses_end.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = subprocess.run(
            ["bash", str(SCRIPT), "analyses_end"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "OUT": str(tmp_path)},
        )
    assert result.returncode == 0 and "analyses_end: another process is running it" in result.stdout


QUEUE_PATTERN = r"^bash ([^ ]*/)?smollm2_study\.sh queue$"  # what the guard counts, on the whole machine


def _harmless_copy(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the script whose queue holds only an unknown part, so that a broken guard cannot start the
    study, and a dummy that `ps` shows as a running queue."""
    copy = tmp_path / "benchmarks" / "smollm2_study.sh"
    copy.parent.mkdir()
    text = SCRIPT.read_text()
    queue = re.search(r"^QUEUE=\(.*\)$", text, re.M)
    assert queue is not None
    copy.write_text(text.replace(queue.group(0), "QUEUE=(no_such_part)"))
    dummy = tmp_path / "other" / "smollm2_study.sh"
    dummy.parent.mkdir()
    dummy.write_text("sleep 60\n")
    return copy, dummy


def _queue_beside(copy: Path, dummy: Path, others: int) -> subprocess.CompletedProcess[str]:
    dummies = [subprocess.Popen(["bash", str(dummy), "queue"]) for _ in range(others)]
    try:
        time.sleep(0.5)
        return subprocess.run(["bash", str(copy), "queue"], capture_output=True, text=True, timeout=60)
    finally:
        for process in dummies:
            process.kill()
            process.wait()


def test_a_third_queue_refuses_to_start(tmp_path: Path) -> None:
    """Two `queue` processes side by side at most (2 cores): with two running, a third exits 2 at once."""
    copy, dummy = _harmless_copy(tmp_path)
    result = _queue_beside(copy, dummy, others=2)
    assert result.returncode == 2 and "two are running already" in result.stderr


def test_a_second_queue_may_start(tmp_path: Path) -> None:
    """With one other queue running, a second goes through its parts (here the copy's unknown one)."""
    if subprocess.run(["pgrep", "-f", QUEUE_PATTERN], capture_output=True).returncode == 0:
        pytest.skip("the study's own queue runs on this machine: the guard rightly counts it")
    copy, dummy = _harmless_copy(tmp_path)
    result = _queue_beside(copy, dummy, others=1)
    assert result.returncode == 0 and "queue: no_such_part" in result.stdout


FAKE_EAPO = """#!/usr/bin/env python3
import os, signal, sys, time
from pathlib import Path

log = Path(os.environ["FAKE_EAPO_LOG"])
with log.open("a") as f:
    f.write("started " + " ".join(sys.argv[1:3]) + "\\n")


def finish_step_and_save(signum, frame):
    time.sleep(1)  # the step in progress, then the checkpoint
    with log.open("a") as f:
        f.write("saved\\n")
    sys.exit(0)  # as eapo does after a graceful stop


signal.signal(signal.SIGTERM, finish_step_and_save)
while True:
    time.sleep(0.1)
"""


def _study_under_test(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the script whose queue runs the headline twice with a fake `eapo` that trains until SIGTERM
    and then saves; its guard counts only copies like it, so the study's own queues (if any run on this
    machine) neither block it nor are touched: `stop` acts on the queues registered under the copy's OUT."""
    copy = tmp_path / "benchmarks" / "study_under_test.sh"
    copy.parent.mkdir()
    text = SCRIPT.read_text()
    queue = re.search(r"^QUEUE=\(.*\)$", text, re.M)
    assert queue is not None and r"smollm2_study\.sh queue" in text
    text = text.replace(queue.group(0), "QUEUE=(headline headline)")
    copy.write_text(text.replace(r"smollm2_study\.sh queue", r"study_under_test\.sh queue"))
    shutil.copy(SCRIPT.parent / "study_runs.py", copy.parent)  # restore at each part, archive after stop
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "eapo").write_text(FAKE_EAPO)
    (bin_dir / "eapo").chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "STEPS": "5",  # the horizon, so that the copy needs no pilot report
        "FAKE_EAPO_LOG": str(tmp_path / "eapo.log"),
    }
    return copy, env


def _wait_for(predicate: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_stop_lets_each_run_save_and_starts_nothing_new(tmp_path: Path) -> None:
    copy, env = _study_under_test(tmp_path)
    log = tmp_path / "eapo.log"
    queue = subprocess.Popen(
        ["bash", str(copy), "queue"],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        started = _wait_for(lambda: log.exists() and "started" in log.read_text(), 30)
        assert started, "the fake run never started"
        registered = list((tmp_path / "runs" / "smollm2_study" / "queues").iterdir())
        assert [p.name for p in registered] == [str(queue.pid)]
        stop = ["bash", str(copy), "stop"]
        result = subprocess.run(stop, env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert "every queue has stopped" in result.stdout
        assert "archived 0 finished run(s)" in result.stdout  # the fake runs never finished
        assert queue.wait(timeout=10) != 0  # the queue itself was stopped, not left to start the next part
        assert log.read_text().splitlines() == ["started compare --config", "saved"]
        assert not any((tmp_path / "runs" / "smollm2_study" / "queues").iterdir())
    finally:
        if queue.poll() is None:
            os.killpg(queue.pid, 9)


def test_stop_with_no_queue_running_says_so_and_clears_stale_entries(tmp_path: Path) -> None:
    copy, env = _study_under_test(tmp_path)
    queues = tmp_path / "runs" / "smollm2_study" / "queues"
    queues.mkdir(parents=True)
    stale = subprocess.Popen(["true"])  # a pid that has exited: a queue killed outright left its entry
    stale.wait()
    (queues / str(stale.pid)).write_text(f"{stale.pid}\n")
    stop = ["bash", str(copy), "stop"]
    result = subprocess.run(stop, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "no queue is running" in result.stdout
    assert not any(queues.iterdir())
