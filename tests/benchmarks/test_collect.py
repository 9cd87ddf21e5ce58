"""benchmarks/collect.py: the report is copied with the machine it ran on, and --figures brings its markdown
and PNGs along, renamed after the copy."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH_DIR))  # the scripts import their shared bench_utils as a sibling module


def test_collect_adds_the_machine_and_renames_the_figures_after_the_copy(tmp_path: Path) -> None:
    collect = importlib.import_module("collect")
    run, results = tmp_path / "run", tmp_path / "results"
    run.mkdir()
    results.mkdir()
    (run / "compare.json").write_text(json.dumps({"kind": "compare", "arms": {}}))
    (run / "compare.md").write_text("# compare\n")
    (run / "compare_paired.png").write_bytes(b"png-a")
    (run / "entropy_polarity.png").write_bytes(b"png-b")
    (run / "notes.txt").write_text("not a figure")

    target = collect.collect(run / "compare.json", "compare_smollm2_headline.json", results)
    report = json.loads(target.read_text())
    assert report["kind"] == "compare" and report["machine"]["usable_cpus"] >= 1
    copied = collect.collect_figures(run / "compare.json", target)
    assert sorted(p.name for p in copied) == [
        "compare_smollm2_headline.md",
        "compare_smollm2_headline_entropy_polarity.png",
        "compare_smollm2_headline_paired.png",
    ]
    assert (results / "compare_smollm2_headline_paired.png").read_bytes() == b"png-a"
    assert not (results / "compare_smollm2_headline_notes.txt").exists()
