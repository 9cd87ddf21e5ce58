"""`eapo compare` end to end on minimal tiny grids (algorithms, and the α/φ sensitivity), and its errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from eapo.analysis.compare import parse_algos, parse_sweeps, sweep_arms
from eapo.cli.experiment_commands import register
from eapo.errors import ConfigError

# The built-in `smoke` config, evaluated every step, without the per-step analysis extras.
TINY_ARGS = [
    "--config", "smoke", "--eval.every", "1", "--train.micro_batch_rows", "8",
    "--run.entropy_change_every", "0", "--run.dump_rollouts_every", "0",
]  # fmt: skip


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Any:
    # 2 shared cores: one intra-op thread per process avoids oversubscription (several times faster here).
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def run_cli(argv: list[str]) -> int:
    """Parse and run like `eapo.cli.main` does: subcommand arguments, the rest as config overrides."""
    parser = argparse.ArgumentParser(prog="eapo")
    register(parser.add_subparsers(dest="command"))
    args, rest = parser.parse_known_args(argv)
    return args.func(args, rest)


def test_compare_end_to_end(tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "compare"
    argv = ["compare", "--algos", "grpo,eapo", "--seeds", "2", "--steps", "2", "--target", "0.0"]
    argv += ["--out", str(out), "--runs-dir", str(tmp_path / "runs"), "--final-samples", "4"]
    argv += ["--final-problems", "4", "--no-progress", *TINY_ARGS]
    assert run_cli(argv) == 0
    report = json.loads((out / "compare.json").read_text())
    assert report["focus"] == "eapo" and list(report["arms"]) == ["grpo", "eapo"]
    assert (tmp_path / "runs" / "eapo" / "seed1" / "grid_eval.json").is_file()  # runs in --runs-dir
    for arm in report["arms"].values():
        assert arm["seeds"] == [0, 1]
        assert set(arm["final"]) == {"avg@4", "pass@1", "pass@2", "pass@4"}
        assert arm["eval_curve"]["avg@2"]["x"] == [0.0, 1.0, 2.0]
        assert set(arm["quadrant_shares"]) == {"PHR", "PLR", "NHR", "NLR", "ZERO"}
        assert arm["final_entropy"]["n"] == 2 and arm["tokens_generated"]["mean"] > 0
        assert arm["wall_seconds"]["mean"] > 0
        # Target 0.0 is reached at the first evaluation (step 0) by every seed.
        assert arm["steps_to_target"]["per_seed"] == {"0": 0.0, "1": 0.0}
    (paired,) = report["paired"]["avg@4"]
    assert (paired["arm"], paired["reference"]) == ("eapo", "grpo")
    eapo = {r["seed"]: r["final_avg"] for r in report["runs"]["eapo"]}
    grpo = {r["seed"]: r["final_avg"] for r in report["runs"]["grpo"]}
    assert paired["differences"] == pytest.approx([eapo[s] - grpo[s] for s in (0, 1)], abs=1e-6)
    assert paired["beats"] == (paired["interval"]["low"] > 0)
    table = (out / "compare.md").read_text()
    assert "| grpo | 2 |" in table and "eapo vs grpo:" in table
    for name in ("compare_accuracy.png", "compare_entropy.png", "compare_quadrant_shares.png"):
        assert (out / name).stat().st_size > 1000
    # The pre-stated analysis: AUC primary by default, resampling the 4 held-out problems of every in-training
    # evaluation (the trainer wrote their counts), Pass@k against the base model evaluated once per seed.
    assert report["settings"]["primary"] == "auc"
    prestated = report["prestated"]
    (primary,) = prestated["primary"]["tests"]
    assert (primary["arm"], primary["reference"], primary["metric"]) == ("eapo", "grpo", "auc")
    assert (primary["seeds"], primary["num_problems"], primary["problems_resampled"]) == (2, 4, "shared")
    counts = [
        json.loads(line)
        for line in (tmp_path / "runs/eapo/seed1/eval_problems.jsonl").read_text().splitlines()
    ]
    assert [c["step"] for c in counts] == [0, 1, 2] and all(
        len(c["correct_per_problem"]) == 4 for c in counts
    )
    base = json.loads((tmp_path / "runs" / "base_model" / "seed0" / "grid_eval.json").read_text())
    assert base["final"]["samples"] == 4 and base["final"]["num_problems"] == 4
    assert set(prestated["per_seed"]["final"]) == {"grpo", "eapo", "base_model"}
    assert [t["reference"] for t in prestated["secondary"]["tests"]][-2:] == ["base_model", "guessing"]
    assert set(prestated["pass_at_k"]["arms"]) == {"grpo", "eapo", "base_model"}
    assert prestated["power"]["seed_counts"] == [4, 8, 16] and prestated["power"]["rows"]
    assert "## Pre-stated analysis" in table and "### Power" in table
    assert "Minimum detectable effect on the primary metric (AUC" in capsys.readouterr().out


def test_sensitivity_is_chosen_on_validation(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    argv = ["compare", "--sweep", "alpha=0.5", "--seeds", "1", "--steps", "1", "--val-problems", "5"]
    argv += ["--out", str(out), "--final-samples", "2", "--final-problems", "3", "--no-progress", *TINY_ARGS]
    assert run_cli(argv) == 0
    report = json.loads((out / "sensitivity.json").read_text())
    assert list(report["arms"]) == ["eapo_alpha0.2_phi2", "eapo_alpha0.5_phi2"]
    assert report["validation"]["num_problems"] == 5
    validation = {name: arm["validation"]["avg@2"]["mean"] for name, arm in report["arms"].items()}
    best = max(validation.values())
    # The choice is the best validation score (ties: the default, listed first), whatever held-out says.
    assert report["chosen_on_validation"] == next(n for n, v in validation.items() if v == best)
    run = json.loads((out / "eapo_alpha0.5_phi2" / "seed0" / "grid_eval.json").read_text())
    assert run["validation"]["num_problems"] == 5 and run["final"]["num_problems"] == 3
    assert "alpha: 0.5" in (out / "eapo_alpha0.5_phi2" / "seed0" / "config.yaml").read_text()
    assert "(chosen)" in (out / "sensitivity.md").read_text()


def test_sweep_arms_one_at_a_time_and_grid() -> None:
    sweeps = parse_sweeps(["alpha=0.1,0.2,1", "phi=1,2"])
    arms, default = sweep_arms(sweeps)
    names = [a.name for a in arms]
    assert default == "eapo_alpha0.2_phi2" == names[0]
    assert names == ["eapo_alpha0.2_phi2", "eapo_alpha0.1_phi2", "eapo_alpha1_phi2", "eapo_alpha0.2_phi1"]
    arms, _ = sweep_arms(sweeps, grid=True)
    assert len(arms) == 6 and arms[-1].overrides == {"algo": {"name": "eapo", "alpha": 1.0, "phi": 2.0}}


def test_compare_argument_errors_name_the_argument(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--algos = 'epao' is unknown: did you mean 'eapo'"):
        parse_algos("grpo,epao")
    with pytest.raises(ConfigError, match="--sweep 'beta=1'"):
        parse_sweeps(["beta=1"])
    with pytest.raises(ConfigError, match="--sweep 'phi=0,2': φ must be > 0"):
        parse_sweeps(["phi=0,2"])
    with pytest.raises(ConfigError, match="--sweep 'alpha=x': the values must be numbers"):
        parse_sweeps(["alpha=x"])
    with pytest.raises(ConfigError, match="--focus 'eapo' is not among --algos grpo,dapo"):
        run_cli(["compare", "--algos", "grpo,dapo", "--out", str(tmp_path)])
    with pytest.raises(ConfigError, match=r"--target 2\.0"):
        run_cli(["compare", "--target", "2", "--out", str(tmp_path)])
    with pytest.raises(ConfigError, match="does not combine with --algos"):
        run_cli(["compare", "--algos", "eapo", "--sweep", "alpha=0.1", "--out", str(tmp_path)])
