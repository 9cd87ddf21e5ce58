"""Algorithm presets: each named method is a combination of the pure pieces in `eapo.core`.

An algorithm is data, not code: which group-advantage estimator, which advantage shaper (the credit
method), which policy loss and its clip/KL/entropy settings, and how the loss is aggregated. Adding a
method means registering a shaper or loss in `eapo.core` and one entry here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from eapo.core import ADVANTAGE_METHODS, AGG_MODES, POLICY_LOSSES, SHAPERS, policy_loss, shape_advantages
from eapo.core.shapers import shaper_params
from eapo.errors import ConfigError, check_choice, clip_text

__all__ = [
    "ALGORITHMS",
    "AlgoConfig",
    "Algorithm",
    "check_shaper_params",
    "eapo_alpha_phi",
    "resolve_algorithm",
    "validate_algo_config",
]


@dataclass
class AlgoConfig:
    """The `algo` section of a run config: which credit-assignment algorithm trains the policy.

    `name` picks a preset from `ALGORITHMS` (grpo, eapo, dapo, forking, ...); any field left at None takes
    the preset's value, so `--algo.alpha 0.3` tunes EAPO without restating it.
    """

    name: str = "eapo"
    advantage: str | None = None  # grpo | dr_grpo | rloo
    shaper: str | None = None  # a name in eapo.core.SHAPERS
    shaper_params: dict[str, Any] = field(default_factory=dict)
    loss: str | None = None  # a name in eapo.core.POLICY_LOSSES
    loss_params: dict[str, Any] = field(default_factory=dict)
    clip_low: float | None = None
    clip_high: float | None = None
    dual_clip: float | None = None
    kl_coef: float | None = None
    entropy_coef: float | None = None
    agg: str | None = None  # token_mean | seq_mean_token_mean | seq_mean_token_sum_norm
    overlong_buffer: int | None = None  # DAPO's soft overlong penalty window, in tokens (0 = off)
    # DAPO's dynamic sampling: extra rollout rounds of new prompts that may replace zero-variance groups
    refill_rounds: int | None = None
    alpha: float | None = None  # EAPO's α (Eq. 7), shortcut for shaper_params.alpha
    phi: float | None = None  # EAPO's φ (Eq. 6), shortcut for shaper_params.phi


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

    def overlong_window(self, max_new_tokens: int) -> int:
        """DAPO's soft overlong window in tokens for responses of at most `max_new_tokens` (-1 means a
        quarter of that length; 0 turns the penalty off)."""
        return self.overlong_buffer if self.overlong_buffer >= 0 else max_new_tokens // 4


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


def _require(ok: bool, field_name: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{field_name} = {clip_text(repr(value))} is out of range: expected {expected}")


def validate_algo_config(config: AlgoConfig) -> Algorithm:
    """Check the `algo` section once, at the edge, and return the algorithm it resolves to.

    Ranges that hold for any preset are checked here; names, shaper parameters (α and φ included) and loss
    parameters by `resolve_algorithm` and one dry run of the policy loss, so that every error is a
    ConfigError naming the field now rather than a ValueError at the first step.
    """
    a = config
    if a.clip_low is not None:
        _require(
            0 <= a.clip_low < 1, "algo.clip_low", a.clip_low, "in [0, 1) (the ratio's floor is 1 - clip_low)"
        )
    for name in ("clip_high", "kl_coef", "entropy_coef"):
        value = getattr(a, name)
        if value is not None:
            _require(value >= 0, f"algo.{name}", value, ">= 0")
    if a.overlong_buffer is not None:
        _require(
            a.overlong_buffer >= -1,
            "algo.overlong_buffer",
            a.overlong_buffer,
            ">= 0 tokens (0 = off), or -1 for a quarter of sampling.max_new_tokens",
        )
    if a.refill_rounds is not None:
        _require(a.refill_rounds >= 0, "algo.refill_rounds", a.refill_rounds, ">= 0 (0 = no refill)")
    if a.dual_clip is not None:
        _require(a.dual_clip > 1, "algo.dual_clip", a.dual_clip, "> 1")
    algorithm = resolve_algorithm(a)
    _dry_run_loss(algorithm)
    return algorithm


def resolve_algorithm(config: AlgoConfig) -> Algorithm:
    """Apply the config's overrides to its preset and check every name and shaper parameter."""
    check_choice("algo.name", config.name, ALGORITHMS)
    preset = ALGORITHMS[config.name]
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(preset):
        if f.name in ("name", "description", "shaper_params", "loss_params"):
            continue
        value = getattr(config, f.name, None)
        if value is not None:
            changes[f.name] = value
    shaper_params = {**preset.shaper_params, **config.shaper_params}
    labels = {}
    for name in ("alpha", "phi"):
        if getattr(config, name) is not None:
            shaper_params[name] = getattr(config, name)
            labels[name] = f"algo.{name}"
    if "quadrants" in shaper_params and isinstance(shaper_params["quadrants"], str):
        shaper_params["quadrants"] = [q.strip() for q in shaper_params["quadrants"].split(",") if q.strip()]
    algorithm = dataclasses.replace(
        preset,
        **changes,
        shaper_params=shaper_params,
        loss_params={**preset.loss_params, **config.loss_params},
    )
    check_choice("algo.advantage", algorithm.advantage, ADVANTAGE_METHODS)
    check_choice("algo.shaper", algorithm.shaper, SHAPERS)
    check_choice("algo.loss", algorithm.loss, POLICY_LOSSES)
    check_choice("algo.agg", algorithm.agg, AGG_MODES)
    check_shaper_params(algorithm.shaper, algorithm.shaper_params, field="algo.shaper_params", labels=labels)
    return algorithm


def eapo_alpha_phi(shaper: str, alpha: float, phi: float) -> dict[str, float]:
    """{alpha, phi} for a shaper that takes EAPO's α and φ (PAPER.md Eq. 6-7: `eapo`, `eapo_shuffled`,
    `quadrant`'s `eapo_without`), else {}: the hosts' `eapo_alpha`/`eapo_phi` settings mean nothing to
    another shaper (EntroAdv's `alpha` is a different coefficient)."""
    if shaper in SHAPERS and {"alpha", "phi"} <= set(shaper_params(shaper)):
        return {"alpha": alpha, "phi": phi}
    return {}


def check_shaper_params(
    shaper: str, params: Mapping[str, Any], *, field: str, labels: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """`params` for `shape_advantages(shaper, ...)`, checked once at the edge of every host (the `algo`
    section, TRL's `EAPOConfig`, verl's `policy_loss` section): each name is one the shaper takes and the
    values pass a dry run on a 2x3 batch, so α, φ and every other parameter are checked by the shaper's
    own rules in one place.

    `field` is where the parameters were written (`algo.shaper_params`); `labels` names the parameters that
    came from a field of their own (`{"alpha": "algo.alpha"}`). Raises ConfigError naming the field, the
    value and what was expected. `shaper` must be a registered name (each host checks its own field).
    """
    labels = dict(labels or {})

    def label(key: str) -> str:
        return labels.get(key, f"{field}.{key}")

    params = dict(params)
    accepted = shaper_params(shaper)
    for key, value in params.items():
        if key not in accepted:
            raise ConfigError(
                f"{label(key)} = {clip_text(repr(value))} is not a parameter of shaper '{shaper}': it takes "
                f"{', '.join(accepted) or 'no parameters'}"
            )
    problem = _dry_run_shaper(shaper, params)
    if problem is None:
        return params
    # Name the parameter at fault: the one whose removal (back to its default) makes the dry run pass.
    culprit = next(
        (
            key
            for key in params
            if _dry_run_shaper(shaper, {k: v for k, v in params.items() if k != key}) is None
        ),
        None,
    )
    where = f"{field} {clip_text(repr(params))}"
    if culprit is not None:
        where = f"{label(culprit)} = {clip_text(repr(params[culprit]))}"
    raise ConfigError(f"{where} is not valid for shaper '{shaper}': {problem}")


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


def _dry_run_loss(algorithm: Algorithm) -> None:
    """Call the algorithm's policy loss once on a 2x3 batch, so that an unknown or out-of-range
    `algo.loss_params` entry is a ConfigError now rather than a ValueError at the first step."""
    zeros, mask = torch.zeros(2, 3), torch.ones(2, 3, dtype=torch.bool)
    try:
        policy_loss(
            zeros,
            zeros,
            torch.tensor([[1.0] * 3, [-1.0] * 3]),
            mask,
            loss_type=algorithm.loss,
            clip_low=algorithm.clip_low,
            clip_high=algorithm.clip_high,
            dual_clip=algorithm.dual_clip,
            ref_logprobs=zeros if algorithm.kl_coef > 0 else None,
            kl_coef=algorithm.kl_coef,
            entropy=zeros if algorithm.entropy_coef > 0 else None,
            entropy_coef=algorithm.entropy_coef,
            agg=algorithm.agg,
            num_tokens=6,
            num_seqs=2,
            **algorithm.loss_params,
        )
    except (ValueError, TypeError) as err:
        raise ConfigError(f"algo.loss_params {algorithm.loss_params} ({algorithm.loss}): {err}") from None
