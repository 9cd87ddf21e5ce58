"""`train.trim_padding`: each update micro-batch cut to its own longest counted response.

A rollout is as wide as its longest response, so one response that runs to the length limit widens every
row of the update (on SmolLM2 such a step took ~4x as long). Cut per micro-batch, the update computes the
same loss and gradients up to float rounding: attention is causal, so the logits of the kept positions do not
depend on the cut columns, and those columns count no token.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch

import eapo.train.update as update_module
from eapo.tasks import RewardFn
from eapo.train.config import load_config
from eapo.train.trainer import Trainer
from eapo.train.update import build_optimizer, policy_update, used_width


def test_used_width_is_the_last_counted_column() -> None:
    mask = torch.zeros(3, 8, dtype=torch.bool)
    assert used_width(mask) == 1  # nothing counted: one column keeps the shapes valid
    mask[0, :3] = True
    mask[2, :5] = True
    assert used_width(mask) == 5
    mask[1, 7] = True
    assert used_width(mask) == 8


def test_trimmed_update_matches_the_padded_one(
    tmp_path: Path, parity_reward: RewardFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    values: dict[str, Any] = {
        "run": {"output_dir": str(tmp_path), "name": "trim"},
        "algo": {"name": "eapo"},
        "train": {"mini_batches": 2, "micro_batch_rows": 2, "lr": 3e-2},
    }
    trainer = Trainer(load_config("smoke", values), progress=False, reward_fn=parity_reward)
    batch = trainer._sample_and_score(trainer._next_problems()).batch
    old_logprobs, _, _ = trainer._old_scores(batch)
    width = batch.response_mask.shape[1]
    # Responses of different lengths (the smoke model's mostly run to the limit): row i counts its first
    # 2 + 3i mod width tokens, so most micro-batches need fewer columns than the rollout has.
    lengths = torch.tensor([(2 + 3 * i) % width + 1 for i in range(batch.response_mask.shape[0])])
    update_mask = batch.response_mask & (torch.arange(width)[None, :] < lengths[:, None])
    advantages = torch.where(update_mask, torch.linspace(-1.5, 1.5, len(lengths))[:, None], 0.0)

    widths: list[int] = []
    original = update_module.response_logits

    def recording(model: Any, sequences: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        widths.append(sequences.shape[1] - batch.prompt_length)
        return original(model, sequences, *args, **kwargs)

    monkeypatch.setattr(update_module, "response_logits", recording)
    outcomes = []
    for trim in (False, True):
        schedule = dataclasses.replace(trainer.config.train, trim_padding=trim)
        model = copy.deepcopy(trainer.model)
        optimizer, _ = build_optimizer(model, schedule)
        widths.clear()
        record = policy_update(
            model,
            optimizer,
            batch,
            old_logprobs,
            None,
            advantages,
            update_mask,
            algorithm=trainer.algorithm,
            schedule=schedule,
            temperature=trainer.config.sampling.temperature,
            autocast=trainer.autocast,
            max_len=trainer.config.sampling.max_new_tokens,
        )
        params = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        outcomes.append((record, params, list(widths)))
    (padded, padded_params, padded_widths), (trimmed, trimmed_params, trimmed_widths) = outcomes
    assert set(padded_widths) == {width}
    assert max(trimmed_widths) <= width and min(trimmed_widths) < width  # it did cut
    assert padded.counted_tokens == trimmed.counted_tokens
    assert trimmed.mini_batch_losses == pytest.approx(padded.mini_batch_losses, rel=1e-5, abs=1e-7)
    assert trimmed.grad_norms == pytest.approx(padded.grad_norms, rel=1e-5)
    torch.testing.assert_close(trimmed.per_token_loss, padded.per_token_loss, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(trimmed.clip_counts, padded.clip_counts)
    # Adam's first step turns rounding into visible moves only where |g| is far below eps (see the
    # micro-batch test in test_schedule.py): compared to 1e-5 of a step of ~lr = 3e-2.
    torch.testing.assert_close(trimmed_params, padded_params, atol=1e-5, rtol=1e-5)
    start = torch.cat([p.detach().reshape(-1) for p in trainer.model.parameters()])
    assert float((padded_params - start).abs().max()) > 0  # the update did move the weights
