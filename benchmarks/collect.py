"""Copy an `eapo compare`, `ablate` or `eval` report into benchmarks/results/, recording the machine.

The reports name their command and settings but not the machine they ran on; the README's Results name it,
so the copy adds `machine` (bench_utils.machine_info(): CPU, cores, memory, torch, CUDA) unless the report
already has one. Run it on the machine that ran the experiment.

    python benchmarks/collect.py runs/experiments/compare_60steps/compare.json compare_tiny_60steps.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import bench_utils as bu


def collect(source: Path, name: str, results_dir: Path = bu.RESULTS_DIR) -> Path:
    report = json.loads(source.read_text())
    report.setdefault("machine", bu.machine_info())
    target = results_dir / name
    target.write_text(json.dumps(report, indent=2) + "\n")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="the report JSON a command wrote")
    parser.add_argument("name", help="its file name under benchmarks/results/")
    args = parser.parse_args()
    print(f"wrote {collect(args.source, args.name)}")


if __name__ == "__main__":
    main()
