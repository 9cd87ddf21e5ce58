"""Metrics out of the trainer: one JSON line per step (the source of every plot) and TensorBoard."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from eapo.errors import DataError, clip_text, read_utf8


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


class MetricsLogger:
    """Appends `{"step": n, ...}` lines to `<run>/metrics.jsonl` and mirrors scalars to TensorBoard.

    Non-finite values are written as null (JSON has no NaN) so that the file always parses.
    """

    def __init__(self, run_dir: Path, tensorboard: bool = True, resume_from_step: int | None = None) -> None:
        self.path = Path(run_dir) / "metrics.jsonl"
        if resume_from_step is not None:
            # A resumed run rewrites the steps after its checkpoint, so drop the ones logged after it.
            trim_jsonl_after(self.path, resume_from_step)
        self._file = self.path.open("a")
        self._writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step hides the events a killed run wrote after its checkpoint, as for the JSON lines.
            purge = None if resume_from_step is None else resume_from_step + 1
            self._writer = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"), purge_step=purge)

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        row: dict[str, Any] = {"step": step}
        for key, value in metrics.items():
            row[key] = _finite_or_none(float(value)) if isinstance(value, int | float) else value
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        if self._writer is not None:
            for key, value in row.items():
                if key != "step" and isinstance(value, int | float):
                    self._writer.add_scalar(key, value, step)

    def close(self) -> None:
        self._file.close()
        if self._writer is not None:
            self._writer.close()


def trim_jsonl_after(path: Path, step: int) -> None:
    """Keep the lines of a `{"step": n, ...}` JSONL file with n <= `step` (and no torn last line).

    Written to a temporary file and renamed, so that a kill during the trim loses nothing.
    """
    path = Path(path)
    if not path.exists():
        return
    kept = [line for line in path.read_text().splitlines() if _step_of(line) <= step]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(line + "\n" for line in kept))
    tmp.replace(path)


def _step_of(line: str) -> int:
    try:
        return int(json.loads(line).get("step", 0))
    except (ValueError, AttributeError):
        return 1 << 62  # a torn last line from a killed run: drop it


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """All rows of a run's metrics.jsonl: `{"step": n, ...}` objects.

    A torn last line (a run killed while writing it) is skipped; any other line that is not a JSON object
    with an integer `step`, and a file that is not UTF-8, raise DataError naming the file and the line.
    """
    path = Path(run_dir) / "metrics.jsonl"
    lines = read_utf8(path).split("\n")
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    rows = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as err:
            if i == last:
                continue  # torn by a kill mid-write
            raise DataError(
                f"{path}, line {i + 1}: not JSON ({err}); the file is damaged: delete or repair that line"
            ) from None
        if not isinstance(row, dict) or not isinstance(row.get("step"), int) or isinstance(row["step"], bool):
            kind = "an object without an integer step" if isinstance(row, dict) else type(row).__name__
            raise DataError(
                f'{path}, line {i + 1}: expected a JSON object {{"step": N, ...}}, got {kind}: '
                f"{clip_text(line.strip(), 80)}; delete or repair that line"
            )
        rows.append(row)
    return rows


EVAL_PROBLEMS = "eval_problems.jsonl"  # per-problem correct counts of every held-out evaluation


def append_eval_counts(run_dir: Path, step: int, k: int, correct_per_problem: list[int]) -> None:
    """Append one evaluation's correct counts per held-out problem (each out of `k` samples) to
    `<run>/eval_problems.jsonl`, so that statistics can resample problems (`eapo.analysis.prestated`)."""
    row = {"step": step, "k": k, "correct_per_problem": [int(c) for c in correct_per_problem]}
    with (Path(run_dir) / EVAL_PROBLEMS).open("a") as f:
        f.write(json.dumps(row) + "\n")


def read_eval_counts(run_dir: Path) -> dict[int, dict[str, Any]]:
    """{step: {"k", "correct_per_problem"}} from `<run>/eval_problems.jsonl` ({} if the run has none, as
    runs made before it existed). A step evaluated twice (a resumed run redoing steps after its
    checkpoint) keeps its last row; torn lines are skipped."""
    path = Path(run_dir) / EVAL_PROBLEMS
    if not path.is_file():
        return {}
    out: dict[int, dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
            out[int(row["step"])] = {"k": int(row["k"]), "correct_per_problem": row["correct_per_problem"]}
        except (ValueError, KeyError, TypeError):
            continue
    return out
