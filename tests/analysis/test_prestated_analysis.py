"""`eapo compare`'s pre-stated analysis on synthetic grids (known counts, no training): the primary metric,
Holm families, Pass@k against the base model and guessing, power from a pilot, and `--pilot` end to end."""

from __future__ import annotations

import argparse
import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from eapo.analysis.grid import GRID_EVAL, RunRecord
from eapo.analysis.power import (
    DEFAULT_POWER_SEEDS,
    min_detectable_effect,
    min_detectable_effect_crossed,
    pilot_power,
    power_analysis,
)
from eapo.analysis.prestated import analyse, guessing_baseline
from eapo.analysis.prestated_metrics import PRIMARY_METRICS, pass_ks
from eapo.analysis.stats import (
    curve_auc,
    pass_at_k_curve,
    variance_components,
)
from eapo.cli import experiment_commands
from eapo.cli.experiment_commands import register
from eapo.errors import ConfigError, DataError
from eapo.train.logging import append_eval_counts, read_eval_counts

STEPS = [0, 10, 20]
K, N, PROBLEMS = 4, 8, 6


def _counts(rng: np.random.Generator, accuracy: float, n: int) -> list[int]:
    return rng.binomial(n, accuracy, size=PROBLEMS).tolist()


def _record(arm: str, seed: int, gain: float, per_problem: bool = True) -> RunRecord:
    """A finished run whose held-out accuracy rises from 0.3 by `gain` per evaluation."""
    # A stable seed: Python's str hash changes from process to process (PYTHONHASHSEED).
    rng = np.random.default_rng(zlib.crc32(f"{arm}-{seed}".encode()))
    curve = [_counts(rng, 0.3 + gain * i, K) for i in range(len(STEPS))]
    final = _counts(rng, 0.3 + gain * 2, N)
    avg: list[float | None] = [sum(c) / (K * PROBLEMS) for c in curve]
    return RunRecord(
        arm=arm,
        seed=seed,
        run_dir="",
        status="completed",
        steps=STEPS[-1],
        eval_k=K,
        eval_curve={"step": [float(s) for s in STEPS], "avg@1": avg, "pass@1": avg, f"avg@{K}": avg},
        entropy_curve={"step": [], "mean": []},
        quadrant_shares={"step": []},
        final={
            "samples": N,
            "num_problems": PROBLEMS,
            "avg": sum(final) / (N * PROBLEMS),
            "pass_at_k": pass_at_k_curve(final, N),
            "correct_per_problem": final,
        },
        pass_curve=None,
        validation=None,
        final_entropy=None,
        tokens_generated=0.0,
        train_seconds=0.0,
        wall_seconds=None,
        eval_counts={s: {"k": K, "correct_per_problem": c} for s, c in zip(STEPS, curve, strict=True)}
        if per_problem
        else {},
    )


def _grid(per_problem: bool = True) -> list[RunRecord]:
    return [
        _record(arm, seed, gain, per_problem)
        for seed in (0, 1, 2)
        for arm, gain in (("grpo", 0.05), ("dapo", 0.06), ("eapo", 0.15))
    ]


def _base() -> dict[int, dict[str, Any]]:
    rng = np.random.default_rng(7)
    return {s: {"final": {"samples": N, "correct_per_problem": _counts(rng, 0.3, N)}} for s in (0, 1, 2)}


def _guess() -> dict[str, Any]:
    return guessing_baseline(["1", "2", "2", "3"] * 5, ["2", "1", "9", "3", "2", "2"], pass_ks(N))


def _auc(record: RunRecord) -> float:
    """By hand: the trapezoid rule over the run's mean curve, divided by the 20-step horizon."""
    y0, y1, y2 = record.eval_curve[f"avg@{K}"]
    assert y0 is not None and y1 is not None and y2 is not None
    return ((y0 + y1) / 2 * 10 + (y1 + y2) / 2 * 10) / 20


def test_primary_auc_is_the_paired_mean_of_hand_computed_areas() -> None:
    records = _grid()
    analysis = analyse(
        records, ["grpo", "dapo", "eapo"], "eapo", base=_base(), guessing=_guess(), resamples=500
    )
    primary = analysis["primary"]
    assert primary["metric"] == "auc" and primary["label"].startswith("AUC of held-out Avg@4")
    assert [(t["arm"], t["reference"]) for t in primary["tests"]] == [("eapo", "grpo"), ("eapo", "dapo")]
    by = {(r.arm, r.seed): r for r in records}
    expected = np.mean([_auc(by["eapo", s]) - _auc(by["grpo", s]) for s in (0, 1, 2)])
    assert primary["tests"][0]["estimate"] == pytest.approx(expected)
    assert (
        primary["tests"][0]["problems_resampled"] == "shared"
        and primary["tests"][0]["num_problems"] == PROBLEMS
    )
    assert analysis["per_seed"]["auc"]["eapo"]["1"] == pytest.approx(_auc(by["eapo", 1]))
    # The power section sizes on the same comparisons, with the problems as a sample beside seeds only.
    row = analysis["power"]["rows"][0]
    assert row["comparison"] == "eapo − grpo" and row["variance"] == primary["tests"][0]["variance"]
    assert row["variance"]["problems"] == PROBLEMS and row["mde_floor"] >= 0
    assert row["mde_problems_sampled"]["16"] >= row["mde"]["16"] - 1e-12
    # Two primary tests: one Holm family of two.
    p = sorted(t["p_value"] for t in primary["tests"])
    assert sorted(t["p_holm"] for t in primary["tests"]) == pytest.approx(
        [min(1, 2 * p[0]), max(min(1, 2 * p[0]), p[1])]
    )


def test_secondary_family_holds_every_other_metric_base_and_guessing() -> None:
    analysis = analyse(_grid(), ["grpo", "eapo"], "eapo", base=_base(), guessing=_guess(), resamples=500)
    secondary = analysis["secondary"]
    assert secondary["metrics"] == ["final", "steps_to", f"pass@{N}"]
    pairs = [(t["metric"], t["reference"]) for t in secondary["tests"]]
    pass_n = f"pass@{N}"
    expected = [
        ("final", "grpo"),
        ("steps_to", "grpo"),
        (pass_n, "grpo"),
        (pass_n, "base_model"),
        (pass_n, "guessing"),
    ]
    assert pairs == expected
    steps_to = secondary["tests"][1]
    assert steps_to["lower_is_better"] and "start + 0.05" in steps_to["label"]
    m = len(secondary["tests"])
    for t in secondary["tests"]:
        assert t["p_value"] - 1e-12 <= t["p_holm"] <= min(1.0, m * t["p_value"]) + 1e-12
    # Against guessing: the focus arm's Pass@8 minus the exact guesser's, problem by problem.
    guess = _guess()
    eapo_pass = np.mean(list(analysis["per_seed"][f"pass@{N}"]["eapo"].values()))
    assert secondary["tests"][-1]["estimate"] == pytest.approx(eapo_pass - guess["pass_at_k"][str(N)])
    table = analysis["pass_at_k"]
    assert table["k"] == [1, 2, 4, 8] and set(table["arms"]) == {"grpo", "eapo", "base_model"}
    assert table["guessing"] == [guess["pass_at_k"][str(k)] for k in (1, 2, 4, 8)]


def test_steps_to_primary_with_a_target_and_its_verdict_direction() -> None:
    analysis = analyse(_grid(), ["grpo", "eapo"], "eapo", primary="steps_to", target=0.5, resamples=500)
    (test,) = analysis["primary"]["tests"]
    # EAPO (+0.15 per evaluation) reaches 0.5 by step 20 at the latest; GRPO (+0.05) mostly never (censored
    # at 30 = one evaluation interval past the end): a negative difference, fewer steps.
    assert test["estimate"] < 0 and test["lower_is_better"]
    assert test["verdict"] in ("eapo better", "no claim")
    per_seed = analysis["per_seed"]["steps_to"]
    assert set(per_seed["grpo"].values()) <= {0.0, 10.0, 20.0, 30.0}


def test_runs_without_per_problem_counts_resample_seeds_only() -> None:
    analysis = analyse(_grid(per_problem=False), ["grpo", "eapo"], "eapo", resamples=300)
    (test,) = analysis["primary"]["tests"]
    assert test["problems_resampled"] == "none" and test["num_problems"] == 1
    assert analysis["bootstrap"]["per_problem_curves"] is False
    final = next(t for t in analysis["secondary"]["tests"] if t["metric"] == "final")
    assert final["problems_resampled"] == "shared"  # the grid's final evaluation always has counts
    # The same AUC as with counts: the mean curve is what the run logged.
    with_counts = analyse(_grid(), ["grpo", "eapo"], "eapo", resamples=300)
    assert test["estimate"] == pytest.approx(with_counts["primary"]["tests"][0]["estimate"])


def test_guessing_baseline_by_hand() -> None:
    # Train answers: 1 (x1), 2 (x2), 3 (x1) -> q = 1/4, 1/2, 1/4; "2.0" is the number 2.
    guess = guessing_baseline(["1", "2", "2", "3"], ["2.0", "1", "7"], [1, 2])
    assert guess["per_problem_probability"] == pytest.approx([0.5, 0.25, 0.0])
    assert guess["pass_at_k"]["1"] == pytest.approx(0.25)
    assert guess["pass_at_k"]["2"] == pytest.approx((0.75 + (1 - 0.75**2) + 0) / 3)
    assert guess["most_common_answer"] == "2" and guess["most_common_answer_accuracy"] == pytest.approx(1 / 3)


def test_power_from_paired_pilot_values() -> None:
    per_seed = {"eapo": {"0": 0.40, "1": 0.45, "2": 0.43}, "grpo": {"0": 0.38, "1": 0.41, "2": 0.42}}
    power = power_analysis(per_seed, "eapo", [4, 8], "auc", "AUC", "test")
    (row,) = power["rows"]
    diffs = [0.02, 0.04, 0.01]
    sd = float(np.std(diffs, ddof=1))
    assert row["sd"] == pytest.approx(sd) and row["observed"] == pytest.approx(np.mean(diffs))
    assert row["mde"]["8"] == pytest.approx(min_detectable_effect(sd, 8))
    assert row["mde_sd_upper"]["4"] > row["mde"]["4"] > row["mde"]["8"]
    # One arm only: √2 × its SD over seeds (uncorrelated arms).
    (alone,) = power_analysis({"eapo": per_seed["eapo"]}, "eapo", [4], "auc", "AUC", "test")["rows"]
    assert alone["sd"] == pytest.approx(np.sqrt(2) * np.std([0.40, 0.45, 0.43], ddof=1))
    identical = power_analysis(
        {"eapo": {"0": 0.4, "1": 0.5}, "grpo": {"0": 0.3, "1": 0.4}}, "eapo", [4], "auc", "", ""
    )
    assert "identical" in identical["rows"][0]["note"]


def test_pilot_from_reports_new_and_old(tmp_path: Path) -> None:
    analysis = analyse(_grid(), ["grpo", "eapo"], "eapo", resamples=200)
    new = tmp_path / "new.json"
    new.write_text(json.dumps({"arms": {"grpo": {}, "eapo": {}}, "prestated": analysis, "settings": {}}))
    power = pilot_power(new, primary="auc", focus="eapo", seed_counts=[4])
    auc = analysis["per_seed"]["auc"]
    diffs = [auc["eapo"][s] - auc["grpo"][s] for s in "012"]
    row = power["rows"][0]
    assert row["sd_seeds"] == pytest.approx(np.std(diffs, ddof=1))
    assert row["variance"] == analysis["primary"]["tests"][0]["variance"]  # read back from the report
    old = tmp_path / "old.json"
    runs = {
        arm: [{"seed": s, "final_avg": 0.3 + 0.01 * s + (arm == "eapo") * 0.02 * s} for s in range(3)]
        for arm in ("grpo", "eapo")
    }
    old.write_text(
        json.dumps(
            {"arms": {"grpo": {"final_samples": 8}}, "runs": runs, "settings": {"runs_dir": "/nonexistent"}}
        )
    )
    power = pilot_power(old, primary="final", focus="eapo", seed_counts=[4])
    assert power["rows"][0]["sd"] == pytest.approx(0.02) and power["label"] == "final held-out Avg@8"
    with pytest.raises(ConfigError, match=r"no per-seed 'auc' values .* use --primary final"):
        pilot_power(old, primary="auc", focus="eapo", seed_counts=[4])
    with pytest.raises(ConfigError, match=r"no runs .* and no compare\.json"):
        pilot_power(tmp_path, primary="auc", focus="eapo", seed_counts=[4])


def _write_run(folder: Path, record: RunRecord, config_text: str) -> None:
    """A finished run folder as the grid leaves it (config, metrics, per-problem counts, final eval)."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(config_text)
    curve = zip(record.eval_curve["step"], record.eval_curve[f"avg@{K}"], strict=True)
    rows = []
    for s, v in curve:
        assert s is not None
        rows.append({"step": int(s), "eval/pass@1": v, f"eval/avg@{K}": v, "eval/avg@1": v})
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for step, counts in record.eval_counts.items():
        append_eval_counts(folder, step, K, counts["correct_per_problem"])
    (folder / GRID_EVAL).write_text(json.dumps({"final": record.final}))


def test_compare_pilot_cli_prints_the_minimum_detectable_effect(tmp_path: Path, capsys: Any) -> None:
    from eapo.train.config import dump_yaml, load_config

    config = dump_yaml(load_config("smoke", {"eval": {"k": K}, "train": {"steps": STEPS[-1]}}))
    for record in _grid():
        _write_run(tmp_path / "runs" / record.arm / f"seed{record.seed}", record, config)
    assert read_eval_counts(tmp_path / "runs" / "eapo" / "seed0")[10]["k"] == K
    parser = argparse.ArgumentParser(prog="eapo")
    register(parser.add_subparsers(dest="command"))
    argv = [
        "compare",
        "--pilot",
        str(tmp_path / "runs"),
        "--power-seeds",
        "4,8,16",
        "--out",
        str(tmp_path / "o"),
    ]
    args, rest = parser.parse_known_args(argv)
    assert args.func(args, rest) == 0
    printed = capsys.readouterr().out
    assert "Minimum detectable effect on the primary metric (AUC of held-out Avg@4" in printed
    assert "| eapo − grpo | 3 |" in printed and "MDE @ 16 seeds" in printed
    assert f"| eapo − grpo, {PROBLEMS} problems as a sample | 3 |" in printed
    power = json.loads((tmp_path / "o" / "power.json").read_text())
    # By hand: per-problem AUCs from the counts, their paired differences [seed, problem], the SD over seeds
    # of the seed means, raised to the floor √(residual / problems) of the crossed ANOVA.
    by = {(r.arm, r.seed): r for r in _grid()}
    per_problem = {
        key: curve_auc(STEPS, np.array([r.eval_counts[s]["correct_per_problem"] for s in STEPS]).T / K)
        for key, r in by.items()
    }
    table = np.array([per_problem["eapo", s] - per_problem["grpo", s] for s in (0, 1, 2)])
    parts = variance_components(table)
    sd = max(float(table.mean(axis=1).std(ddof=1)), float(np.sqrt(parts["residual_var"] / PROBLEMS)))
    row = next(r for r in power["rows"] if r["comparison"] == "eapo − grpo")
    assert row["sd"] == pytest.approx(sd, rel=1e-5)  # the JSON rounds nothing here, the analysis is exact
    assert row["mde"]["16"] == pytest.approx(min_detectable_effect(sd, 16), rel=1e-5)
    crossed = min_detectable_effect_crossed(sd**2, parts["problem_var"], parts["residual_var"], 8, PROBLEMS)
    assert row["mde_problems_sampled"]["8"] == pytest.approx(crossed, rel=1e-5)
    args, rest = parser.parse_known_args(["compare", "--pilot", "x", "--power-seeds", "1,4"])
    with pytest.raises(ConfigError, match="--power-seeds '1,4': expected seed counts >= 2"):
        args.func(args, rest)
    args, rest = parser.parse_known_args(["compare", "--pilot", "x", "--status"])
    with pytest.raises(ConfigError, match="it takes no --sweep, --status or config overrides"):
        args.func(args, rest)


def test_compare_help_shows_primary_and_power_options(capsys: Any) -> None:
    parser = argparse.ArgumentParser(prog="eapo")
    register(parser.add_subparsers(dest="command"))
    with pytest.raises(SystemExit):
        parser.parse_args(["compare", "--help"])
    text = capsys.readouterr().out
    for option in ("--primary {auc,final,steps_to}", "--power-seeds", "--pilot"):
        assert option in text
    # The parser's copies of the choices (kept out of the analyses' numpy import) agree with theirs.
    assert experiment_commands.PRIMARY_METRICS == PRIMARY_METRICS
    assert experiment_commands.DEFAULT_POWER_SEEDS == DEFAULT_POWER_SEEDS


def test_a_pilot_sized_for_a_shorter_horizon_cuts_its_curves_there(tmp_path: Path) -> None:
    """`--pilot RUNS --steps H`: the AUC over steps ≤ H (the grid being sized trains H steps), computed by
    hand from the per-problem counts; a horizon the pilot did not evaluate at, and `final`, are refused."""
    from eapo.train.config import dump_yaml, load_config

    config = dump_yaml(load_config("smoke", {"eval": {"k": K}, "train": {"steps": STEPS[-1]}}))
    for record in _grid():
        _write_run(tmp_path / "runs" / record.arm / f"seed{record.seed}", record, config)
    cut = pilot_power(tmp_path / "runs", primary="auc", focus="eapo", seed_counts=[8], horizon=STEPS[1])
    by = {(r.arm, r.seed): r for r in _grid()}
    kept = STEPS[:2]
    per_seed = {
        key: float(
            curve_auc(kept, np.array([r.eval_counts[s]["correct_per_problem"] for s in kept]).T / K).mean()
        )
        for key, r in by.items()
    }
    diffs = [per_seed["eapo", s] - per_seed["grpo", s] for s in (0, 1, 2)]
    row = next(r for r in cut["rows"] if r["comparison"] == "eapo − grpo")
    assert row["sd_seeds"] == pytest.approx(float(np.std(diffs, ddof=1)), rel=1e-6)
    assert f"cut at step {STEPS[1]}" in cut["source"]
    whole = pilot_power(tmp_path / "runs", primary="auc", focus="eapo", seed_counts=[8])
    assert next(r for r in whole["rows"] if r["comparison"] == "eapo − grpo")["sd_seeds"] != row["sd_seeds"]
    with pytest.raises(DataError, match="no in-training evaluation at step 15"):
        pilot_power(tmp_path / "runs", primary="auc", focus="eapo", seed_counts=[8], horizon=15)
    with pytest.raises(ConfigError, match="final evaluation ran at its own last step"):
        pilot_power(tmp_path / "runs", primary="final", focus="eapo", seed_counts=[8], horizon=STEPS[1])
