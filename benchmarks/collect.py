"""Copy an `eapo compare`, `ablate` or `eval` report into benchmarks/results/, recording the machine.

The reports name their command and settings but not the machine they ran on; the README's Results name it,
so the copy adds `machine` (bench_utils.machine_info(): CPU, cores, memory, torch, CUDA) unless the report
already has one. Run it on the machine that ran the experiment. With --figures it also copies the report's
markdown (`<stem>.md` beside it) and every PNG in its folder, renamed after the copy: the report's own
prefix is dropped (`compare_paired.png` of compare.json, collected as compare_smollm2_headline.json, becomes
compare_smollm2_headline_paired.png; `entropy_polarity.png` of a summary.json, collected as
quadrants_smollm2_grpo.json, becomes quadrants_smollm2_grpo_entropy_polarity.png). --only keeps some of the
figures, named without the prefix (`--only ''`: none). The copied markdown's image links point at the
copies; links to figures left behind are dropped, so no link in benchmarks/results/ is broken.

    python benchmarks/collect.py runs/experiments/compare_60steps/compare.json compare_tiny_60steps.json
    python benchmarks/collect.py --figures --only paired,entropy \
        runs/experiments/compare_60steps/compare.json compare_tiny_60steps.json
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from collections.abc import Collection
from pathlib import Path

import bench_utils as bu


def collect(source: Path, name: str, results_dir: Path = bu.RESULTS_DIR) -> Path:
    report = json.loads(source.read_text())
    report.setdefault("machine", bu.machine_info())
    target = results_dir / name
    target.write_text(json.dumps(report, indent=2) + "\n")
    return target


_IMAGE_LINK = re.compile(r"!\[([^\]]*)\]\(([^)\s]+\.png)\)")


def collect_figures(source: Path, target: Path, only: Collection[str] | None = None) -> list[Path]:
    """Copy the report's PNGs (all, or the `only` ones) and its markdown next to `target`, named after it."""
    copied, renamed = [], {}
    for figure in sorted(source.parent.glob("*.png")):
        own = figure.name.removeprefix(f"{source.stem}_")
        if only is not None and own.removesuffix(".png") not in only:
            continue
        copy = target.with_name(f"{target.stem}_{own}")
        copied.append(Path(shutil.copyfile(figure, copy)))
        renamed[figure.name] = copy.name
    markdown = source.with_suffix(".md")
    if markdown.is_file():
        copy = target.with_suffix(".md")
        copy.write_text(relink_images(markdown.read_text(), renamed))
        copied.append(copy)
    return copied


def relink_images(text: str, renamed: dict[str, str]) -> str:
    """Point each `![alt](name.png)` at its renamed copy; drop links to figures not copied, the lines they
    leave empty, and a section (`## Figures`) they leave empty."""

    def swap(link: re.Match[str]) -> str:
        copy = renamed.get(Path(link.group(2)).name)
        return f"![{link.group(1)}]({copy})" if copy else ""

    sections: list[list[str]] = [[]]  # split before each heading
    for line in text.splitlines(keepends=True):
        if line.startswith("#"):
            sections.append([])
        sections[-1].append(line)
    kept: list[str] = []
    for section in sections:
        relinked = [_IMAGE_LINK.sub(swap, line) for line in section]
        lines = [new for old, new in zip(section, relinked, strict=True) if new.strip() or not old.strip()]
        headed = bool(section) and section[0].startswith("#")
        emptied = len(lines) < len(section) and not any(line.strip() for line in lines[headed:])
        if not (headed and emptied):
            kept += lines
    while kept and not kept[-1].strip():
        kept.pop()
    return "".join(kept)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="the report JSON a command wrote")
    parser.add_argument("name", help="its file name under benchmarks/results/")
    parser.add_argument(
        "--figures", action="store_true", help="also copy its markdown and the PNGs in its folder"
    )
    parser.add_argument(
        "--only",
        type=lambda names: set(filter(None, names.split(","))),
        help="with --figures: just these figures, comma-separated, named without the report's prefix "
        "(e.g. paired,entropy); '' copies the markdown alone",
    )
    args = parser.parse_args()
    if args.only is not None and not args.figures:
        parser.error("--only needs --figures")
    target = collect(args.source, args.name)
    print(f"wrote {target}")
    for copied in collect_figures(args.source, target, args.only) if args.figures else []:
        print(f"wrote {copied}")


if __name__ == "__main__":
    main()
