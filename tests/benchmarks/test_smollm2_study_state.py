"""benchmarks/smollm2_study_state.py reads a grid's runs as `eapo compare` lays them out."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

from eapo.train.config import load_config
from eapo.train.trainer import Trainer

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH_DIR))


def test_state_of_a_run_names_its_step_checkpoint_and_eval_curve(tmp_path: Path) -> None:
    state = importlib.import_module("smollm2_study_state")
    run_dir = tmp_path / "runs" / "pilot" / "grpo" / "seed0"
    config = load_config("smoke", {"algo": {"name": "grpo"}, "eval": {"every": 2, "k": 8}})
    Trainer(config, run_dir=run_dir, progress=False).run()
    one = state.run_state(run_dir)
    assert one["algo"] == "grpo" and one["last_step"] == config.train.steps == one["horizon"]
    assert one["resumes_from"] == f"step_{config.train.steps:06d}"
    assert one["eval_curve"][0]["step"] == 0  # the start is evaluated
    assert one["last_10_steps"]["reward_mean"] is not None

    out = tmp_path / "state.json"
    cmd = [sys.executable, str(BENCH_DIR / "smollm2_study_state.py"), "--runs", str(tmp_path / "runs")]
    subprocess.run([*cmd, "--out", str(out)], check=True, capture_output=True, text=True)
    written = json.loads(out.read_text())
    assert written["final"] is False and len(written["runs"]) == 1 and "machine" in written
