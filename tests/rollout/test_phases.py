"""Rollouts sampled in phases (`sampling.phase_tokens`): the rows that have ended leave between phases, and
the batch they make is laid out, cut and scored like a one-call rollout."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerFast

import eapo.rollout.generate as generate_module
from eapo.core import token_logprobs_and_entropy
from eapo.errors import ConfigError
from eapo.rollout import SamplingConfig, generate_rollouts, response_logits
from eapo.rollout.continuation import journal_fingerprint
from eapo.tasks import RewardFn
from eapo.train.config import load_config
from eapo.train.logging import read_metrics
from eapo.train.precision import read_precision
from eapo.train.trainer import train

PROMPTS = ["Calculate 1 + 2.\nAnswer:", "Calculate 10 - 3 + 7.\nAnswer:", "x"]


def _spy_on_generate(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int, int]]:
    """(rows, columns, columns already in the key/value cache) of each `generate` call of
    `sample_in_phases`."""
    calls: list[tuple[int, int, int]] = []
    real = generate_module.model_generate

    def counting(model: PreTrainedModel, **kwargs: Any) -> torch.Tensor:
        cache = kwargs.get("past_key_values", kwargs.get("cache"))
        cached = 0 if cache is None else int(cache.get_seq_length())
        calls.append((*kwargs["input_ids"].shape, cached))
        return real(model, **kwargs)

    monkeypatch.setattr(generate_module, "model_generate", counting)
    return calls


# Untrained GPT-2 never samples eos greedily here: a stop string ends its rows.
@pytest.mark.parametrize(("model_name", "stop_strings"), [("llama", []), ("llama", ["1"]), ("gpt2", ["1"])])
def test_greedy_phases_equal_one_call_and_drop_ended_rows(
    model_name: str,
    tokenizer: PreTrainedTokenizerFast,
    stop_strings: list[str],
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    """Greedy decoding has no random stream, so phases must give the one-call rollout token for token, and
    rows that ended (an eos, a stop string) must leave the later calls. RoPE and absolute positions: a row
    that goes on from the cache keeps its positions."""
    llama = request.getfixturevalue(model_name)
    one_call = SamplingConfig(temperature=0.0, max_new_tokens=24, batch_rows=16, stop_strings=stop_strings)
    expected = generate_rollouts(llama, tokenizer, PROMPTS, 2, one_call)
    calls = _spy_on_generate(monkeypatch)
    phased = generate_rollouts(llama, tokenizer, PROMPTS, 2, dataclasses.replace(one_call, phase_tokens=3))
    rows = [count for count, _, _ in calls]
    assert torch.equal(phased.response_mask, expected.response_mask)
    assert torch.equal(phased.truncated, expected.truncated)
    assert phased.completions == expected.completions
    width = expected.response_ids.shape[1]
    assert torch.equal(
        phased.response_ids.masked_fill(~phased.response_mask, 0)[:, :width],
        expected.response_ids.masked_fill(~expected.response_mask, 0),
    )
    # Phase k (3 tokens each) decodes exactly the rows whose response is longer than 3k tokens.
    lengths = expected.response_lengths
    assert rows == [int((lengths > 3 * phase).sum()) for phase in range(len(rows))]
    assert len(rows) == -(-int(lengths.max()) // 3)
    assert rows[-1] < rows[0], "every row ran as long as the longest: the test would check nothing"
    # The rows left go on from the last phase's cache: each later call computes only its newest column.
    assert all(cached == columns - 1 for _, columns, cached in calls[1:])
    assert [columns for _, columns, _ in calls[1:]] == [calls[0][1] + 3 * k for k in range(1, len(calls))]


@pytest.mark.parametrize(
    "sampler",
    [
        {},  # eapo's top-p from 64 candidates, transformers' draw
        {"candidate_draw": True},  # eapo draws the token itself
        {"top_p_candidates": 0},  # transformers' own warpers
        {"shared_prompt_prefill": False},  # the first phase prefills every row
    ],
)
def test_sampled_phases_are_seeded_and_scored_like_the_forward(
    llama: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, sampler: dict[str, Any]
) -> None:
    sampling = SamplingConfig(
        temperature=1.3,
        top_p=0.95,
        max_new_tokens=20,
        batch_rows=4,
        phase_tokens=4,
        stop_strings=["+"],
        **sampler,
    )
    first = generate_rollouts(llama, tokenizer, PROMPTS, 3, sampling, seed=5, with_logprobs=True)
    again = generate_rollouts(llama, tokenizer, PROMPTS, 3, sampling, seed=5, with_logprobs=True)
    other = generate_rollouts(llama, tokenizer, PROMPTS, 3, sampling, seed=6)
    assert torch.equal(first.sequences, again.sequences) and first.completions == again.completions
    assert first.completions != other.completions
    assert first.logprobs is not None and first.entropy is not None and first.sum_sq_probs is not None
    with torch.no_grad():
        logits = response_logits(llama, first.sequences, first.attention_mask, first.prompt_length)
        logprobs, entropy, sum_sq = token_logprobs_and_entropy(
            logits, first.response_ids, first.response_mask, return_sum_sq_probs=True, temperature=1.3
        )
    mask = first.response_mask
    assert first.num_generated_tokens > 20
    # Recorded across phases: each token's statistics come from the phase that sampled it.
    assert (first.logprobs - logprobs).abs()[mask].max() < 1e-4
    assert (first.entropy - entropy).abs()[mask].max() < 1e-4
    assert (first.sum_sq_probs - sum_sq).abs()[mask].max() < 1e-4
    for values in (first.logprobs, first.entropy, first.sum_sq_probs):
        assert not values[~mask].any()


def test_phase_tokens_is_checked_and_leaves_credit_journals_alone(
    llama: PreTrainedModel, tokenizer: PreTrainedTokenizerFast
) -> None:
    with pytest.raises(ConfigError, match="phase_tokens"):
        generate_rollouts(llama, tokenizer, PROMPTS, 2, SamplingConfig(phase_tokens=-1))
    # Continuations always sample in phases of their own: a rollout setting must not void a probe's journal.
    plain, phased = SamplingConfig(), SamplingConfig(phase_tokens=8)
    assert journal_fingerprint([[1, 2]], [4], plain, 0) == journal_fingerprint([[1, 2]], [4], phased, 0)


def test_a_run_trains_on_phased_rollouts_with_pi_old_from_the_decode_loop(
    tmp_path: Path, parity_reward: RewardFn
) -> None:
    """End to end: the smoke run with phases of 4 tokens (and a reward that varies within groups). π_old
    comes from the decode loop across phases, so the on-policy update's ratio starts at 1 (to rounding);
    the weights move and the loss is finite."""
    config = load_config(
        "smoke",
        {
            "sampling": {"phase_tokens": 4},
            "train": {"steps": 2, "rollout_logprobs": True},
            "run": {"output_dir": str(tmp_path), "entropy_change_every": 0},
        },
    )
    run_dir = train(config, progress=False, reward_fn=parity_reward).run_dir
    rows = [row for row in read_metrics(run_dir) if "loss" in row]
    assert len(rows) == 2
    precision = read_precision(run_dir)
    assert precision is not None and precision["old_logprobs"] == "decode loop"
    for row in rows:
        assert row["ratio_abs_dev"] < 1e-4  # one on-policy mini-batch: π_θ = π_old when it is scored
        assert math.isfinite(row["loss"]) and row["drift/update_norm"] > 0
        assert 0 < row["response/length_mean"] <= config.sampling.max_new_tokens
