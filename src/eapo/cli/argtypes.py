"""argparse types for eapo's command-line edge: counts that are positive integers, and output paths that
are checked before any work starts (issue #20, classes 4 and 5).

A count such as `--num-problems -3` used to slice from the end of a list, and `0` fell back to a default;
argparse now rejects both with a message that says what was expected (`eapo: error:` via the CLI, exit 2).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from eapo.errors import ConfigError, clip_text

__all__ = ["check_output_file", "check_writable_dir", "non_negative_int", "positive_int"]


def _integer(text: str, what: str) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {clip_text(repr(text))}") from None


def positive_int(text: str) -> int:
    """A count >= 1 (`3`); `0`, `-3`, `2.5` and `many` are errors."""
    value = _integer(text, "a positive integer (>= 1)")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer (>= 1), got {value}")
    return value


def non_negative_int(text: str) -> int:
    """A count >= 0, for options where 0 has a documented meaning (`--max-dumps 0` = all)."""
    value = _integer(text, "an integer >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def _nearest_existing(path: Path) -> Path:
    probe = path
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    return probe


def check_writable_dir(path: Path, flag: str) -> Path:
    """ConfigError naming `flag` unless `path` is (or can be made as) a folder this user can write into."""
    path = Path(path)
    probe = _nearest_existing(path)
    if not probe.is_dir():
        where = "is a file" if probe == path else f"lies under {probe}, which is a file"
        raise ConfigError(f"{flag} {path} {where}; give a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {path}: {probe} is not writable by this user; give another folder")
    return path


def check_output_file(path: Path, flag: str) -> Path:
    """ConfigError naming `flag` unless `path` can be written as a file: not a folder, not under a file,
    in a folder this user can write into (made if missing)."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{flag} {path} is a folder; give the path of a file (in that folder or elsewhere)")
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"{flag} {path}: the file is not writable by this user")
    check_writable_dir(path.parent if str(path.parent) else Path("."), f"{flag} {path}: its folder")
    return path
