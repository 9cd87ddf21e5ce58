"""Held-out evaluation: k samples per problem, scored by the task's verifier, as Avg@k and Pass@k.

PAPER.md §6 evaluates at temperature 0.6, top-p 0.95 (the caller passes that `SamplingConfig`) and
reports Avg@k (mean fraction correct) and the unbiased Pass@k from n = k samples per problem.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from eapo.core.metrics import avg_at_k, pass_at_k
from eapo.errors import ConfigError
from eapo.rollout.config import SamplingConfig
from eapo.rollout.generate import generate_rollouts
from eapo.tasks import Problem, Task, build_prompt, score_completions


def evaluate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    task: Task,
    problems: list[Problem],
    *,
    k: int,
    sampling: SamplingConfig,
    seed: int | None = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Sample `k` responses per problem and score them.

    Returns a dict with `avg@1`, `pass@1`, `avg@{k}`, `pass@{k}` (floats in [0, 1]; with n = k samples
    Avg@1 = Avg@k = Pass@1, all the mean fraction correct), `num_problems`, `k`, `correct_per_problem`
    (list of counts c, one per problem), `mean_response_tokens`, `truncated_fraction`,
    `extracted_fraction` (completions with an answer the extractor found) and `format_rate` (completions
    with a well-formed final answer, `eapo.tasks.strict_answer`). Same `seed`, same samples.
    """
    if k < 1:
        raise ConfigError(f"eval k = {k}: expected an integer >= 1")
    if not problems:
        raise ConfigError("evaluate: no problems given; expected at least one held-out problem")
    prompts = [build_prompt(problem, tokenizer, task.config) for problem in problems]
    batch = generate_rollouts(model, tokenizer, prompts, k, sampling, seed=seed, progress=progress)
    repeated = [problems[int(i)] for i in batch.prompt_index]
    scores = score_completions(batch.completions, repeated, task, task.config.verifier_timeout_s)

    correct = torch.as_tensor(scores.rewards, dtype=torch.float64).reshape(len(problems), k) > 0
    counts = correct.sum(dim=1)
    metrics: dict[str, Any] = {}
    for at in sorted({1, k}):
        metrics[f"avg@{at}"] = avg_at_k(counts, n=k)
        metrics[f"pass@{at}"] = float(torch.as_tensor(pass_at_k(k, counts, at)).mean())
    metrics.update(
        num_problems=len(problems),
        k=k,
        correct_per_problem=counts.tolist(),
        mean_response_tokens=float(batch.response_lengths.double().mean()),
        truncated_fraction=float(batch.truncated.double().mean()),
        extracted_fraction=scores.n_extracted / len(batch.completions),
        format_rate=scores.n_well_formed / len(batch.completions),
    )
    return metrics
