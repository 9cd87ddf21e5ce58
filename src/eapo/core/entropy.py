"""Token log-probabilities and full-vocabulary entropy in one chunked pass over the logits.

PAPER.md "Notation": H_{i,t} = −Σ_v π(v|q,o_{i,<t}) log π(v|q,o_{i,<t}) over the whole vocabulary, from the
same logits that give the log-probability of the sampled token. Both come out of one pass that walks the
valid positions in chunks, so the extra memory is O(chunk × V) and never a second [B,T,V] tensor (DESIGN.md
§2). The backward pass is a hand-written autograd function that recomputes each chunk's softmax from the
saved log-normaliser; it writes the gradient into one [B,T,V] buffer (the size autograd would allocate for
the logits' gradient anyway) and again needs only O(chunk × V) working memory.
"""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = [
    "default_chunk_size",
    "group_entropy_stats",
    "row_logprobs_and_entropy",
    "token_logprobs_and_entropy",
]


def _check_inputs(
    logits: torch.Tensor,
    tokens: torch.Tensor,
    response_mask: torch.Tensor,
    chunk_size: int,
    temperature: float,
) -> None:
    if logits.dim() != 3:
        raise ValueError(f"logits must be [B,T,V]; got shape {tuple(logits.shape)}")
    if tokens.shape != logits.shape[:2]:
        raise ValueError(f"tokens must be [B,T] = {tuple(logits.shape[:2])}; got {tuple(tokens.shape)}")
    if response_mask.shape != logits.shape[:2]:
        raise ValueError(
            f"response_mask must be [B,T] = {tuple(logits.shape[:2])}; got {tuple(response_mask.shape)}"
        )
    if not logits.is_floating_point():
        raise ValueError(f"logits must be a floating-point tensor; got dtype {logits.dtype}")
    if tokens.is_floating_point() or tokens.is_complex() or tokens.dtype == torch.bool:
        raise ValueError(f"tokens must hold integer token ids; got dtype {tokens.dtype} (they are not cast)")
    if int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be >= 1; got {chunk_size}")
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(
            f"temperature must be a finite number > 0 (the sampling temperature); got {temperature}"
        )


def _gather_chunk(
    logits: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, temperature: float
) -> torch.Tensor:
    """A fresh fp32 copy [C,V] of the logits at positions (rows, cols), divided by the sampling temperature;
    callers may modify it in place."""
    chunk = logits[rows, cols]  # advanced indexing always copies
    chunk = chunk.float() if chunk.dtype != torch.float32 else chunk
    # The distribution the tokens were sampled from is softmax(z / T) (as TRL and verl score it); at T = 1
    # nothing is touched, so results are bit-identical to a pass without a temperature.
    return chunk.div_(temperature) if temperature != 1.0 else chunk


def _row_dot(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Σ_v x[c,v]·y[c,v] per row as a batched matmul, without an elementwise product buffer."""
    return torch.bmm(x.unsqueeze(1), y.unsqueeze(2)).reshape(-1)


def _chunk_stats(z: torch.Tensor, tok: torch.Tensor, with_sum_sq: bool) -> tuple[torch.Tensor, ...]:
    """Per-row statistics of one fp32 chunk of logits z [C,V] (overwritten) with sampled tokens tok [C].

    Returns (log_normaliser, logprob, entropy, sum_sq_probs), each [C] fp32 (sum_sq_probs float64, and
    zeros unless `with_sum_sq`: it costs another pass over the chunk). The logits are shifted by
    their row maximum first, so ±1e4 logits neither overflow nor lose the entropy to cancellation. Works
    in place: the peak is two [C,V] fp32 buffers (z and π).
    """
    row_max = z.amax(dim=-1, keepdim=True)
    # A row of all −inf has no distribution; treat its max as 0 so nothing turns into NaN.
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
    z.sub_(row_max)
    p = z.exp()
    total = p.sum(dim=-1, keepdim=True)
    p.div_(total)
    log_total = total.log()
    z.sub_(log_total)  # z is now log π
    logprob = z.gather(-1, tok[:, None]).squeeze(-1)
    # −inf → the most negative float, so that π·log π = 0·(finite) = 0 for banned vocabulary entries.
    z.clamp_(min=torch.finfo(z.dtype).min)
    # Entropy is >= 0; the clamp only removes −0.0 and rounding below zero.
    entropy = (-_row_dot(p, z)).clamp(min=0.0)
    # Σ_v π_v² = π_y² + Σ_{v≠y} π_v², summed in float64 with π_y = exp(log π_y) exactly as
    # `logit_grad_norm` recomputes it: near a deterministic token 1 − 2π_y + Σ π² is ~1e-8, far below
    # fp32 resolution around 1, and Eq. 5's gradient norm needs that part.
    if with_sum_sq:
        p.scatter_(-1, tok[:, None], 0.0)
        sum_sq = logprob.double().mul(2.0).exp() + _row_dot(p, p).double()
    else:
        sum_sq = torch.zeros_like(logprob, dtype=torch.float64)
    log_normaliser = (log_total + row_max).squeeze(-1)
    return log_normaliser, logprob, entropy, sum_sq


class _ChunkedLogprobEntropy(torch.autograd.Function):
    """Autograd function over the valid positions (rows, cols) of logits [B,T,V].

    Positions are gathered by index, one chunk at a time, so sliced (non-contiguous) logits are never
    copied whole.
    """

    @staticmethod
    def forward(
        ctx: Any,
        logits: torch.Tensor,
        tokens: torch.Tensor,
        rows: torch.Tensor,
        cols: torch.Tensor,
        chunk_size: int,
        entropy_grad: bool,
        with_sum_sq: bool,
        temperature: float,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n_valid = rows.numel()
        logprob = torch.zeros(n_valid, dtype=torch.float32, device=logits.device)
        entropy = torch.zeros_like(logprob)
        sum_sq = torch.zeros(n_valid, dtype=torch.float64, device=logits.device)
        log_normaliser = torch.zeros_like(logprob)
        for start in range(0, n_valid, chunk_size):
            span = slice(start, min(start + chunk_size, n_valid))
            chunk = _gather_chunk(logits, rows[span], cols[span], temperature)
            stats = _chunk_stats(chunk, tokens[span], with_sum_sq)
            log_normaliser[span], logprob[span], entropy[span], sum_sq[span] = stats
        ctx.save_for_backward(logits, tokens, rows, cols, log_normaliser, entropy)
        ctx.chunk_size = chunk_size
        ctx.entropy_grad = entropy_grad
        ctx.temperature = temperature
        ctx.mark_non_differentiable(sum_sq)
        if not entropy_grad:
            ctx.mark_non_differentiable(entropy)
        return logprob, entropy, sum_sq

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(
        ctx: Any, grad_logprob: torch.Tensor, grad_entropy: torch.Tensor | None, _grad_sum_sq: Any
    ) -> tuple[torch.Tensor | None, None, None, None, None, None, None, None]:
        logits, tokens, rows, cols, log_normaliser, entropy = ctx.saved_tensors
        grad_logits = torch.zeros_like(logits)
        if not ctx.entropy_grad:
            grad_entropy = None  # the entropy was marked non-differentiable: no gradient flows through it
        n_valid = rows.numel()
        for start in range(0, n_valid, ctx.chunk_size):
            span = slice(start, min(start + ctx.chunk_size, n_valid))
            # Two [C,V] fp32 buffers, updated in place: z = log π (then the entropy term) and π (then the
            # gradient).
            z = _gather_chunk(logits, rows[span], cols[span], ctx.temperature)
            z.sub_(log_normaliser[span, None])
            p = z.exp()
            g_lp = grad_logprob[span, None].float()
            if grad_entropy is not None:
                # d H / d z_v = −π_v (log π_v + H); the clamp makes 0·log 0 = 0 for −inf logits.
                z.clamp_(min=torch.finfo(z.dtype).min).add_(entropy[span, None]).mul_(p)
                z.mul_(-grad_entropy[span, None].float())
            # d log π_y / d z_v = 1[v = y] − π_v
            grad = p.mul_(-g_lp)
            grad.scatter_add_(-1, tokens[span, None], g_lp)
            if grad_entropy is not None:
                grad.add_(z)
            if ctx.temperature != 1.0:  # chain rule through z / T
                grad.div_(ctx.temperature)
            grad_logits[rows[span], cols[span]] = grad.to(grad_logits.dtype)
        return grad_logits, None, None, None, None, None, None, None


# Elements (positions x vocabulary) per chunk when no chunk size is given. On CPU a chunk of a few MB is
# faster than one big softmax. The sweep at T = 2048 (benchmarks/results/entropy_memory_chunk1024.json),
# time against naive, forward / forward + backward: V = 49,152 at 32 positions 0.60 / 0.69, at 128 0.87 /
# 0.87; V = 151,936 at 8 positions 0.52 / 1.10, at 32 0.77 / 0.94; 1024 positions 1.06-1.40 everywhere.
# 2^22 elements (16 MiB in fp32) gives 85 and 27 positions there. On an accelerator each chunk costs kernel
# launches, so chunks are large there (not measured: no GPU here).
CPU_CHUNK_ELEMENTS = 2**22
ACCELERATOR_CHUNK_ELEMENTS = 2**26


def default_chunk_size(vocab_size: int, device: torch.device | str) -> int:
    """Positions per chunk for `token_logprobs_and_entropy` when none is given: a fixed element budget
    (CPU_CHUNK_ELEMENTS on CPU, ACCELERATOR_CHUNK_ELEMENTS elsewhere) divided by the vocabulary size."""
    budget = CPU_CHUNK_ELEMENTS if torch.device(device).type == "cpu" else ACCELERATOR_CHUNK_ELEMENTS
    return max(1, budget // max(int(vocab_size), 1))


def token_logprobs_and_entropy(
    logits: torch.Tensor,
    tokens: torch.Tensor,
    response_mask: torch.Tensor,
    chunk_size: int | None = None,
    *,
    entropy_grad: bool = False,
    return_sum_sq_probs: bool = False,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, ...]:
    """Log-probability of each sampled token and the full-vocabulary entropy, in one chunked pass.

    Implements PAPER.md "Notation" (H_{i,t} over the full vocabulary) and the log π terms of Eq. 2.

    Args:
        logits: [B,T,V], any float dtype (bf16 is upcast to fp32 one chunk at a time); may be a
            non-contiguous slice of a longer sequence's logits (it is never copied whole).
        tokens: [B,T] int, the sampled token at each position (ignored where the mask is 0, so padding
            ids such as −100 are fine there).
        response_mask: [B,T] bool or 0/1 float; only these positions are computed.
        chunk_size: positions per chunk (over the valid positions of the flattened B·T); extra memory is
            O(chunk_size × V) in forward and backward. None: `default_chunk_size(V, logits.device)`.
        entropy_grad: let gradients flow through the entropy (the EntroReg bonus needs it); otherwise the
            entropy is detached.
        return_sum_sq_probs: also return Σ_v π_v², detached (PAPER.md Eq. 5's closed-form gradient norm).
        temperature: the sampling temperature T; every output is that of softmax(logits / T), the
            distribution the tokens were drawn from (π_old, π_θ and H of PAPER.md Eq. 2 and §5 at T).
            Gradients flow through the division. Must be finite and > 0.

    Returns:
        (logprobs [B,T], entropy [B,T]) or (logprobs, entropy, sum_sq_probs), 0 where the mask is 0.
        logprobs and entropy are fp32; logprobs carry gradients to `logits` when it requires grad.
        sum_sq_probs is float64: for a near-deterministic token 1 − 2π_y + Σ π² (Eq. 5) is ~1e-8 and
        would vanish in fp32 (keep it in float64 if you pass it on to `quadrant_stats`).
    """
    if chunk_size is None:
        chunk_size = default_chunk_size(logits.shape[-1], logits.device)
    _check_inputs(logits, tokens, response_mask, chunk_size, float(temperature))
    batch, length, vocab = logits.shape
    valid = response_mask != 0
    rows, cols = valid.nonzero(as_tuple=True)
    valid_tokens = tokens[rows, cols].long()
    bad = (valid_tokens < 0) | (valid_tokens >= vocab)
    if bool(bad.any()):
        first = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"tokens must lie in [0, {vocab}) where response_mask is set; got {int(valid_tokens[first])} "
            f"at position (row {int(rows[first])}, col {int(cols[first])})"
        )
    logprob_v, entropy_v, sum_sq_v = _ChunkedLogprobEntropy.apply(
        logits,
        valid_tokens,
        rows,
        cols,
        int(chunk_size),
        bool(entropy_grad),
        bool(return_sum_sq_probs),
        float(temperature),
    )

    def scatter(values: torch.Tensor) -> torch.Tensor:
        # index_put is out of place, so the graph from the valid positions back to the logits is kept.
        return values.new_zeros(batch, length).index_put((rows, cols), values)

    outputs: tuple[torch.Tensor, ...] = (scatter(logprob_v), scatter(entropy_v))
    if not entropy_grad:
        outputs = (outputs[0], outputs[1].detach())
    if return_sum_sq_probs:
        outputs = (*outputs, scatter(sum_sq_v).detach())
    return outputs


@torch.no_grad()
def row_logprobs_and_entropy(
    logits: torch.Tensor,
    tokens: torch.Tensor,
    temperature: float = 1.0,
    chunk_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Log-prob of `tokens`, full-vocabulary entropy and Σπ² for rows of logits, without gradients.

    The per-position statistics of `token_logprobs_and_entropy` (PAPER.md "Notation", the log π of Eq. 2 and
    Eq. 5's Σπ²) for one [N,V] slice, e.g. the logits one decode step of `generate` makes: the same chunked
    code (`_chunk_stats`), so a decode step's values equal a full forward's up to the rounding of the logits.

    Args:
        logits: [N,V] any float dtype (upcast to fp32 a chunk at a time; never modified).
        tokens: [N] int, the sampled token of each row.
        temperature: the sampling temperature T (statistics of softmax(logits / T)); finite and > 0.
        chunk_size: rows per chunk; None: `default_chunk_size(V, logits.device)`.

    Returns:
        (logprob [N] fp32, entropy [N] fp32, sum_sq_probs [N] float64).
    """
    if logits.dim() != 2 or tokens.shape != logits.shape[:1]:
        raise ValueError(
            f"logits must be [N,V] and tokens [N]; got {tuple(logits.shape)} and {tuple(tokens.shape)}"
        )
    if chunk_size is None:
        chunk_size = default_chunk_size(logits.shape[-1], logits.device)
    _check_inputs(logits[None], tokens[None], tokens[None] >= 0, chunk_size, float(temperature))
    n = logits.shape[0]
    logprob = torch.zeros(n, dtype=torch.float32, device=logits.device)
    entropy = torch.zeros_like(logprob)
    sum_sq = torch.zeros(n, dtype=torch.float64, device=logits.device)
    for start in range(0, n, chunk_size):
        span = slice(start, min(start + chunk_size, n))
        chunk = logits[span].to(dtype=torch.float32, copy=True)
        if temperature != 1.0:
            chunk.div_(temperature)
        _, logprob[span], entropy[span], sum_sq[span] = _chunk_stats(chunk, tokens[span].long(), True)
    return logprob, entropy, sum_sq


def group_entropy_stats(
    entropy: torch.Tensor, response_mask: torch.Tensor, group_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean and population standard deviation of token entropy over each group's valid tokens.

    PAPER.md §5 step 1 (µ_H, σ_H of "the sampled group": all valid tokens of its G responses) and
    Appendix B.1 (the group mean is the high/low entropy threshold). Computed in float64.

    Args:
        entropy: [B,T] token entropies (B = prompts × G, each group's rows contiguous).
        response_mask: [B,T] bool or 0/1.
        group_size: G.

    Returns:
        (mean [P], std [P], count [P], constant [P] bool) with P = B / G. `std` is the population standard
        deviation (divide by the token count); `count` is the number of valid tokens; `constant` is True
        when the group has at most one valid token or all its valid entropies are exactly equal (σ_H = 0
        without rounding noise). Groups without valid tokens have mean 0 and std 0.
    """
    batch, length = entropy.shape
    if group_size < 1 or batch % group_size != 0:
        raise ValueError(f"group_size {group_size} must be >= 1 and divide the batch size {batch}")
    groups = batch // group_size
    valid = (response_mask != 0).reshape(groups, group_size * length)
    values = entropy.detach().double().reshape(groups, group_size * length)
    count = valid.sum(dim=1)
    safe_count = count.clamp(min=1).double()
    mean = torch.where(valid, values, 0.0).sum(dim=1) / safe_count
    deviation = torch.where(valid, values - mean[:, None], 0.0)
    std = (deviation.square().sum(dim=1) / safe_count).sqrt()
    big = torch.finfo(torch.float64).max
    group_max = torch.where(valid, values, -big).amax(dim=1)
    group_min = torch.where(valid, values, big).amin(dim=1)
    constant = (count <= 1) | (group_max == group_min)
    return mean, torch.where(constant, 0.0, std), count, constant
