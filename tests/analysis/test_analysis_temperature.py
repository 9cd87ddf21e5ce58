"""The analysis commands score a policy at the run's sampling temperature T: log-probs, Σπ² and entropies
are those of softmax(logits / T), the distribution the rollouts were drawn from (here T = 0.7)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from eapo.train.config import load_config

T = 0.7


@pytest.fixture(scope="module")
def smoke_at_t() -> tuple[Any, Any, Any, Any]:
    from eapo.models import load_policy
    from eapo.tasks import load_task

    config = load_config("smoke", ["--sampling.temperature", str(T)])
    task = load_task(config.task)
    model, tokenizer = load_policy(config.model, task, progress=False)
    model.eval()
    return model, tokenizer, task, config


def _rollout(smoke_at_t: tuple[Any, Any, Any, Any], seed: int = 0) -> tuple[Any, list[str]]:
    from eapo.rollout import generate_rollouts
    from eapo.tasks import build_prompt

    model, tokenizer, task, config = smoke_at_t
    prompts = [build_prompt(p, tokenizer, config.task) for p in task.train[:3]]
    batch = generate_rollouts(model, tokenizer, prompts, config.train.group_size, config.sampling, seed=seed)
    return batch, prompts


def _naive(model: Any, batch: Any, temperature: float) -> dict[str, torch.Tensor]:
    """log π_y, H and Σπ² [B,T] of softmax(logits / temperature), straight from the logits (float64)."""
    from eapo.rollout import response_logits

    with torch.no_grad():
        logits = response_logits(model, batch.sequences, batch.attention_mask, batch.prompt_length)
    log_p = torch.log_softmax(logits.double() / temperature, dim=-1)
    p = log_p.exp()
    return {
        "logprobs": log_p.gather(-1, batch.response_ids[..., None]).squeeze(-1),
        "entropy": -(p * log_p).sum(-1),
        "sum_sq": p.square().sum(-1),
    }


def test_gradients_rescoring_uses_the_sampling_temperature(smoke_at_t: Any) -> None:
    from eapo.analysis.gradients import rescore_sum_sq

    model, tokenizer, _, config = smoke_at_t
    batch, prompts = _rollout(smoke_at_t)
    naive = _naive(model, batch, T)
    mask = batch.response_mask.bool()
    dump = {
        "prompts": prompts,
        "prompt_index": batch.prompt_index,
        "response_ids": batch.response_ids,
        "response_mask": batch.response_mask,
        "logprobs": naive["logprobs"].float() * mask,
        "completions": batch.completions,
    }
    sum_sq, diff = rescore_sum_sq(dump, model, tokenizer, config)
    assert diff < 1e-4
    assert torch.allclose(sum_sq[mask], naive["sum_sq"][mask], atol=1e-5)
    # Scoring at T = 1 would not match the dump: the temperature is what makes it the dump's π_old.
    config_t1 = load_config("smoke")
    _, diff_t1 = rescore_sum_sq(dump, model, tokenizer, config_t1)
    assert diff_t1 > 1e-2


def test_gradient_cosine_batch_entropy_is_that_of_the_sampling_distribution(smoke_at_t: Any) -> None:
    from eapo.analysis.cosine_batch import sample_batch

    model, tokenizer, task, config = smoke_at_t
    cosine_batch = sample_batch(model, tokenizer, task, config, task.train[:3], seed=0)
    naive = _naive(model, cosine_batch.rollout, T)
    mask = cosine_batch.rollout.response_mask.bool()
    assert torch.allclose(cosine_batch.entropy[mask].double(), naive["entropy"][mask], atol=1e-4)
    at_one = _naive(model, cosine_batch.rollout, 1.0)
    assert (cosine_batch.entropy[mask].double() - at_one["entropy"][mask]).abs().max() > 1e-2


def test_credit_probe_entropy_and_probabilities_are_at_the_sampling_temperature(smoke_at_t: Any) -> None:
    from eapo.analysis.credit import probe_credit
    from eapo.rollout import SamplingConfig

    model, tokenizer, task, config = smoke_at_t
    s = config.sampling
    sampling = SamplingConfig(
        temperature=s.temperature,
        top_p=s.top_p,
        max_new_tokens=s.max_new_tokens,
        stop_strings=list(s.stop_strings),
        batch_rows=s.batch_rows,
    )
    results = probe_credit(
        model,
        tokenizer,
        task,
        task.train[:3],
        sampling=sampling,
        group_size=config.train.group_size,
        num_positions=6,
        num_alternatives=3,
        num_completions=2,
        n_bootstrap=0,
        seed=0,
        progress=False,
    )
    batch, _ = _rollout(smoke_at_t, seed=0)  # the probe's own rollout: same prompts, seed and settings
    naive = _naive(model, batch, T)
    logits_probs = torch.softmax(
        _logits(model, batch).double() / T,
        dim=-1,
    )
    for r in results:
        assert r.entropy == pytest.approx(float(naive["entropy"][r.row, r.position]), abs=1e-4)
        top = torch.topk(logits_probs[r.row, r.position], len(r.probs)).values
        assert r.probs == pytest.approx(top.tolist(), abs=1e-6)


def _logits(model: Any, batch: Any) -> torch.Tensor:
    from eapo.rollout import response_logits

    with torch.no_grad():
        return response_logits(model, batch.sequences, batch.attention_mask, batch.prompt_length)
