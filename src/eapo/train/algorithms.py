"""Algorithm presets: each named method is a combination of the pure pieces in `eapo.core`.

An algorithm is data, not code: which group-advantage estimator, which advantage shaper (the credit
method), which policy loss and its clip/KL/entropy settings, and how the loss is aggregated. Adding a
method means registering a shaper or loss in `eapo.core` and one entry here.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from eapo.core import POLICY_LOSSES, SHAPERS, shape_advantages
from eapo.errors import ConfigError

if TYPE_CHECKING:
    from eapo.train.config import AlgoConfig

ADVANTAGE_METHODS = ("grpo", "dr_grpo", "rloo")
AGGREGATIONS = ("token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm")


@dataclass(frozen=True)
class Algorithm:
    """A fully resolved training algorithm (every field set)."""

    name: str
    advantage: str = "grpo"
    shaper: str = "grpo"
    shaper_params: dict[str, Any] = field(default_factory=dict)
    loss: str = "ppo_clip"
    loss_params: dict[str, Any] = field(default_factory=dict)
    # PAPER.md Eq. 2: asymmetric clip ε_low = 0.20, ε_high = 0.28, no KL, token-mean.
    clip_low: float = 0.2
    clip_high: float = 0.28
    dual_clip: float | None = None
    kl_coef: float = 0.0
    entropy_coef: float = 0.0
    agg: str = "token_mean"
    overlong_buffer: int = 0
    # DAPO's dynamic sampling with refill: up to this many extra rollouts of `train.prompts_per_step` new
    # prompts replace groups whose rewards are all equal, until the batch holds only informative groups
    # (0 = no refill; such groups are then only masked out of the update, `train.drop_zero_variance_groups`).
    refill_rounds: int = 0
    description: str = ""


# The paper's GRPO (PAPER.md "GRPO as the paper uses it") and the baselines of §6.1 / Appendix B.4.
ALGORITHMS: dict[str, Algorithm] = {
    a.name: a
    for a in [
        Algorithm("grpo", description="GRPO as in PAPER.md Eq. 2: clip-higher 0.2/0.28, token-mean, no KL"),
        Algorithm(
            "dr_grpo",
            advantage="dr_grpo",
            clip_high=0.2,
            agg="seq_mean_token_sum_norm",
            description="Dr. GRPO: mean-centred advantages, no std or length normalisation",
        ),
        Algorithm(
            "dapo",
            overlong_buffer=-1,  # -1: a quarter of sampling.max_new_tokens (DAPO's soft overlong penalty)
            refill_rounds=4,
            description="DAPO: clip-higher, token-mean, dynamic sampling with refill (up to 4 extra "
            "rollouts a step), soft overlong penalty",
        ),
        Algorithm(
            "w_reinf",
            shaper="w_reinf",
            description="W-REINFORCE (arXiv 2506.01347): positive-sample advantages weighted by 0.1",
        ),
        Algorithm(
            "entro_reg",
            entropy_coef=0.001,
            description="EntroReg: GRPO with an entropy bonus in the loss (coefficient 0.001)",
        ),
        Algorithm(
            "forking",
            shaper="forking",
            description="Forking tokens (arXiv 2506.01939): gradient only on the top-20% entropy tokens",
        ),
        Algorithm(
            "entro_adv",
            shaper="entro_adv",
            description="EntroAdv (arXiv 2506.14758): A + min(α·H, |A|/κ), entropy detached",
        ),
        Algorithm("kl_cov", loss="kl_cov", description="KL-Cov (arXiv 2505.22617)"),
        Algorithm("clip_cov", loss="clip_cov", description="Clip-Cov (arXiv 2505.22617)"),
        Algorithm("gtpo", shaper="gtpo", description="GTPO (arXiv 2508.04349): entropy-shaped token rewards"),
        Algorithm(
            "eapo",
            shaper="eapo",
            shaper_params={"alpha": 0.2, "phi": 2.0},
            description="EAPO (PAPER.md §5, Eq. 6-7): A + α·sign(A)·clip(z(H), ±|A|/φ), α = 0.2, φ = 2",
        ),
        Algorithm(
            "eapo_shuffled",
            shaper="eapo_shuffled",
            shaper_params={"alpha": 0.2, "phi": 2.0},
            description="Negative control: EAPO (α = 0.2, φ = 2) on entropies shuffled within each group",
        ),
        Algorithm(
            "quadrant",
            shaper="quadrant",
            shaper_params={"mode": "isolate", "quadrants": ["PHR"]},
            description="Quadrant experiments (PAPER.md §4.2, Table 3): isolate / drop / eapo_without",
        ),
    ]
}


def _check_name(value: str, valid: Any, field_name: str) -> None:
    if value not in valid:
        close = difflib.get_close_matches(value, list(valid), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ConfigError(f"{field_name} = {value!r} is unknown: {hint}choose from {', '.join(valid)}")


def resolve_algorithm(config: AlgoConfig) -> Algorithm:
    """Apply the config's overrides to its preset and check every name and shaper parameter."""
    _check_name(config.name, ALGORITHMS, "algo.name")
    preset = ALGORITHMS[config.name]
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(preset):
        if f.name in ("name", "description", "shaper_params", "loss_params"):
            continue
        value = getattr(config, f.name, None)
        if value is not None:
            changes[f.name] = value
    shaper_params = {**preset.shaper_params, **config.shaper_params}
    if config.alpha is not None:
        shaper_params["alpha"] = config.alpha
    if config.phi is not None:
        shaper_params["phi"] = config.phi
    if "quadrants" in shaper_params and isinstance(shaper_params["quadrants"], str):
        shaper_params["quadrants"] = [q.strip() for q in shaper_params["quadrants"].split(",") if q.strip()]
    algorithm = dataclasses.replace(
        preset,
        **changes,
        shaper_params=shaper_params,
        loss_params={**preset.loss_params, **config.loss_params},
    )
    _check_name(algorithm.advantage, ADVANTAGE_METHODS, "algo.advantage")
    _check_name(algorithm.shaper, SHAPERS, "algo.shaper")
    _check_name(algorithm.loss, POLICY_LOSSES, "algo.loss")
    _check_name(algorithm.agg, AGGREGATIONS, "algo.agg")
    # A dry run on a 2x3 batch checks the shaper's parameter names and values once, at load time.
    problem = _dry_run_shaper(algorithm.shaper, algorithm.shaper_params)
    if problem is not None:
        params = algorithm.shaper_params
        # Name the parameter at fault: the one whose removal (back to its default) makes the dry run pass.
        culprit = next(
            (
                key
                for key in params
                if _dry_run_shaper(algorithm.shaper, {k: v for k, v in params.items() if k != key}) is None
            ),
            None,
        )
        where = f"algo.shaper_params {params}"
        if culprit is not None:
            where = f"algo.shaper_params.{culprit} = {params[culprit]!r}"
        raise ConfigError(f"{where} is not valid for shaper '{algorithm.shaper}': {problem}")
    return algorithm


def _dry_run_shaper(shaper: str, params: dict[str, Any]) -> str | None:
    """None when `shaper` accepts `params` on a small batch, else the error message."""
    try:
        shape_advantages(
            shaper,
            torch.tensor([[1.0, 1.0, 1.0], [-1.0, -1.0, -1.0]]),
            torch.tensor([[0.1, 2.0, 0.5], [0.3, 1.0, 0.2]]),
            torch.ones(2, 3, dtype=torch.bool),
            2,
            **params,
        )
    except (TypeError, ValueError) as err:
        return str(err)
    return None
