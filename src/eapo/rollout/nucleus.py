"""Temperature and nucleus (top-p) sampling without sorting the vocabulary.

`transformers`' top-p warper sorts every row's V logits at every decode step; with SmolLM2's 49,152-token
vocabulary that sort took 30-56% of a decode step on the CPUs we measured (benchmarks/step_bound.py,
`top_p_share`). The nucleus of a trained policy is small (a few tokens at most positions), so the
`candidates` most likely tokens (`torch.topk`, no full sort) almost always contain it; a row whose
candidates hold less than `top_p` of the probability tries `WIDE_CANDIDATES`, and only then the full sort.
The kept set is the warper's: a token stays iff the probability of the tokens ranked above it is below
`top_p` (the most likely token always stays), so sampling draws from the same distribution.
"""

from __future__ import annotations

import torch

__all__ = ["NucleusSampling", "nucleus_draw", "top_p_filter"]


def _full_sort_filter(scores: torch.Tensor, top_p: float) -> torch.Tensor:
    """The reference rule on every token (what `transformers.TopPLogitsWarper` computes): sort ascending,
    drop tokens whose cumulative probability from the least likely one is <= 1 - top_p, keep the top one."""
    sorted_scores, order = torch.sort(scores, descending=False)
    cumulative = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
    remove_sorted = cumulative <= (1 - top_p)
    remove_sorted[..., -1:] = False
    remove = remove_sorted.scatter(1, order, remove_sorted)
    return scores.masked_fill(remove, float("-inf"))


# The second tier of candidates, for rows whose nucleus is wider than `candidates`: at T = 1.4 on SmolLM2
# 8.6% of the rows x decode steps had a nucleus wider than 64 tokens and none wider than 4,096 (the widest
# 1,892); topk of 4,096 costs about a sixth of a full sort of 49,152 per row.
WIDE_CANDIDATES = 4096


def _nucleus_tiers(
    probs: torch.Tensor, top_p: float, candidates: int
) -> tuple[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]], torch.Tensor]:
    """Groups of rows whose nucleus lies inside their k most likely tokens, for k = `candidates`, then
    `WIDE_CANDIDATES`: (rows, top_probs, top_index, keep) with the top-k sorted most likely first and `keep`
    marking the nucleus, whose rule is the warper's (a token stays iff the probability ranked above it is
    below `top_p`; the most likely one always stays). Returned with the rows no tier held, which are left
    for the full sort (processed after the tiers, so the draws keep their order)."""
    vocab = probs.shape[-1]
    tiers = sorted({min(max(int(candidates), 1), vocab), min(max(int(candidates), WIDE_CANDIDATES), vocab)})
    rows = torch.arange(probs.shape[0], device=probs.device)
    groups = []
    for tier, k in enumerate(tiers):
        top_probs, top_index = (probs if tier == 0 else probs[rows]).topk(k, dim=-1)
        # The nucleus ends inside the candidates when they hold >= top_p: every later token has >= top_p
        # above it.
        inside = top_probs.sum(dim=-1) >= top_p if k < vocab else torch.ones_like(rows, dtype=torch.bool)
        keep = (top_probs.cumsum(dim=-1) - top_probs) < top_p
        keep[:, 0] = True
        groups.append((rows[inside], top_probs[inside], top_index[inside], keep[inside]))
        rows = rows[~inside]
        if rows.numel() == 0:
            break
    return groups, rows


def top_p_filter(scores: torch.Tensor, top_p: float, candidates: int = 64) -> torch.Tensor:
    """`scores` [rows, V] (logits already divided by the temperature) with every token outside the row's
    nucleus set to -inf. Each row is filtered from its `candidates` most likely tokens when they hold at
    least `top_p` of the probability, else from its `WIDE_CANDIDATES`, else by a full sort."""
    if top_p >= 1.0:
        return scores
    filtered = torch.full_like(scores, float("-inf"))
    tiers, rest = _nucleus_tiers(scores.float().softmax(dim=-1), top_p, candidates)
    for rows, _, top_index, keep in tiers:
        if rows.numel() == 0:
            continue
        at = (rows.unsqueeze(1), top_index)  # only the candidates' entries are read and written
        filtered[at] = torch.where(keep, scores[at], torch.full_like(keep, float("-inf"), dtype=scores.dtype))
    if rest.numel() > 0:
        filtered[rest] = _full_sort_filter(scores[rest], top_p)
    return filtered


def nucleus_draw(scores: torch.Tensor, top_p: float, candidates: int = 64) -> torch.Tensor:
    """One token per row [rows] drawn from the row's nucleus of softmax(`scores`) (scores already divided by
    the temperature), with probabilities renormalised over the nucleus: the distribution `top_p_filter`
    leaves. Each row is drawn among the candidates of the tier that holds its nucleus (a multinomial over at
    most `WIDE_CANDIDATES` weights), else from the full-sort filter.

    Not the tokens `generate` would draw under the same seed: its multinomial draws one exponential per
    vocabulary entry (argmax_v p_v / q_v), and those [rows, V] draws are what this skips (about 60 ms of a
    ~300 ms SmolLM2 decode step at 64 rows on one CPU core)."""
    probs = scores.float().softmax(dim=-1)
    if top_p >= 1.0:
        return torch.multinomial(probs, 1).squeeze(1)
    tokens = torch.empty(scores.shape[0], dtype=torch.long, device=scores.device)
    tiers, rest = _nucleus_tiers(probs, top_p, candidates)
    for rows, top_probs, top_index, keep in tiers:
        if rows.numel() == 0:
            continue
        choice = torch.multinomial(top_probs * keep, 1)  # multinomial renormalises the kept weights
        tokens[rows] = top_index.gather(1, choice).squeeze(1)
    if rest.numel() > 0:
        wide = _full_sort_filter(scores[rest].float(), top_p).softmax(dim=-1)
        tokens[rest] = torch.multinomial(wide, 1).squeeze(1)
    return tokens


class NucleusSampling:
    """A `generate` logits processor that divides by the temperature and applies `top_p_filter`; used with
    the generation config's own temperature and top-p off, so it replaces those two warpers.

    With `draw`, it draws the token itself (`nucleus_draw`) and returns scores that are -inf except at that
    token, for `generate` to pick by argmax (greedy mode): the full-vocabulary softmax and multinomial of
    `generate`'s sampling step are skipped. The distribution is the same; the random stream is not, so the
    draws differ from those of transformers' sampling under the same seed.
    """

    def __init__(self, temperature: float, top_p: float, candidates: int = 64, draw: bool = False) -> None:
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.candidates = int(candidates)
        self.draw = bool(draw)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        scaled = scores / self.temperature  # the same operation as transformers' temperature warper
        if not self.draw:
            return top_p_filter(scaled, self.top_p, self.candidates)
        tokens = nucleus_draw(scaled, self.top_p, self.candidates)
        drawn = torch.full_like(scores, float("-inf"))
        return drawn.scatter_(1, tokens.unsqueeze(1), 0.0)
