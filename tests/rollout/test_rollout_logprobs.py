"""Log-probs, entropy and Σπ² recorded inside the decode loop equal the scoring forward's (fp32, 1e-4)."""

from __future__ import annotations

import pytest
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from eapo.core import row_logprobs_and_entropy, token_logprobs_and_entropy
from eapo.errors import ConfigError
from eapo.rollout import SamplingConfig, concat_rollouts, generate_rollouts, response_logits
from eapo.rollout.generate import RolloutBatch, select_rollout_rows

PROMPTS = ["Calculate 1 + 2.\nAnswer:", "Calculate 10 - 3 + 7.\nAnswer:", "x"]


def _forward_stats(
    model: PreTrainedModel, batch: RolloutBatch, temperature: float
) -> tuple[torch.Tensor, ...]:
    with torch.no_grad():
        logits = response_logits(model, batch.sequences, batch.attention_mask, batch.prompt_length)
        return token_logprobs_and_entropy(
            logits,
            batch.response_ids,
            batch.response_mask,
            return_sum_sq_probs=True,
            temperature=temperature,
        )


@pytest.mark.parametrize(
    ("temperature", "top_p", "stop_strings"),
    [(1.0, 1.0, []), (0.7, 0.9, []), (1.3, 0.95, ["+"])],
)
@pytest.mark.parametrize("model_name", ["llama", "gpt2"])
def test_decode_statistics_equal_the_forward(
    model_name: str,
    temperature: float,
    top_p: float,
    stop_strings: list[str],
    tokenizer: PreTrainedTokenizerFast,
    request: pytest.FixtureRequest,
) -> None:
    """The full distribution softmax(z / T) (not the top-p-truncated one), left-padded prompts of different
    widths, several row chunks, stop strings; RoPE and absolute positions."""
    model = request.getfixturevalue(model_name)
    sampling = SamplingConfig(
        temperature=temperature, top_p=top_p, max_new_tokens=20, batch_rows=4, stop_strings=stop_strings
    )
    batch = generate_rollouts(model, tokenizer, PROMPTS, 3, sampling, seed=3, with_logprobs=True)
    assert batch.logprobs is not None and batch.entropy is not None and batch.sum_sq_probs is not None
    logprobs, entropy, sum_sq = _forward_stats(model, batch, temperature)
    mask = batch.response_mask
    assert batch.num_generated_tokens > 10
    assert (batch.logprobs - logprobs).abs()[mask].max() < 1e-4
    assert (batch.entropy - entropy).abs()[mask].max() < 1e-4
    assert (batch.sum_sq_probs - sum_sq).abs()[mask].max() < 1e-4
    assert batch.sum_sq_probs.dtype == torch.float64
    # Zero outside the response, like score_policy's tensors.
    for values in (batch.logprobs, batch.entropy, batch.sum_sq_probs):
        assert not values[~mask].any()


def test_recording_does_not_change_the_samples(
    llama: PreTrainedModel, tokenizer: PreTrainedTokenizerFast
) -> None:
    sampling = SamplingConfig(temperature=0.8, top_p=0.9, max_new_tokens=16, batch_rows=5)
    plain = generate_rollouts(llama, tokenizer, PROMPTS, 2, sampling, seed=11)
    recorded = generate_rollouts(llama, tokenizer, PROMPTS, 2, sampling, seed=11, with_logprobs=True)
    assert torch.equal(plain.sequences, recorded.sequences)
    assert plain.completions == recorded.completions
    assert plain.logprobs is None and recorded.logprobs is not None


def test_decode_statistics_travel_with_selected_and_joined_rows(
    llama: PreTrainedModel, tokenizer: PreTrainedTokenizerFast
) -> None:
    """DAPO's refill joins rollouts of different prompt and response widths; the statistics follow their rows
    and still equal a forward over the joined batch."""
    a = generate_rollouts(
        llama, tokenizer, PROMPTS[:1], 2, SamplingConfig(max_new_tokens=6), seed=1, with_logprobs=True
    )
    b = generate_rollouts(
        llama, tokenizer, PROMPTS[1:], 2, SamplingConfig(max_new_tokens=12), seed=2, with_logprobs=True
    )
    joined = concat_rollouts([a, b], tokenizer.pad_token_id)
    assert joined.logprobs is not None and joined.logprobs.shape == joined.response_ids.shape
    assert joined.entropy is not None and joined.sum_sq_probs is not None
    logprobs, entropy, _ = _forward_stats(llama, joined, 1.0)
    assert (joined.logprobs - logprobs).abs()[joined.response_mask].max() < 1e-4
    assert (joined.entropy - entropy).abs()[joined.response_mask].max() < 1e-4
    rows = torch.tensor([5, 0, 3])
    picked = select_rollout_rows(joined, rows)
    assert picked.logprobs is not None and picked.sum_sq_probs is not None
    assert torch.equal(picked.logprobs, joined.logprobs[rows])
    assert torch.equal(picked.sum_sq_probs, joined.sum_sq_probs[rows])
    # A part without statistics: the joined batch has none (the trainer then scores by forward).
    c = generate_rollouts(llama, tokenizer, PROMPTS[:1], 2, SamplingConfig(max_new_tokens=4), seed=3)
    assert concat_rollouts([a, c], tokenizer.pad_token_id).logprobs is None


def test_row_statistics_match_the_chunked_pass() -> None:
    torch.manual_seed(0)
    logits = torch.randn(7, 50) * 3
    tokens = torch.randint(0, 50, (7,))
    for temperature in (1.0, 0.6):
        lp, ent, ss = row_logprobs_and_entropy(logits, tokens, temperature, chunk_size=3)
        ref = token_logprobs_and_entropy(
            logits[None],
            tokens[None],
            torch.ones(1, 7, dtype=torch.bool),
            2,
            return_sum_sq_probs=True,
            temperature=temperature,
        )
        assert torch.allclose(lp, ref[0][0], atol=1e-6)
        assert torch.allclose(ent, ref[1][0], atol=1e-6)
        assert torch.allclose(ss, ref[2][0], atol=1e-9)
        log_p = (logits / temperature).log_softmax(-1)
        assert torch.allclose(lp, log_p.gather(-1, tokens[:, None])[:, 0], atol=1e-5)
    with pytest.raises(ValueError, match=r"\[N,V\]"):
        row_logprobs_and_entropy(logits[None], tokens)


def test_greedy_has_no_decode_statistics(llama: PreTrainedModel, tokenizer: PreTrainedTokenizerFast) -> None:
    with pytest.raises(ConfigError, match="with_logprobs"):
        generate_rollouts(llama, tokenizer, PROMPTS, 1, SamplingConfig(temperature=0.0), with_logprobs=True)
