"""Small file-system helpers shared by the trainer's checkpoints and the model cache.

`follow_umask`: safetensors writes its files 0600 and `tempfile.mkdtemp` makes folders 0700; a checkpoint or
a cached model written that way cannot be read by a teammate even where the umask would allow it. Every
file eapo writes for others to read gets the mode an ordinary `open` would give it.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["current_umask", "follow_umask"]


def current_umask() -> int:
    """The process umask (read by setting it and putting it back at once)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def follow_umask(root: Path) -> None:
    """Give `root` (a file or a folder) and everything under it mode 0666 (files) or 0777 (folders) less
    the umask."""
    mask = current_umask()
    root = Path(root)
    for path in [root, *(root.rglob("*") if root.is_dir() else [])]:
        if path.is_symlink():
            continue
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)
