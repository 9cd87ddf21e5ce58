"""benchmarks/smollm2_pilot.py: the pilot's runs become the report that fixes the horizon and the MDE."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from eapo.analysis.stats import curve_auc
from eapo.train.config import dump_yaml, load_config
from eapo.train.logging import append_eval_counts

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH_DIR))
STEPS = [*range(0, 260, 20), 250]  # the pilot's evaluations: every 20 steps and its last step
K, PROBLEMS = 8, 40


def _write_pilot_run(folder: Path, seed: int, noise: int) -> list[float]:
    """A finished pilot run as `eapo compare` leaves it, its held-out accuracy rising and flattening from
    0.35 to about 0.75 (binomial counts per problem); returns its Avg@8 curve."""
    rng = np.random.default_rng(noise)
    folder.mkdir(parents=True)
    config = load_config(
        "smoke", {"eval": {"k": K, "every": 20}, "train": {"steps": 250}, "run": {"seed": seed}}
    )
    (folder / "config.yaml").write_text(dump_yaml(config))
    curve, rows = [], []
    for step in STEPS:
        counts = rng.binomial(K, 0.75 - 0.4 * np.exp(-step / 60), size=PROBLEMS).tolist()
        append_eval_counts(folder, step, K, counts)
        curve.append(sum(counts) / (K * PROBLEMS))
        rows.append(
            {"step": step, "eval/pass@1": curve[-1], "eval/avg@1": curve[-1], "eval/avg@8": curve[-1]}
        )
    rows += [{"step": t, "reward/mean": 0.5, "entropy/mean": 0.6 - 0.002 * t} for t in range(1, 251)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    final = rng.binomial(16, 0.75, size=PROBLEMS).tolist()
    passes = {"16": float(np.mean([c > 0 for c in final]))}
    record = {
        "samples": 16,
        "num_problems": PROBLEMS,
        "avg": sum(final) / (16 * PROBLEMS),
        "pass_at_k": passes,
    }
    (folder / "grid_eval.json").write_text(json.dumps({"final": {**record, "correct_per_problem": final}}))
    return curve


def test_the_pilot_report_holds_the_horizon_by_its_rule_the_mde_and_a_figure(tmp_path: Path) -> None:
    pilot = importlib.import_module("smollm2_pilot")
    runs = tmp_path / "runs"
    first = _write_pilot_run(runs / "pilot_lr3e-6" / "grpo" / "seed0", 0, noise=0)
    with pytest.raises(SystemExit, match="the horizon is not decided yet"):
        pilot.build_report(runs)  # one seed only
    second = _write_pilot_run(runs / "pilot_lr3e-6" / "grpo" / "seed1", 1, noise=1)
    _write_pilot_run(runs / "pilot_lr1e-5" / "grpo" / "seed0", 0, noise=2)  # a screened rate: shown, not used
    report = pilot.build_report(runs)
    assert report["kind"] == "pilot" and [(r["rate"], r["seed"]) for r in report["runs"]] == [
        ("1e-5", 0),
        ("3e-6", 0),
        ("3e-6", 1),
    ]
    assert report["runs"][1]["final_eval"]["samples"] == 16
    mean = (np.array(first) + np.array(second)) / 2
    horizon = report["horizon"]
    assert horizon["end"] == pytest.approx((mean[-2] + mean[-1]) / 2)  # the evaluations at 240 and 250
    assert horizon["threshold"] == pytest.approx(mean[0] + 0.9 * (horizon["end"] - mean[0]))
    h = horizon["horizon"]
    assert h == next(s for s, m in zip(STEPS, mean, strict=True) if m >= horizon["threshold"])
    assert 60 <= h <= 240  # the curve flattens well before the end

    (row,) = [r for r in report["mde"]["rows"] if r["comparison"] == "grpo"]
    assert row["pilot_seeds"] == 2 and set(row["mde"]) == {"4", "8", "16"}
    # The MDE's spread is the AUC's over the horizon: √2 x the SD of the two seeds' AUCs, which is
    # |AUC_0 − AUC_1|, unless one seed's problem noise (the floor) is larger.
    kept = [i for i, s in enumerate(STEPS) if s <= h]
    aucs = [float(curve_auc([STEPS[i] for i in kept], [c[i] for i in kept])) for c in (first, second)]
    assert row["sd"] >= abs(aucs[0] - aucs[1]) - 1e-9
    assert row["mde"]["8"] < row["mde"]["4"]
    assert "curves cut at step" in report["mde"]["source"]
    assert set(report["gate"]["validation"]) == {"mean_entropy_nats", "share_above_group_mean", "base_avg"}
    assert "cpu" in report["machine"]

    out = tmp_path / "pilot.json"
    out.write_text(json.dumps(report))
    printed = subprocess.run(
        [sys.executable, str(BENCH_DIR / "smollm2_pilot.py"), "--horizon", "--out", str(out)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    assert printed.strip() == str(h)
    figure = pilot.draw_curves(report, tmp_path / "curves.png")
    assert figure.stat().st_size > 5000


def test_the_readme_renders_the_pilot_report(tmp_path: Path) -> None:
    pilot = importlib.import_module("smollm2_pilot")
    section = importlib.import_module("results_section")
    runs = tmp_path / "runs"
    for seed in (0, 1):
        _write_pilot_run(runs / "pilot_lr3e-6" / "grpo" / f"seed{seed}", seed, noise=seed)
    report = pilot.build_report(runs)
    (experiment,) = [e for e in section.EXPERIMENTS if e.file == pilot.REPORT]
    text = "\n".join(section.render_pilot(report, experiment))
    assert f"**Horizon: {report['horizon']['horizon']} steps.**" in text
    assert "| 3e-6 | 1 | 250 |" in text  # the run row: rate, seed, steps trained
    assert "| mean token entropy (nats) | 0.2-1 |" in text
    assert "| 0.589 → 0.109 |" in text  # the rollouts' entropy over the first and the last 10 steps
    assert "MDE @ 8 seeds" in text and f"{report['mde']['rows'][0]['mde']['8']:.4f}" in text
