"""token_logprobs_and_entropy: chunked result equals the naive [B,T,V] computation, values and gradients."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from eapo.core import default_chunk_size, group_entropy_stats, token_logprobs_and_entropy
from eapo.core.entropy import ACCELERATOR_CHUNK_ELEMENTS, CPU_CHUNK_ELEMENTS


def naive(logits: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Reference: full log_softmax in fp32, masked afterwards."""
    log_p = logits.float().log_softmax(dim=-1)
    safe_tokens = torch.where(mask, tokens, 0)
    logprobs = log_p.gather(-1, safe_tokens[..., None]).squeeze(-1)
    entropy = -(log_p.exp() * log_p).sum(dim=-1)
    sum_sq = log_p.exp().square().sum(dim=-1)
    return tuple(torch.where(mask, x, 0.0) for x in (logprobs, entropy, sum_sq))


def random_inputs(
    seed: int, rows: int, length: int, vocab: int, keep: float, scale: float = 3.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(rows, length, vocab, generator=gen) * scale
    tokens = torch.randint(0, vocab, (rows, length), generator=gen)
    mask = torch.rand(rows, length, generator=gen) < keep
    # Padding ids outside the vocabulary are allowed where the mask is 0.
    tokens = torch.where(mask, tokens, -100)
    return logits, tokens, mask


shapes = st.tuples(
    st.integers(0, 2**31 - 1),  # seed
    st.integers(1, 4),  # B
    st.integers(1, 7),  # T
    st.integers(1, 40),  # V
    st.sampled_from([0.0, 0.5, 1.0]),  # mask density
    st.integers(1, 9),  # chunk size
)


@settings(max_examples=50, deadline=None)
@given(shapes)
def test_chunked_equals_naive_fp32(case: tuple[int, int, int, int, float, int]) -> None:
    seed, rows, length, vocab, keep, chunk = case
    logits, tokens, mask = random_inputs(seed, rows, length, vocab, keep)
    got = token_logprobs_and_entropy(logits, tokens, mask, chunk, return_sum_sq_probs=True)
    want = naive(logits, torch.where(mask, tokens, 0), mask)
    assert [g.dtype for g in got] == [torch.float32, torch.float32, torch.float64]
    for g, w in zip(got, want, strict=True):
        assert g.shape == (rows, length)
        torch.testing.assert_close(g.float(), w, atol=1e-5, rtol=1e-5)
        assert bool((g[~mask] == 0).all())


@settings(max_examples=30, deadline=None)
@given(shapes)
def test_bf16_logits_match_fp32_of_the_same_values(case: tuple[int, int, int, int, float, int]) -> None:
    seed, rows, length, vocab, keep, chunk = case
    logits, tokens, mask = random_inputs(seed, rows, length, vocab, keep)
    logits_bf16 = logits.to(torch.bfloat16)
    got = token_logprobs_and_entropy(logits_bf16, tokens, mask, chunk, return_sum_sq_probs=True)
    # The chunk is upcast before any arithmetic, so the result is the fp32 computation on the bf16 values.
    want = naive(logits_bf16.float(), torch.where(mask, tokens, 0), mask)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g.float(), w, atol=1e-5, rtol=1e-5)


@settings(max_examples=40, deadline=None)
@given(shapes, st.booleans())
def test_gradients_equal_naive(case: tuple[int, int, int, int, float, int], entropy_grad: bool) -> None:
    seed, rows, length, vocab, keep, chunk = case
    logits, tokens, mask = random_inputs(seed, rows, length, vocab, keep)
    gen = torch.Generator().manual_seed(seed + 1)
    w_lp, w_ent = torch.randn(rows, length, generator=gen), torch.randn(rows, length, generator=gen)

    chunked = logits.clone().requires_grad_()
    lp, ent = token_logprobs_and_entropy(chunked, tokens, mask, chunk, entropy_grad=entropy_grad)
    assert ent.requires_grad == entropy_grad
    objective = (lp * w_lp).sum() + ((ent * w_ent).sum() if entropy_grad else 0.0)
    if objective.requires_grad:
        objective.backward()
    got = chunked.grad if chunked.grad is not None else torch.zeros_like(logits)

    reference = logits.clone().requires_grad_()
    n_lp, n_ent, _ = naive(reference, torch.where(mask, tokens, 0), mask)
    ((n_lp * w_lp).sum() + ((n_ent * w_ent).sum() if entropy_grad else 0.0)).backward()
    torch.testing.assert_close(got, reference.grad, atol=1e-5, rtol=1e-5)
    assert bool((got[~mask] == 0).all()), "masked positions must get no gradient"


def test_bf16_gradient_flows_in_bf16() -> None:
    logits, tokens, mask = random_inputs(0, 2, 3, 17, 1.0)
    x = logits.to(torch.bfloat16).requires_grad_()
    lp, _ = token_logprobs_and_entropy(x, tokens, mask, 4)
    lp.sum().backward()
    assert x.grad is not None and x.grad.dtype == torch.bfloat16
    reference = logits.to(torch.bfloat16).float().requires_grad_()
    n_lp, _, _ = naive(reference, tokens, mask)
    n_lp.sum().backward()
    torch.testing.assert_close(x.grad.float(), reference.grad, atol=1e-2, rtol=1e-2)


def test_extreme_logits_are_finite() -> None:
    # ±1e4 logits: a near-one-hot row, a two-way tie and a row with a −inf (banned) vocabulary entry.
    logits = torch.full((1, 3, 5), -1e4)
    logits[0, 0, 2] = 1e4
    logits[0, 1, :2] = 1e4
    logits[0, 2] = torch.tensor([1e4, -1e4, 0.0, -float("inf"), 1e4])
    tokens = torch.tensor([[2, 0, 4]])
    x = logits.clone().requires_grad_()
    mask = torch.ones(1, 3, dtype=torch.bool)
    lp, ent, sq = token_logprobs_and_entropy(x, tokens, mask, 2, entropy_grad=True, return_sum_sq_probs=True)
    torch.testing.assert_close(lp, torch.tensor([[0.0, -math.log(2), -math.log(2)]]))
    torch.testing.assert_close(ent, torch.tensor([[0.0, math.log(2), math.log(2)]]))
    torch.testing.assert_close(sq, torch.tensor([[1.0, 0.5, 0.5]], dtype=torch.float64))
    (lp.sum() + ent.sum()).backward()
    assert x.grad is not None and bool(torch.isfinite(x.grad).all())


def test_empty_mask_gives_zeros_and_a_zero_gradient() -> None:
    logits, tokens, _ = random_inputs(1, 2, 3, 5, 1.0)
    mask = torch.zeros(2, 3, dtype=torch.bool)
    x = logits.clone().requires_grad_()
    lp, ent, sq = token_logprobs_and_entropy(x, tokens, mask, return_sum_sq_probs=True)
    assert all(bool((t == 0).all()) for t in (lp, ent, sq))
    lp.sum().backward()
    assert x.grad is not None and bool((x.grad == 0).all())


def test_float_mask_and_sliced_logits() -> None:
    # Logits sliced out of a longer sequence (non-contiguous) are read in place; the gradient lands
    # only in the slice.
    gen = torch.Generator().manual_seed(3)
    full = torch.randn(2, 9, 13, generator=gen).requires_grad_()
    window = full[:, 2:7]
    tokens = torch.randint(0, 13, (2, 5), generator=gen)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 0, 1, 1, 1]], dtype=torch.float32)
    lp, ent = token_logprobs_and_entropy(window, tokens, mask, 3)
    want_lp, want_ent, _ = naive(window.detach(), tokens, mask.bool())
    torch.testing.assert_close(lp, want_lp)
    torch.testing.assert_close(ent, want_ent)
    lp.sum().backward()
    assert full.grad is not None
    assert bool((full.grad[:, :2] == 0).all()) and bool((full.grad[:, 7:] == 0).all())
    assert float(full.grad[:, 2:7].abs().sum()) > 0


def test_backward_saves_only_the_logits_and_per_position_vectors() -> None:
    # Memory claim, checked structurally: besides the logits themselves (no copy), autograd keeps only
    # tensors with one value per valid position, never an [N,V] softmax or fp32 copy of the logits.
    rows, length, vocab = 3, 8, 50
    logits, tokens, mask = random_inputs(4, rows, length, vocab, 1.0)
    x = logits.to(torch.bfloat16).requires_grad_()
    saved: list[torch.Tensor] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        lp, _ = token_logprobs_and_entropy(x, tokens, mask, 4)
    assert saved, "the custom backward must save its inputs"
    for t in saved:
        shares_logits = t.untyped_storage().data_ptr() == x.untyped_storage().data_ptr()
        assert shares_logits or t.numel() <= rows * length, f"saved a {tuple(t.shape)} tensor"
    lp.sum().backward()


def test_default_chunk_is_an_element_budget_over_the_vocabulary() -> None:
    assert default_chunk_size(49152, "cpu") == CPU_CHUNK_ELEMENTS // 49152 == 85
    assert default_chunk_size(151936, "cpu") == 27
    assert default_chunk_size(10**9, "cpu") == 1  # never zero
    assert default_chunk_size(151936, "cuda") == ACCELERATOR_CHUNK_ELEMENTS // 151936
    # None (the default) gives the same values as the explicit default chunk.
    logits, tokens, mask = random_inputs(3, 4, 7, 11, 0.7)
    by_default = token_logprobs_and_entropy(logits, tokens, mask)
    explicit = token_logprobs_and_entropy(logits, tokens, mask, default_chunk_size(11, logits.device))
    for got, want in zip(by_default, explicit, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_invalid_inputs_raise() -> None:
    logits, tokens, mask = random_inputs(5, 2, 3, 5, 1.0)
    with pytest.raises(ValueError, match="tokens must lie in"):
        token_logprobs_and_entropy(logits, torch.full_like(tokens, 7), mask)
    with pytest.raises(ValueError, match="chunk_size"):
        token_logprobs_and_entropy(logits, tokens, mask, 0)
    with pytest.raises(ValueError, match=r"\[B,T,V\]"):
        token_logprobs_and_entropy(logits[0], tokens, mask)
    with pytest.raises(ValueError, match="response_mask"):
        token_logprobs_and_entropy(logits, tokens, mask[:, :2])


def test_group_entropy_stats_population_std_and_edge_cases() -> None:
    entropy = torch.tensor([[1.0, 3.0], [3.0, 1.0], [0.7, 0.7], [0.7, 5.0], [2.0, 9.0], [4.0, 9.0]])
    mask = torch.tensor([[1, 1], [1, 1], [1, 1], [1, 0], [1, 0], [0, 0]], dtype=torch.bool)
    mean, std, count, constant = group_entropy_stats(entropy, mask, 2)
    # Group 0: {1,3,3,1}: mean 2, population std 1. Group 1: {0.7,0.7,0.7}: constant. Group 2: one token.
    torch.testing.assert_close(mean, torch.tensor([2.0, 0.7, 2.0], dtype=torch.float64))
    torch.testing.assert_close(std, torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))
    assert count.tolist() == [4, 3, 1]
    assert constant.tolist() == [False, True, True]


@settings(max_examples=30, deadline=None)
@given(shapes, st.sampled_from([0.3, 0.7, 1.6]), st.booleans())
def test_temperature_scores_softmax_of_logits_over_t(
    case: tuple[int, int, int, int, float, int], temperature: float, entropy_grad: bool
) -> None:
    """At sampling temperature T every output is that of softmax(z / T); gradients reach z through z / T."""
    seed, rows, length, vocab, keep, chunk = case
    logits, tokens, mask = random_inputs(seed, rows, length, vocab, keep)
    safe_tokens = torch.where(mask, tokens, 0)
    chunked = logits.clone().requires_grad_()
    lp, ent, sum_sq = token_logprobs_and_entropy(
        chunked,
        tokens,
        mask,
        chunk,
        entropy_grad=entropy_grad,
        return_sum_sq_probs=True,
        temperature=temperature,
    )
    reference = logits.clone().requires_grad_()
    want = naive(reference / temperature, safe_tokens, mask)
    for g, w in zip((lp, ent, sum_sq), want, strict=True):
        torch.testing.assert_close(g.float(), w.detach(), atol=1e-5, rtol=1e-5)
    gen = torch.Generator().manual_seed(seed + 2)
    w_lp, w_ent = torch.randn(rows, length, generator=gen), torch.randn(rows, length, generator=gen)
    objective = (lp * w_lp).sum() + ((ent * w_ent).sum() if entropy_grad else 0.0)
    if not objective.requires_grad:
        return
    objective.backward()
    ((want[0] * w_lp).sum() + ((want[1] * w_ent).sum() if entropy_grad else 0.0)).backward()
    torch.testing.assert_close(chunked.grad, reference.grad, atol=1e-5, rtol=1e-5)


def test_temperature_one_is_bit_identical_and_bad_temperatures_raise() -> None:
    logits, tokens, mask = random_inputs(3, 2, 5, 11, 1.0)
    plain = token_logprobs_and_entropy(logits, tokens, mask, 4)
    at_one = token_logprobs_and_entropy(logits, tokens, mask, 4, temperature=1.0)
    for a, b in zip(plain, at_one, strict=True):
        assert torch.equal(a, b)
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="temperature"):
            token_logprobs_and_entropy(logits, tokens, mask, 4, temperature=bad)
