"""Atomic, verifiable checkpoints: a killed or failed save never damages the previous checkpoint.

Layout of one checkpoint, `<run>/checkpoints/step_000050/`:
  model/          the policy, `save_pretrained` (safetensors) plus its tokenizer: `eapo eval` loads it
  trainer.pt      optimizer and scheduler state, RNG states
  state.json      step, data position, counters (human-readable)
  manifest.json   sha256 of every file above; written last, so its presence marks a complete write

A save writes everything into `.tmp-step_000050/`, fsyncs each file, renames the folder into place and
fsyncs the parent: on POSIX the rename is atomic, so a crash leaves either the old set or the new one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from eapo.errors import CheckpointError

MANIFEST = "manifest.json"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def save_checkpoint(
    run_dir: Path,
    step: int,
    model: Any,
    tokenizer: Any,
    trainer_state: dict[str, Any],
    state: dict[str, Any],
    keep: int = 2,
) -> Path:
    """Write checkpoint `step` atomically and prune all but the newest `keep`. Returns its folder.

    Raises CheckpointError (the previous checkpoints untouched) when the write fails, e.g. a full disk.
    """
    root = checkpoint_dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:06d}"
    tmp = root / f".tmp-step_{step:06d}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        model.save_pretrained(tmp / "model", safe_serialization=True)
        tokenizer.save_pretrained(tmp / "model")
        torch.save(trainer_state, tmp / "trainer.pt")
        (tmp / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True))
        files = sorted(p for p in tmp.rglob("*") if p.is_file())
        manifest = {str(p.relative_to(tmp)): _sha256(p) for p in files}
        for p in files:
            _fsync(p)
        (tmp / MANIFEST).write_text(json.dumps({"step": step, "files": manifest}, indent=2))
        _fsync(tmp / MANIFEST)
        if final.exists():  # re-saving the same step (e.g. an interrupt right after a periodic save)
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync(root)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        previous = latest_checkpoint(run_dir)
        kept = f"; the previous checkpoint is intact: {previous}" if previous else ""
        raise CheckpointError(f"could not write checkpoint {final}: {err.strerror or err}{kept}") from None
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete-looking checkpoint folders (a manifest is present), oldest first."""
    root = checkpoint_dir(run_dir)
    if not root.is_dir():
        return []
    found = [
        p for p in root.iterdir() if p.is_dir() and p.name.startswith("step_") and (p / MANIFEST).is_file()
    ]
    return sorted(found, key=lambda p: int(p.name.split("_")[1]))


def verify_checkpoint(path: Path) -> str | None:
    """None when every file matches its manifest checksum, else what is wrong."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError) as err:
        return f"unreadable manifest: {err}"
    for name, digest in manifest.get("files", {}).items():
        file = path / name
        if not file.is_file():
            return f"missing file {name}"
        if _sha256(file) != digest:
            return f"checksum mismatch in {name}"
    return None


def latest_checkpoint(run_dir: Path, *, verify: bool = False) -> Path | None:
    """The newest checkpoint of a run (verified against its manifest when `verify`), or None."""
    for path in reversed(list_checkpoints(run_dir)):
        if not verify or verify_checkpoint(path) is None:
            return path
    return None


def load_trainer_state(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(trainer.pt contents, state.json contents) of a checkpoint folder."""
    problem = verify_checkpoint(path)
    if problem is not None:
        raise CheckpointError(f"checkpoint {path} is damaged: {problem}")
    trainer_state = torch.load(path / "trainer.pt", map_location="cpu", weights_only=False)
    state = json.loads((path / "state.json").read_text())
    return trainer_state, state
