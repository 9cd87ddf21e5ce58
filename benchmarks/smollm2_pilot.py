"""The SmolLM2 study's pilot as one report (issue #19, item 2): what it fixed for every later grid.

Reads the pilot's GRPO runs (`<runs>/pilot_lr<rate>/grpo/seed<k>/`, as `benchmarks/smollm2_study.sh` lays
them out) and writes `benchmarks/results/compare_smollm2_pilot.json` with
- the entropy gate the study's setting passed (from `smollm2_arith_3x1_t14_warmup.json`);
- the learning-rate screen (seed 0 of each rate to step 100; the rule is in smollm2_study.sh);
- every pilot run's held-out Avg@8 curve and, for runs that finished, their final Avg@16 / Pass@16;
- the horizon, by the rule smollm2_study.sh states (first step where the mean curve reaches 90% of its gain);
- the minimum detectable effect of the headline's primary metric (the AUC of held-out Avg@8 over the
  horizon) at 4, 8 and 16 seeds, from the chosen rate's seed-to-seed spread (`eapo compare --pilot`'s
  analysis, eapo.analysis.power.pilot_power, curves cut at the horizon);
and draws `compare_smollm2_pilot_curves.png`. Refuses while the horizon cannot be decided yet.

    python benchmarks/smollm2_pilot.py              # after `bash benchmarks/smollm2_study.sh pilot_3e-6`
    python benchmarks/smollm2_pilot.py --horizon    # print the decided horizon only (the grids' STEPS)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import bench_utils as bu
import smollm2_study_state as study

GATE_FILE = "smollm2_arith_3x1_t14_warmup.json"
REPORT = "compare_smollm2_pilot.json"
FIGURE = "compare_smollm2_pilot_curves.png"
POWER_SEEDS = (4, 8, 16)


def final_eval(run_dir: Path) -> dict[str, Any] | None:
    """The final held-out evaluation a finished grid run wrote (grid_eval.json), or None."""
    path = run_dir / "grid_eval.json"
    if not path.is_file():
        return None
    final = json.loads(path.read_text())["final"]
    k = final["samples"]
    return {
        "samples": k,
        "problems": final["num_problems"],
        "avg": final["avg"],
        "pass": final["pass_at_k"][str(k)],
    }


def entropy_curve(run_dir: Path) -> list[list[float]]:
    """[step, mean token entropy of that step's rollouts (nats, at the rollout temperature)] per step."""
    from eapo.train.logging import read_metrics

    rows = read_metrics(run_dir) if (run_dir / "metrics.jsonl").is_file() else []
    return [[r["step"], r["entropy/mean"]] for r in rows if isinstance(r.get("entropy/mean"), int | float)]


def pilot_runs(runs: Path) -> list[dict[str, Any]]:
    """Every pilot run's state (smollm2_study_state.run_state) with its final evaluation."""
    out = []
    for config in sorted(runs.glob("pilot_lr*/grpo/seed*/config.yaml")):
        state = study.run_state(config.parent)
        state["rate"] = config.parent.parent.parent.name.removeprefix("pilot_lr")
        state["final_eval"] = final_eval(config.parent)
        state["entropy_curve"] = entropy_curve(config.parent)
        out.append(state)
    return out


def minimum_detectable_effect(runs: Path, horizon: int) -> dict[str, Any]:
    from eapo.analysis.power import pilot_power

    return pilot_power(
        runs / f"pilot_lr{study.HORIZON_RATE}",
        primary="auc",
        focus="grpo",
        seed_counts=POWER_SEEDS,
        horizon=horizon,
    )


def draw_curves(report: dict[str, Any], path: Path) -> Path:
    """Held-out Avg@8 (left) and the rollouts' mean token entropy (right, 10-step running mean) per run."""
    import numpy as np

    from eapo.analysis.plots import add_legend, new_figure, save_figure

    fig, axes = new_figure(1, 2, width=5.2, height=3.6)
    accuracy, entropy = axes[0, 0], axes[0, 1]
    colors = {"1e-6": "tab:blue", "3e-6": "tab:green", "1e-5": "tab:orange"}
    for run in report["runs"]:
        style = {
            "color": colors.get(run["rate"], "tab:gray"),
            "linestyle": "-" if run["seed"] == 0 else "--",
            "label": f"lr {run['rate']}, seed {run['seed']}",
        }
        curve = run["eval_curve"]
        accuracy.plot([p["step"] for p in curve], [p["avg@8"] for p in curve], marker=".", **style)
        if len(run["entropy_curve"]) >= 10:
            steps, values = np.array(run["entropy_curve"], dtype=float).T
            smooth = np.convolve(values, np.ones(10) / 10, mode="valid")
            entropy.plot(steps[9:], smooth, **style)
    horizon = report["horizon"]
    accuracy.axvline(horizon["horizon"], color="black", linewidth=0.8)
    accuracy.axhline(horizon["threshold"], color="black", linewidth=0.6, linestyle=":")
    accuracy.annotate(
        f"horizon {horizon['horizon']}",
        (horizon["horizon"], horizon["start"]),
        xytext=(4, 0),
        textcoords="offset points",
        fontsize=8,
    )
    accuracy.set(xlabel="step", ylabel="held-out Avg@8 (200 problems, T = 0.6)")
    accuracy.set_title("GRPO pilot: held-out accuracy")
    entropy.set(xlabel="step", ylabel="mean token entropy (nats, T = 1.4)")
    entropy.set_title("rollout entropy (10-step running mean)")
    add_legend(accuracy, fontsize=7)
    return save_figure(fig, path)


def build_report(runs: Path) -> dict[str, Any]:
    states = pilot_runs(runs)
    if not states:
        raise SystemExit(f"{runs}: no pilot runs (bash benchmarks/smollm2_study.sh pilot_3e-6 starts them)")
    horizon = study.horizon_decision(states)
    if not horizon["decided"]:
        raise SystemExit(
            f"the horizon is not decided yet: needs {horizon['pending']} "
            f"(lr {study.HORIZON_RATE}, steps {list(study.HORIZON_END_STEPS)}); finish the pilot first"
        )
    gate = json.loads((bu.RESULTS_DIR / GATE_FILE).read_text())["summary"]
    return {
        "kind": "pilot",
        "title": "SmolLM2-135M-Instruct, issue #19's study: the entropy gate and the GRPO pilot",
        "command": "bash benchmarks/smollm2_study.sh pilot_mde",
        "config": "configs/smollm2_study.yaml",
        "taken_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": bu.machine_info(),
        "gate": {
            "source": GATE_FILE,
            "validation": gate["gate_after_warmup"],
            "train": gate["gate_after_warmup_train_split"],
        },
        "screen": study.screen_decision(states),
        "horizon": horizon,
        "runs": [
            {
                k: run[k]
                for k in (
                    "run",
                    "rate",
                    "seed",
                    "horizon",
                    "last_step",
                    "eval_curve",
                    "entropy_curve",
                    "final_eval",
                    "precision",
                )
            }
            for run in states
        ],
        "mde": minimum_detectable_effect(runs, horizon["horizon"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=study.DEFAULT_RUNS, help="the study's runs folder")
    parser.add_argument("--out", type=Path, default=bu.RESULTS_DIR / REPORT)
    parser.add_argument(
        "--horizon", action="store_true", help=f"print the horizon recorded in {REPORT} and exit"
    )
    args = parser.parse_args()
    if args.horizon:
        if not args.out.is_file():
            sys.exit(
                f"{args.out}: no pilot report yet (bash benchmarks/smollm2_study.sh pilot_mde writes it)"
            )
        print(json.loads(args.out.read_text())["horizon"]["horizon"])
        return
    report = build_report(args.runs)
    figure = draw_curves(report, args.out.parent / FIGURE)
    report["figures"] = [figure.name]
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    h = report["horizon"]
    print(
        f"horizon {h['horizon']} (mean Avg@8 start {h['start']:.3f}, end {h['end']:.3f}, "
        f"90% threshold {h['threshold']:.3f})"
    )
    from eapo.analysis.power import format_power

    print(format_power(report["mde"]))
    print(f"wrote {args.out} and {figure}")


if __name__ == "__main__":
    main()
