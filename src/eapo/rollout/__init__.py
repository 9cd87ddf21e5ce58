"""Rollouts: G sampled responses per prompt with the KV cache, the forward that scores them, evaluation.

```python
from eapo.rollout import SamplingConfig, generate_rollouts, response_logits, evaluate
batch = generate_rollouts(model, tokenizer, prompts, group_size=8, sampling=SamplingConfig(), seed=step)
logits = response_logits(model, batch.sequences, batch.attention_mask, batch.prompt_length)  # [B, T, V]
```
"""

from __future__ import annotations

from eapo.rollout.config import SamplingConfig
from eapo.rollout.evaluation import evaluate
from eapo.rollout.generate import RolloutBatch, generate_rollouts, response_logits, response_mask_from_ids

__all__ = [
    "RolloutBatch",
    "SamplingConfig",
    "evaluate",
    "generate_rollouts",
    "response_logits",
    "response_mask_from_ids",
]
