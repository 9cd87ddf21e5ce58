"""Avg@k and the unbiased Pass@k (PAPER.md §6) against brute-force combinatorics."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from eapo.core import avg_at_k, pass_at_k


def brute_force_pass_at_k(n: int, c: int, k: int) -> float:
    """Fraction of all k-subsets of n samples (the first c correct) that contain a correct sample."""
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(i < c for i in s) for s in subsets) / len(subsets)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 9).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))))
def test_pass_at_k_equals_brute_force(case: tuple[int, int, int]) -> None:
    n, c, k = case
    assert pass_at_k(n, c, k) == pytest.approx(brute_force_pass_at_k(n, c, k), abs=1e-12)


def test_pass_at_k_is_stable_for_large_n() -> None:
    # C(1000, 100) overflows float64; the product form does not. Exact value from rational arithmetic.
    n, c, k = 1000, 3, 100
    exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
    assert pass_at_k(n, c, k) == pytest.approx(float(exact), rel=1e-12)
    assert pass_at_k(256, 256, 256) == 1.0 and pass_at_k(256, 0, 1) == 0.0


def test_pass_at_k_is_vectorised_over_problems() -> None:
    n = torch.tensor([8, 8, 16, 4])
    c = torch.tensor([0, 3, 16, 1])
    got = pass_at_k(n, c, 4)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float64
    want = [pass_at_k(int(a), int(b), 4) for a, b in zip(n, c, strict=True)]
    torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64))
    torch.testing.assert_close(pass_at_k(32, [0, 32], 1), torch.tensor([0.0, 1.0], dtype=torch.float64))


def test_pass_at_k_validation() -> None:
    with pytest.raises(ValueError, match="k = 5 exceeds the number of samples n = 4"):
        pass_at_k(4, 1, 5)
    with pytest.raises(ValueError, match="0 <= c <= n"):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        pass_at_k(4, 1, 0)


def test_avg_at_k_from_outcomes_and_counts() -> None:
    assert avg_at_k([1, 0, 0, 1]) == 0.5
    # Two problems, each weighs the same: (2/4 + 4/4) / 2.
    assert avg_at_k(torch.tensor([[1, 0, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)) == 0.75
    assert avg_at_k([2, 4], n=4) == 0.75
    assert avg_at_k(torch.tensor([1, 3]), n=torch.tensor([2, 4])) == pytest.approx(0.625)
    with pytest.raises(ValueError, match="0/1 outcomes"):
        avg_at_k([0.5, 1.0])
    with pytest.raises(ValueError, match="0 <= c <= n"):
        avg_at_k([5], n=4)
