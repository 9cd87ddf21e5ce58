"""The start evaluation reused from the cache (`eval.reuse_start`, eapo.train.start_eval)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from eapo.train.config import Config, load_config
from eapo.train.logging import read_eval_counts, read_metrics
from eapo.train.start_eval import START_EVAL_DIR, read_start_eval, reuse_or_compute, store_start_eval
from eapo.train.trainer import train


def config_for(tmp_path: Path, name: str, **sections: dict[str, Any]) -> Config:
    """The built-in `smoke` config with `eval.reuse_start` on, its cache in tmp_path."""
    values: dict[str, Any] = {
        "run": {"output_dir": str(tmp_path / "runs"), "name": name},
        "eval": {"reuse_start": True},
    }
    for section, fields in sections.items():
        values.setdefault(section, {}).update(fields)
    return load_config("smoke", values)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("EAPO_CACHE_DIR", str(folder))
    return folder


def _without_clock(row: dict[str, Any]) -> dict[str, Any]:
    clock = ("tokens_per_s", "eval/reused")
    return {k: v for k, v in row.items() if not k.startswith("time/") and k not in clock}


def test_second_run_reads_the_start_evaluation_and_trains_identically(cache: Path, tmp_path: Path) -> None:
    first = train(config_for(tmp_path, "first"), progress=False)
    stored = list((cache / START_EVAL_DIR).glob("*.json"))
    assert len(stored) == 1
    record = json.loads(stored[0].read_text())
    assert record["run"] == str(first.run_dir) and record["seconds"] > 0

    # Poison the stored numbers: the second run must show them, so it read the cache, not recomputed.
    record["result"]["avg@1"] = 0.123456
    stored[0].write_text(json.dumps(record))
    second = train(config_for(tmp_path, "second"), progress=False)
    first_rows, second_rows = read_metrics(first.run_dir), read_metrics(second.run_dir)
    assert first_rows[0]["eval/reused"] == 0.0 and second_rows[0]["eval/reused"] == 1.0
    assert second_rows[0]["eval/avg@1"] == 0.123456
    assert read_eval_counts(second.run_dir)[0] == read_eval_counts(first.run_dir)[0]

    # Skipping the evaluation leaves the training RNG alone: every step and the final evaluation match.
    assert len(first_rows) == len(second_rows)
    for a, b in zip(first_rows[1:], second_rows[1:], strict=True):
        assert _without_clock(a) == _without_clock(b)


def test_reused_start_matches_a_computed_one(cache: Path, tmp_path: Path) -> None:
    """The stored result is what the run computes: a run without the option logs the same start row."""
    plain = train(config_for(tmp_path, "plain", eval={"reuse_start": False}), progress=False)
    assert not (cache / START_EVAL_DIR).exists()  # off: nothing is written
    assert "eval/reused" not in read_metrics(plain.run_dir)[0]
    train(config_for(tmp_path, "store"), progress=False)
    reused = train(config_for(tmp_path, "reuse"), progress=False)
    start_plain, start_reused = read_metrics(plain.run_dir)[0], read_metrics(reused.run_dir)[0]
    assert start_reused["eval/reused"] == 1.0
    assert _without_clock(start_plain) == _without_clock(start_reused)


@pytest.mark.parametrize(
    "change",
    [
        {"run": {"seed": 7}},
        {"eval": {"k": 3}},
        {"eval": {"temperature": 0.9}},
        {"eval": {"num_problems": 3}},
        {"sampling": {"phase_tokens": 4}},
    ],
)
def test_a_different_evaluation_does_not_reuse(cache: Path, tmp_path: Path, change: dict[str, Any]) -> None:
    train(config_for(tmp_path, "base", train={"steps": 1}), progress=False)
    other = train(config_for(tmp_path, "other", train={"steps": 1}, **change), progress=False)
    assert read_metrics(other.run_dir)[0]["eval/reused"] == 0.0
    assert len(list((cache / START_EVAL_DIR).glob("*.json"))) == 2


def test_unreadable_records_are_ignored_and_unwritable_caches_tolerated(tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    assert read_start_eval(folder, "abc") is None
    (folder / START_EVAL_DIR).mkdir(parents=True)
    (folder / START_EVAL_DIR / "abc.json").write_text("{torn")
    assert read_start_eval(folder, "abc") is None
    (folder / START_EVAL_DIR / "abc.json").write_text(json.dumps({"key": "other", "result": {}}))
    assert read_start_eval(folder, "abc") is None  # a record stored under another key
    path = store_start_eval(folder, "abc", {"avg@1": 0.5}, seconds=1.0, run_dir=tmp_path)
    record = read_start_eval(folder, "abc")
    assert path is not None and record is not None and record["result"] == {"avg@1": 0.5}
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    assert store_start_eval(blocked, "abc", {}, seconds=1.0, run_dir=tmp_path) is None


def test_reuse_or_compute_computes_once_per_key(tmp_path: Path) -> None:
    calls: list[int] = []

    def compute() -> dict[str, Any]:
        calls.append(1)
        return {"avg@1": 0.25, "correct_per_problem": [1, 0]}

    first = reuse_or_compute("k1", compute, run_dir=tmp_path, cache_dir=tmp_path / "cache")
    second = reuse_or_compute("k1", compute, run_dir=tmp_path, cache_dir=tmp_path / "cache")
    other = reuse_or_compute("k2", compute, run_dir=tmp_path, cache_dir=tmp_path / "cache")
    assert (first[1], second[1], other[1]) == (False, True, False) and len(calls) == 2
    assert first[0] == second[0] == {"avg@1": 0.25, "correct_per_problem": [1, 0]}
