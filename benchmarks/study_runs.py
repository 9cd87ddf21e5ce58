"""Keep a long study's finished runs in the repository, so that a replaced machine loses only runs under way.

A study of many SmolLM2 runs spans sessions, and the machine that holds its run folders is not always the one
the next session gets (on 2026-12-01 a new machine came up without `runs/`: four finished headline runs and
every checkpoint were gone). Checkpoints cannot travel (hundreds of MB a run), but what a report reads from
a finished run can: its config, metrics, per-problem evaluations, cached final evaluations and the final
checkpoint's manifest and state, a few hundred kB. `archive` copies every finished run under a study's
folder that is not archived yet (`eapo.train.checkpoint.archive_finished_run`: the weights and optimizer
state stay behind and are listed as pruned, so the copy still reads as finished); `restore` copies archived
runs back where the study's folder has no run of that name, so the grids find them finished and never
retrain them. Rollout dumps (about 0.5 MB a dump) stay behind except for the runs named with --dumps, the
ones a later analysis reads.

    python benchmarks/study_runs.py archive runs/smollm2_study benchmarks/study_runs/smollm2 \
        --dumps runs/eapo/seed100
    python benchmarks/study_runs.py restore benchmarks/study_runs/smollm2 runs/smollm2_study

A restored run has no weights: what needs them (`eapo eval`, `eapo credit --run`) says so.
"""

from __future__ import annotations

import argparse
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

ROLLOUT_DUMPS = "rollouts/*"


def run_folders(root: Path) -> Iterator[Path]:
    """Every run folder under `root` (a folder with a config.yaml and a checkpoints/ folder), in order."""
    for config in sorted(Path(root).rglob("config.yaml")):
        folder = config.parent
        relative = folder.relative_to(root)
        if (folder / "checkpoints").is_dir() and not any(p.startswith(".") for p in relative.parts):
            yield folder


def is_finished(run_dir: Path) -> bool:
    """Trained to its configured steps and evaluated at the end (the grids' own test)."""
    from eapo.analysis.grid import run_status
    from eapo.train.config import load_config

    return run_status(run_dir, load_config(run_dir / "config.yaml").train.steps) == "finished"


def archive(study: Path, archive_dir: Path, dumps: list[str]) -> list[Path]:
    """Archive each finished run under `study` not archived yet; `dumps`: runs (relative to `study`) whose
    rollout dumps come along. Returns the new archive folders."""
    from eapo.train.checkpoint import archive_finished_run

    written = []
    for run_dir in run_folders(study):
        relative = run_dir.relative_to(study)
        target = archive_dir / relative
        if target.exists() or not is_finished(run_dir):
            continue
        leave = () if str(relative) in dumps else (ROLLOUT_DUMPS,)
        archive_finished_run(run_dir, target, leave=leave)
        written.append(target)
    return written


def restore(archive_dir: Path, study: Path) -> list[Path]:
    """Copy each archived run into `study` where no folder of its name exists. Returns the restored runs."""
    restored = []
    for archived in run_folders(archive_dir):
        target = study / archived.relative_to(archive_dir)
        if target.exists():
            continue  # this machine's own copy (finished, or under way: then it resumes as it would)
        # A staging folder of its own: the study's two queues may restore at the same moment.
        staging = target.parent / f".restoring-{target.name}-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(archived, staging)
        try:
            staging.rename(target)
        except OSError:  # the other queue restored it first
            shutil.rmtree(staging)
            continue
        restored.append(target)
    return restored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    save = commands.add_parser("archive", help="copy the study's finished runs, without weights, to ARCHIVE")
    save.add_argument("study", type=Path, help="the study's folder (e.g. runs/smollm2_study)")
    save.add_argument("archive", type=Path, help="the archive's folder in the repository")
    save.add_argument(
        "--dumps", nargs="*", default=[], help="runs (relative to the study) whose rollout dumps come along"
    )
    load = commands.add_parser("restore", help="copy archived runs the study's folder lacks back into it")
    load.add_argument("archive", type=Path)
    load.add_argument("study", type=Path)
    args = parser.parse_args()
    if args.command == "archive":
        written = archive(args.study, args.archive, args.dumps)
        print(f"archived {len(written)} finished run(s) to {args.archive}")
    else:
        written = restore(args.archive, args.study)
        print(f"restored {len(written)} archived run(s) into {args.study}")
    for folder in written:
        print(f"  {folder}")


if __name__ == "__main__":
    main()
