"""The `eapo train` and `eapo eval` subcommands: `register(subparsers)` adds them to eapo's parser.

Both take any config field as an override (`--section.field VALUE`): the arguments argparse does not know.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from eapo.cli.argtypes import check_output_file, positive_int
from eapo.cli.common import EXIT_BAD_STEPS, add_common_options
from eapo.errors import ConfigError

__all__ = ["parse_ks", "register"]


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
        "--print-config",
        action="store_true",
        help="print the config the run would train with (the YAML with the overrides applied; with --resume, "
        "the run's recorded config with them) and exit without training; --config reads the output back",
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


def _print_config(args: argparse.Namespace, overrides: list[str]) -> int:
    """Print the config a run would train with, as YAML that `--config` reads back, and train nothing."""
    from eapo.train.config import dump_yaml, load_config

    if args.resume is None:
        config = load_config(args.config, overrides)
    else:
        from eapo.train.run_dir import recorded_config, resume_config

        config = resume_config(args.resume, recorded_config(args.resume), args.config, overrides)
    print(dump_yaml(config), end="")
    return 0


def _train(args: argparse.Namespace, overrides: list[str]) -> int:
    if args.print_config:
        return _print_config(args, overrides)
    config: Any = args.config
    # The overrides train() has yet to apply (on a resume: to the run's recorded config).
    remaining: list[str] | None = overrides
    if args.resume is None:  # loaded here, so a typo is reported before torch and transformers load
        from eapo.train.config import load_config

        config, remaining = load_config(args.config, overrides), None
    from eapo.train.trainer import train

    result = train(
        config,
        remaining,
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


def register(subparsers: Any) -> None:
    """Add `train` and `eval` to the `eapo` subparsers."""
    p = subparsers.add_parser(
        "train",
        help="train a policy (no arguments: the tiny default, SFT warm-up then EAPO)",
        description="Train a policy. Any config field can be overridden: --section.field VALUE "
        "(e.g. --train.lr 1e-6, --algo grpo, --steps 200, --task.source countdown).",
    )
    _train_arguments(p)
    add_common_options(p)
    p.set_defaults(func=_train)

    summary = "held-out Avg@k and Pass@k of a run, checkpoint or model"
    p = subparsers.add_parser("eval", help=summary, description=summary)
    _eval_arguments(p)
    add_common_options(p)
    p.set_defaults(func=_eval)
