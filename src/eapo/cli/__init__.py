"""The `eapo` command line. Every subcommand is a thin wrapper over a library function.

Exit codes: 0 done (also after SIGINT/SIGTERM/SIGHUP, which save a checkpoint first); 2 an error a user can
fix (a bad config field, a broken data file, a model path that is not a model, a run folder that exists or is
in use, an output path that cannot be written, a checkpoint that cannot be
written or read): one message, no traceback unless `--debug`; 3 training stopped after
`train.max_bad_steps` consecutive non-finite steps; 130 interrupted outside training (nothing to save); 141
the reader of its output went away (`eapo ... | head`), which ends it quietly as it does Unix tools.

A subcommand lives in a module of this package that exposes `register(subparsers)` (listed in
`COMMAND_MODULES`): its parser ends with `common.add_common_options` and its handler, `func`, is a thin
wrapper over one library function with the signature `common.RunFn`. Building the parser imports nothing
heavy: handlers import torch and the analyses when they run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from typing import Any

from eapo.cli import experiment_commands, run_commands, train_commands
from eapo.cli.common import EXIT_INTERRUPTED, EXIT_USER_ERROR, RunFn
from eapo.errors import EapoError, clip_text

__all__ = ["build_parser", "main"]

EXAMPLES = """\
examples:
  eapo train                                         # tiny model + generated task, EAPO, minutes on a CPU
  eapo train --config configs/smollm2_chain_sum.yaml --steps 3
  eapo train --algo grpo --steps 200 --train.lr 1e-6 --task.params.max_terms 3
  eapo train --resume runs/eapo-chain_sum-20261124-120000
  eapo eval --run runs/eapo-chain_sum-20261124-120000 --k 1,8
  eapo eval --model smollm2 --task chain_sum --k 1,8
"""

EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a tool that a closed pipe stopped
MAX_MESSAGE = 1000  # characters of an error message; the rest is cut from its middle

# Every subcommand comes from one of these modules' `register(subparsers)`, in this order.
COMMAND_MODULES = (train_commands, run_commands, experiment_commands)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eapo",
        description="RLVR with token-level credit assignment by reward polarity and token entropy.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    try:
        try:
            return _main(argv)
        finally:
            sys.stdout.flush()  # here, so that a closed pipe surfaces below and not at interpreter exit
    except BrokenPipeError:
        # stdout's reader has gone: send what is still buffered nowhere rather than fail again at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    func: RunFn = args.func
    # SIGTERM outside the training loop (loading, warm-up) stops like Ctrl-C; the loop installs its own
    # handlers, which finish the step and save a checkpoint.
    # SIGHUP (a closed terminal or SSH session) is treated the same way.
    previous: dict[int, Any] = {}
    with contextlib.suppress(ValueError):  # not the main thread: signals cannot be handled there
        for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
            if sig is not None and signal.getsignal(sig) != signal.SIG_IGN:  # e.g. `nohup eapo train`
                previous[sig] = signal.signal(sig, _interrupt)
    try:
        return func(args, rest)
    except EapoError as err:
        if args.debug:
            raise
        # One line, of readable length, whatever the message echoes (a 100 kB prompt, a multi-line value).
        message = " ".join(str(err).split("\n"))
        print(f"eapo: error: {clip_text(message, MAX_MESSAGE)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("eapo: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
