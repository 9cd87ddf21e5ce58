"""Reading and writing the files the analysis commands share: a run's metrics, an even pick of its dumps,
and JSON helpers that always write valid JSON.

Every analysis writes its results as JSON that other tools (jq, pandas, a browser) must read, and Python's
`json` writes a non-finite float as a bare `NaN`, which is not JSON. `json_ready` turns dataclasses, paths,
tuples and sets into JSON types and non-finite floats into null; `write_json` writes through a temporary
file so a reader never sees half a file; `write_report_json` also rounds floats to 6 decimals, as the
committed result files are.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from eapo.errors import DataError

__all__ = [
    "json_ready",
    "read_json",
    "read_run_metrics",
    "spread_evenly",
    "write_json",
    "write_report_json",
]


def json_ready(value: Any, digits: int | None = None) -> Any:
    """`value` with only JSON types: dataclasses as dicts, paths as strings, tuples and sets as lists,
    non-finite floats as None and, with `digits`, finite floats rounded. Raises TypeError otherwise."""
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return round(value, digits) if digits is not None else value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return json_ready(dataclasses.asdict(value), digits)
    if isinstance(value, dict):
        return {str(k): json_ready(v, digits) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [json_ready(v, digits) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # numpy and torch scalars
        return json_ready(value.item(), digits)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in `path`, or None when it is missing or unreadable (a run not started yet)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def write_json(path: Path, data: Any, indent: int = 2) -> Path:
    """Write `data` as strict JSON (see `json_ready`) atomically: to a temporary file, then renamed."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(json_ready(data), indent=indent, allow_nan=False) + "\n")
    tmp.replace(path)
    return path


def write_report_json(path: Path, payload: dict[str, Any]) -> Path:
    """A report as strict JSON, floats rounded to 6 decimals (non-finite as null)."""
    Path(path).write_text(json.dumps(json_ready(payload, digits=6), indent=1, allow_nan=False) + "\n")
    return Path(path)


def read_run_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The rows of `<run>/metrics.jsonl`; DataError when the folder is not a run."""
    from eapo.train.logging import read_metrics

    run_dir = Path(run_dir)
    if not (run_dir / "metrics.jsonl").is_file():
        raise DataError(f"{run_dir}: no metrics.jsonl; expected a run folder written by `eapo train`")
    return read_metrics(run_dir)


def spread_evenly(paths: list[Path], limit: int | None) -> list[Path]:
    """At most `limit` paths spread evenly over the list (first and last kept)."""
    if not limit or len(paths) <= limit:
        return paths
    picks = np.unique(np.linspace(0, len(paths) - 1, limit).round().astype(int))
    return [paths[i] for i in picks]
