"""Golden runs for a refactor (issue #21): a 3-step run of every algorithm preset on a fixed seed, recorded as
per-step metrics and a SHA-256 of the final parameters, then checked after the refactor.

    python scripts/golden_runs.py record golden.json            # before the refactor, on this machine
    python scripts/golden_runs.py check golden.json             # after: metrics to 1e-6, same weights
    python scripts/golden_runs.py check golden.json --ignore pg_loss,loss   # metrics the refactor fixes
    python scripts/golden_runs.py check golden.json --set train.shared_prompt_forward=false \
        --set sampling.shared_prompt_prefill=false --set train.fused_optimizer=false \
        --set sampling.attention=model  # rounding levers off

Each run is the built-in `smoke` setting (tiny model, 2 prompts x 4 samples, 3 steps, one update per rollout)
with two mini-batches so that the clip and the drift metrics act, a reward that varies inside every group (so
every preset's shaping runs), and rollout dumps and the entropy change on every step. Wall-clock metrics are
left out. Parameters are compared bit for bit, which only holds on the same machine and torch build: the file
records both, and `check` refuses a file from another machine. The speed levers that only reorder sums
(the shared prompt forward and prefill, the fused optimizer, the eager decode attention) move the last
bits, so a bit-for-bit check sets them off; the candidate draw (off by default) would change the samples.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
import yaml

from eapo.tasks import Problem
from eapo.train.algorithms import ALGORITHMS
from eapo.train.config import load_config
from eapo.train.logging import read_metrics
from eapo.train.trainer import Trainer

TOLERANCE = 1e-6


def parity_reward(completion: str, problem: Problem) -> float:
    """Varies inside every group (the smoke model is rarely right), so every group is updated."""
    return float(len(completion) % 2)


def machine() -> dict[str, str]:
    return {"machine": platform.machine(), "processor": platform.processor(), "torch": torch.__version__}


def golden_run(
    algo: str, output_dir: Path, changes: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    changes = changes or {}
    config = load_config(
        "smoke",
        {
            "algo": {"name": algo},
            "train": {"steps": 3, "mini_batches": 2, **changes.get("train", {})},
            "sampling": changes.get("sampling", {}),
            "eval": {"every": 0},
            "run": {
                "output_dir": str(output_dir),
                "name": algo,
                "seed": 0,
                "checkpoint_every": 0,
                "dump_rollouts_every": 1,
                "entropy_change_every": 1,
            },
        },
    )
    trainer = Trainer(config, progress=False, reward_fn=parity_reward)
    trainer.run()
    rows = [
        {k: v for k, v in row.items() if not k.startswith("time/") and k != "tokens_per_s"}
        for row in read_metrics(trainer.run_dir)
        if "loss" in row
    ]
    digest = hashlib.sha256()
    for name, tensor in sorted(trainer.model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return {"metrics": rows, "parameters_sha256": digest.hexdigest()}


def record(path: Path) -> None:
    with tempfile.TemporaryDirectory() as folder:
        runs = {algo: golden_run(algo, Path(folder)) for algo in ALGORITHMS}
    path.write_text(json.dumps({"machine": machine(), "runs": runs}, indent=1) + "\n")
    print(f"recorded {len(runs)} presets to {path}")


def _differs(old: Any, new: Any) -> bool:
    if isinstance(old, float) and isinstance(new, float):
        if math.isnan(old) or math.isnan(new):
            return not (math.isnan(old) and math.isnan(new))
        return abs(old - new) > TOLERANCE * max(1.0, abs(old))
    return old != new


def check(path: Path, ignore: set[str], changes: dict[str, dict[str, Any]] | None = None) -> int:
    golden = json.loads(path.read_text())
    if golden["machine"] != machine():
        print(f"error: {path} was recorded on {golden['machine']}, this is {machine()}", file=sys.stderr)
        return 2
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as folder:
        for algo, want in golden["runs"].items():
            got = golden_run(algo, Path(folder), changes)
            if got["parameters_sha256"] != want["parameters_sha256"]:
                problems.append(f"{algo}: final parameters differ")
            for step, (old, new) in enumerate(zip(want["metrics"], got["metrics"], strict=True), start=1):
                for key in sorted((set(old) | set(new)) - ignore):
                    if _differs(old.get(key), new.get(key)):
                        problems.append(f"{algo} step {step} {key}: {old.get(key)!r} -> {new.get(key)!r}")
    for line in problems:
        print(line)
    print(f"{len(golden['runs'])} presets checked, {len(problems)} difference(s)")
    return 1 if problems else 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("action", choices=("record", "check"))
    parser.add_argument("path", type=Path)
    parser.add_argument("--ignore", default="", help="comma-separated metric names the refactor may change")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="check with a train or sampling field changed (e.g. a speed lever off); repeatable",
    )
    args = parser.parse_args()
    changes: dict[str, dict[str, Any]] = {}
    for item in args.set:
        name, sep, value = item.partition("=")
        section, dot, field = name.partition(".")
        if not sep or not dot or section not in ("train", "sampling"):
            parser.error(f"--set {item!r}: expected train.FIELD=VALUE or sampling.FIELD=VALUE")
        changes.setdefault(section, {})[field] = yaml.safe_load(value)
    if args.action == "record":
        record(args.path)
        return 0
    return check(args.path, {name for name in args.ignore.split(",") if name}, changes)


if __name__ == "__main__":
    raise SystemExit(main())
