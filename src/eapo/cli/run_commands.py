"""The per-run analysis subcommands of the `eapo` command line: quadrants, credit, gradients, report.

`register(subparsers)` adds them to eapo's argparse subparsers. Each handler is a thin wrapper over one
library function (`eapo.analysis.<command>`) and has the CLI's signature `(args, overrides) -> exit code`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from eapo.cli.argtypes import check_output_file, check_writable_dir, non_negative_int, positive_int
from eapo.cli.common import add_common_options, check_run, no_extra
from eapo.errors import ConfigError

__all__ = ["register"]

EXAMPLES = """\
examples:
  eapo quadrants --run runs/eapo-basic_arithmetic-20261125-120000
  eapo gradients --run runs/eapo-basic_arithmetic-20261125-120000 --max-dumps 10
  eapo gradients --cosine --prompts 16 --output gradients_cosine_tiny.json
  eapo gradients --cosine --config configs/smollm2_chain_sum.yaml --prompts 8 --algos grpo,eapo,forking
  eapo credit --run runs/eapo-basic_arithmetic-20261125-120000 --positions 200 --k 8 --m 16
  eapo credit --model tiny --task basic_arithmetic --positions 50
  eapo report --runs runs/a,runs/b --out report.html
"""


def _print_outputs(out_dir: str | Path, files: list[str]) -> None:
    print(f"written to {out_dir}:")
    for name in files:
        print(f"  {Path(out_dir) / name}")


def _quadrants(args: argparse.Namespace, overrides: list[str]) -> int:
    from eapo.analysis.quadrants import analyze_quadrants

    no_extra("quadrants", overrides)
    check_run(args.run)
    check_writable_dir(args.out or args.run / "analysis" / "quadrants", "--out")
    summary = analyze_quadrants(
        args.run, out_dir=args.out, max_dumps=args.max_dumps or None, progress=not args.no_progress
    )
    _print_outputs(summary["out_dir"], ["summary.md", "summary.json", *summary["figures"]])
    table = [
        line for line in (Path(summary["out_dir"]) / "summary.md").read_text().splitlines() if line[:1] == "|"
    ]
    print("\n".join(table))
    info = summary.get("entropy_information")
    if info:
        print(f"Eq. 14 proxy I(H; r) = {info['corrected']:.5f} nats (Miller-Madow), {info['n']} tokens")
    return 0


def _gradient_cosine(args: argparse.Namespace, overrides: list[str]) -> int:
    import shlex
    import sys

    from eapo.analysis.gradient_cosine import analyze_gradient_cosine, markdown_table

    if args.run is not None and args.model is not None:
        raise ConfigError("eapo gradients --cosine takes --run RUN_DIR or --model MODEL, not both")
    algos = [a.strip() for a in args.algos.split(",") if a.strip()] if args.algos else None
    split = [a.strip() for a in args.split_algos.split(",") if a.strip()] if args.split_algos else None
    result = analyze_gradient_cosine(
        run=args.run,
        model=args.model,
        config=args.config,
        overrides=overrides,
        algorithms=algos,
        split_algorithms=split,
        num_prompts=args.prompts,
        informative=not args.all_groups,
        seed=args.seed,
        output=args.output,
        command="eapo " + shlex.join(sys.argv[1:]),
        progress=not args.no_progress,
    )
    b = result["batch"]
    print(
        f"{b['rows']} rows, {b['tokens']} tokens, accuracy {b['accuracy']:.3f}, "
        f"{b['informative_groups']}/{b['groups']} groups with mixed rewards ({b['prompts_sampled']} prompts "
        f"sampled); {result['seconds']:.0f} s"
    )
    print("\n".join(markdown_table(result)))
    print(f"written to {result['output']} (and .md)")
    return 0


def _gradients(args: argparse.Namespace, overrides: list[str]) -> int:
    from eapo.analysis.gradients import analyze_gradients

    if args.cosine:
        return _gradient_cosine(args, overrides)
    if args.run is None:
        raise ConfigError("eapo gradients needs --run RUN_DIR (or --cosine, which can also take --model)")
    for flag in ("model", "config", "algos", "split_algos", "output"):
        if getattr(args, flag) is not None:
            raise ConfigError(f"eapo gradients --{flag.replace('_', '-')} belongs to --cosine")
    no_extra("gradients", overrides)
    check_run(args.run)
    check_writable_dir(args.out or args.run / "analysis" / "gradients", "--out")
    try:
        steps = [int(s) for s in args.steps.split(",") if s.strip()] if args.steps else None
    except ValueError:
        raise ConfigError(
            f"--steps {args.steps!r}: expected comma-separated step numbers, e.g. 10,20"
        ) from None
    summary = analyze_gradients(
        args.run,
        out_dir=args.out,
        max_dumps=args.max_dumps or None,
        steps=steps,
        progress=not args.no_progress,
    )
    _print_outputs(summary["out_dir"], ["summary.md", "summary.json", summary["figure"]])
    share = summary["table"]["share"]
    for label in ("grpo", "eapo"):
        if label in share:
            print(
                f"{label}: {100 * sum(share[label][-2:]):.1f}% of the gradient norm in the top 2 "
                "entropy deciles"
            )
    return 0


def _credit(args: argparse.Namespace, overrides: list[str]) -> int:
    from eapo.analysis.credit import analyze_credit

    if (args.run is None) == (args.model is None):
        raise ConfigError("eapo credit needs exactly one of --run RUN_DIR or --model MODEL")
    if args.run is not None:
        check_run(args.run)
    if args.out is not None:
        check_writable_dir(args.out, "--out")
    summary = analyze_credit(
        run=args.run,
        model=args.model,
        task=args.task,
        config=args.config,
        overrides=overrides,
        out_dir=args.out,
        num_positions=args.positions,
        num_alternatives=args.k,
        num_completions=args.m,
        num_problems=args.problems,
        split=args.split,
        alternatives=args.alternatives,
        stratify=not args.uniform,
        seed=args.seed,
        n_bootstrap=args.bootstrap,
        progress=not args.no_progress,
    )
    _print_outputs(
        summary["out_dir"],
        ["summary.md", "summary.json", "positions.jsonl", "credit_vs_entropy.png", "credit_by_decile.png"],
    )
    a = summary["all"]
    print(
        f"{a['n']} positions: interval above H at {a['exceed_fraction']:.3f} of them; "
        f"Spearman(H, I) = {a['spearman']:.3f}; sum I / sum H = {a['credit_to_entropy']:.3f}"
    )
    return 0


def _report(args: argparse.Namespace, overrides: list[str]) -> int:
    from eapo.analysis.report import build_report

    no_extra("report", overrides)
    runs = [Path(r.strip()) for r in args.runs.split(",") if r.strip()]
    if not runs:
        raise ConfigError(f"--runs {args.runs!r}: expected comma-separated run folders")
    for run in runs:
        check_run(run)
    check_output_file(args.out, "--out")
    path = build_report(runs, args.out, samples_per_run=args.samples, progress=not args.no_progress)
    print(f"report: {path.resolve()} (self-contained; open it in any browser)")
    return 0


def register(subparsers: Any) -> None:
    """Add `quadrants`, `credit`, `gradients` and `report` to the `eapo` subparsers."""
    formatter = argparse.RawDescriptionHelpFormatter
    p = subparsers.add_parser(
        "quadrants",
        help="Four Quadrant Decomposition of a run: shares, entropy, gradient norm, Fig. 4/6b/8",
        description="Per-quadrant statistics over training from metrics.jsonl, entropy histograms of "
        "positive vs negative tokens with the Eq. 14 proxy, and the advantage distribution, from the "
        "rollout dumps. "
        "Writes PNGs, summary.md and summary.json to RUN/analysis/quadrants/.",
        epilog=EXAMPLES,
        formatter_class=formatter,
    )
    p.add_argument("--run", type=Path, required=True, help="a run folder written by eapo train")
    p.add_argument("--out", type=Path, default=None, help="output folder (default RUN/analysis/quadrants)")
    p.add_argument(
        "--max-dumps",
        type=non_negative_int,
        default=100,
        help="rollout dumps to read, spread over training (0 = all)",
    )
    add_common_options(p)
    p.set_defaults(func=_quadrants)

    p = subparsers.add_parser(
        "gradients",
        help="where GRPO and every shaper put their gradient signal, by entropy decile (Eq. 5); with "
        "--cosine, how far each algorithm's gradient and update are from GRPO's",
        description="Applies every registered shaper to the same dumped batches and tabulates each method's "
        "share of the Eq. 5 logit-gradient norm per token-entropy decile. Writes RUN/analysis/gradients/. "
        "With --cosine: samples one seeded rollout batch from a checkpoint (--run's newest, or --model / "
        "--config's model) and reports, for each algorithm, the cosine and norm ratio of its policy "
        "gradient to GRPO's on that batch (ratio 1), overall and per quadrant, the same for the parameter "
        "change of one AdamW step, and GRPO on a second independent batch as the noise floor; any other "
        "--section.field VALUE overrides the config.",
        epilog=EXAMPLES,
        formatter_class=formatter,
    )
    p.add_argument("--run", type=Path, default=None, help="a run folder written by eapo train")
    p.add_argument("--out", type=Path, default=None, help="output folder (default RUN/analysis/gradients)")
    p.add_argument(
        "--max-dumps", type=non_negative_int, default=20, help="dumps to use, spread over training (0 = all)"
    )
    p.add_argument("--steps", default=None, help="comma-separated dump steps to use instead")
    p.add_argument(
        "--cosine", action="store_true", help="gradient and update cosines of each algorithm to GRPO's"
    )
    p.add_argument("--model", default=None, help="--cosine: checkpoint folder, tiny, smollm2, Hub id or path")
    p.add_argument(
        "--config", default=None, help="--cosine: YAML config or built-in name (default: the tiny default)"
    )
    p.add_argument(
        "--prompts",
        type=positive_int,
        default=16,
        help="--cosine: groups per batch (G from the config); by default groups with mixed rewards, "
        "sampled in rounds as DAPO's dynamic sampling fills a batch",
    )
    p.add_argument(
        "--all-groups",
        action="store_true",
        help="--cosine: keep the groups whose rewards are all equal too (they add no gradient)",
    )
    p.add_argument(
        "--algos",
        default=None,
        help="--cosine: comma-separated presets, optionally NAME:FIELD=VALUE (e.g. eapo:alpha=1); "
        "default all",
    )
    p.add_argument(
        "--split-algos",
        default=None,
        help="--cosine: the algorithms whose gradient is also split per quadrant (default all; GRPO and "
        "the control always are); each split costs four backward passes instead of one",
    )
    p.add_argument(
        "--seed", type=non_negative_int, default=0, help="--cosine: the batch's seed (the control uses +1)"
    )
    p.add_argument("--output", type=Path, default=None, help="--cosine: the JSON to write (.md beside it)")
    add_common_options(p)
    p.set_defaults(func=_gradients)

    p = subparsers.add_parser(
        "credit",
        help="estimate the CMI I(o_t; r | s_t) at real positions and test it against the entropy bound",
        description="Samples responses, picks positions (stratified by entropy decile), branches K "
        "alternative tokens x M completions each, scores them with the task's verifier and estimates the "
        "conditional "
        "mutual information between the token choice and the reward (bias-corrected, bootstrap interval), "
        "against the token's entropy H_t (PAPER.md Proposition 1). Any other --section.field VALUE "
        "overrides the config.",
        epilog=EXAMPLES,
        formatter_class=formatter,
    )
    p.add_argument("--run", type=Path, default=None, help="a run folder: its newest checkpoint and its task")
    p.add_argument("--model", default=None, help="checkpoint folder, tiny, smollm2, Hub id or local path")
    p.add_argument("--task", default=None, help="task source (with --model)")
    p.add_argument("--config", type=Path, default=None, help="YAML config for task/model/sampling settings")
    p.add_argument("--out", type=Path, default=None, help="output folder (default RUN/analysis/credit)")
    p.add_argument("--positions", type=positive_int, default=200, help="positions to probe")
    p.add_argument("--k", type=positive_int, default=8, help="alternative tokens per position")
    p.add_argument("--m", type=positive_int, default=16, help="completions per alternative token")
    p.add_argument("--problems", type=positive_int, default=32, help="problems to sample responses for")
    p.add_argument("--split", choices=("eval", "train"), default="eval", help="which split's problems")
    p.add_argument(
        "--alternatives",
        choices=("top", "sample"),
        default="top",
        help="the K most probable tokens (default) or the distinct tokens of K draws from the policy",
    )
    p.add_argument("--uniform", action="store_true", help="pick positions uniformly, not by entropy decile")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--bootstrap", type=positive_int, default=1000, help="bootstrap replicates per position")
    add_common_options(p)
    p.set_defaults(func=_credit)

    p = subparsers.add_parser(
        "report",
        help="one self-contained HTML page comparing runs (curves, quadrants, coloured sample tokens)",
        description="Writes one HTML file with inline SVG plots, CSS and JS (no network): curves, quadrant "
        "shares, tables, analysis results found in each RUN/analysis/, and sample responses whose tokens "
        "are coloured by entropy or shaped advantage with the values on hover.",
        epilog=EXAMPLES,
        formatter_class=formatter,
    )
    p.add_argument("--runs", required=True, help="comma-separated run folders")
    p.add_argument("--out", type=Path, default=Path("report.html"), help="the HTML file to write")
    p.add_argument("--samples", type=non_negative_int, default=4, help="sample responses per run")
    add_common_options(p)
    p.set_defaults(func=_report)
