"""One fixed generation batch that the cross-host tests push through `eapo train`, TRL's and verl's adapters.

2 prompts × 4 responses, ragged lengths, mixed 0/1 rewards in both groups, and π_old's scores (log-probs,
entropy, Σπ²) fixed instead of computed, so that every host sees exactly the same numbers and any difference
in the dumps or the `eapo quadrants` tables comes from the host's bookkeeping. `expected_dump` is what every
host must write for it (the format of `eapo.train.dumps`): the GRPO advantage of PAPER.md Eq. 2 (eps 1e-6,
as eapo and verl compute it) and EAPO's shaping (Eq. 6–7, α = 0.2, φ = 2). `eapo_train_run` is one step of
`eapo train` on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from eapo.core import group_advantages, shape_advantages

GROUP = 4
ROWS = 2 * GROUP
LENGTH = 5
# The prompt every response answers (a token id valid in the smoke model and the tiny Llama).
PROMPT_IDS = torch.tensor([[3, 4, 5]]).repeat(2 * GROUP, 1)
TOKEN_TENSORS = ("response_mask", "entropy", "logprobs", "sum_sq_probs", "advantages", "shaped_advantages")


def fixed_batch() -> dict[str, Any]:
    """Response ids (in 3..9, valid in every test model's vocabulary), mask, rewards and π_old's scores."""
    generator = torch.Generator().manual_seed(2604)
    lengths = torch.tensor([5, 3, 4, 5, 2, 5, 4, 1])
    mask = torch.arange(LENGTH)[None, :] < lengths[:, None]
    entropy = (torch.rand(ROWS, LENGTH, generator=generator) * 2.0) * mask
    logprobs = -(torch.rand(ROWS, LENGTH, generator=generator) * 3.0) * mask
    sum_sq = (torch.rand(ROWS, LENGTH, generator=generator, dtype=torch.float64) * 0.5 + 0.1) * mask
    return {
        "response_ids": torch.randint(3, 10, (ROWS, LENGTH), generator=generator) * mask,
        "response_mask": mask,
        "rewards": torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0]),
        "entropy": entropy.float(),
        "logprobs": logprobs.float(),
        "sum_sq_probs": sum_sq,
    }


def expected_dump() -> dict[str, torch.Tensor]:
    """The token tensors every host's dump of `fixed_batch` holds (EAPO, group size 4)."""
    batch = fixed_batch()
    mask = batch["response_mask"]
    advantages = group_advantages(batch["rewards"], GROUP, "grpo")[0][:, None] * mask
    shaped = shape_advantages("eapo", advantages, batch["entropy"], mask, GROUP, alpha=0.2, phi=2.0)
    return {**batch, "advantages": advantages, "shaped_advantages": shaped}


def assert_same_dump(dump: dict[str, Any], reference: dict[str, Any], atol: float = 1e-6) -> None:
    """Token tensors, rewards and settings equal (to `atol`): what `eapo quadrants` and `report` read."""
    assert (dump["group_size"], dump["algo"], dump["temperature"]) == (GROUP, "eapo", 1.0)
    assert torch.equal(dump["response_mask"].bool(), reference["response_mask"].bool())
    assert torch.equal(dump["response_ids"] * dump["response_mask"], reference["response_ids"])
    torch.testing.assert_close(dump["rewards"].float(), reference["rewards"].float(), atol=atol, rtol=0)
    for key in TOKEN_TENSORS[1:]:
        if key == "sum_sq_probs" and "sum_sq_probs" not in dump:
            continue  # verl's batch has no Σπ²
        torch.testing.assert_close(dump[key].double(), reference[key].double(), atol=atol, rtol=0, msg=key)


def assert_same_quadrant_tables(
    summary: dict[str, Any], reference: dict[str, Any], atol: float = 1e-6, skip: tuple[str, ...] = ()
) -> None:
    """Two `eapo quadrants` summaries' per-quadrant tables agree to `atol` (None where both are None).

    `skip`: column prefixes a host cannot fill (verl has no Σπ², so no `grad_share`).
    """
    assert set(summary["quadrants"]) == set(reference["quadrants"])
    assert summary["steps"] == reference["steps"] and summary.get("tokens") == reference.get("tokens")
    for name, stats in reference["quadrants"].items():
        for key, value in stats.items():
            if skip and key.startswith(skip):
                continue
            other = summary["quadrants"][name][key]
            if value is None or other is None:
                assert value is other, (name, key, other, value)
            else:
                assert abs(other - value) <= atol, (name, key, other, value)


# The eapo trainer's reward function sees completions; each fixed response gets its fixed reward by name.
COMPLETION_REWARDS = {f"c{row}": float(r) for row, r in enumerate(fixed_batch()["rewards"].tolist())}


def _completion_reward(completion: str, problem: Any) -> float:
    return COMPLETION_REWARDS[completion]


def scores() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    batch = fixed_batch()
    return batch["logprobs"], batch["entropy"], batch["sum_sq_probs"]


def eapo_train_run(root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One step of `eapo train` (the smoke model) on the fixed batch: sampling and π_old's scores replaced."""
    import eapo.train.trainer as trainer_module
    from eapo.rollout import RolloutBatch
    from eapo.train.config import load_config

    batch = fixed_batch()
    mask = batch["response_mask"]

    def fixed_rollouts(
        model: Any, tokenizer: Any, prompts: list[str], group_size: int, *a: Any, **k: Any
    ) -> RolloutBatch:
        assert (len(prompts), group_size) == (2, GROUP)
        return RolloutBatch(
            sequences=torch.cat([PROMPT_IDS, batch["response_ids"]], dim=1),
            attention_mask=torch.cat([torch.ones_like(PROMPT_IDS), mask.long()], dim=1),
            prompt_length=PROMPT_IDS.shape[1],
            response_ids=batch["response_ids"],
            response_mask=mask,
            truncated=torch.zeros(mask.shape[0], dtype=torch.bool),
            completions=list(COMPLETION_REWARDS),
            prompt_index=torch.arange(2).repeat_interleave(GROUP),
            num_generated_tokens=int(mask.sum()),
        )

    monkeypatch.setattr(trainer_module, "generate_rollouts", fixed_rollouts)
    monkeypatch.setattr(trainer_module, "score_policy", lambda *args, **kwargs: scores())
    run = {"output_dir": str(root), "name": "eapo-run", "dump_rollouts_every": 1, "entropy_change_every": 0}
    config = load_config("smoke", {"algo": {"name": "eapo"}, "run": run, "train": {"steps": 1}})
    trainer = trainer_module.Trainer(config, progress=False, reward_fn=_completion_reward)
    trainer.logger.log(1, trainer.train_step().metrics)  # what `run()` logs, without its evaluations
    trainer.logger.close()
    return trainer.run_dir
