"""How far EAPO's entropy term moves token advantages in real rollouts, per quadrant.

EAPO (PAPER.md Eq. 6-7) multiplies each token's |Â| by a factor in [1 − α/φ, 1 + α/φ]: above 1 where the
token's entropy is above its group's mean, below 1 where it is under it. How much that changes training
depends on the task's entropy distribution, which this script measures from the rollout dumps that
`eapo train` writes (`rollouts/step_N.safetensors`, read by `eapo.train.dumps`): per quadrant (high/low
entropy by the group mean, Appendix B.1) the token share, the factor |Â^CA| / |Â| (quantiles) and the
share of tokens at either bound of the clip.

    python benchmarks/eapo_shaping.py RUN_DIR [RUN_DIR ...] --out benchmarks/results/eapo_shaping_tiny.json

`--entro-adv` asks the question of EntroAdv (arXiv 2506.14758) instead: its bonus min(α_e H, |Â| / κ) is
capped at |Â| / κ where α_e H >= |Â| / κ, and where that holds for most tokens the bonus is a constant
fraction of |Â| (a rescaling of GRPO, not an entropy signal). From the dumps of any run (a GRPO run's show
what EntroAdv would add at the same states), per quadrant: the share of tokens at the cap, the bonus and
bonus / |Â|.

    python benchmarks/eapo_shaping.py --entro-adv RUN_DIR [RUN_DIR ...] --out FILE.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import bench_utils as bu
import torch

from eapo.core import QUADRANTS

QUANTILES = (0.1, 0.5, 0.9)


def run_factors(run_dir: Path) -> dict[str, Any]:
    """Per-token factors |Â^CA| / |Â|, entropies and quadrant names of every dump of one run."""
    from eapo.core import quadrant_masks
    from eapo.train.dumps import dump_paths, load_dump

    dumps = dump_paths(run_dir)
    if not dumps:
        raise SystemExit(f"{run_dir}: no rollout dumps (train with run.dump_rollouts_every > 0)")
    factors: list[torch.Tensor] = []
    entropies: list[torch.Tensor] = []
    names: list[list[str]] = []
    for path in dumps:
        dump = load_dump(path)
        adv, shaped, entropy = dump["advantages"], dump["shaped_advantages"], dump["entropy"]
        masks = quadrant_masks(adv, entropy, dump["response_mask"], dump["group_size"])
        for name, mask in masks.items():
            factors.append((shaped[mask] / adv[mask]).abs().double())
            entropies.append(entropy[mask].double())
            names.append([name] * int(mask.sum()))
    return {
        "algo": load_dump(dumps[0]).get("algo"),
        "dumps": len(dumps),
        "factor": torch.cat(factors),
        "entropy": torch.cat(entropies),
        "quadrant": [n for group in names for n in group],
    }


def summarise(factor: torch.Tensor, entropy: torch.Tensor, bound: float) -> dict[str, Any]:
    """Statistics of factors |Â^CA| / |Â| against the clip bound α/φ, and of the tokens' entropy."""
    if factor.numel() == 0:
        return {"tokens": 0}
    qs = torch.tensor(QUANTILES, dtype=factor.dtype)
    tol = 1e-4
    return {
        "tokens": int(factor.numel()),
        "factor_mean": float(factor.mean()),
        "factor_quantiles": dict(zip(map(str, QUANTILES), torch.quantile(factor, qs).tolist(), strict=True)),
        "mean_abs_change": float((factor - 1).abs().mean()),
        "at_upper_bound": float((factor >= 1 + bound - tol).float().mean()),
        "at_lower_bound": float((factor <= 1 - bound + tol).float().mean()),
        "entropy_mean": float(entropy.mean()),
        "entropy_quantiles": dict(
            zip(map(str, QUANTILES), torch.quantile(entropy, qs).tolist(), strict=True)
        ),
    }


def entro_adv_saturation(run_dirs: list[Path], alpha: float, kappa: float) -> dict[str, Any]:
    """EntroAdv's bonus on the dumps' tokens with Â != 0 (PAPER.md §4.1 quadrants by the GRPO advantage):
    per quadrant the token count, the share where the cap |Â| / κ binds, the mean bonus and bonus / |Â|."""
    from eapo.core import quadrant_masks
    from eapo.train.dumps import dump_paths, load_dump

    parts: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {name: [] for name in QUADRANTS}
    dumps = 0
    for run_dir in run_dirs:
        paths = dump_paths(run_dir)
        if not paths:
            raise SystemExit(f"{run_dir}: no rollout dumps (train with run.dump_rollouts_every > 0)")
        for path in paths:
            dump = load_dump(path)
            adv, entropy = dump["advantages"].double(), dump["entropy"].double()
            masks = quadrant_masks(adv, entropy, dump["response_mask"], dump["group_size"])
            for name, mask in masks.items():
                parts[name].append((adv[mask].abs(), entropy[mask]))
            dumps += 1

    def block(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, Any]:
        if not pairs or sum(a.numel() for a, _ in pairs) == 0:
            return {"tokens": 0}
        abs_adv = torch.cat([a for a, _ in pairs])
        entropy = torch.cat([h for _, h in pairs])
        bonus = torch.minimum(alpha * entropy, abs_adv / kappa)
        return {
            "tokens": int(abs_adv.numel()),
            "at_cap": float((alpha * entropy >= abs_adv / kappa).double().mean()),
            "bonus_mean": float(bonus.mean()),
            "bonus_over_abs_advantage_mean": float((bonus / abs_adv).mean()),
            "entropy_mean": float(entropy.mean()),
            "abs_advantage_mean": float(abs_adv.mean()),
        }

    return {
        "kind": "entro_adv_saturation",
        "runs": [str(d) for d in run_dirs],
        "dumps": dumps,
        "alpha": alpha,
        "kappa": kappa,
        "all": block([pair for pairs in parts.values() for pair in pairs]),
        "quadrants": {name: block(pairs) for name, pairs in parts.items()},
    }


def render_saturation(report: dict[str, Any]) -> str:
    lines = [f"{'quadrant':>8} {'tokens':>8} {'at cap':>7} {'bonus':>7} {'bonus/|A|':>9} {'H mean':>7}"]
    for name, s in [("all", report["all"]), *report["quadrants"].items()]:
        if s.get("tokens"):
            lines.append(
                f"{name:>8} {s['tokens']:>8} {s['at_cap']:>7.3f} {s['bonus_mean']:>7.4f} "
                f"{s['bonus_over_abs_advantage_mean']:>9.4f} {s['entropy_mean']:>7.3f}"
            )
    return "\n".join(lines)


def analyse(run_dirs: list[Path], bound: float) -> dict[str, Any]:
    pooled = [run_factors(d) for d in run_dirs]
    factor = torch.cat([p["factor"] for p in pooled])
    entropy = torch.cat([p["entropy"] for p in pooled])
    quadrant = [q for p in pooled for q in p["quadrant"]]
    by_quadrant = {}
    for name in QUADRANTS:
        keep = torch.tensor([q == name for q in quadrant], dtype=torch.bool)
        by_quadrant[name] = {
            "share": float(keep.float().mean()),
            **summarise(factor[keep], entropy[keep], bound),
        }
    return {
        "kind": "shaping",
        "runs": [str(d) for d in run_dirs],
        "algos": sorted({str(p["algo"]) for p in pooled}),
        "dumps": sum(p["dumps"] for p in pooled),
        "bound": bound,
        "all": summarise(factor, entropy, bound),
        "quadrants": by_quadrant,
    }


def render(report: dict[str, Any]) -> str:
    rows = [("all", 1.0, report["all"])] + [(q, s["share"], s) for q, s in report["quadrants"].items()]
    lines = [
        f"{'tokens':>8} {'quadrant':>8} {'share':>6} {'factor p10/p50/p90':>22} {'at 1-b':>7} {'at 1+b':>7}"
        f" {'H mean':>7}"
    ]
    for name, share, s in rows:
        if not s.get("tokens"):
            continue
        fq = "/".join(f"{v:.3f}" for v in s["factor_quantiles"].values())
        lines.append(
            f"{s['tokens']:>8} {name:>8} {share:>6.3f} {fq:>22} {s['at_lower_bound']:>7.3f} "
            f"{s['at_upper_bound']:>7.3f} {s['entropy_mean']:>7.3f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "runs", nargs="+", type=Path, help="run folders with rollout dumps (EAPO runs without --entro-adv)"
    )
    parser.add_argument("--out", type=Path, help="write the JSON here")
    parser.add_argument("--bound", type=float, default=None, help="α/φ (default: the eapo preset's)")
    parser.add_argument(
        "--entro-adv", action="store_true", help="EntroAdv's bonus saturation instead (any run's dumps)"
    )
    args = parser.parse_args()
    from eapo.train.algorithms import ALGORITHMS

    if args.entro_adv:
        params = {"alpha": 0.4, "kappa": 2.0, **ALGORITHMS["entro_adv"].shaper_params}
        report = entro_adv_saturation(args.runs, params["alpha"], params["kappa"])
        text = render_saturation(report)
    else:
        bound = args.bound
        if bound is None:
            params = ALGORITHMS["eapo"].shaper_params
            bound = params["alpha"] / params["phi"]
        report = analyse(args.runs, bound)
        text = render(report)
    report["command"] = "python benchmarks/eapo_shaping.py " + " ".join(sys.argv[1:])
    report["created"] = dt.datetime.now().isoformat(timespec="seconds")
    report["machine"] = bu.machine_info()
    print(text)
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
