"""`eapo ablate` end to end on a minimal tiny grid (2 arms x 2 seeds x 2 steps), and its argument errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from eapo.analysis.ablate import ablation_arms, parse_quadrant_sets
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


def test_ablate_isolate_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ablate"
    argv = ["ablate", "--mode", "isolate", "--quadrants", "PHR", "--seeds", "2", "--steps", "2"]
    argv += ["--out", str(out), "--final-samples", "4", "--final-problems", "4", "--no-progress"]
    argv += ["--pass-curve", "--pass-curve-samples", "8", "--pass-curve-problems", "3", *TINY_ARGS]
    assert run_cli(argv) == 0
    printed = capsys.readouterr().out
    assert "ablation.json" in printed and "| isolate_PHR |" in printed

    report = json.loads((out / "ablation.json").read_text())
    assert report["mode"] == "isolate" and report["reference"] == "grpo"
    assert list(report["arms"]) == ["grpo", "isolate_PHR"]
    for name, arm in report["arms"].items():
        assert arm["seeds"] == [0, 1], name
        final = arm["final"]["avg@4"]
        # Every reported figure comes from the runs' own logged evaluations.
        logged = [
            json.loads((out / name / f"seed{s}" / "grid_eval.json").read_text())["final"]["avg"]
            for s in (0, 1)
        ]
        assert final["values"] == pytest.approx(logged, abs=1e-6)
        assert final["mean"] == pytest.approx(sum(logged) / 2, abs=1e-6)
        assert arm["pass_curve"]["k"] == [1, 2, 4, 8] and arm["pass_curve"]["num_problems"] == 3
        assert arm["eval_curve"]["avg@2"]["x"] == [0.0, 1.0, 2.0]
        assert arm["entropy_curve"]["x"] == [1.0, 2.0]
    (paired,) = report["paired"]["avg@4"]
    assert (paired["arm"], paired["reference"], paired["seeds"]) == ("isolate_PHR", "grpo", [0, 1])
    run_values = {r["seed"]: r["final_avg"] for r in report["runs"]["isolate_PHR"]}
    ref_values = {r["seed"]: r["final_avg"] for r in report["runs"]["grpo"]}
    assert paired["differences"] == pytest.approx([run_values[s] - ref_values[s] for s in (0, 1)], abs=1e-6)

    table = (out / "ablation.md").read_text()
    assert "| grpo | 2 |" in table and "reference" in table and "Pass@8" in table
    for figure in report["figures"]:
        assert (out / figure).stat().st_size > 1000
    assert {"ablation_accuracy.png", "ablation_entropy.png", "ablation_pass_at_k.png"} <= set(
        report["figures"]
    )
    # The training arm really trained on PHR tokens only: its config says so.
    config = (out / "isolate_PHR" / "seed0" / "config.yaml").read_text()
    assert "mode: isolate" in config and "- PHR" in config


def test_ablation_arms_per_mode() -> None:
    arms, reference = ablation_arms("eapo-without")
    assert reference == "eapo"
    assert [a.name for a in arms] == ["eapo", *(f"eapo_without_{q}" for q in ("PHR", "PLR", "NHR", "NLR"))]
    assert arms[1].overrides["algo"] == {
        "name": "quadrant",
        "shaper_params": {"mode": "eapo_without", "quadrants": ["PHR"]},
    }
    arms, reference = ablation_arms("drop", parse_quadrant_sets("PLR+NLR,phr"))
    assert reference == "grpo" and [a.name for a in arms] == ["grpo", "drop_PLR+NLR", "drop_PHR"]
    assert arms[1].overrides["algo"]["shaper_params"] == {"mode": "drop", "quadrants": ["PLR", "NLR"]}


def test_ablate_argument_errors_name_the_argument(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--quadrants 'PHR,XYZ': 'XYZ' is not a quadrant"):
        parse_quadrant_sets("PHR,XYZ")
    with pytest.raises(ConfigError, match="names a quadrant twice"):
        parse_quadrant_sets("PHR+PHR")
    with pytest.raises(ConfigError, match="--mode 'bogus'"):
        ablation_arms("bogus")
    with pytest.raises(SystemExit):
        run_cli(["ablate", "--mode", "isolate", "--seeds", "two"])
    with pytest.raises(ConfigError, match="--seeds"):
        run_cli(["ablate", "--mode", "isolate", "--out", str(tmp_path), "--seed", "4"])


def test_ablate_counts_are_positive_integers_at_the_edge(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(["ablate", "--mode", "isolate", "--out", str(tmp_path), "--final-samples", "0"])
    assert exit_info.value.code == 2
    assert "--final-samples: expected a positive integer (>= 1), got 0" in capsys.readouterr().err


def test_control_arms_and_share_matched_random_arms() -> None:
    """Issue #17's controls are registered arms: each resolves to a valid algorithm that trains."""
    from eapo.train.algorithms import AlgoConfig, resolve_algorithm

    arms, reference = ablation_arms("controls")
    assert reference == "grpo" and arms[0].name == "grpo"
    names = [arm.name for arm in arms]
    assert names == [
        "grpo",
        "eapo",
        "eapo_shuffled",
        "w_reinf",
        "eapo_alpha0_phi1",
        "eapo_alpha0.2_phi1",
        "eapo_alpha0.5_phi1",
        "eapo_alpha1_phi1",
    ]
    for arm in arms:
        algo = resolve_algorithm(AlgoConfig(**arm.overrides["algo"]))
        if arm.name.startswith("eapo_alpha"):
            assert algo.shaper == "eapo" and algo.shaper_params["phi"] == 1.0
    assert resolve_algorithm(AlgoConfig(name="eapo_shuffled")).shaper == "eapo_shuffled"

    arms, _ = ablation_arms("isolate", parse_quadrant_sets("PHR,NLR"), random_controls=True)
    assert [a.name for a in arms] == ["grpo", "isolate_PHR", "random_PHR", "isolate_NLR", "random_NLR"]
    params = arms[2].overrides["algo"]["shaper_params"]
    assert params == {"mode": "random_isolate", "quadrants": ["PHR"]}
    with pytest.raises(ConfigError, match="--random-controls"):
        ablation_arms("drop", None, random_controls=True)


def test_eapo_at_alpha_zero_trains_grpos_run_bit_for_bit(tmp_path: Path) -> None:
    """Why the controls grid's α = 0 arm may read the grpo arm's runs (`Arm.runs_of`): trained from the same
    seed, the two runs log the same metrics and end on the same weights, bit for bit."""
    from safetensors.torch import load_file

    from eapo.train.config import load_config
    from eapo.train.logging import read_metrics
    from eapo.train.trainer import train

    overrides = {"train": {"steps": 3, "micro_batch_rows": 8}, "run": {"tensorboard": False, "seed": 3}}
    runs = {}
    for name, algo in (("grpo", {"name": "grpo"}), ("alpha0", {"name": "eapo", "alpha": 0.0, "phi": 1.0})):
        values = {**overrides, "algo": algo, "run": {**overrides["run"], "output_dir": str(tmp_path / name)}}
        runs[name] = train(load_config("smoke", values), progress=False)
    metrics = {
        name: [
            {k: v for k, v in row.items() if not k.startswith("time/") and k != "tokens_per_s"}
            for row in rows
        ]
        for name, rows in ((n, read_metrics(r.run_dir)) for n, r in runs.items())
    }
    assert metrics["grpo"] == metrics["alpha0"]
    # Not vacuous: some step had tokens with a nonzero advantage for EAPO's term to act on.
    assert any((row.get("advantage/mean_abs") or 0) > 0 for row in metrics["grpo"])
    weights = {}
    for name, result in runs.items():
        assert result.checkpoint is not None
        weights[name] = load_file(str(result.checkpoint / "model" / "model.safetensors"))
    assert weights["grpo"].keys() == weights["alpha0"].keys()
    assert all(torch.equal(weights["grpo"][k], weights["alpha0"][k]) for k in weights["grpo"])


def test_the_alpha_zero_control_reads_the_grpo_runs() -> None:
    arms, _ = ablation_arms("controls")
    shared = {arm.name: arm.runs_of for arm in arms if arm.runs_of}
    assert shared == {"eapo_alpha0_phi1": "grpo"}


def test_ablate_status_prints_the_grid_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "controls"
    argv = ["ablate", "--mode", "controls", "--status", "--seeds", "1", "--steps", "2", "--out", str(out)]
    assert run_cli([*argv, *TINY_ARGS]) == 0
    printed = capsys.readouterr().out
    row = next(line for line in printed.splitlines() if line.startswith("eapo_alpha0_phi1 "))
    assert row.split() == ["eapo_alpha0_phi1", "0", "reads", "grpo's", "run"]
    assert "7 runs to train: 7 not started; 14 steps left" in printed
    assert not out.exists()
