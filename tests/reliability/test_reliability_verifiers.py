"""Untrusted model output only reaches verifiers, and a verifier that misbehaves never stops training.

A user reward function or math-verify that hangs, raises, returns a non-number (or a number the trainer
cannot hold) or kills its worker gives reward 0, is counted, and costs a step at most a few timeouts.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import pytest

import eapo.tasks.rewards as rewards_module
from eapo.tasks import Problem
from eapo.tasks.rewards import MAX_CONSECUTIVE_TIMEOUTS
from eapo.train.dumps import load_dump
from eapo.train.trainer import train

from .reliability_support import tiny_config, training_rows

TIMEOUT_S = 0.3

# What the adversarial reward function does, picked by a hash of the completion (so the test can work out
# the expected outcome of every completion from the rollout dump): (behaviour, outcome).
BEHAVIOURS = [
    ("hang", "timeout"),
    ("raise", "error"),
    ("string", "error"),
    ("none", "error"),
    ("nan", "error"),
    ("inf", "error"),
    ("beyond_float32", "error"),
    ("exit_worker", "error"),
    ("one", "ok"),
    ("true", "ok"),
]


def _behaviour(completion: str) -> tuple[str, str]:
    return BEHAVIOURS[hashlib.sha256(completion.encode()).digest()[0] % len(BEHAVIOURS)]


def adversarial_reward(completion: str, problem: Problem) -> Any:
    behaviour, _ = _behaviour(completion)
    if behaviour == "hang":
        time.sleep(60)
    if behaviour == "raise":
        raise RuntimeError("reward function crashed")
    if behaviour == "exit_worker":
        os._exit(3)  # the worker process dies mid-call
    return {
        "string": "1.0",
        "none": None,
        "nan": math.nan,
        "inf": math.inf,
        "beyond_float32": 1e39,
        "one": 1.0,
        "true": True,
    }[behaviour]


def _expected(completions: list[str]) -> tuple[list[float], int, int]:
    """Rewards, errors and timeouts that `score_completions` must report, including its rule that after
    MAX_CONSECUTIVE_TIMEOUTS timeouts in a row the rest of the batch is not run (counted as timeouts)."""
    rewards, errors, timeouts, in_a_row = [], 0, 0, 0
    for completion in completions:
        outcome = "timeout" if in_a_row >= MAX_CONSECUTIVE_TIMEOUTS else _behaviour(completion)[1]
        in_a_row = in_a_row + 1 if outcome == "timeout" else 0
        rewards.append(1.0 if outcome == "ok" else 0.0)
        errors += outcome == "error"
        timeouts += outcome == "timeout"
    return rewards, errors, timeouts


def test_a_misbehaving_reward_function_gives_0_is_counted_and_never_blocks_a_step(
    tmp_path: Path, problems_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tiny_config(
        problems_file,
        tmp_path / "runs",
        task={"verifier_timeout_s": TIMEOUT_S},
        sampling={"max_new_tokens": 6},
        train={"steps": 2, "group_size": 4},
        run={"dump_rollouts_every": 1},
    )
    result = train(config, progress=False, reward_fn=adversarial_reward)
    assert result.stopped == "completed"
    rows = training_rows(result.run_dir)
    seen = set()
    for row in rows:
        dump = load_dump(result.run_dir / "rollouts" / f"step_{row['step']:06d}.safetensors")
        rewards, errors, timeouts = _expected(dump["completions"])
        seen |= {_behaviour(c)[0] for c in dump["completions"]}
        assert dump["rewards"].tolist() == rewards
        assert (row["verifier/errors"], row["verifier/timeouts"]) == (errors, timeouts)
        # A step waits for at most MAX_CONSECUTIVE_TIMEOUTS timeouts in a row before giving up on the rest.
        assert row["time/scoring"] < timeouts * TIMEOUT_S + 10.0
    assert rows[-1]["verifier/errors_total"] == sum(r["verifier/errors"] for r in rows)
    assert rows[-1]["verifier/timeouts_total"] == sum(r["verifier/timeouts"] for r in rows)
    assert len(seen) >= 5, seen  # the samples did exercise several kinds of misbehaviour
    out = capsys.readouterr().out
    assert out.count("warning: step 1: the verifier failed on") == 1  # said once, then only counted


def test_a_hanging_math_verify_times_out_and_never_blocks_a_step(
    tmp_path: Path, problems_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    symbolic = tmp_path / "symbolic.jsonl"
    rows = [{"prompt": f"Expand ({i} + x)^2.", "answer": f"x^2 + {2 * i}x + {i * i}"} for i in range(40)]
    symbolic.write_text("".join(json.dumps(row) + "\n" for row in rows))

    def hanging_math_verify(predicted: str, gold: str) -> bool:
        time.sleep(60)  # what sympy can do on an adversarial expression
        return False

    monkeypatch.setattr(rewards_module, "math_verify_equal", hanging_math_verify)
    config = tiny_config(
        symbolic,
        tmp_path / "runs",
        task={"verifier_timeout_s": TIMEOUT_S, "answer_fallback": "last_line"},
        train={"steps": 2},
    )
    start = time.perf_counter()
    result = train(config, progress=False)
    assert result.stopped == "completed"
    for row in training_rows(result.run_dir):
        assert row["verifier/timeouts"] >= 1  # the symbolic answers did go to math-verify, and hung
        assert row["time/scoring"] < MAX_CONSECUTIVE_TIMEOUTS * TIMEOUT_S + 5.0
        assert row["reward/mean"] == 0.0
    assert time.perf_counter() - start < 120
