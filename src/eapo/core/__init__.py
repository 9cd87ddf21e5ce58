"""eapo.core: the paper-exact math of eapo, as pure functions of tensors and a response mask.

Shapes: B = prompts × G rows (each prompt's G responses contiguous), T response positions, V vocabulary.
Equation and section numbers refer to PAPER.md (arXiv 2604.11056 v1). No I/O, no model calls, no state:
the trainer, the TRL and verl integrations and the analysis tools all call these same functions.
"""

from __future__ import annotations

from eapo.core.advantages import (
    ADVANTAGE_METHODS,
    GroupAdvantages,
    group_advantages,
    overlong_penalty,
    token_advantages,
    zero_variance_groups,
)
from eapo.core.entropy import (
    default_chunk_size,
    group_entropy_stats,
    row_logprobs_and_entropy,
    token_logprobs_and_entropy,
)
from eapo.core.losses import (
    AGG_MODES,
    POLICY_LOSSES,
    RATIO_CLIPPING_LOSSES,
    agg_loss,
    clipped_tokens,
    policy_loss,
    policy_loss_params,
    register_policy_loss,
)
from eapo.core.metrics import avg_at_k, masked_quantiles, pass_at_k
from eapo.core.quadrants import (
    QUADRANTS,
    high_entropy_mask,
    logit_grad_norm,
    quadrant_masks,
    quadrant_metrics,
    quadrant_stats,
    top_entropy_mask,
)
from eapo.core.shapers import SHAPERS, eapo_advantages, register_shaper, shape_advantages, shaper_params

__all__ = [
    "ADVANTAGE_METHODS",
    "AGG_MODES",
    "POLICY_LOSSES",
    "QUADRANTS",
    "RATIO_CLIPPING_LOSSES",
    "SHAPERS",
    "GroupAdvantages",
    "agg_loss",
    "avg_at_k",
    "clipped_tokens",
    "default_chunk_size",
    "eapo_advantages",
    "group_advantages",
    "group_entropy_stats",
    "high_entropy_mask",
    "logit_grad_norm",
    "masked_quantiles",
    "overlong_penalty",
    "pass_at_k",
    "policy_loss",
    "policy_loss_params",
    "quadrant_masks",
    "quadrant_metrics",
    "quadrant_stats",
    "register_policy_loss",
    "register_shaper",
    "row_logprobs_and_entropy",
    "shape_advantages",
    "shaper_params",
    "token_advantages",
    "token_logprobs_and_entropy",
    "top_entropy_mask",
    "zero_variance_groups",
]
