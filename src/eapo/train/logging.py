"""Metrics out of the trainer: one JSON line per step (the source of every plot) and TensorBoard."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


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
    """All rows of a run's metrics.jsonl (torn lines skipped)."""
    path = Path(run_dir) / "metrics.jsonl"
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows
