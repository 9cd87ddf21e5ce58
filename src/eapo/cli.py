"""The `eapo` command line. Every subcommand is a thin wrapper over a library function.

Errors a user can fix (a bad config field, a broken data file, a model path that is not a model) print one
message and exit with code 2; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from eapo.errors import EapoError

EXAMPLES = """\
examples:
  eapo train                                         # tiny model + generated task, EAPO, minutes on a CPU
  eapo train --config configs/smollm2_chain_sum.yaml --steps 3
  eapo train --algo grpo --steps 200 --train.lr 1e-6 --task.params.max_terms 3
  eapo train --resume runs/eapo-chain_sum-20261124-120000
  eapo eval --run runs/eapo-chain_sum-20261124-120000 --k 1,8
  eapo eval --model smollm2 --task chain_sum --k 1,8
"""


def _train(args: argparse.Namespace, overrides: list[str]) -> int:
    from eapo.train.trainer import train

    result = train(args.config, overrides, resume=args.resume, progress=not args.no_progress)
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
    return 0 if result.stopped in ("completed", "interrupted") else 3


def _eval(args: argparse.Namespace, overrides: list[str]) -> int:
    from eapo.train.evaluate import evaluate_cli

    ks = [int(k) for k in str(args.k).split(",") if k.strip()]
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
        Path(args.output).write_text(json.dumps(report, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eapo",
        description="RLVR with token-level credit assignment by reward polarity and token entropy.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "train",
        help="train a policy (no arguments: the tiny default, SFT warm-up then EAPO)",
        description="Train a policy. Any config field can be overridden: --section.field VALUE "
        "(e.g. --train.lr 1e-6, --algo grpo, --steps 200, --task.source countdown).",
    )
    p.add_argument("--config", type=Path, default=None, help="YAML config (default: built-in tiny default)")
    p.add_argument(
        "--resume",
        type=Path,
        default=None,
        metavar="RUN_DIR",
        help="continue a run from its newest valid checkpoint",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_train)

    p = sub.add_parser("eval", help="held-out Avg@k and Pass@k of a run, checkpoint or model")
    p.add_argument("--run", type=Path, default=None, help="a run folder (its newest checkpoint and its task)")
    p.add_argument("--model", default=None, help="checkpoint folder, tiny, smollm2, Hub id or local path")
    p.add_argument("--task", default=None, help="task source (reasoning-gym name, jsonl:PATH, hf:NAME)")
    p.add_argument("--config", type=Path, default=None, help="YAML config for task/model/eval settings")
    p.add_argument("--k", default="1,8", help="comma-separated k values (samples per problem = the largest)")
    p.add_argument("--num-problems", type=int, default=None, help="held-out problems to use")
    p.add_argument("--output", type=Path, default=None, help="also write the JSON report here")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_eval)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    func: Callable[[argparse.Namespace, list[str]], int] = args.func
    try:
        return func(args, rest)
    except EapoError as err:
        if args.debug:
            raise
        print(f"eapo: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
