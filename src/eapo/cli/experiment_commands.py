"""The `eapo ablate` and `eapo compare` subcommands: `register(subparsers)` adds them to eapo's parser.

Both are thin wrappers over `eapo.analysis.ablate.run_ablation` and `eapo.analysis.compare.run_compare`.
Arguments the command does not know are config overrides applied to every arm (`--train.lr 1e-3`).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from eapo.cli.argtypes import check_writable_dir, non_negative_int, positive_int
from eapo.cli.common import EXIT_GRID_BUSY, EXIT_INTERRUPTED, add_common_options
from eapo.errors import ConfigError

# Copies of eapo.analysis.prestated_metrics.PRIMARY_METRICS and eapo.analysis.power.DEFAULT_POWER_SEEDS:
# those modules load numpy, and building the parser must stay light (a test checks they agree).
PRIMARY_METRICS = ("auc", "final", "steps_to")
DEFAULT_POWER_SEEDS = (4, 8, 16)

ABLATE_EXAMPLES = """\
examples:
  eapo ablate --mode isolate --seeds 3                       # PAPER.md Fig. 2: one quadrant at a time vs GRPO
  eapo ablate --mode eapo-without --seeds 3                  # Table 3: EAPO's term off in one quadrant
  eapo ablate --mode drop --quadrants PLR+NLR,PHR --steps 100
  eapo ablate --mode isolate --pass-curve --seeds 2          # Pass@k for k = 1..256
  eapo ablate --mode isolate --random-controls --seeds 3     # each quadrant beside a share-matched random arm
  eapo ablate --mode controls --seeds 3                      # negative/positive controls, α dose-response
"""

COMPARE_EXAMPLES = """\
examples:
  eapo compare --seeds 5                                     # every algorithm on the tiny default
  eapo compare --algos grpo,dapo,forking,entro_adv,eapo --seeds 3 --steps 100 --target 0.5
  eapo compare --sweep alpha=0.1,0.2,0.3,0.4,0.5,1 --sweep phi=1,2,4 --seeds 3   # chosen on validation
  eapo compare --algos grpo,eapo --seeds 2 --steps 20 --eval.every 5   # a pilot: prints its MDE
  eapo compare --pilot runs/compare --power-seeds 4,8,16     # size a grid from a pilot, no training
"""


def _seeds(text: str) -> list[int]:
    """`3` -> [0, 1, 2]; `0,4,7` -> [0, 4, 7]."""
    try:
        if "," in text:
            seeds = [int(s) for s in text.split(",") if s.strip()]
            if not seeds or min(seeds) < 0:
                raise ValueError
        else:
            count = int(text)
            if count < 1:
                raise ValueError
            seeds = list(range(count))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected a count (3 -> seeds 0,1,2) or a comma-separated list of seeds"
        ) from None
    return seeds


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seeds", type=_seeds, default=[0, 1, 2], help="a count N (seeds 0..N-1) or a list")
    p.add_argument(
        "--steps", type=non_negative_int, default=None, help="RL steps per run (default: the config's)"
    )
    p.add_argument("--config", type=Path, default=None, help="YAML config (default: tiny default)")
    p.add_argument("--out", type=Path, default=None, help="output folder for the report")
    p.add_argument(
        "--runs-dir",
        type=Path,
        default=None,
        help="where runs go, as RUNS_DIR/<arm>/seed<k>/ (default: --out); grids may share one",
    )
    p.add_argument(
        "--init",
        choices=["per_seed", "shared"],
        default="per_seed",
        help="tiny model: each seed warms up its own initial weights (default) or all seeds share one",
    )
    p.add_argument(
        "--final-samples", type=positive_int, default=16, help="samples per problem in the final eval"
    )
    p.add_argument(
        "--final-problems", type=positive_int, default=None, help="held-out problems (eval.num_problems)"
    )
    p.add_argument("--pass-curve", action="store_true", help="also a Pass@k curve, many samples")
    p.add_argument(
        "--pass-curve-samples", type=positive_int, default=256, help="n for --pass-curve (k = 1, 2, 4, .., n)"
    )
    p.add_argument(
        "--pass-curve-problems", type=positive_int, default=32, help="held-out problems for --pass-curve"
    )
    p.add_argument(
        "--keep-finished",
        choices=["all", "weights", "none"],
        default="all",
        help="what a run trained by this grid keeps of its checkpoints once evaluated: all (default), the "
        "final weights (no resume), or none (no later eval or probe); frees the disk of large grids",
    )
    p.add_argument(
        "--status",
        action="store_true",
        help="train nothing: print where the grid stands (each run's state, step, newest checkpoint, "
        "latest held-out evaluation and hours; the steps and time left), read from its run folders; safe "
        "beside the processes running it",
    )
    add_common_options(p)


def register(subparsers: Any) -> None:
    """Add `ablate` and `compare` to eapo's argparse subparsers (`parser.add_subparsers(...)`)."""
    p = subparsers.add_parser(
        "ablate",
        help="the paper's quadrant experiments (isolate, eapo-without, drop) and the controls (arms x seeds)",
        description="Quadrant ablations (PAPER.md §4.2 Fig. 2, §6.4 Table 3) as a resumable grid of arms x "
        "seeds with identical data, budget, initial weights and evaluation. Unknown arguments are config "
        "overrides for every arm (--train.lr 1e-3).",
        epilog=ABLATE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,  # `--seed 4` must not silently mean `--seeds 4`: it is a config override
    )
    p.add_argument("--mode", required=True, choices=["isolate", "eapo-without", "drop", "controls"])
    p.add_argument(
        "--quadrants",
        default=None,
        help="quadrants, comma-separated; join with + for one arm of several (default: each of the four)",
    )
    p.add_argument(
        "--random-controls",
        action="store_true",
        help="isolate only: beside each quadrant, an arm on as many random tokens of the same polarity per "
        "group (separates which tokens from how many)",
    )
    _add_common(p)
    p.set_defaults(func=_ablate)

    p = subparsers.add_parser(
        "compare",
        help="EAPO against the baselines with paired statistics, or its α/φ sensitivity",
        description="Every algorithm with the identical model, data order, seeds, rollout budget and "
        "evaluation; paired per-seed differences with bootstrap 95% intervals. With --sweep: EAPO's "
        "sensitivity to α and φ, chosen on a validation split and reported on held-out. Unknown arguments "
        "are config overrides for every arm.",
        epilog=COMPARE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    p.add_argument("--algos", default=None, help="comma-separated algorithms (default: all eleven)")
    p.add_argument("--task", default=None, help="task source (replaces the config's task.source and params)")
    p.add_argument("--model", default=None, help="model (replaces the config's model.name)")
    p.add_argument("--target", type=float, default=None, help="report steps to reach this held-out Avg@k")
    p.add_argument("--focus", default="eapo", help="compared with every other algorithm")
    p.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="NAME=V1,V2,...",
        help="sensitivity mode: EAPO's alpha or phi over these values (repeatable)",
    )
    p.add_argument("--sweep-grid", action="store_true", help="sweep the product, not one at a time")
    p.add_argument("--val-problems", type=positive_int, default=200, help="validation problems for --sweep")
    p.add_argument(
        "--primary",
        choices=list(PRIMARY_METRICS),
        default="auc",
        help="the primary metric, stated before the grid: auc = area under the held-out Avg@k curve over "
        "training ÷ horizon (default); final = final held-out Avg@n; steps_to = steps to Avg@k >= --target "
        "(default: the run's start + 0.05). The others are secondaries, Holm-corrected",
    )
    p.add_argument(
        "--power-seeds",
        default=",".join(map(str, DEFAULT_POWER_SEEDS)),
        metavar="N1,N2,...",
        help="print the minimum detectable effect on the primary metric (paired t-test, α = 0.05, 80%% "
        "power) for these seed counts (default: %(default)s)",
    )
    p.add_argument(
        "--pilot",
        type=Path,
        default=None,
        metavar="PATH",
        help="no training: the minimum detectable effect from a pilot (a runs folder, or a compare.json "
        "or the folder holding it); with --steps H, the pilot's curves are cut at step H, the horizon of "
        "the grid being sized",
    )
    _add_common(p)
    p.set_defaults(func=_compare)


def _final_eval(args: argparse.Namespace) -> Any:
    from eapo.analysis.grid import FinalEvalSettings

    settings = FinalEvalSettings(
        samples=args.final_samples,
        problems=args.final_problems,
        pass_curve_samples=args.pass_curve_samples if args.pass_curve else 0,
        pass_curve_problems=args.pass_curve_problems,
    )
    settings.validate()
    return settings


def _overrides(rest: list[str]) -> dict[str, Any]:
    from eapo.train.config import parse_overrides

    return parse_overrides(rest) if rest else {}


def _command_line() -> str:
    return shlex.join(["eapo", *sys.argv[1:]])


def _check_out_dirs(out: Path, runs_dir: Path | None) -> None:
    """--out and --runs-dir must be folders this user can write, checked before any run trains."""
    check_writable_dir(out, "--out")
    if runs_dir is not None:
        check_writable_dir(runs_dir, "--runs-dir")


def _ablate(args: argparse.Namespace, rest: list[str]) -> int:
    from eapo.analysis.ablate import run_ablation
    from eapo.analysis.grid import GridBusy, GridInterrupted, format_grid_status

    out = args.out or Path("runs") / f"ablate-{args.mode}"
    if not args.status:
        _check_out_dirs(out, args.runs_dir)
    try:
        report = run_ablation(
            args.mode,
            seeds=args.seeds,
            out_dir=out,
            quadrants=args.quadrants,
            random_controls=args.random_controls,
            runs_dir=args.runs_dir,
            steps=args.steps,
            config=args.config,
            overrides=_overrides(rest),
            final_eval=_final_eval(args),
            keep_finished=args.keep_finished,
            init=args.init,
            progress=not args.no_progress,
            command=_command_line(),
            status_only=args.status,
        )
    except GridInterrupted as err:
        print(f"\n{err}", file=sys.stderr)
        return EXIT_GRID_BUSY if isinstance(err, GridBusy) else EXIT_INTERRUPTED
    if args.status:
        print(format_grid_status(report))
        return 0
    _print_outputs(out, "ablation", report)
    return 0


def _compare(args: argparse.Namespace, rest: list[str]) -> int:
    from eapo.analysis.compare import parse_algos, parse_sweeps, run_compare
    from eapo.analysis.grid import GridBusy, GridInterrupted, format_grid_status
    from eapo.analysis.power import format_power, parse_power_seeds, pilot_power
    from eapo.analysis.prestated import primary_summary

    power_seeds = parse_power_seeds(args.power_seeds)
    if args.pilot is not None:
        if args.sweep or rest or args.status:
            raise ConfigError(
                "--pilot reads a finished grid; it takes no --sweep, --status or config overrides"
            )
        power = pilot_power(
            args.pilot,
            primary=args.primary,
            focus=args.focus,
            seed_counts=power_seeds,
            target=args.target,
            horizon=args.steps,
        )
        if args.out is not None:
            check_writable_dir(args.out, "--out")
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "power.json").write_text(json.dumps(power, indent=1) + "\n")
            print(f"report:  {args.out / 'power.json'}")
        print(format_power(power))
        return 0
    sweeps = parse_sweeps(args.sweep) if args.sweep else None
    algos = parse_algos(args.algos) if args.algos else None
    if sweeps and algos:
        raise ConfigError("--sweep runs EAPO's sensitivity; it does not combine with --algos")
    if args.target is not None and not 0 <= args.target <= 1:
        raise ConfigError(f"--target {args.target}: expected an accuracy in [0, 1]")
    if args.val_problems < 1:
        raise ConfigError(f"--val-problems {args.val_problems}: expected an integer >= 1")
    out = args.out or Path("runs") / ("sensitivity" if sweeps else "compare")
    if not args.status:
        _check_out_dirs(out, args.runs_dir)
    try:
        report = run_compare(
            algos,
            seeds=args.seeds,
            out_dir=out,
            task=args.task,
            model=args.model,
            runs_dir=args.runs_dir,
            steps=args.steps,
            config=args.config,
            overrides=_overrides(rest),
            target=args.target,
            focus=args.focus,
            final_eval=_final_eval(args),
            keep_finished=args.keep_finished,
            init=args.init,
            sweeps=sweeps,
            sweep_grid=args.sweep_grid,
            validation_problems=args.val_problems,
            progress=not args.no_progress,
            command=_command_line(),
            primary=args.primary,
            power_seeds=power_seeds,
            status_only=args.status,
        )
    except GridInterrupted as err:
        print(f"\n{err}", file=sys.stderr)
        return EXIT_GRID_BUSY if isinstance(err, GridBusy) else EXIT_INTERRUPTED
    if args.status:
        print(format_grid_status(report))
        return 0
    _print_outputs(out, report["kind"], report)
    if "prestated" in report:
        print(primary_summary(report["prestated"]))
        print(format_power(report["prestated"]["power"]))
    return 0


def _print_outputs(out: Path, stem: str, report: dict[str, Any]) -> None:
    print()
    print(f"report:  {out / (stem + '.json')}")
    print(f"table:   {out / (stem + '.md')}")
    for figure in report.get("figures", []):
        print(f"figure:  {out / figure}")
    print()
    print((out / f"{stem}.md").read_text().split("## ")[0])
