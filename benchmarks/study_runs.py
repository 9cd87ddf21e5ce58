"""Keep a long study's finished runs in the repository, so that a replaced machine loses only runs under way.

A study of many SmolLM2 runs spans sessions, and the machine that holds its run folders is not always the one
the next session gets (on 2026-12-01 a new machine came up without `runs/`: four finished headline runs and
every checkpoint were gone). Checkpoints cannot travel (1.6 GB a SmolLM2 checkpoint with its optimizer
state), but what a report reads from a finished run can: its config, metrics, per-problem evaluations,
cached final evaluations and the final checkpoint's manifest and state, about 1 MB for a SmolLM2 run of 180
steps (its metrics.jsonl and samples.jsonl held 90 kB at step 20). `archive` copies every finished run
under a study's folder that is not archived yet, once its grid has evaluated it (grid_eval.json: without
weights it could not be evaluated later), through `eapo.train.checkpoint.archive_finished_run` (the weights
and optimizer state stay behind and are listed as pruned, so the copy still reads as finished), and copies
again the grid's files of archived runs that changed since (another evaluation, more wall time); `restore`
copies archived runs back where the study's folder has no run of that name, so the grids find them
finished and never retrain them. Rollout dumps (about 65 kB each, one every 10 steps) stay behind except
for the runs named with --dumps, the ones a later analysis reads. The study's analyses/ folder is mirrored
whole (outputs and the journals of the analyses under way, whose fingerprints name the machine: on another
kind of machine they start afresh).

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

from eapo.analysis.grid.spec import GRID_EVAL, GRID_RUN

ROLLOUT_DUMPS = "rollouts/*"
ANALYSES = "analyses"  # the study's analyses: their outputs, and the journals of those under way
# What a grid writes into a run after training, and may add to later: refreshed in the archive.
GRID_RESULTS = (GRID_EVAL, GRID_RUN)


def run_folders(root: Path) -> Iterator[Path]:
    """Every run folder under `root` (a folder with a config.yaml and a checkpoints/ folder), in order."""
    for config in sorted(Path(root).rglob("config.yaml")):
        folder = config.parent
        relative = folder.relative_to(root)
        if (folder / "checkpoints").is_dir() and not any(p.startswith(".") for p in relative.parts):
            yield folder


def plain_files(root: Path) -> Iterator[Path]:
    """The files under `root`, relative to it, without dot files or folders (locks, unfinished writes)."""
    for path in sorted(Path(root).rglob("*")):
        relative = path.relative_to(root)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            yield relative


def mirror_analyses(study: Path, archive_dir: Path) -> list[Path]:
    """Copy each file of the study's analyses/ that the archive lacks or holds in another version (a
    journal grows). Returns the files written."""
    written = []
    for relative in plain_files(study / ANALYSES):
        source, target = study / ANALYSES / relative, archive_dir / ANALYSES / relative
        if target.is_file() and target.read_bytes() == source.read_bytes():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        written.append(target)
    return written


def is_finished(run_dir: Path) -> bool:
    """Trained to its configured steps and evaluated at the end (the grids' own test), and given its grid's
    final evaluation (`final` in grid_eval.json): an archived run has no weights to evaluate it later."""
    from eapo.analysis.grid import run_status
    from eapo.analysis.run_io import read_json
    from eapo.train.config import load_config

    if run_status(run_dir, load_config(run_dir / "config.yaml").train.steps) != "finished":
        return False
    return "final" in (read_json(run_dir / GRID_EVAL) or {})


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


def not_ready_to_probe(run_dir: Path) -> str | None:
    """Why an end-of-run analysis cannot probe this run yet (None: it can): it needs the run finished, with
    its grid's final evaluation, and its final checkpoint's weights on this machine (an archived or pruned
    copy has none, and a run under way would be probed at some middle step)."""
    from eapo.train.checkpoint import latest_checkpoint, pruned_files

    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        return f"{run_dir}: no such run"
    if not is_finished(run_dir):
        return f"{run_dir}: not finished (or its grid has not evaluated it yet)"
    final = latest_checkpoint(run_dir)
    if final is None or any(name.startswith("model/") for name in pruned_files(final)):
        return f"{run_dir}: finished, but its final weights are not on this machine (archived or pruned)"
    return None


def refresh_grid_results(study: Path, archive_dir: Path) -> list[Path]:
    """Copy the grid's files of each archived run (`GRID_RESULTS`) again where the run's own copy changed
    since (a grid asked for another evaluation, e.g. a pass curve, or added wall time). Returns the files
    written."""
    written = []
    for run_dir in run_folders(study):
        target = archive_dir / run_dir.relative_to(study)
        if not target.is_dir():
            continue
        for name in GRID_RESULTS:
            source = run_dir / name
            if source.is_file() and (
                not (target / name).is_file() or (target / name).read_bytes() != source.read_bytes()
            ):
                shutil.copy2(source, target / name)
                written.append(target / name)
    return written


def restore(archive_dir: Path, study: Path) -> list[Path]:
    """Copy each archived run into `study` where no folder of its name exists, and each archived analysis
    file the study's analyses/ lacks (this machine's own are newer). Returns what it restored."""
    restored = []
    for relative in plain_files(archive_dir / ANALYSES):
        target = study / ANALYSES / relative
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(archive_dir / ANALYSES / relative, target)
            restored.append(target)
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
    ready = commands.add_parser(
        "ready", help="exit 0 if every run is finished with its final weights here (else say why, exit 1)"
    )
    ready.add_argument("runs", type=Path, nargs="+")
    args = parser.parse_args()
    if args.command == "ready":
        reasons = [r for r in (not_ready_to_probe(run) for run in args.runs) if r]
        for reason in reasons:
            print(reason)
        raise SystemExit(1 if reasons else 0)
    if args.command == "archive":
        written = archive(args.study, args.archive, args.dumps)
        print(f"archived {len(written)} finished run(s) to {args.archive}")
        refreshed = refresh_grid_results(args.study, args.archive)
        print(f"refreshed {len(refreshed)} grid file(s) of runs archived earlier")
        analyses = mirror_analyses(args.study, args.archive)
        print(f"archived {len(analyses)} new or grown analysis file(s) to {args.archive / ANALYSES}")
    else:
        written = restore(args.archive, args.study)
        print(f"restored {len(written)} archived run(s) and analysis file(s) into {args.study}")
    for folder in written:
        print(f"  {folder}")


if __name__ == "__main__":
    main()
