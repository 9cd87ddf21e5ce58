"""`eapo train ARGS`, pausing inside the write of one checkpoint so that a test can SIGKILL it there.

    python pause_in_checkpoint.py STEP PHASE train --config ...

When checkpoint STEP is being written, the process prints `PAUSED <phase> <folder>` and sleeps; nothing
else changes, so every byte on disk is written by eapo's own `save_checkpoint`. PHASE:
  files    the model, the trainer state and state.json are written, the manifest is not
  rename   the manifest is written and synced, the folder is not yet renamed into place
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import eapo.train.checkpoint as checkpoint
from eapo.cli import main

STEP, PHASE, ARGS = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
TMP_NAME = f"{checkpoint.TMP_PREFIX}step_{STEP:06d}"


def _pause(folder: Path) -> None:
    print(f"PAUSED {PHASE} {folder}", flush=True)
    time.sleep(3600)


_real_fsync = checkpoint._fsync


def _fsync(path: Path) -> None:
    _real_fsync(path)
    if PHASE == "files" and path.parent.name == TMP_NAME and path.name == "state.json":
        _pause(path.parent)


class _PausingOs:
    """`os` as checkpoint.py sees it, with `replace` pausing before the temporary folder is renamed."""

    def __getattr__(self, name: str) -> object:
        return getattr(os, name)

    @staticmethod
    def replace(source: Path, target: Path) -> None:
        if PHASE == "rename" and Path(source).name == TMP_NAME:
            _pause(Path(source))
        os.replace(source, target)


checkpoint._fsync = _fsync
checkpoint.os = _PausingOs()  # type: ignore[assignment]
sys.exit(main(ARGS))
