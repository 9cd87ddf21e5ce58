"""Copy an `eapo compare`, `ablate` or `eval` report into benchmarks/results/, recording the machine.

The reports name their command and settings but not the machine they ran on; the README's Results name it,
so the copy adds `machine` (bench_utils.machine_info(): CPU, cores, memory, torch, CUDA) unless the report
already has one. Run it on the machine that ran the experiment. With --figures it also copies the report's
markdown (`<stem>.md` beside it) and every PNG in its folder, renamed after the copy: the report's own
prefix is dropped (`compare_paired.png` of compare.json, collected as compare_smollm2_headline.json, becomes
compare_smollm2_headline_paired.png; `entropy_polarity.png` of a summary.json, collected as
quadrants_smollm2_grpo.json, becomes quadrants_smollm2_grpo_entropy_polarity.png).

    python benchmarks/collect.py runs/experiments/compare_60steps/compare.json compare_tiny_60steps.json
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import bench_utils as bu


def collect(source: Path, name: str, results_dir: Path = bu.RESULTS_DIR) -> Path:
    report = json.loads(source.read_text())
    report.setdefault("machine", bu.machine_info())
    target = results_dir / name
    target.write_text(json.dumps(report, indent=2) + "\n")
    return target


def collect_figures(source: Path, target: Path) -> list[Path]:
    """Copy the report's markdown and its folder's PNGs next to `target`, named after it (see above)."""
    copied = []
    markdown = source.with_suffix(".md")
    if markdown.is_file():
        copied.append(Path(shutil.copyfile(markdown, target.with_suffix(".md"))))
    for figure in sorted(source.parent.glob("*.png")):
        own = figure.name.removeprefix(f"{source.stem}_")
        copied.append(Path(shutil.copyfile(figure, target.with_name(f"{target.stem}_{own}"))))
    return copied


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="the report JSON a command wrote")
    parser.add_argument("name", help="its file name under benchmarks/results/")
    parser.add_argument(
        "--figures", action="store_true", help="also copy its markdown and the PNGs in its folder"
    )
    args = parser.parse_args()
    target = collect(args.source, args.name)
    print(f"wrote {target}")
    for copied in collect_figures(args.source, target) if args.figures else []:
        print(f"wrote {copied}")


if __name__ == "__main__":
    main()
