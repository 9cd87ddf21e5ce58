"""Top-p without a full sort (`eapo.rollout.nucleus`): the same kept set as transformers' warper, the same
samples through `generate_rollouts` with the candidate draw off and on, and the candidate draw's tokens
equal to `torch.multinomial`'s under the same seed and distributed as the nucleus (frequencies against the
renormalised probabilities)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import PreTrainedModel, PreTrainedTokenizerFast
from transformers.generation.logits_process import TopPLogitsWarper

from eapo.errors import ConfigError
from eapo.rollout import SamplingConfig, generate_rollouts
from eapo.rollout.nucleus import NucleusSampling, nucleus_draw, top_p_filter


def _kept(scores: torch.Tensor) -> torch.Tensor:
    return scores > float("-inf")


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    scale=st.sampled_from([0.1, 1.0, 4.0, 12.0]),
    top_p=st.sampled_from([0.5, 0.9, 0.95, 0.99]),
    candidates=st.sampled_from([1, 3, 16, 64]),
)
def test_kept_tokens_equal_transformers_top_p(seed: int, scale: float, top_p: float, candidates: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    scores = torch.randn(8, 300, generator=generator) * scale  # small scale: wide nuclei, the fallback
    reference = TopPLogitsWarper(top_p)(torch.zeros(8, 1, dtype=torch.long), scores)
    filtered = top_p_filter(scores, top_p, candidates)
    assert torch.equal(_kept(filtered), _kept(reference))
    assert torch.equal(filtered[_kept(filtered)], scores[_kept(filtered)])  # kept logits untouched


def test_top_p_one_keeps_everything_and_the_top_token_always_stays() -> None:
    scores = torch.tensor([[5.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    assert torch.equal(top_p_filter(scores, 1.0), scores)
    assert torch.equal(_kept(top_p_filter(scores, 0.01)), torch.tensor([[True, False, False]] * 2))
    processed = NucleusSampling(temperature=2.0, top_p=1.0)(torch.zeros(2, 1, dtype=torch.long), scores)
    assert torch.equal(processed, scores / 2.0)


@pytest.mark.parametrize("temperature,top_p", [(1.0, 0.95), (1.4, 0.9), (0.6, 0.5)])
def test_generate_rollouts_samples_the_same_as_transformers_warpers(
    llama: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, temperature: float, top_p: float
) -> None:
    sampling = SamplingConfig(
        temperature=temperature, top_p=top_p, max_new_tokens=24, top_p_candidates=4, candidate_draw=False
    )
    prompts = ["1+2=", "7-3=", "9+9="]
    ours = generate_rollouts(llama, tokenizer, prompts, 4, sampling, seed=3)
    theirs = generate_rollouts(
        llama, tokenizer, prompts, 4, dataclasses.replace(sampling, top_p_candidates=0), seed=3
    )
    assert ours.completions == theirs.completions
    assert torch.equal(ours.response_ids, theirs.response_ids)
    drawn = generate_rollouts(
        llama, tokenizer, prompts, 4, dataclasses.replace(sampling, candidate_draw=True), seed=3
    )
    assert torch.equal(drawn.response_ids, theirs.response_ids)  # the candidate draw: the same tokens too


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    scale=st.sampled_from([0.1, 1.0, 4.0, 12.0]),
    top_p=st.sampled_from([0.5, 0.9, 0.95, 1.0]),
    candidates=st.sampled_from([1, 4, 64]),
)
def test_candidate_draw_draws_what_multinomial_draws(
    seed: int, scale: float, top_p: float, candidates: int
) -> None:
    """Under the same random state the candidate draw returns `torch.multinomial`'s token on the filtered
    softmax (what generate's sampling step draws) and leaves the random stream where multinomial leaves it;
    small scales make wide nuclei, so the full-sort fallback is covered."""
    scores = torch.randn(16, 2000, generator=torch.Generator().manual_seed(seed)) * scale
    torch.manual_seed(seed)
    ours, after_ours = nucleus_draw(scores, top_p, candidates), torch.rand(3)
    torch.manual_seed(seed)
    theirs = torch.multinomial(top_p_filter(scores, top_p, candidates).softmax(dim=-1), 1).squeeze(1)
    assert torch.equal(ours, theirs)
    assert torch.equal(after_ours, torch.rand(3))


def test_negative_candidates_are_refused(llama: PreTrainedModel, tokenizer: PreTrainedTokenizerFast) -> None:
    with pytest.raises(ConfigError, match=r"sampling\.top_p_candidates"):
        generate_rollouts(llama, tokenizer, ["1+1="], 2, SamplingConfig(top_p_candidates=-1))


@pytest.mark.parametrize("candidates", [3, 64])
@pytest.mark.parametrize("top_p", [0.5, 0.9, 1.0])
def test_candidate_draw_follows_the_nucleus_distribution(candidates: int, top_p: float) -> None:
    """40,000 draws per row: each token's frequency is within 4.5 standard errors of its probability
    under the nucleus (softmax renormalised over top_p_filter's kept set), and no token outside is drawn.
    Row 1 is flat enough that 3 candidates do not hold the nucleus: the full-sort fallback draws it."""
    scores = torch.tensor(
        [
            [3.0, 2.5, 1.0, 0.5, 0.0, -1.0, -2.0, -3.0, -4.0, -5.0],
            [0.4, 0.3, 0.3, 0.2, 0.2, 0.1, 0.0, 0.0, -0.1, -0.2],
            [6.0, 1.0, 0.9, 0.0, -1.0, -1.0, -2.0, -2.0, -3.0, -9.0],
        ]
    )
    n = 40_000
    torch.manual_seed(0)
    tokens = nucleus_draw(scores.repeat_interleave(n, dim=0), top_p, candidates).view(3, n)
    expected = top_p_filter(scores, top_p).softmax(dim=-1)
    for row in range(3):
        counts = torch.bincount(tokens[row], minlength=scores.shape[1]).float()
        observed = counts / n
        bound = 4.5 * (expected[row] * (1 - expected[row]) / n).sqrt() + 1e-9
        assert torch.all((observed - expected[row]).abs() <= bound), (row, observed, expected[row])
        assert torch.all(counts[expected[row] == 0] == 0)


def test_the_drawing_processor_returns_one_finite_score_per_row() -> None:
    scores = torch.randn(5, 50, generator=torch.Generator().manual_seed(1)) * 3
    torch.manual_seed(2)
    drawn = NucleusSampling(1.4, 0.9, 8, draw=True)(torch.zeros(5, 1, dtype=torch.long), scores)
    assert torch.equal(torch.isfinite(drawn).sum(dim=-1), torch.ones(5, dtype=torch.long))
    kept = _kept(top_p_filter(scores / 1.4, 0.9))
    assert torch.all(kept.gather(1, drawn.argmax(dim=-1, keepdim=True)))  # the drawn token is in the nucleus


def test_generate_rollouts_with_the_candidate_draw_is_seeded(
    llama: PreTrainedModel, tokenizer: PreTrainedTokenizerFast
) -> None:
    """The candidate draw (the default) samples through generate's argmax: the same seed gives the same
    rollout, another seed another one, and the rows of a group differ (it samples, it is not greedy)."""
    sampling = SamplingConfig(temperature=1.0, top_p=0.95, max_new_tokens=24, top_p_candidates=4)
    assert sampling.candidate_draw
    prompts = ["1+2=", "7-3="]
    a = generate_rollouts(llama, tokenizer, prompts, 4, sampling, seed=3)
    b = generate_rollouts(llama, tokenizer, prompts, 4, sampling, seed=3)
    c = generate_rollouts(llama, tokenizer, prompts, 4, sampling, seed=4)
    assert a.completions == b.completions and a.completions != c.completions
    assert len(set(a.completions[:4])) > 1
