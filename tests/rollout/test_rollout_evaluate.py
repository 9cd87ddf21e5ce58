from __future__ import annotations

import pytest
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from eapo.rollout import RolloutBatch, SamplingConfig, evaluate
from eapo.rollout import evaluation as evaluation_module
from eapo.tasks import Task, TaskConfig, load_task

TASK = TaskConfig(
    source="basic_arithmetic",
    params={"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1, "operators": ["+"],
            "allow_parentheses": False, "allow_negation": False},
    num_train=8,
    num_eval=4,
    system_prompt="",
)  # fmt: skip


@pytest.fixture(scope="module")
def task() -> Task:
    return load_task(TASK)


def _batch_answering(texts: list[str], group_size: int) -> RolloutBatch:
    """A rollout whose completions are `texts` (only the fields `evaluate` reads are meaningful)."""
    rows = len(texts)
    mask = torch.ones((rows, 1), dtype=torch.bool)
    return RolloutBatch(
        sequences=torch.zeros((rows, 2), dtype=torch.long),
        attention_mask=torch.ones((rows, 2), dtype=torch.long),
        prompt_length=1,
        response_ids=torch.zeros((rows, 1), dtype=torch.long),
        response_mask=mask,
        truncated=torch.zeros(rows, dtype=torch.bool),
        completions=texts,
        prompt_index=torch.arange(rows // group_size).repeat_interleave(group_size),
        num_generated_tokens=rows,
    )


def test_avg_and_pass_at_k_from_known_answers(
    task: Task, llama: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, monkeypatch: pytest.MonkeyPatch
) -> None:
    k = 4
    # Problem i gets i right answers out of k: c = 0, 1, 2, 3.
    texts = [
        f"<answer>{problem.answer if sample < index else 'wrong'}</answer>"
        for index, problem in enumerate(task.eval)
        for sample in range(k)
    ]
    monkeypatch.setattr(
        evaluation_module, "generate_rollouts", lambda *args, **kwargs: _batch_answering(texts, k)
    )
    metrics = evaluate(llama, tokenizer, task, task.eval, k=k, sampling=SamplingConfig())
    assert metrics["correct_per_problem"] == [0, 1, 2, 3]
    assert metrics["avg@4"] == pytest.approx(6 / 16)
    assert metrics["avg@1"] == metrics["pass@1"] == pytest.approx(6 / 16)
    assert metrics["pass@4"] == pytest.approx(3 / 4)  # every problem with c >= 1 passes at k = n


def test_evaluate_samples_k_per_problem(
    task: Task, llama: PreTrainedModel, tokenizer: PreTrainedTokenizerFast
) -> None:
    sampling = SamplingConfig(temperature=0.6, top_p=0.95, max_new_tokens=8)
    metrics = evaluate(llama, tokenizer, task, task.eval, k=3, sampling=sampling, seed=0)
    assert metrics["num_problems"] == len(task.eval) and metrics["k"] == 3
    assert len(metrics["correct_per_problem"]) == len(task.eval)
    assert 0.0 <= metrics["avg@3"] <= metrics["pass@3"] <= 1.0
    assert 0 < metrics["mean_response_tokens"] <= 8
    assert metrics == evaluate(llama, tokenizer, task, task.eval, k=3, sampling=sampling, seed=0)
