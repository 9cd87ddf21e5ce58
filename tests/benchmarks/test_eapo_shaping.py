"""benchmarks/eapo_shaping.py on a real (smoke) EAPO run: every factor |Â^CA|/|Â| lies within 1 ± α/φ, above
1 in the high-entropy quadrants and below 1 in the low-entropy ones."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from eapo.tasks import Problem
from eapo.train.config import load_config
from eapo.train.trainer import train

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH_DIR))


def _mixed_reward(completion: str, problem: Problem) -> float:
    # The smoke model is almost never right, and all-wrong groups have Â = 0 everywhere; a reward decided by
    # the text splits the groups so that every quadrant has tokens.
    return float(len(completion) % 2 == 0)


def test_shaping_factors_respect_the_bound_and_the_entropy_side(tmp_path: Path) -> None:
    shaping = importlib.import_module("eapo_shaping")
    overrides = {"algo": {"name": "eapo"}, "run": {"output_dir": str(tmp_path), "dump_rollouts_every": 1}}
    config = load_config("smoke", overrides)
    result = train(config, progress=False, reward_fn=_mixed_reward)
    report = shaping.analyse([result.run_dir], bound=0.1)
    assert report["dumps"] == config.train.steps
    everything = report["all"]
    assert everything["tokens"] == sum(q.get("tokens", 0) for q in report["quadrants"].values())
    assert (
        0.9 - 1e-6
        <= everything["factor_quantiles"]["0.1"]
        <= everything["factor_quantiles"]["0.9"]
        <= 1.1 + 1e-6
    )
    for name, stats in report["quadrants"].items():
        if not stats.get("tokens"):
            continue
        low, high = stats["factor_quantiles"]["0.1"], stats["factor_quantiles"]["0.9"]
        if name.endswith("HR"):  # above the group mean entropy: z > 0, the step grows
            assert low >= 1.0 - 1e-6
        else:
            assert high <= 1.0 + 1e-6
    assert "quadrant" in shaping.render(report)


def test_entro_adv_saturation_matches_the_shaper_on_a_grpo_run(tmp_path: Path) -> None:
    import torch

    from eapo.core import shape_advantages
    from eapo.train.dumps import dump_paths, load_dump

    shaping = importlib.import_module("eapo_shaping")
    overrides = {"algo": {"name": "grpo"}, "run": {"output_dir": str(tmp_path), "dump_rollouts_every": 1}}
    result = train(load_config("smoke", overrides), progress=False, reward_fn=_mixed_reward)
    # A large alpha puts every token at the cap |Â| / κ; alpha 0 puts none there.
    capped = shaping.entro_adv_saturation([result.run_dir], alpha=1e6, kappa=2.0)
    assert capped["all"]["at_cap"] == 1.0
    assert abs(capped["all"]["bonus_over_abs_advantage_mean"] - 0.5) < 1e-9
    report = shaping.entro_adv_saturation([result.run_dir], alpha=0.4, kappa=2.0)
    assert report["all"]["tokens"] == sum(q.get("tokens", 0) for q in report["quadrants"].values())
    # The bonus equals what the entro_adv shaper adds to the same dumps.
    added, counted = 0.0, 0
    for path in dump_paths(result.run_dir):
        dump = load_dump(path)
        adv, mask = dump["advantages"], dump["response_mask"].bool()
        shaped = shape_advantages(
            "entro_adv", adv, dump["entropy"], mask, dump["group_size"], alpha=0.4, kappa=2.0
        )
        nonzero = mask & (adv != 0)
        added += float((shaped - adv)[nonzero].double().sum())
        counted += int(nonzero.sum())
    assert counted == report["all"]["tokens"]
    assert abs(added / counted - report["all"]["bonus_mean"]) < 1e-5
    assert torch.isfinite(torch.tensor(report["all"]["entropy_mean"]))
