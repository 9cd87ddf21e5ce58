"""benchmarks/collect.py: the report is copied with the machine it ran on, and --figures brings its markdown
and PNGs along, renamed after the copy."""

from __future__ import annotations

import importlib
import json
import re
import sys
from pathlib import Path
from types import ModuleType

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH_DIR))  # the scripts import their shared bench_utils as a sibling module


def _report_folder(tmp_path: Path, markdown: str) -> tuple[ModuleType, Path, Path]:
    """collect.py, a command's output folder holding compare.json and compare.md, and a results folder."""
    run, results = tmp_path / "run", tmp_path / "results"
    run.mkdir()
    results.mkdir()
    (run / "compare.json").write_text(json.dumps({"kind": "compare", "arms": {}}))
    (run / "compare.md").write_text(markdown)
    return importlib.import_module("collect"), run, results


def test_collect_adds_the_machine_and_renames_the_figures_after_the_copy(tmp_path: Path) -> None:
    collect, run, results = _report_folder(tmp_path, "# compare\n")
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


def test_only_some_figures_travel_and_the_markdown_links_the_copies(tmp_path: Path) -> None:
    collect, run, results = _report_folder(
        tmp_path,
        "# compare\n\n| a | b |\n\n![compare_paired](compare_paired.png)\n"
        "![compare_entropy](compare_entropy.png)\nsee ![x](compare_paired.png) above\n",
    )
    for name in ("compare_paired", "compare_entropy"):
        (run / f"{name}.png").write_bytes(name.encode())

    target = collect.collect(run / "compare.json", "compare_tiny.json", results)
    copied = collect.collect_figures(run / "compare.json", target, only={"paired"})

    assert sorted(p.name for p in copied) == ["compare_tiny.md", "compare_tiny_paired.png"]
    assert (results / "compare_tiny.md").read_text() == (
        "# compare\n\n| a | b |\n\n![compare_paired](compare_tiny_paired.png)\n"
        "see ![x](compare_tiny_paired.png) above\n"
    )
    linked = re.findall(r"\]\(([^)]+)\)", (results / "compare_tiny.md").read_text())
    assert all((results / name).is_file() for name in linked)


def test_a_figures_section_left_empty_is_dropped_with_its_heading() -> None:
    collect = importlib.import_module("collect")
    text = "# report\n\n| a |\n\n## Figures\n\n![a](a.png)\n![b](b.png)\n\n## Notes\n\nkept\n"
    assert collect.relink_images(text, {}) == "# report\n\n| a |\n\n## Notes\n\nkept\n"
    assert collect.relink_images(text, {"b.png": "r_b.png"}) == (
        "# report\n\n| a |\n\n## Figures\n\n![b](r_b.png)\n\n## Notes\n\nkept\n"
    )


def test_every_link_in_the_collected_markdown_resolves() -> None:
    results = BENCH_DIR / "results"
    broken = [
        f"{md.name}: {target}"
        for md in sorted(results.glob("*.md"))
        for target in re.findall(r"\]\(([^)\s]+)\)", md.read_text())
        if "://" not in target and not (results / target.split("#")[0]).exists()
    ]
    assert not broken, broken
