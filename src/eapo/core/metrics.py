"""Evaluation metrics of PAPER.md §6 (Setup): Avg@k and the unbiased Pass@k; and the masked quantiles that
summarise a token statistic (e.g. the entropy's p10/p50/p90) over a batch's response tokens."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from eapo.core.checks import check_integer_tensor

__all__ = ["avg_at_k", "masked_quantiles", "pass_at_k"]

ArrayLike = torch.Tensor | Sequence[float] | Sequence[Sequence[float]] | float | int


def avg_at_k(correct: ArrayLike, n: int | ArrayLike | None = None) -> float:
    """Avg@k: the mean fraction of correct samples (PAPER.md §6, "Avg@k = mean fraction correct").

    Args:
        correct: either 0/1 (or bool) outcomes, [n] for one problem or [P, n] for P problems with n
            samples each, or, when `n` is given, correct-sample counts c [P].
        n: samples per problem (an int or [P]) when `correct` holds counts.

    Returns:
        The fraction correct averaged over problems (each problem weighs the same), a float in [0, 1].
    """
    values = torch.as_tensor(correct, dtype=torch.float64)
    if values.numel() == 0:
        raise ValueError("avg_at_k needs at least one outcome")
    if n is None:
        if values.dim() not in (1, 2):
            raise ValueError(f"correct must be [n] or [P, n]; got shape {tuple(values.shape)}")
        if bool(((values != 0) & (values != 1)).any()):
            raise ValueError("correct must hold 0/1 outcomes when n is not given (pass n for counts)")
        per_problem = values.mean(dim=-1)
    else:
        counts = values.reshape(-1)
        samples = torch.as_tensor(n, dtype=torch.float64).expand_as(counts)
        if bool((samples < 1).any()) or bool((counts < 0).any()) or bool((counts > samples).any()):
            raise ValueError(
                f"need n >= 1 and 0 <= c <= n; got c = {counts.tolist()}, n = {samples.tolist()}"
            )
        per_problem = counts / samples
    return float(per_problem.mean())


def pass_at_k(n: int | ArrayLike, c: int | ArrayLike, k: int) -> float | torch.Tensor:
    """Unbiased Pass@k = 1 − C(n − c, k) / C(n, k) (PAPER.md §6; Chen et al. 2021, arXiv 2107.03374).

    Computed in the stable product form 1 − Π_{i = n−c+1}^{n} (1 − k / i) in float64, with no binomial
    coefficients (they overflow for n in the hundreds). When n − c < k the product contains the factor
    1 − k/k = 0, so Pass@k = 1 exactly.

    Args:
        n: samples per problem, an int or [P]. c: correct samples, an int or [P]. k: 1 <= k <= n.

    Returns:
        A float when n and c are both scalars, else a float64 tensor [P] of per-problem values (average
        them for the benchmark's Pass@k).
    """
    scalar = not isinstance(n, torch.Tensor | Sequence) and not isinstance(c, torch.Tensor | Sequence)
    n_t = check_integer_tensor("n", n).reshape(-1)  # 8.9 samples is an error, not 8
    c_t = check_integer_tensor("c", c).reshape(-1)
    n_t, c_t = torch.broadcast_tensors(n_t, c_t)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an integer >= 1; got {k!r}")
    if bool((n_t < k).any()):
        raise ValueError(f"k = {k} exceeds the number of samples n = {int(n_t.min())}; need k <= n")
    if bool((c_t < 0).any()) or bool((c_t > n_t).any()):
        raise ValueError(f"need 0 <= c <= n; got c = {c_t.tolist()}, n = {n_t.tolist()}")
    max_c = int(c_t.max()) if c_t.numel() else 0
    offsets = torch.arange(1, max_c + 1, dtype=torch.int64)
    # i runs over n−c+1 … n for each problem; positions beyond its own c contribute a factor of 1.
    i = (n_t - c_t)[:, None] + offsets[None, :]
    in_range = offsets[None, :] <= c_t[:, None]
    factors = torch.where(in_range, 1.0 - k / i.clamp(min=1).double(), torch.ones((), dtype=torch.float64))
    values = 1.0 - factors.prod(dim=1)
    return float(values[0]) if scalar else values


def masked_quantiles(values: torch.Tensor, mask: torch.Tensor, quantiles: Sequence[float]) -> torch.Tensor:
    """The `quantiles` (each in [0, 1]) of `values` over the positions where `mask` is True.

    Args:
        values: [B,T] (any shape) a token statistic, e.g. the entropy in nats.
        mask: bool, the shape of `values`: the response tokens to pool.
        quantiles: the levels q, e.g. (0.1, 0.5, 0.9).

    Returns:
        fp32 [len(quantiles)], linear interpolation between order statistics (`torch.quantile`); all zeros
        when the mask selects no token (an empty batch has no spread to report).
    """
    valid = values[mask].float()
    if valid.numel() == 0:
        return torch.zeros(len(quantiles))
    return torch.quantile(valid, torch.tensor(quantiles))
