"""Temperature and nucleus (top-p) sampling without sorting the vocabulary.

`transformers`' top-p warper sorts every row's V logits at every decode step; with SmolLM2's 49,152-token
vocabulary that sort took 30-56% of a decode step on the CPUs we measured (benchmarks/step_bound.py,
`top_p_share`). The nucleus of a trained policy is small (a few tokens at most positions), so the
`candidates` most likely tokens (`torch.topk`, no full sort) almost always contain it; a row whose
candidates hold less than `top_p` of the probability falls back to the full sort. The kept set is the
warper's: a token stays iff the probability of the tokens ranked above it is below `top_p` (the most likely
token always stays), so sampling draws from the same distribution.
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


def top_p_filter(scores: torch.Tensor, top_p: float, candidates: int = 64) -> torch.Tensor:
    """`scores` [rows, V] (logits already divided by the temperature) with every token outside the row's
    nucleus set to -inf. Rows whose `candidates` most likely tokens hold at least `top_p` of the
    probability are filtered from those candidates alone; the others by a full sort."""
    if top_p >= 1.0:
        return scores
    k = min(max(int(candidates), 1), scores.shape[-1])
    probs = scores.float().softmax(dim=-1)
    top_probs, top_index = probs.topk(k, dim=-1)  # sorted, most likely first
    mass_above = top_probs.cumsum(dim=-1) - top_probs
    keep = mass_above < top_p
    keep[:, 0] = True
    kept_scores = torch.where(keep, scores.gather(1, top_index), torch.full_like(top_probs, float("-inf")))
    filtered = torch.full_like(scores, float("-inf")).scatter(1, top_index, kept_scores.to(scores.dtype))
    # The nucleus ends inside the candidates when they hold >= top_p: every later token has >= top_p above.
    outside = top_probs.sum(dim=-1) < top_p
    if bool(outside.any()):
        rows = outside.nonzero().squeeze(1)
        filtered[rows] = _full_sort_filter(scores[rows], top_p)
    return filtered


def nucleus_draw(scores: torch.Tensor, top_p: float, candidates: int = 64) -> torch.Tensor:
    """One token per row [rows] drawn from the row's nucleus of softmax(`scores`) (scores already divided by
    the temperature), with probabilities renormalised over the nucleus: the distribution `top_p_filter`
    leaves, and the very token `generate`'s sampling step would draw from it under the same random state.

    `torch.multinomial(p, 1)` draws one exponential q_v ~ Exp(1) per vocabulary entry and returns
    argmax_v p_v / q_v. This function draws the same [rows, V] exponentials, so it consumes the random stream
    exactly as `generate` does, but takes the argmax over the row's `candidates` most likely tokens only
    (p_v is 0 outside the nucleus), skipping the second full-vocabulary softmax and the division over V.
    Rows whose nucleus is wider than the candidates use the full-sort filter and the full row."""
    probs = scores.float().softmax(dim=-1)
    exponentials = torch.empty_like(probs).exponential_()  # the draws torch.multinomial(probs, 1) makes
    if top_p >= 1.0:
        return (probs / exponentials).argmax(dim=-1)
    k = min(max(int(candidates), 1), scores.shape[-1])
    top_probs, top_index = probs.topk(k, dim=-1)
    keep = (top_probs.cumsum(dim=-1) - top_probs) < top_p
    keep[:, 0] = True
    kept_scores = torch.where(
        keep, scores.float().gather(1, top_index), torch.full_like(top_probs, float("-inf"))
    )
    # softmax of the filtered row restricted to its candidates: the tokens outside have probability 0.
    nucleus_probs = kept_scores.softmax(dim=-1)
    choice = (nucleus_probs / exponentials.gather(1, top_index)).argmax(dim=-1, keepdim=True)
    tokens = top_index.gather(1, choice).squeeze(1)
    outside = top_probs.sum(dim=-1) < top_p
    if bool(outside.any()):
        rows = outside.nonzero().squeeze(1)
        wide = _full_sort_filter(scores[rows].float(), top_p).softmax(dim=-1)
        tokens[rows] = (wide / exponentials[rows]).argmax(dim=-1)
    return tokens


class NucleusSampling:
    """A `generate` logits processor that divides by the temperature and applies `top_p_filter`; used with
    the generation config's own temperature and top-p off, so it replaces those two warpers.

    With `draw`, it draws the token itself (`nucleus_draw`) and returns scores that are -inf except at that
    token, for `generate` to pick by argmax (greedy mode): the full-vocabulary softmax and multinomial of
    `generate`'s sampling step are skipped. It draws the same tokens as transformers' sampling under the same
    seed (the same exponentials, see `nucleus_draw`).
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
