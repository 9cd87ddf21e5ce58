"""The `eapo` command line. Every subcommand is a thin wrapper over a library function.

Exit codes: 0 done (also after SIGINT/SIGTERM/SIGHUP, which save a checkpoint first); 2 an error a user can
fix (a bad config field, a broken data file, a model path that is not a model, a run folder that exists or is
in use, an output path that cannot be written, a checkpoint that cannot be
written or read): one message, no traceback unless `--debug`; 3 training stopped after
`train.max_bad_steps` consecutive non-finite steps; 130 interrupted outside training (nothing to save).

A subcommand is a `Command` in `COMMANDS`; add one with `register_command(...)` at import time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eapo.argtypes import check_output_file, positive_int
from eapo.errors import ConfigError, EapoError, clip_text

EXAMPLES = """\
examples:
  eapo train                                         # tiny model + generated task, EAPO, minutes on a CPU
  eapo train --config configs/smollm2_chain_sum.yaml --steps 3
  eapo train --algo grpo --steps 200 --train.lr 1e-6 --task.params.max_terms 3
  eapo train --resume runs/eapo-chain_sum-20261124-120000
  eapo eval --run runs/eapo-chain_sum-20261124-120000 --k 1,8
  eapo eval --model smollm2 --task chain_sum --k 1,8
"""

EXIT_USER_ERROR = 2
EXIT_BAD_STEPS = 3
EXIT_INTERRUPTED = 130
MAX_MESSAGE = 1000  # characters of an error message; the rest is cut from its middle

# run(args, rest) -> exit code; `rest` holds the unparsed `--section.field VALUE` config overrides.
RunFn = Callable[[argparse.Namespace, list[str]], int]


@dataclass(frozen=True)
class Command:
    """One subcommand: its name, one-line help, how to add its arguments, and what it runs."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: RunFn
    description: str | None = None


COMMANDS: dict[str, Command] = {}


def register_command(
    name: str,
    *,
    help: str,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    run: RunFn,
    description: str | None = None,
) -> None:
    """Add subcommand `eapo <name>`. `--debug` and `--no-progress` are added to every subcommand."""
    if name in COMMANDS:
        raise ValueError(f"an eapo subcommand named {name!r} is already registered")
    COMMANDS[name] = Command(name, help, add_arguments, run, description)


# --- eapo train ------------------------------------------------------------------------------------------


def _train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=None, help="YAML config (default: built-in tiny default)")
    p.add_argument(
        "--resume",
        type=Path,
        default=None,
        metavar="RUN_DIR",
        help="continue a run from its newest valid checkpoint, with its recorded config",
    )
    p.add_argument(
        "--allow-config-change",
        action="store_true",
        help="with --resume: apply overrides that change the math (e.g. --train.lr); they are recorded in "
        "RUN_DIR/config_changes.jsonl with the step they take effect from",
    )
    p.add_argument(
        "--trust-checkpoint",
        action="store_true",
        help="with --resume: load an old-format trainer.pt even if it holds pickled objects (this runs code "
        "from the file; only for checkpoints you trust). Same as EAPO_TRUST_CHECKPOINT=1",
    )


def _train(args: argparse.Namespace, overrides: list[str]) -> int:
    config: Any = args.config
    if args.resume is None:  # loaded here, so a typo is reported before torch and transformers load
        from eapo.train.config import load_config

        config, overrides = load_config(args.config, overrides), None
    from eapo.train.trainer import train

    result = train(
        config,
        overrides,
        resume=args.resume,
        progress=not args.no_progress,
        allow_config_change=args.allow_config_change,
        trust_checkpoint=True if args.trust_checkpoint else None,
    )
    if result.stopped == "nothing_to_do":
        print(
            f"{result.run_dir} already finished at step {result.steps_done}: nothing to do, nothing written. "
            f"To train longer: eapo train --resume {result.run_dir} --steps N (N > {result.steps_done})"
        )
        return 0
    print()
    print(f"run folder:  {result.run_dir}")
    print(f"metrics:     {result.run_dir / 'metrics.jsonl'} (TensorBoard: {result.run_dir / 'tensorboard'})")
    print(f"checkpoint:  {result.checkpoint}")
    key = next((k for k in ("eval/pass@1", "eval/avg@k") if k in result.final_eval), None)
    if key and result.start_eval:
        start, end = result.start_eval[key], result.final_eval[key]
        print(f"held-out {key[5:]}: {start:.3f} at the start -> {end:.3f} at the end")
    elif key:
        print(f"held-out {key[5:]} at the end: {result.final_eval[key]:.3f}")
    if result.stopped != "completed":
        print(f"stopped early ({result.stopped}) at step {result.steps_done}")
        print(f"continue with: eapo train --resume {result.run_dir}")
    return 0 if result.stopped in ("completed", "interrupted") else EXIT_BAD_STEPS


# --- eapo eval -------------------------------------------------------------------------------------------


def _eval_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", type=Path, default=None, help="a run folder (its newest checkpoint and its task)")
    p.add_argument("--model", default=None, help="checkpoint folder, tiny, smollm2, Hub id or local path")
    p.add_argument("--task", default=None, help="task source (reasoning-gym name, jsonl:PATH, hf:NAME)")
    p.add_argument("--config", type=Path, default=None, help="YAML config for task/model/eval settings")
    p.add_argument("--k", default="1,8", help="comma-separated k values (samples per problem = the largest)")
    p.add_argument("--num-problems", type=positive_int, default=None, help="held-out problems to use (>= 1)")
    p.add_argument("--output", type=Path, default=None, help="also write the JSON report here")


def parse_ks(text: str) -> list[int]:
    """`"1,8"` -> [1, 8]; anything else is a ConfigError that names the flag."""
    try:
        ks = [int(k) for k in str(text).split(",") if k.strip()]
    except ValueError:
        ks = []
    if not ks or min(ks) < 1:
        raise ConfigError(f"--k {text!r}: expected comma-separated integers >= 1, e.g. --k 1,8")
    return ks


def _eval(args: argparse.Namespace, overrides: list[str]) -> int:
    ks = parse_ks(args.k)  # before the heavy imports: a typo is reported at once
    if args.output is not None:  # and before the model loads: not after a whole evaluation
        check_output_file(args.output, "--output")
    from eapo.train.evaluate import evaluate_cli

    report = evaluate_cli(
        run=args.run,
        model=args.model,
        task=args.task,
        config=args.config,
        overrides=overrides,
        ks=ks,
        num_problems=args.num_problems,
        progress=not args.no_progress,
    )
    print(json.dumps(report, indent=2))
    if args.output:
        try:
            args.output.write_text(json.dumps(report, indent=2))
        except OSError as err:
            raise ConfigError(f"--output {args.output}: cannot write: {err.strerror or err}") from None
    return 0


register_command(
    "train",
    help="train a policy (no arguments: the tiny default, SFT warm-up then EAPO)",
    description="Train a policy. Any config field can be overridden: --section.field VALUE "
    "(e.g. --train.lr 1e-6, --algo grpo, --steps 200, --task.source countdown).",
    add_arguments=_train_arguments,
    run=_train,
)
register_command(
    "eval",
    help="held-out Avg@k and Pass@k of a run, checkpoint or model",
    add_arguments=_eval_arguments,
    run=_eval,
)


# --- the parser and the entry point ----------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eapo",
        description="RLVR with token-level credit assignment by reward polarity and token entropy.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS.values():
        p = sub.add_parser(command.name, help=command.help, description=command.description or command.help)
        command.add_arguments(p)
        # SUPPRESS: `eapo --debug train` and `eapo train --debug` both work, neither resets the other.
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks")
        p.add_argument("--no-progress", action="store_true", help="no progress bars")
        p.set_defaults(func=command.run)
    # The analysis and experiment commands own their sub-parsers (arguments and `--no-progress`);
    # they only gain the shared `--debug` here. Their modules import nothing heavy at parse time.
    from eapo.analysis import experiment_commands, run_commands

    built_in = set(sub.choices)
    run_commands.register(sub)
    experiment_commands.register(sub)
    for name, p in sub.choices.items():
        if name not in built_in:
            p.add_argument(
                "--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks"
            )
    return parser


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
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


if __name__ == "__main__":
    sys.exit(main())
