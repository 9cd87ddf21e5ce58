"""The README's Results block is what benchmarks/results_section.py renders from the compare JSON in
benchmarks/results/, and the renderer claims a win only where the paired interval excludes 0."""

from __future__ import annotations

import copy
import importlib
import json
import sys
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = REPO_ROOT / "benchmarks"
sys.path.insert(0, str(BENCH_DIR))  # the scripts import their shared bench_utils as a sibling module
bu = importlib.import_module("bench_utils")


def _results_section() -> ModuleType:
    return importlib.import_module("results_section")


def test_readme_results_block_matches_the_json() -> None:
    rs = _results_section()
    experiments = rs.load_experiments()
    landed = [e for e in rs.EXPERIMENTS if not e.pending or (BENCH_DIR / "results" / e.file).is_file()]
    for figure in (f for e in landed for f in e.figures):
        assert (BENCH_DIR / "results" / figure).is_file(), figure
    expected = {e.file for e in landed} | {e.baseline for e in landed if e.baseline}
    assert set(experiments) == expected, "an experiment's JSON is missing"
    block = rs.render(experiments)
    for experiment in rs.EXPERIMENTS:  # a grid still running is left out of the README until it lands
        assert (experiment.title in block) == (experiment in landed), experiment.title
    readme = (REPO_ROOT / "README.md").read_text()
    assert bu.current_block(readme, rs.START, rs.END) == block, (
        "stale: run `python benchmarks/results_section.py`"
    )
    for name, report in experiments.items():  # every arm's final mean is in the table, from the JSON
        if "command" not in report:  # a baseline `eapo eval` report, named in its experiment's section
            assert name in block
            continue
        assert report["command"] in block
        if report.get("benchmark") == "smollm2_arith_warmup":  # a task's entropy gate: each measured value
            for gate in ("gate_after_warmup", "gate_after_warmup_train_split"):
                for measure in report["summary"][gate].values():
                    assert f"{measure['value']:.3f} ({'in' if measure['met'] else 'OUT'})" in block
            continue
        if report["kind"] == "shaping":
            assert f"{report['all']['factor_quantiles']['0.5']:.3f}" in block
            continue
        if report["kind"] == "grid_state":  # the study's progress: each part's row, marked as partial
            assert report["final"] is False and "no partial grid is read as a verdict" in block
            for part, progress in report["queue"]["parts"].items():
                assert f"| {part} | {progress['planned']} | {progress['finished']} |" in block
            continue
        if report["kind"] == "pilot":  # the horizon and every pilot run's first and last evaluation
            assert f"**Horizon: {report['horizon']['horizon']} steps.**" in block
            for run in report["runs"]:
                assert f"{run['eval_curve'][-1]['avg@8']:.3f} (step {run['eval_curve'][-1]['step']})" in block
            continue
        metric = f"avg@{next(iter(report['arms'].values()))['final_samples']}"
        for arm in report["arms"].values():
            assert rs.fmt_interval(arm["final"][metric]) in block


def _paired(mean: float, low: float, high: float) -> dict[str, object]:
    interval = {"mean": mean, "low": low, "high": high, "n": 3, "method": "bootstrap-percentile"}
    return {"arm": "eapo", "reference": "grpo", "interval": interval, "beats": low > 0, "worse": high < 0}


def _report(paired: dict[str, object]) -> dict[str, object]:
    final = {
        "avg@4": {"mean": 0.5, "low": 0.4, "high": 0.6},
        "pass@4": {"mean": 0.7, "low": 0.6, "high": 0.8},
    }
    arm = {"final": final, "final_samples": 4, "eval_k": 4, "seeds": [0, 1, 2], "final_entropy": None}
    return {
        "kind": "compare",
        "command": "eapo compare --algos grpo,eapo --seeds 3",
        "settings": {
            "steps": 5,
            "seeds": [0, 1, 2],
            "config": "built-in tiny default",
            "init": "shared",
            "final_eval": {"samples": 4, "problems": 10},
            "intervals": "t",
            "paired": "bootstrap",
        },
        "arms": {"grpo": copy.deepcopy(arm), "eapo": copy.deepcopy(arm)},
        "paired": {"avg@4": [paired]},
    }


def test_a_win_is_claimed_only_when_the_interval_excludes_zero(tmp_path: Path) -> None:
    rs = _results_section()
    name = rs.EXPERIMENTS[0].file
    inside = _report(_paired(0.02, -0.01, 0.05))
    (tmp_path / name).write_text(json.dumps(inside))
    block = rs.render(rs.load_experiments(tmp_path))
    assert "eapo beats no algorithm" in block and "does not beat GRPO here" in block
    assert "no difference shown" in block

    above = _report(_paired(0.03, 0.01, 0.05))
    (tmp_path / name).write_text(json.dumps(above))
    block = rs.render(rs.load_experiments(tmp_path))
    assert "eapo beats grpo" in block and "does not beat GRPO" not in block
    assert (
        "| grpo | 0.500 [0.400, 0.600] | 0.700 [0.600, 0.800] | 0.030 [0.010, 0.050] | – | better |" in block
    )
    assert "read those claims as weak" in block  # no t-interval that excludes 0 backs the bootstrap


def test_replace_block_keeps_the_rest_of_the_readme() -> None:
    rs = _results_section()
    text = f"# Title\n\n{rs.START}\nold\n{rs.END}\n\n## Next\n"
    new = bu.replace_block(text, f"{rs.START}\nnew\n{rs.END}", rs.START, rs.END)
    assert new == f"# Title\n\n{rs.START}\nnew\n{rs.END}\n\n## Next\n"


def test_a_grid_with_a_pre_stated_primary_leads_with_its_verdict(tmp_path: Path) -> None:
    """The primary metric's test (stated before the grid) comes before the final-score table, which is
    labelled secondary; the secondary family and the power of the primary follow it."""
    sys.path.insert(0, str(REPO_ROOT / "tests" / "analysis"))
    synthetic = importlib.import_module("test_prestated_analysis")  # its grid: known counts, no training
    from eapo.analysis.prestated import analyse

    analysis = analyse(synthetic._grid(), ["grpo", "eapo"], "eapo", resamples=500)
    rs = _results_section()
    report = _report(_paired(0.02, -0.01, 0.05)) | {"prestated": analysis}
    (tmp_path / rs.EXPERIMENTS[0].file).write_text(json.dumps(report))
    block = rs.render(rs.load_experiments(tmp_path))
    (test,) = analysis["primary"]["tests"]
    primary_at = block.index(f"**Primary metric, stated before the grid: {analysis['primary']['label']}.**")
    row = f"| eapo − grpo | {test['estimate']:+.3f} [{test['interval']['low']:+.3f}, "
    assert primary_at < block.index(row) < block.index("| algorithm |") < block.index("**Secondary metrics**")
    assert f"| {test['verdict']} |" in block and "Minimum detectable effect" in block
    verdict = {
        "eapo better": "**eapo beats GRPO on the primary metric.**",
        "no claim": "**eapo does not beat",
    }
    assert verdict[test["verdict"]] in block
    assert "Secondary claims on the final score" in block and "does not beat GRPO here.**" not in block
