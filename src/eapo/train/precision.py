"""A run's effective precision, recorded in `<run>/precision.json` (part of the run's identity).

`model.dtype: auto` means different things on different machines (bf16 autocast on a CPU with AMX or
AVX512-BF16 or on CUDA, fp32 elsewhere), and `model.rollout_dtype: auto` follows it; so the same config can
compute in another precision tomorrow. The trainer writes what this machine resolved
(`eapo.models.effective_precision`: weights, rollout, training forward, autocast, plus where π_old came
from) when a run starts; `--resume` refuses to continue in another precision (unless
`--allow-config-change`, which records the change in `config_changes.jsonl`), and `eapo compare` refuses
to put runs of different precision in one table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from eapo.errors import ConfigError

PRECISION_FILE = "precision.json"
# The fields that change what a step computes (eapo.models.device.PRECISION_FIELDS; repeated here so that
# reading a run's precision does not import torch).
PRECISION_FIELDS = ("weights", "rollout", "training_forward", "autocast")


def write_precision(run_dir: Path, precision: dict[str, Any]) -> None:
    """Write `precision.json` (atomically: a temporary file renamed over it)."""
    path = Path(run_dir) / PRECISION_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(precision, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def read_precision(run_dir: Path) -> dict[str, Any] | None:
    """The run's recorded precision, or None for a run started before eapo recorded it."""
    path = Path(run_dir) / PRECISION_FILE
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(
            f"{path}: unreadable ({err}); expected the JSON eapo writes when a run starts"
        ) from None
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def precision_label(precision: dict[str, Any] | None) -> str:
    """A short one-line description, e.g. `weights float32, rollout bfloat16, forward bfloat16 autocast`."""
    if precision is None:
        return "not recorded"
    return (
        f"weights {precision.get('weights')}, rollout {precision.get('rollout')}, "
        f"forward {precision.get('training_forward')}"
    )


def precision_changes(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(`precision.<field>`, old, new) for each field of PRECISION_FIELDS that differs."""
    return [(f"precision.{k}", old.get(k), new.get(k)) for k in PRECISION_FIELDS if old.get(k) != new.get(k)]


def check_resume_precision(
    run_dir: Path, current: dict[str, Any], *, allow: bool
) -> list[tuple[str, Any, Any]]:
    """The precision changes a resume on this machine would make; ConfigError naming them unless `allow`.

    A run without `precision.json` (started before eapo recorded it) is accepted as it is."""
    recorded = read_precision(run_dir)
    if recorded is None:
        return []
    changes = precision_changes(recorded, current)
    if changes and not allow:
        listed = "; ".join(f"{name}: {old!r} -> {new!r}" for name, old, new in changes)
        raise ConfigError(
            f"--resume {run_dir}: the run computed in {precision_label(recorded)}, and on this machine it "
            f"would continue in {precision_label(current)} ({listed}). A run keeps one precision: resume "
            "it on a machine of the same kind, pin model.dtype / model.rollout_dtype to what precision.json "
            "records, or pass --allow-config-change to continue anyway (recorded in config_changes.jsonl)"
        )
    return changes


def check_same_precision(runs: dict[str, dict[str, Any] | None]) -> None:
    """ConfigError when runs (label -> recorded precision) differ in a field of PRECISION_FIELDS.

    Runs that recorded none are compared as they are (older runs); at least two different recorded
    precisions are needed to refuse."""
    recorded = {label: p for label, p in runs.items() if p is not None}
    kinds: dict[tuple[Any, ...], list[str]] = {}
    for label, precision in recorded.items():
        kinds.setdefault(tuple(precision.get(k) for k in PRECISION_FIELDS), []).append(label)
    if len(kinds) > 1:
        described = "; ".join(
            f"{', '.join(labels[:4])}{' ...' if len(labels) > 4 else ''}: "
            f"{precision_label(dict(zip(PRECISION_FIELDS, key, strict=True)))}"
            for key, labels in kinds.items()
        )
        raise ConfigError(
            f"these runs computed in different precisions ({described}); a comparison needs one precision. "
            "Compare runs of one precision, or rerun with model.dtype / model.rollout_dtype pinned"
        )
