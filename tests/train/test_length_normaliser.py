"""Dr. GRPO's length normaliser is the generation budget, not the width of the step's batch.

`seq_mean_token_sum_norm` divides each response's token sum by a constant (Dr. GRPO, arXiv 2503.20783;
TRL's `dr_grpo`: sum / (B · max_completion_length)). A rollout's tensors are as wide as its longest
response, which changes from step to step, so the trainer must pass `sampling.max_new_tokens` rather than
let the loss read the width: one runaway response would otherwise quarter every other step's update.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import eapo.train.update as update_module
from eapo.core import policy_loss
from eapo.train.config import load_config
from eapo.train.trainer import train


def _loss(width: int, max_len: int | None) -> torch.Tensor:
    torch.manual_seed(0)
    lengths = torch.tensor([3, 5, 2, 4])
    mask = torch.arange(width)[None, :] < lengths[:, None]
    logprobs = -torch.rand(4, width)
    advantages = torch.tensor([1.0, -1.0, 0.5, -0.5])[:, None].expand(4, width)
    loss, _, _ = policy_loss(
        logprobs, logprobs, advantages, mask, agg="seq_mean_token_sum_norm", max_len=max_len
    )
    return loss


def test_the_budget_makes_the_loss_independent_of_padding() -> None:
    # Padding columns past every response (a wider batch) change nothing once the budget is given ...
    assert torch.equal(_loss(5, max_len=16), _loss(9, max_len=16))
    # ... whereas normalising by the width scales the loss with it.
    assert float(_loss(5, None)) == pytest.approx(float(_loss(9, None)) * 9 / 5)


def test_the_trainer_passes_the_generation_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []
    original = update_module.policy_loss

    def recording(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("max_len"))
        return original(*args, **kwargs)

    monkeypatch.setattr(update_module, "policy_loss", recording)
    config = load_config(
        "smoke",
        {
            "run": {"output_dir": str(tmp_path), "name": "dr"},
            "algo": {"name": "dr_grpo"},
            "train": {"steps": 1},
        },
    )
    train(config, progress=False)
    assert seen and set(seen) == {config.sampling.max_new_tokens}
