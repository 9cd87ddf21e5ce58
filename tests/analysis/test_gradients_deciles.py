"""`eapo gradients`: per-method Eq. 5 norms on one batch, their entropy-decile shares, its summary.json."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from eapo.analysis.gradients import (
    TAIL_BINS,
    analyze_gradients,
    decile_shares,
    gradient_norms,
    method_specs,
)
from eapo.core import SHAPERS, logit_grad_norm, token_logprobs_and_entropy
from eapo.train.dumps import write_dump


def _batch(seed: int = 0) -> dict[str, torch.Tensor]:
    """Two groups of G = 4 responses over a 12-token vocabulary, logits from peaked to flat."""
    generator = torch.Generator().manual_seed(seed)
    B, T, V = 8, 10, 12
    scale = torch.linspace(0.2, 6.0, T)[None, :, None]
    logits = torch.randn(B, T, V, generator=generator) * scale
    tokens = torch.distributions.Categorical(logits=logits).sample()
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, 7:] = False
    logprobs, entropy, sum_sq = token_logprobs_and_entropy(logits, tokens, mask, return_sum_sq_probs=True)
    rewards = torch.tensor([1.0, 0, 0, 1, 0, 1, 1, 1])
    grouped = rewards.view(2, 4)
    advantages = ((grouped - grouped.mean(1, keepdim=True)) / grouped.std(1, keepdim=True)).flatten()
    return {
        "advantages": advantages[:, None] * mask,
        "entropy": entropy,
        "mask": mask,
        "logprobs": logprobs,
        "sum_sq": sum_sq,
    }


def test_every_registered_shaper_is_a_method() -> None:
    specs = method_specs()
    assert sorted(shaper for shaper, _ in specs.values()) == sorted(SHAPERS)
    assert next(iter(specs)) == "grpo"
    assert any(label.startswith("quadrant (isolate") for label in specs)


def test_grpo_norms_equal_the_core_closed_form_and_shapers_change_only_the_advantage() -> None:
    b = _batch()
    norms = gradient_norms(
        b["advantages"], b["entropy"], b["mask"], b["logprobs"], b["sum_sq"], 4, method_specs()
    )
    expected = logit_grad_norm(b["advantages"], b["logprobs"], b["sum_sq"]) * b["mask"]
    assert torch.allclose(norms["grpo"], expected)
    assert (norms["grpo"][~b["mask"]] == 0).all()
    # Forking keeps only the top-20% entropy tokens: zero gradient elsewhere.
    assert (norms["forking"] > 0).sum() <= int(np.ceil(0.2 * int(b["mask"].sum()))) + 1
    # EAPO moves |Â| by at most ±10% (α/φ), so its norm stays within ±10% of GRPO's per token.
    ratio = norms["eapo"][norms["grpo"] > 0] / norms["grpo"][norms["grpo"] > 0]
    assert ratio.min() >= 0.9 - 1e-5 and ratio.max() <= 1.1 + 1e-5


def test_decile_shares_partition_each_method_total() -> None:
    rng = np.random.default_rng(0)
    entropy = rng.exponential(1.0, size=1000)
    flat = np.ones(1000)
    top_only = (entropy >= np.quantile(entropy, 0.8)).astype(float)
    table = decile_shares(entropy, {"grpo": flat, "top": top_only})
    assert table["share"]["grpo"] == pytest.approx([0.1] * 10)
    assert table["share"]["top"] == pytest.approx([0.0] * 8 + [0.5, 0.5])
    assert table["total_vs_grpo"]["top"] == pytest.approx(0.2)
    assert table["mean_entropy"] == sorted(table["mean_entropy"])
    # Percentile bins of unequal width look inside the top decile.
    tail = decile_shares(entropy, {"grpo": flat, "top": top_only}, TAIL_BINS)
    assert tail["share"]["grpo"] == pytest.approx([0.5, 0.4, 0.05, 0.04, 0.01])
    assert tail["share"]["top"] == pytest.approx([0.0, 0.5, 0.25, 0.2, 0.05])
    with pytest.raises(ValueError, match="bounds"):
        decile_shares(entropy, {"grpo": flat}, (0.5, 0.9))
    # Equal-count deciles even when many entropies tie at 0.
    tied = np.concatenate([np.zeros(600), rng.random(400)])
    table = decile_shares(tied, {"grpo": np.ones(1000)})
    assert table["share"]["grpo"] == pytest.approx([0.1] * 10)


def test_entropy_deciles_on_a_real_batch_put_grpo_signal_at_high_entropy() -> None:
    b = _batch(1)
    norms = gradient_norms(
        b["advantages"], b["entropy"], b["mask"], b["logprobs"], b["sum_sq"], 4, {"grpo": ("grpo", {})}
    )
    m = b["mask"]
    table = decile_shares(b["entropy"][m].numpy(), {"grpo": norms["grpo"][m].numpy()})
    # Eq. 5: the (1 − π_y) factor grows with entropy, so the top decile carries more than the bottom one.
    assert table["share"]["grpo"][-1] > table["share"]["grpo"][0]


def test_summary_json_is_strict_json_when_a_norm_is_nan(tmp_path: Path) -> None:
    """A non-finite token (here one NaN log-prob) makes its decile's share NaN; summary.json, which jq and
    pandas read, holds null there instead of a bare NaN (not JSON)."""
    b = _batch()
    b["logprobs"][0, 5] = float("nan")
    rewards = torch.tensor([1.0, 0, 0, 1, 0, 1, 1, 1])
    write_dump(
        tmp_path / "rollouts",
        1,
        host="eapo",
        algo="grpo",
        group_size=4,
        temperature=1.0,
        response_ids=torch.zeros(b["mask"].shape, dtype=torch.long),
        response_mask=b["mask"],
        rewards=rewards,
        entropy=b["entropy"],
        logprobs=b["logprobs"],
        advantages=b["advantages"],
        shaped_advantages=b["advantages"].clone(),
        sum_sq_probs=b["sum_sq"],
    )
    summary = analyze_gradients(tmp_path, progress=False)
    mean_norm = summary["table"]["mean_norm"]["grpo"]
    assert sum(math.isnan(v) for v in mean_norm) == 1  # the NaN is real: one decile's mean norm
    text = (tmp_path / "analysis" / "gradients" / "summary.json").read_text()
    written = json.loads(text, parse_constant=lambda name: pytest.fail(f"non-standard JSON constant {name}"))
    assert [v is None for v in written["table"]["mean_norm"]["grpo"]] == [math.isnan(v) for v in mean_norm]
    assert [v for v in written["table"]["mean_norm"]["grpo"] if v is not None] == pytest.approx(
        [v for v in mean_norm if not math.isnan(v)]
    )
