"""Journals: what a long, otherwise unresumable computation has finished, so that a rerun picks up there.

A journal is a JSONL file: a header line `{"fingerprint": ..., ...}` naming what the rows depend on, then one
row per finished piece, appended and fsynced as each piece ends. A rerun with the same fingerprint reads the
rows back and computes only the rest; a journal written for anything else (other inputs, another model,
machine or thread count, which the caller puts into the fingerprint) is started afresh, never mixed in. A
last line cut short by a kill is dropped, so that the next row is not appended to it.

Users: `eapo credit`'s continuations (`eapo.rollout.continuation`) and `eapo gradients --cosine`'s
per-algorithm gradients (`eapo.analysis.gradient_cosine`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["append_row", "fingerprint", "open_journal"]

logger = logging.getLogger(__name__)


def fingerprint(payload: Any) -> str:
    """A SHA-256 of `payload` as sorted JSON (anything JSON cannot hold is written with `str`)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def open_journal(path: Path, key: str, **header: Any) -> list[dict[str, Any]]:
    """The rows of the journal at `path` when it was written for `key`; otherwise start it afresh (header
    `{"fingerprint": key, **header}`) and return []."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    try:
        first = json.loads(lines[0]) if lines else {}
    except json.JSONDecodeError:
        first = {}
    if first.get("fingerprint") != key:
        if lines:
            logger.warning("%s was written for another computation: starting it afresh", path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"fingerprint": key, **header}) + "\n", encoding="utf-8")
        return []
    rows: list[dict[str, Any]] = []
    kept = lines[:1]
    for line in lines[1:]:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
        kept.append(line)
    if len(kept) < len(lines):  # drop the torn line, so that the next row is not appended to it
        path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    return rows


def append_row(path: Path, row: Mapping[str, Any]) -> None:
    """Append one finished piece to the journal and make it durable before going on."""
    with Path(path).open("a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())
