"""Errors raised at eapo's edges (config, data, models, checkpoints).

The CLI prints an `EapoError` as one clear message and exits with code 2 (no traceback unless
`--debug`); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class EapoError(Exception):
    """Base class for every error that a user can fix by changing their input."""


class ConfigError(EapoError):
    """A config field has a wrong name, type or value. The message names the field and the fix."""


class DataError(EapoError):
    """A data file or data set row is malformed. The message names the file, line and field."""


class ModelLoadError(EapoError):
    """A model or tokenizer could not be loaded from the given id or path."""


class CheckpointError(EapoError):
    """No valid checkpoint could be written or read."""
