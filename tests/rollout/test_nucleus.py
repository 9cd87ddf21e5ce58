"""Top-p without a full sort (`eapo.rollout.nucleus`): the same kept set as transformers' warper in every
candidate tier, the same samples through `generate_rollouts` (the candidate draw off, the default), and with
the candidate draw on, draws from exactly the nucleus distribution (frequencies against the renormalised
probabilities)."""

from __future__ import annotations

import dataclasses
from unittest import mock

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import PreTrainedModel, PreTrainedTokenizerFast
from transformers.generation.logits_process import TopPLogitsWarper

from eapo.errors import ConfigError
from eapo.rollout import SamplingConfig, generate_rollouts, nucleus
from eapo.rollout.nucleus import NucleusSampling, nucleus_draw, top_p_filter


def _kept(scores: torch.Tensor) -> torch.Tensor:
    return scores > float("-inf")


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    scale=st.sampled_from([0.1, 1.0, 4.0, 12.0]),
    top_p=st.sampled_from([0.5, 0.9, 0.95, 0.99]),
    candidates=st.sampled_from([1, 3, 16, 64]),
    wide=st.sampled_from([8, 100, 4096]),
)
def test_kept_tokens_equal_transformers_top_p(
    seed: int, scale: float, top_p: float, candidates: int, wide: int
) -> None:
    """Every tier: the candidates, the wide tier (`WIDE_CANDIDATES`, made small here so that 300 tokens
    exceed it) and the full sort for rows no tier holds (small scales make wide nuclei)."""
    generator = torch.Generator().manual_seed(seed)
    scores = torch.randn(8, 300, generator=generator) * scale
    reference = TopPLogitsWarper(top_p)(torch.zeros(8, 1, dtype=torch.long), scores)
    with mock.patch.object(nucleus, "WIDE_CANDIDATES", wide):
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


def test_negative_candidates_are_refused(llama: PreTrainedModel, tokenizer: PreTrainedTokenizerFast) -> None:
    with pytest.raises(ConfigError, match=r"sampling\.top_p_candidates"):
        generate_rollouts(llama, tokenizer, ["1+1="], 2, SamplingConfig(top_p_candidates=-1))


@pytest.mark.parametrize("candidates,wide", [(3, 4096), (3, 5), (64, 4096)])
@pytest.mark.parametrize("top_p", [0.5, 0.9, 1.0])
def test_candidate_draw_follows_the_nucleus_distribution(candidates: int, wide: int, top_p: float) -> None:
    """40,000 draws per row: each token's frequency is within 4.5 standard errors of its probability
    under the nucleus (softmax renormalised over top_p_filter's kept set), and no token outside is drawn.
    Row 1 is flat enough that 3 candidates do not hold the nucleus: the wide tier (all 10 tokens, or 5, too
    few, so that the full sort draws it) does."""
    scores = torch.tensor(
        [
            [3.0, 2.5, 1.0, 0.5, 0.0, -1.0, -2.0, -3.0, -4.0, -5.0],
            [0.4, 0.3, 0.3, 0.2, 0.2, 0.1, 0.0, 0.0, -0.1, -0.2],
            [6.0, 1.0, 0.9, 0.0, -1.0, -1.0, -2.0, -2.0, -3.0, -9.0],
        ]
    )
    n = 40_000
    torch.manual_seed(0)
    with mock.patch.object(nucleus, "WIDE_CANDIDATES", wide):
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
    """The candidate draw (opt-in) samples through generate's argmax: the same seed gives the same rollout,
    another seed another one, and the rows of a group differ (it samples, it is not greedy)."""
    sampling = SamplingConfig(
        temperature=1.0, top_p=0.95, max_new_tokens=24, top_p_candidates=4, candidate_draw=True
    )
    assert not SamplingConfig().candidate_draw
    prompts = ["1+2=", "7-3="]
    a = generate_rollouts(llama, tokenizer, prompts, 4, sampling, seed=3)
    b = generate_rollouts(llama, tokenizer, prompts, 4, sampling, seed=3)
    c = generate_rollouts(llama, tokenizer, prompts, 4, sampling, seed=4)
    assert a.completions == b.completions and a.completions != c.completions
    assert len(set(a.completions[:4])) > 1
