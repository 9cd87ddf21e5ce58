"""Rollouts: G sampled responses per prompt with the KV cache, the forward that scores them, evaluation.

```python
from eapo.rollout import SamplingConfig, generate_rollouts, response_logits, evaluate
batch = generate_rollouts(model, tokenizer, prompts, group_size=8, sampling=SamplingConfig(), seed=step)
logits = response_logits(model, batch.sequences, batch.attention_mask, batch.prompt_length)  # [B, T, V]
```
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eapo._lazy import lazy_exports
from eapo.rollout.config import SamplingConfig

if TYPE_CHECKING:
    from eapo.rollout.evaluation import evaluate
    from eapo.rollout.generate import (
        RolloutBatch,
        concat_rollouts,
        generate_rollouts,
        response_logits,
        response_mask_from_ids,
        select_rollout_rows,
    )

# Sampling and evaluation import torch and transformers, so they load on first use (eapo/_lazy.py).
__getattr__ = lazy_exports(
    __name__,
    {
        "evaluate": "evaluation",
        "RolloutBatch": "generate",
        "concat_rollouts": "generate",
        "select_rollout_rows": "generate",
        "generate_rollouts": "generate",
        "response_logits": "generate",
        "response_mask_from_ids": "generate",
    },
)

__all__ = [
    "RolloutBatch",
    "SamplingConfig",
    "concat_rollouts",
    "evaluate",
    "generate_rollouts",
    "response_logits",
    "response_mask_from_ids",
    "select_rollout_rows",
]
