"""The README's Performance block is what benchmarks/performance_section.py renders from the JSON in
benchmarks/results/, and each benchmark script runs end to end in its `--smoke` setting."""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = REPO_ROOT / "benchmarks"
sys.path.insert(0, str(BENCH_DIR))  # the scripts import their shared bench_utils as a sibling module
bu = importlib.import_module("bench_utils")
SCRIPTS = (
    "entropy_memory", "algo_overhead", "step_breakdown", "vs_trl", "step_bound", "shared_prompt",
    "decode_attention", "runaway_response",
)  # fmt: skip


def _performance_section() -> ModuleType:
    spec = importlib.util.spec_from_file_location("performance_section", BENCH_DIR / "performance_section.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_performance_block_matches_results() -> None:
    perf = _performance_section()
    results = perf.load_results(perf.RESULTS_DIR)
    block = perf.render(results)
    readme = (REPO_ROOT / "README.md").read_text()
    assert bu.current_block(readme, perf.START, perf.END) == block, (
        "stale: run `python benchmarks/performance_section.py`"
    )
    assert "python benchmarks/run_all.py" in block
    for name in SCRIPTS:  # every benchmark has a committed result, and its figures are in the table
        assert name in results, f"benchmarks/results/ has no {name}.json or {name}_quick.json"
    for target in (t for r in results.values() for t in perf.current_targets(r)):
        assert target["name"] in block


def test_a_throughput_record_is_judged_by_the_goal_of_its_cpu_kind() -> None:
    """vs_trl records written under the old 1.0x goal are judged again from their runs (issue #18)."""
    perf = _performance_section()
    parts = {"eapo": {"generate": 1.0}, "trl": {"generate_and_score": 1.0}}
    runs = [
        {
            "framework": f,
            "tokens_per_s": v,
            "peak_rss_bytes": 1,
            "peak_rss_rise_bytes": 1,
            "parts_total_s": parts[f],
        }
        for f, v in (("eapo", 2.0), ("trl", 1.0))
    ]
    for fast_bf16, goal, met in ((False, "1.8x", True), (True, "2.5x", False)):
        old = {"benchmark": "vs_trl", "runs": runs, "machine": {"cpu_fast_bf16": fast_bf16}}
        old["targets"] = [{"name": "against TRL: throughput on CPU", "goal": "1.0x", "met": True}]
        (target,) = perf.current_targets(old)
        assert goal in target["goal"] and target["value"] == 2.0 and target["met"] is met


def test_replace_block_changes_only_the_block() -> None:
    perf = _performance_section()
    head, tail = "# Title\n\nintro\n", "\n## After\ntext\n"
    first = f"{perf.START}\nold\n{perf.END}"
    appended = bu.replace_block(head, first, perf.START, perf.END)
    assert appended == head + "\n" + first + "\n"
    second = f"{perf.START}\nnew\n{perf.END}"
    replaced = bu.replace_block(appended + tail, second, perf.START, perf.END)
    assert replaced == head + "\n" + second + "\n" + tail
    assert bu.current_block(replaced, perf.START, perf.END) == second


@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_runs_in_smoke_setting(script: str, tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(BENCH_DIR / f"{script}.py"), "--smoke", "--out-dir", str(tmp_path)],
        check=True,
        cwd=REPO_ROOT,
        timeout=900,
        capture_output=True,
    )
    record = json.loads((tmp_path / f"{script}_smoke.json").read_text())
    assert record["mode"] == "smoke" and record["benchmark"] == script
    assert record["machine"]["torch"] and len(record["load_average_start"]) == 3
    summary = record["summary"]
    if script == "entropy_memory":
        # Chunking must use less extra memory than a full softmax even at this small size.
        assert all(row["memory_ratio"] < 1.0 for row in summary)
        assert all(row["time_ratio"] > 0 for row in summary)
    elif script == "algo_overhead":
        by_algo = {row["algo"]: row for row in summary}
        assert set(by_algo) == {"grpo", "eapo"}
        # EAPO measured against GRPO in the same run (not GRPO's ratio to itself): its shaping keeps no
        # [B,T,V] tensor, so the peak memory stays GRPO's; the step time is a sane multiple even under load.
        assert by_algo["eapo"]["memory_ratio"] == pytest.approx(1.0, abs=0.05)
        assert 0.25 < by_algo["eapo"]["step_ratio"] < 4.0
        assert by_algo["eapo"]["peak_mib"] > 0 and by_algo["eapo"]["step_s"] > 0
    elif script == "runaway_response":
        assert record["clean_width"] <= record["max_new_tokens"]
        assert all(len(times) == record["settings"]["rounds"] for times in record["times_s"].values())
        assert all(value > 0 for value in summary["median_s"].values())
        assert set(summary["ratios"]) == {
            "runaway_padded / clean",
            "runaway_trimmed / clean",
            "runaway_trimmed / runaway_padded",
            "generate_runaway / generate_clean",
            "generate_runaway_phased / generate_clean",
            "generate_runaway_phased / generate_runaway",
            "generate_clean_phased / generate_clean",
        }
        # The forced row ran to the limit in both modes.
        generated = record["generated"]
        for name in ("generate_runaway", "generate_runaway_phased"):
            assert generated[name]["longest"] == record["max_new_tokens"]
            assert generated[name]["truncated"] >= 1
    elif script == "step_breakdown":
        shares = summary[0]["shares"]
        # The parts partition the step (the remainder is the tiny gap between time/step and the wrapper).
        assert 0.9 < sum(shares.values()) <= 1.0 + 1e-6
        assert all(value >= 0 for key, value in shares.items() if key != "shaping_metrics")
    elif script == "shared_prompt":
        assert {(row["precision"], row["phase"]) for row in summary} >= {
            ("float32", "forward_backward"),
            ("float32", "score_no_grad"),
        }
        for row in summary:
            assert row["seconds"]["plain"] > 0 and row["seconds"]["shared"] > 0
            if row["precision"] == "float32" and row["phase"] != "rollout":  # the same forward up to rounding
                assert row["max_abs_logprob_diff"] < 1e-4
        rollout = {row["precision"]: row for row in summary if row["phase"] == "rollout"}
        assert rollout["float32"]["same_samples"] == 1.0  # fp32: the prefill moves no draw
    elif script == "step_bound":
        variants = summary["variants"]
        assert {"fp32", "fp32_decode_logprobs"} <= set(variants)
        for v in variants.values():
            assert v["step_bound_s"] > 0 and v["step_over_bound"] > 0
            assert v["measured_s"]["step"] > 0
        # The decode-loop lever skips the old-log-prob forward (bound 0, no ratio); fp32 keeps it.
        assert variants["fp32_decode_logprobs"]["phase_over_bound"]["old_logprobs"] is None
        assert variants["fp32"]["phase_over_bound"]["old_logprobs"] > 0
        # Same samples, same first-step loss with the lever on and off (no bf16 involved).
        first = variants["fp32"]["first_step_loss"], variants["fp32_decode_logprobs"]["first_step_loss"]
        assert abs(first[0] - first[1]) < 1e-4
        assert all(d["steps_per_s"] > 0 for d in summary["decode"])
    elif script == "decode_attention":
        sets = {"padded", "one length", "padded, long", "one length, long"}
        assert {row["prompts"] for row in summary} == sets
        for row in summary:
            assert row["seconds"]["sdpa"] > 0 and row["seconds"]["eager"] > 0
            assert row["padded"] == row["prompts"].startswith("padded")
            assert row["auto_picks"] == "the model's own"  # the tiny model has one key head per query head
            if row["precision"] == "float32":  # the same attention up to rounding: the same draws
                assert row["same_samples"] == 1.0
    else:
        assert summary["eapo_tokens_per_s"] > 0 and summary["trl_tokens_per_s"] > 0
        assert summary["eapo_peak_rss_mib"] > 0 and summary["trl_peak_rss_mib"] > 0
    for target in record.get("targets", []):
        assert target["value"] is None or math.isfinite(target["value"])
    perf = _performance_section()
    block = perf.render(perf.load_results(tmp_path, modes=("smoke",)))
    assert block.startswith(perf.START) and block.endswith(perf.END)
