"""Helpers of the reliability tests: a seconds-long training setting, metrics checks, `eapo` subprocesses."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from eapo.train.config import Config, load_config
from eapo.train.logging import read_metrics

HERE = Path(__file__).resolve().parent


def write_problems(path: Path, count: int = 48) -> Path:
    """`count` one-digit additions as a JSONL task (a jsonl: task needs no reasoning-gym import)."""
    rows = [{"prompt": f"Calculate {a} + {b}.", "answer": str(a + b)} for a in range(8) for b in range(6)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows[:count]))
    return path


def tiny_values(problems: Path, output_dir: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    """A full run config as nested dicts: a 1-layer, 16-wide tiny model warmed up for one step, 2 prompts x
    2 samples of at most 8 tokens per step, no periodic evaluation. `sections` update the defaults."""
    values: dict[str, Any] = {
        "task": {
            "source": f"jsonl:{problems}",
            "num_train": 40,
            "num_eval": 4,
            "system_prompt": "",
        },
        "model": {
            "tiny": {
                "n_layer": 1,
                "n_embd": 16,
                "n_head": 1,
                "sft_max_steps": 1,
                "sft_eval_every": 1,
                "sft_eval_problems": 2,
                "sft_batch_size": 4,
                "target_accuracy": [0.0, 1.0],
            }
        },
        "sampling": {"max_new_tokens": 8},
        "eval": {"every": 0, "num_problems": 2, "k": 1},
        # One update per rollout: tiny.yaml's 4 mini-batches cannot split 2 prompts.
        "train": {
            "steps": 3,
            "prompts_per_step": 2,
            "group_size": 2,
            "mini_batches": 1,
            "micro_batch_rows": 4,
            "lr": 1e-2,
        },
        "run": {
            "output_dir": str(output_dir),
            "name": "run",
            "checkpoint_every": 1,
            "keep_checkpoints": 10,
            "tensorboard": False,
            "entropy_change_every": 0,
            "dump_rollouts_every": 0,
            "log_samples": 1,
        },
    }
    for section, fields in sections.items():
        values[section] = _merged(values.get(section, {}), fields)
    return values


def _merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        nested = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merged(out[key], value) if nested else value
    return out


def tiny_config(problems: Path, output_dir: Path, **sections: dict[str, Any]) -> Config:
    return load_config(overrides=tiny_values(problems, output_dir, **sections))


def write_config(path: Path, values: dict[str, Any]) -> Path:
    """`values` as a config file that, like `load_config(overrides=values)`, starts from the built-in tiny
    default (`extends: tiny`), so that a child `eapo train --config FILE` runs the very config of an
    in-process reference run (tiny.yaml sets model.dtype: float32; the dataclass default is auto)."""
    path.write_text(yaml.safe_dump({"extends": "tiny", **values}, sort_keys=False))
    return path


def mixed_reward(completion: str, problem: Any) -> float:
    """0 or 1 by the parity of the completion's characters: mixed rewards in most groups of untrained
    samples (their lengths are all equal when every response hits max_new_tokens, so length won't do)."""
    return float(sum(map(ord, completion)) % 2)


# An update with a gradient whatever the rewards: the entropy bonus of entro_reg, all groups kept.
ALWAYS_A_GRADIENT: dict[str, Any] = {
    "algo": {"name": "entro_reg"},
    "train": {"drop_zero_variance_groups": False},
}


def training_rows(run_dir: Path) -> list[dict[str, Any]]:
    return [row for row in read_metrics(run_dir) if "loss" in row]


def comparable(row: dict[str, Any]) -> dict[str, Any]:
    """A metrics row without wall-clock figures (the only values allowed to differ between two runs)."""
    return {k: v for k, v in row.items() if not k.startswith("time/") and k != "tokens_per_s"}


def non_finite_metrics(run_dir: Path) -> list[tuple[int, str, Any]]:
    """(step, key, value) of every metrics.jsonl value that is null (NaN/inf are written as null)."""
    bad = []
    for row in read_metrics(run_dir):
        for key, value in row.items():
            if value is None or (isinstance(value, float) and not math.isfinite(value)):
                bad.append((row["step"], key, value))
    return bad


def subprocess_env() -> dict[str, str]:
    """The test's environment for a child `python`: same cache dir (set by tests/conftest.py), one thread."""
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"})
    return env


def start_eapo(args: list[str], log: Path, *, script: Path | None = None) -> subprocess.Popen[str]:
    """`python -m eapo.cli ARGS` (or `python SCRIPT ARGS`), stdout and stderr into the file `log`.

    A file rather than a pipe: the test polls it while the child runs, and a child that prints a lot can
    never block on a full pipe.
    """
    command = [sys.executable, str(script), *args] if script else [sys.executable, "-m", "eapo.cli", *args]
    with log.open("w") as out:
        env = subprocess_env()
        return subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            # The child starts with SIGHUP's default action even when the tests run under `nohup` (which
            # sets it to ignored, and eapo keeps an ignored SIGHUP ignored); nohup_eapo.py ignores it itself.
            preexec_fn=_default_sighup if hasattr(signal, "SIGHUP") else None,
        )


def _default_sighup() -> None:
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def wait_until(condition: Any, timeout_s: float, process: subprocess.Popen[str], log: Path) -> None:
    """Poll `condition()` every 20 ms; fail with the child's output if it exits or time runs out first."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the child exited with {process.returncode}:\n{log.read_text()}")
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise AssertionError(f"timed out after {timeout_s} s; child output:\n{log.read_text()}")
        time.sleep(0.02)
