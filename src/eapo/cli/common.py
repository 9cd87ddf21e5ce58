"""What every `eapo` subcommand shares: the exit codes, the options every subcommand takes, and the checks
its handler makes before anything heavy loads.

A command module exposes `register(subparsers)`; each parser it adds ends with `add_common_options(p)` and
sets `func`, a handler with the signature `RunFn`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from eapo.errors import ConfigError

__all__ = [
    "EXIT_BAD_STEPS",
    "EXIT_GRID_BUSY",
    "EXIT_INTERRUPTED",
    "EXIT_USER_ERROR",
    "RunFn",
    "add_common_options",
    "check_run",
    "no_extra",
]

EXIT_USER_ERROR = 2
EXIT_BAD_STEPS = 3
EXIT_GRID_BUSY = 75  # EX_TEMPFAIL: this grid process is done, others still hold some of its runs
EXIT_INTERRUPTED = 130

# run(args, rest) -> exit code; `rest` holds the unparsed `--section.field VALUE` config overrides.
RunFn = Callable[[argparse.Namespace, list[str]], int]


def add_common_options(p: argparse.ArgumentParser) -> None:
    """`--no-progress` and `--debug`, last in every subcommand's arguments."""
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    # SUPPRESS: `eapo --debug train` and `eapo train --debug` both work, neither resets the other.
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks")


def no_extra(command: str, overrides: list[str]) -> None:
    """ConfigError for a command that takes no config overrides but was given unknown arguments."""
    if overrides:
        raise ConfigError(
            f"eapo {command}: unknown arguments {' '.join(overrides)}; see eapo {command} --help"
        )


def check_run(run: Path) -> None:
    """A `--run`/`--runs` folder must exist and be a folder (checked before anything heavy loads)."""
    if not Path(run).is_dir():
        what = "is not a folder" if Path(run).exists() else "does not exist"
        raise ConfigError(f"run folder {run} {what}; give a folder written by eapo train")
