"""Advantage shapers: every token-level credit method as one function in one registry (DESIGN.md §2).

A shaper maps token advantages to shaped token advantages:
    f(advantages [B,T], entropy [B,T], response_mask [B,T], group_size, **params) -> [B,T]
The output is detached, fp32, finite and 0 where the mask is 0. Rows of one prompt's group are contiguous
(B = prompts × G). `shape_advantages(name, ...)` looks a shaper up by name and checks its parameters.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from eapo.core.checks import check_finite_tensor
from eapo.core.entropy import group_entropy_stats
from eapo.core.quadrants import QUADRANTS, quadrant_masks, top_entropy_mask

__all__ = ["SHAPERS", "Shaper", "eapo_advantages", "register_shaper", "shape_advantages", "shaper_params"]

Shaper = Callable[..., torch.Tensor]
SHAPERS: dict[str, Shaper] = {}

# The four positional inputs every shaper takes; everything after them is a named parameter.
_INPUTS = ("advantages", "entropy", "response_mask", "group_size")


def register_shaper(name: str) -> Callable[[Shaper], Shaper]:
    """Decorator: register `f(advantages, entropy, response_mask, group_size, *, **params)` as `name`."""

    def decorator(fn: Shaper) -> Shaper:
        if name in SHAPERS:
            raise ValueError(f"a shaper named {name!r} is already registered")
        params = list(inspect.signature(fn).parameters)
        if tuple(params[:4]) != _INPUTS:
            raise ValueError(f"shaper {name!r} must take {_INPUTS} first; got {tuple(params[:4])}")
        SHAPERS[name] = fn
        return fn

    return decorator


def shaper_params(name: str) -> dict[str, Any]:
    """The named parameters of shaper `name` and their defaults."""
    signature = inspect.signature(SHAPERS[name])
    return {p.name: p.default for p in signature.parameters.values() if p.name not in _INPUTS}


def _prepare(
    advantages: torch.Tensor, entropy: torch.Tensor, response_mask: torch.Tensor, group_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Check shapes, broadcast [B] advantages to tokens, zero masked entries; returns fp32 detached."""
    valid = response_mask != 0
    if advantages.dim() == 1 and advantages.shape[0] == valid.shape[0]:
        advantages = advantages[:, None].expand_as(valid)
    if advantages.shape != valid.shape or entropy.shape != valid.shape or valid.dim() != 2:
        raise ValueError(
            f"advantages ([B] or [B,T]), entropy and response_mask must match [B,T]; got "
            f"{tuple(advantages.shape)}, {tuple(entropy.shape)}, {tuple(response_mask.shape)}"
        )
    if group_size < 1 or valid.shape[0] % group_size != 0:
        raise ValueError(f"group_size {group_size} must be >= 1 and divide the batch size {valid.shape[0]}")
    # One NaN/inf entropy would spread through its group's statistics (µ_H, σ_H, GTPO's sums) and make
    # every advantage of the group NaN: refuse it instead (masked positions may hold anything).
    check_finite_tensor("entropy", entropy, valid)
    check_finite_tensor("advantages", advantages, valid)
    advantages = torch.where(valid, advantages.detach().float(), 0.0)
    entropy = torch.where(valid, entropy.detach().float(), 0.0)
    return advantages, entropy, valid


def _check_number(name: str, value: Any, *, low: float, low_inclusive: bool) -> float:
    ok_type = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok_type or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite number; got {value!r}")
    if float(value) < low or (not low_inclusive and float(value) == low):
        raise ValueError(f"{name} must be {'>=' if low_inclusive else '>'} {low}; got {value}")
    return float(value)


def shape_advantages(
    name: str,
    advantages: torch.Tensor,
    entropy: torch.Tensor,
    response_mask: torch.Tensor,
    group_size: int,
    **params: Any,
) -> torch.Tensor:
    """Apply the registered shaper `name` (see SHAPERS) to token advantages.

    Args:
        name: a key of SHAPERS.
        advantages: [B,T] token advantages (a [B] tensor is broadcast over the mask).
        entropy: [B,T] token entropies (detached here). response_mask: [B,T] bool or 0/1.
        group_size: G. params: the shaper's named parameters.

    Returns: shaped advantages [B,T] fp32, detached, 0 where the mask is 0.
    Raises: ValueError for an unknown shaper or parameter (listing the valid ones) or a bad value.
    """
    if name not in SHAPERS:
        raise ValueError(f"advantage shaper {name!r} is unknown; choose from {', '.join(sorted(SHAPERS))}")
    valid_params = shaper_params(name)
    unknown = sorted(set(params) - set(valid_params))
    if unknown:
        listed = ", ".join(valid_params) if valid_params else "none"
        raise ValueError(f"shaper {name!r} got unknown parameter(s) {', '.join(unknown)}; valid: {listed}")
    return SHAPERS[name](advantages, entropy, response_mask, group_size, **params)


@register_shaper("grpo")
def grpo_advantages(
    advantages: torch.Tensor, entropy: torch.Tensor, response_mask: torch.Tensor, group_size: int
) -> torch.Tensor:
    """GRPO (PAPER.md Eq. 2): the advantages unchanged (masked, detached)."""
    shaped, _, _ = _prepare(advantages, entropy, response_mask, group_size)
    return shaped


@register_shaper("eapo")
def eapo_advantages(
    advantages: torch.Tensor,
    entropy: torch.Tensor,
    response_mask: torch.Tensor,
    group_size: int,
    alpha: float = 0.2,
    phi: float = 2.0,
) -> torch.Tensor:
    """EAPO's shaped advantage, PAPER.md §5 Eq. 6 and Eq. 7.

        Eq. 6:  Â^H_{i,t} = clip((H_{i,t} − µ_H) / σ_H, −|Â_{i,t}|/φ, +|Â_{i,t}|/φ)
        Eq. 7:  Â^CA_{i,t} = Â_{i,t} + α · sign(Â_{i,t}) · detach(Â^H_{i,t})

    µ_H and σ_H are the mean and the **population** standard deviation (divide by the token count) of the
    entropies of all valid tokens of the token's group (the G responses to one prompt), computed in
    float64. Edge cases the paper leaves open: σ_H = 0 (all valid entropies of the group exactly equal),
    a group with one valid token or none gives the score 0, so Â^CA = Â there; sign(0) = 0, so Â = 0
    stays 0. With α < φ the sign of Â is kept and |Â^CA| ∈ |Â|·[1 − α/φ, 1 + α/φ] (±10% at the
    defaults α = 0.2, φ = 2); α = 0 is GRPO exactly.

    Args:
        advantages: [B,T] (or [B], broadcast); entropy: [B,T]; response_mask: [B,T]; group_size: G.
        alpha: α ≥ 0, the weight of the entropy term. phi: φ > 0, the clip divisor.

    Returns: Â^CA [B,T] fp32, detached, 0 where the mask is 0.
    """
    alpha = _check_number("alpha", alpha, low=0.0, low_inclusive=True)
    phi = _check_number("phi", phi, low=0.0, low_inclusive=False)
    adv, ent, valid = _prepare(advantages, entropy, response_mask, group_size)
    mean, std, _, constant = group_entropy_stats(ent, valid, group_size)

    def per_row(values: torch.Tensor) -> torch.Tensor:  # [P] group statistic → [B,1]
        return values.repeat_interleave(group_size)[:, None]

    z = (ent.double() - per_row(mean)) / per_row(torch.where(constant, 1.0, std))
    z = torch.where(per_row(constant), 0.0, z)  # σ_H = 0 or ≤ 1 valid token: score 0
    bound = adv.double().abs() / phi
    score = torch.minimum(torch.maximum(z, -bound), bound)  # Eq. 6
    shaped = adv.double() + alpha * torch.sign(adv.double()) * score  # Eq. 7 (score is already detached)
    return torch.where(valid, shaped, 0.0).float()


def _random_generator(seed: int | None) -> torch.Generator | None:
    """A generator for the controls' random draws: seeded when `seed` is given, else None (torch's global
    RNG, which `eapo train` reseeds every step, so runs and resumes stay reproducible)."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer or None; got {seed!r}")
    return torch.Generator().manual_seed(seed)


def shuffle_within_groups(
    values: torch.Tensor, response_mask: torch.Tensor, group_size: int, generator: torch.Generator | None
) -> torch.Tensor:
    """`values` [B,T] with the valid entries of each group (G contiguous rows) randomly permuted among
    themselves; masked entries are unchanged. Each group keeps its multiset of values."""
    valid = response_mask != 0
    out = values.clone()
    for start in range(0, values.shape[0], group_size):
        rows = slice(start, start + group_size)
        group_valid = valid[rows]
        picked = values[rows][group_valid]
        order = torch.randperm(picked.numel(), generator=generator).to(picked.device)
        block = out[rows]
        block[group_valid] = picked[order]
        out[rows] = block
    return out


@register_shaper("eapo_shuffled")
def eapo_shuffled_advantages(
    advantages: torch.Tensor,
    entropy: torch.Tensor,
    response_mask: torch.Tensor,
    group_size: int,
    alpha: float = 0.2,
    phi: float = 2.0,
    seed: int | None = None,
) -> torch.Tensor:
    """Negative control for EAPO (issue #17): Eq. 6-7 on entropies shuffled among each group's valid tokens.

    Every group keeps its entropy distribution, so µ_H, σ_H and the distribution of the shaping term
    are EAPO's, but which token gets more or less credit no longer depends on its own entropy. If EAPO's
    gain comes from crediting uncertain tokens, this arm loses it; if it equals EAPO, the gain (if any) was
    the reweighting's noise. `seed`: None draws from torch's global RNG (reseeded per step by the trainer).
    """
    _, ent, valid = _prepare(advantages, entropy, response_mask, group_size)
    shuffled = shuffle_within_groups(ent, valid, group_size, _random_generator(seed))
    return eapo_advantages(advantages, shuffled, response_mask, group_size, alpha=alpha, phi=phi)


@register_shaper("forking")
def forking_advantages(
    advantages: torch.Tensor,
    entropy: torch.Tensor,
    response_mask: torch.Tensor,
    group_size: int,
    top_fraction: float = 0.2,
) -> torch.Tensor:
    """Forking tokens (Wang et al. 2025, arXiv 2506.01939): Â on the top-ρ entropy tokens of the batch.

    ρ = `top_fraction` (0.2, the paper's 20%); the other tokens get 0, so they carry no policy gradient.
    """
    top_fraction = _check_number("top_fraction", top_fraction, low=0.0, low_inclusive=False)
    adv, ent, valid = _prepare(advantages, entropy, response_mask, group_size)
    return torch.where(top_entropy_mask(ent, valid, top_fraction), adv, 0.0)


@register_shaper("entro_adv")
def entro_adv_advantages(
    advantages: torch.Tensor,
    entropy: torch.Tensor,
    response_mask: torch.Tensor,
    group_size: int,
    alpha: float = 0.4,
    kappa: float = 2.0,
) -> torch.Tensor:
    """EntroAdv (Cheng et al. 2025, arXiv 2506.14758): Â + ψ(H), ψ(H) = min(α · detach(H), |Â| / κ).

    ψ is positive whatever the sign of Â: it adds credit to high-entropy tokens of correct responses and
    softens the blame of incorrect ones; Â = 0 stays 0. Defaults α = 0.4, κ = 2: the values that
    lucidrains/PaLM-rlhf-pytorch `palm_rlhf_pytorch/grpo.py` attributes to the paper for GRPO
    (`entropy_to_advantage_scale = 0.4  # they use 0.4 for GRPO, 0.1 for PPO`, kappa 2). EAPO's paper
    (Appendix B.4) says it used "the authors' recommended hyperparameters".
    """
    alpha = _check_number("alpha", alpha, low=0.0, low_inclusive=True)
    kappa = _check_number("kappa", kappa, low=0.0, low_inclusive=False)
    adv, ent, valid = _prepare(advantages, entropy, response_mask, group_size)
    bonus = torch.minimum(alpha * ent, adv.abs() / kappa)
    return torch.where(valid, adv + bonus, 0.0)


@register_shaper("w_reinf")
def w_reinf_advantages(
    advantages: torch.Tensor,
    entropy: torch.Tensor,
    response_mask: torch.Tensor,
    group_size: int,
    positive_weight: float = 0.1,
) -> torch.Tensor:
    """W-REINFORCE (Zhu et al. 2025, arXiv 2506.01347): positive advantages × `positive_weight` (0.1).

    Negative advantages are unchanged, so the update leans on the incorrect responses (PAPER.md §6.1).
    """
    positive_weight = _check_number("positive_weight", positive_weight, low=0.0, low_inclusive=True)
    adv, _, _ = _prepare(advantages, entropy, response_mask, group_size)
    return torch.where(adv > 0, positive_weight * adv, adv)


@register_shaper("gtpo")
def gtpo_advantages(
    advantages: torch.Tensor,
    entropy: torch.Tensor,
    response_mask: torch.Tensor,
    group_size: int,
    alpha_1: float = 1.0,
    alpha_2: float = 0.1,
    eps: float = 1e-6,
) -> torch.Tensor:
    """GTPO (Tan et al. 2025, arXiv 2508.04349, "GTPO and GRPO-S"): entropy-weighted token rewards.

    Per group, with O+ the responses with Â > 0 and O− those with Â < 0 (the paper's correct and
    incorrect responses; Â only enters through its sign) and d_t, h_t the numbers of O+ and O− responses
    that still have a token at position t:

        O+ (Eq. 3):  r̃⁺_{i,t} = α₁ · 1 + α₂ · H_{i,t} / Σ_{k∈O+} H_{k,t} · d_t,        0 on O− tokens
        O− (Eq. 5):  r̃⁻_{j,t} = α₁ · (−1) + α₂ · H⁻¹_{j,t} / Σ_{k∈O−} H⁻¹_{k,t} · h_t · (−1),  0 on O+ tokens
        Eq. 6:       Ã⁺ = (r̃⁺ − mean R̃⁺) / std R̃⁺ on O+ tokens,  Ã⁻ = (r̃⁻ − mean R̃⁻) / std R̃⁻ on O− tokens

    High entropy earns a correct token more credit; low entropy (a confident mistake) earns an incorrect
    token more blame. The equations were taken from a third-party reading of the paper (the arXiv method
    text was not reachable here): teilomillet/textpolicy, `textpolicy/algorithms/grpo.py` and
    `tests/test_gtpo_faithful.py` (Eq. 3, 5, 6; α₁ = 1, α₂ = 0.1 named there as the paper's values).
    Our interpretation choices: the outcome reward is ±1 (binary verifier: r_i = 1 on O+, the −1 base
    on O−); R̃⁺ and R̃⁻ run over all valid tokens of the group, including the zeros the definitions give
    the other polarity, so the normalisation is group-relative like GRPO's (textpolicy normalises each
    polarity over its own tokens across the whole batch, which gives the lower half of every correct
    response a negative advantage); the std is the population std plus `eps`; where Σ H over O+ is 0
    the O+ tokens share equally; H⁻¹ = 1 / (H + eps).
    Tokens with Â = 0 get 0. Note that a low-entropy O+ token can end slightly below its group mean
    (negative Ã⁺) when nearly all responses are correct; that is the method, not a bug.
    """
    alpha_1 = _check_number("alpha_1", alpha_1, low=0.0, low_inclusive=True)
    alpha_2 = _check_number("alpha_2", alpha_2, low=0.0, low_inclusive=True)
    eps = _check_number("eps", eps, low=0.0, low_inclusive=False)
    adv, ent, valid = _prepare(advantages, entropy, response_mask, group_size)
    batch, length = adv.shape
    shape = (batch // group_size, group_size, length)
    pos = (valid & (adv > 0)).view(shape)
    neg = (valid & (adv < 0)).view(shape)
    h = ent.double().view(shape)

    # Eq. 3: each position's O+ reward mass d_t is shared in proportion to entropy.
    d_t = pos.sum(dim=1, keepdim=True).double()
    h_pos_sum = torch.where(pos, h, 0.0).sum(dim=1, keepdim=True)
    share_pos = torch.where(h_pos_sum > 0, h / h_pos_sum.clamp(min=1e-300), 1.0 / d_t.clamp(min=1.0))
    reward_pos = torch.where(pos, alpha_1 + alpha_2 * share_pos * d_t, 0.0)

    # Eq. 5: each position's O− penalty mass h_t is shared in proportion to inverse entropy.
    h_t = neg.sum(dim=1, keepdim=True).double()
    inverse = 1.0 / (h + eps)
    inverse_sum = torch.where(neg, inverse, 0.0).sum(dim=1, keepdim=True)
    reward_neg = torch.where(neg, -alpha_1 - alpha_2 * inverse / inverse_sum.clamp(min=1e-300) * h_t, 0.0)

    # Eq. 6: normalise each reward field over the group's valid tokens.
    group_valid = valid.view(shape)
    count = group_valid.sum(dim=(1, 2), keepdim=True).clamp(min=1).double()

    def normalise(reward: torch.Tensor) -> torch.Tensor:
        mean = reward.sum(dim=(1, 2), keepdim=True) / count
        std = (
            torch.where(group_valid, reward - mean, 0.0).square().sum(dim=(1, 2), keepdim=True) / count
        ).sqrt()
        return (reward - mean) / (std + eps)

    shaped = torch.where(pos, normalise(reward_pos), torch.where(neg, normalise(reward_neg), 0.0))
    return shaped.view(batch, length).float()


def _quadrant_names(quadrants: str | Sequence[str]) -> tuple[str, ...]:
    names = (quadrants,) if isinstance(quadrants, str) else tuple(quadrants)
    unknown = [q for q in names if q not in QUADRANTS]
    if unknown or not names:
        raise ValueError(f"quadrants must name one or more of {', '.join(QUADRANTS)}; got {list(names)}")
    return names


_QUADRANT_MODES = ("isolate", "drop", "eapo_without", "random_isolate")


def random_share_matched_mask(
    masks: dict[str, torch.Tensor],
    names: Sequence[str],
    valid: torch.Tensor,
    group_size: int,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """[B,T] bool: for each named quadrant and each group, as many tokens as the quadrant holds there,
    drawn uniformly from the group's tokens of the same polarity (high and low entropy alike).

    The control for quadrant isolation (issue #17): it updates the same number of tokens of the same
    polarity as isolating the quadrant does, so a difference between the two is the entropy level's.
    """
    selected = torch.zeros_like(valid)
    polarity = {"P": masks["PHR"] | masks["PLR"], "N": masks["NHR"] | masks["NLR"]}
    for name in names:
        same_polarity = polarity[name[0]]
        for start in range(0, valid.shape[0], group_size):
            rows = slice(start, start + group_size)
            count = int(masks[name][rows].sum())
            candidates = (same_polarity[rows] & ~selected[rows]).nonzero()
            if count == 0 or len(candidates) == 0:
                continue
            pick = candidates[
                torch.randperm(len(candidates), generator=generator)[:count].to(candidates.device)
            ]
            block = selected[rows]
            block[pick[:, 0], pick[:, 1]] = True
            selected[rows] = block
    return selected


@register_shaper("quadrant")
def quadrant_advantages(
    advantages: torch.Tensor,
    entropy: torch.Tensor,
    response_mask: torch.Tensor,
    group_size: int,
    mode: str = "isolate",
    quadrants: str | Sequence[str] = ("PHR",),
    alpha: float = 0.2,
    phi: float = 2.0,
    threshold: str | float | Sequence[Any] = "group_mean",
    seed: int | None = None,
) -> torch.Tensor:
    """The paper's quadrant experiments, on the quadrants of `quadrant_masks` (group-mean threshold).

    - `isolate` (PAPER.md §4.2, Fig. 2): keep only the named quadrants' advantages, 0 elsewhere; the four
      single-quadrant runs' advantages sum to GRPO's.
    - `drop`: zero the named quadrants, keep the rest.
    - `eapo_without` (§6.4, Table 3): EAPO (Eq. 6-7, `alpha`, `phi`) everywhere except the named
      quadrants, whose tokens keep plain GRPO advantages. `alpha` and `phi` are used only here.
    - `random_isolate` (control, issue #17): keep a random set of tokens of the same polarity and the same
      count per group as `isolate` keeps (`random_share_matched_mask`); `seed` as in `eapo_shuffled`.
    Quadrants are decided on the incoming advantages.
    """
    if mode not in _QUADRANT_MODES:
        raise ValueError(f"quadrant mode {mode!r} is unknown; choose from {', '.join(_QUADRANT_MODES)}")
    names = _quadrant_names(quadrants)
    adv, ent, valid = _prepare(advantages, entropy, response_mask, group_size)
    masks = quadrant_masks(adv, ent, valid, group_size, threshold)
    selected = torch.zeros_like(valid)
    for name in names:
        selected |= masks[name]
    if mode == "isolate":
        return torch.where(selected, adv, 0.0)
    if mode == "random_isolate":
        matched = random_share_matched_mask(masks, names, valid, group_size, _random_generator(seed))
        return torch.where(matched, adv, 0.0)
    if mode == "drop":
        return torch.where(selected, 0.0, adv)
    shaped = eapo_advantages(adv, ent, valid, group_size, alpha=alpha, phi=phi)
    return torch.where(selected, adv, shaped)
