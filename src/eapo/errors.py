"""Errors raised at eapo's edges (config, data, models, checkpoints).

The CLI prints an `EapoError` as one clear message and exits with code 2 (no traceback unless
`--debug`); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path


class EapoError(Exception):
    """Base class for every error that a user can fix by changing their input."""


class ConfigError(EapoError):
    """A config field has a wrong name, type or value. The message names the field and the fix."""


class RunFolderTaken(ConfigError):
    """A run folder belongs to another process (its lock is held) or was just created by one. A grid runner
    skips such a run and leaves it to that process; elsewhere it is a ConfigError like any other. `holder`
    names the process ("pid N on host H") when a lock says it."""

    def __init__(self, message: str, holder: str | None = None) -> None:
        super().__init__(message)
        self.holder = holder


class DataError(EapoError):
    """A data file or data set row is malformed. The message names the file, line and field."""


class ModelLoadError(EapoError):
    """A model or tokenizer could not be loaded from the given id or path."""


class CheckpointError(EapoError):
    """No valid checkpoint could be written or read."""


# Echoed user text (a value, a prompt, a line of a file) is cut to this many characters in messages.
MAX_ECHO = 200


def clip_text(text: str, limit: int = MAX_ECHO) -> str:
    """`text` cut to about `limit` characters (head and tail kept), so that an error stays readable when
    it echoes a 100 kB prompt or value; shorter text is returned unchanged."""
    if len(text) <= limit:
        return text
    head = max(limit * 2 // 3, 1)
    tail = max(limit - head, 0)
    cut = len(text) - head - tail
    return f"{text[:head]}…[{cut} characters cut]…{text[len(text) - tail :] if tail else ''}"


def read_utf8(path: str | Path) -> str:
    """The text of a UTF-8 file; DataError naming the file, the line and the byte when it is not UTF-8 (or
    cannot be read), instead of a UnicodeDecodeError traceback."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot read the file: {err.strerror or err}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise DataError(
            f"{path}, line {line}: not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start}); "
            "save the file as UTF-8"
        ) from None


def check_choice(field: str, value: object, choices: Iterable[str], note: str = "") -> None:
    """ConfigError unless `value` is one of `choices`: the one message for every name a user picks from a
    registry (an algorithm, shaper, loss, aggregation), naming the field, the value, the closest valid
    name and every valid one (then `note`, when the host has more to say)."""
    valid = list(choices)
    if value in valid:
        return
    close = difflib.get_close_matches(str(value), valid, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    note = f"; {note}" if note else ""
    raise ConfigError(
        f"{field} = {clip_text(repr(value))} is unknown: {hint}choose from {', '.join(valid)}{note}"
    )
