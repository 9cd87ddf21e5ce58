"""eapo.integrations.trl: EAPOTrainer trains, shapes whole groups, and matches TRL's and eapo's losses."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("trl", reason="TRL is not installed (pip install 'eapo[trl]')")

import torch
from datasets import Dataset
from transformers import PreTrainedModel
from trl import GRPOTrainer

from eapo.core import QUADRANTS, policy_loss, shape_advantages, token_advantages, token_logprobs_and_entropy
from eapo.errors import ConfigError
from eapo.integrations.trl import EAPOConfig, EAPOTrainer, rollout_scores

GROUP = 4


def make_config(tmp_path: Path, **overrides: Any) -> EAPOConfig:
    settings: dict[str, Any] = {
        "output_dir": str(tmp_path / "out"),
        "use_cpu": True,
        "bf16": False,
        "report_to": "none",
        "num_generations": GROUP,
        "per_device_train_batch_size": GROUP,
        "max_completion_length": 6,
        "max_steps": 2,
        "logging_steps": 1,
        "save_strategy": "no",
        "learning_rate": 1e-3,
        "gradient_checkpointing": False,
    }
    settings.update(overrides)
    return EAPOConfig(**settings)


def count_ones(completions: list[str], **_: object) -> list[float]:
    """A reward with variance inside most groups of a random model: how many '1' tokens it wrote."""
    return [float(completion.split().count("1")) for completion in completions]


def make_trainer(tmp_path: Path, model_and_tokenizer: tuple[Any, Any], **overrides: Any) -> EAPOTrainer:
    model, tokenizer = model_and_tokenizer
    dataset = Dataset.from_dict({"prompt": ["1 + 2 =", "3 + 4 =", "a b", "c d"]})
    return EAPOTrainer(
        model=model,
        reward_funcs=count_ones,
        args=make_config(tmp_path, **overrides),
        train_dataset=dataset,
        processing_class=tokenizer,
    )


def test_eapo_trainer_trains_two_steps_and_logs_quadrants(
    tmp_path: Path, tiny_model_and_tokenizer: tuple[Any, Any]
) -> None:
    trainer = make_trainer(tmp_path, tiny_model_and_tokenizer)
    assert isinstance(trainer.model, PreTrainedModel)  # TRL types it Optional
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.train()
    steps = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(steps) == 2
    for entry in steps:
        assert math.isfinite(entry["loss"])
        shares = [entry[f"quadrant/{name}/share"] for name in (*QUADRANTS, "ZERO")]
        assert sum(shares) == pytest.approx(1.0)
        for name in QUADRANTS:
            assert math.isfinite(entry[f"quadrant/{name}/loss"])
            assert entry[f"quadrant/{name}/mean_entropy"] >= 0.0
            assert entry[f"quadrant/{name}/mean_abs_shaped_adv"] >= 0.0
    moved = sum(
        float((p.detach() - b).abs().sum()) for p, b in zip(trainer.model.parameters(), before, strict=True)
    )
    assert moved > 0.0


def test_config_rejects_what_the_trainer_does_not_support(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="eapo_algo"):
        make_config(tmp_path, eapo_algo="nope")
    with pytest.raises(ConfigError, match="loss_type"):
        make_config(tmp_path, loss_type="cispo")
    with pytest.raises(ConfigError, match="top_entropy_quantile"):
        make_config(tmp_path, top_entropy_quantile=0.2)
    with pytest.raises(ConfigError, match="eapo_params"):
        make_config(tmp_path, eapo_algo="forking", eapo_params={"alpha": 1.0})
    assert make_config(
        tmp_path, eapo_algo="forking", eapo_params={"top_fraction": 0.3}
    ).eapo_shaper_kwargs() == {"top_fraction": 0.3}


def loss_inputs(trainer: EAPOTrainer, seed: int = 0) -> dict[str, torch.Tensor]:
    """A micro-batch of 2 groups × GROUP rows with ragged completions, old log-probs off by a little."""
    generator = torch.Generator().manual_seed(seed)
    assert isinstance(trainer.model, PreTrainedModel)  # TRL types it Optional
    rows, prompt_len, completion_len = 2 * GROUP, 3, 6
    vocab = trainer.model.config.vocab_size
    prompt_ids = torch.randint(3, vocab, (rows, prompt_len), generator=generator)
    completion_ids = torch.randint(3, vocab, (rows, completion_len), generator=generator)
    lengths = torch.randint(1, completion_len + 1, (rows,), generator=generator)
    completion_mask = (torch.arange(completion_len)[None, :] < lengths[:, None]).long()
    input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
    with torch.no_grad():
        logits = trainer.model(input_ids=input_ids).logits[:, prompt_len - 1 : -1]
    logprobs, _ = token_logprobs_and_entropy(logits, completion_ids, completion_mask)
    noise = 0.3 * torch.randn(logprobs.shape, generator=generator)
    return {
        "prompt_ids": prompt_ids,
        "prompt_mask": torch.ones_like(prompt_ids),
        "completion_ids": completion_ids,
        "completion_mask": completion_mask,
        "advantages": torch.randn(rows, generator=generator),
        "old_per_token_logps": logprobs + noise,
        "ref_per_token_logps": logprobs - noise,
        "num_items_in_batch": completion_mask.sum().float(),
    }


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo", "dapo"])
@pytest.mark.parametrize("training", [True, False])
def test_grpo_algo_equals_trl_loss(
    tmp_path: Path, tiny_model_and_tokenizer: tuple[Any, Any], loss_type: str, training: bool
) -> None:
    trainer = make_trainer(tmp_path, tiny_model_and_tokenizer, eapo_algo="grpo", use_bias_correction_kl=False)
    assert isinstance(trainer.model, PreTrainedModel)  # TRL types it Optional
    # Set after construction: beta > 0 at construction would make TRL load a reference model by name.
    trainer.beta = 0.04
    trainer.loss_type = loss_type
    trainer.current_gradient_accumulation_steps = 2
    trainer.model.train(training)
    inputs = loss_inputs(trainer)
    trl_loss = GRPOTrainer._compute_loss(trainer, trainer.model, dict(inputs))
    eapo_inputs = dict(inputs, advantages=token_advantages(inputs["advantages"], inputs["completion_mask"]))
    eapo_loss = trainer._compute_loss(trainer.model, eapo_inputs)
    assert float(eapo_loss) == pytest.approx(float(trl_loss), abs=1e-6)


def test_eapo_loss_equals_core_policy_loss_on_shaped_advantages(
    tmp_path: Path, tiny_model_and_tokenizer: tuple[Any, Any]
) -> None:
    trainer = make_trainer(tmp_path, tiny_model_and_tokenizer)  # dapo, the paper's token-mean
    assert isinstance(trainer.model, PreTrainedModel)  # TRL types it Optional
    trainer.model.eval()
    inputs = loss_inputs(trainer, seed=1)
    mask = inputs["completion_mask"]
    input_ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
    logits = trainer.model(input_ids=input_ids).logits[:, 2:-1]
    logprobs, entropy = token_logprobs_and_entropy(logits, inputs["completion_ids"], mask)
    shaped = shape_advantages("eapo", token_advantages(inputs["advantages"], mask), entropy, mask, GROUP)
    expected, _, _ = policy_loss(
        logprobs, inputs["old_per_token_logps"], shaped, mask, clip_low=0.2, clip_high=0.28, agg="token_mean"
    )
    shaped_inputs = dict(inputs, advantages=shaped)
    adapter = trainer._compute_loss(trainer.model, dict(shaped_inputs))
    trl_with_shaped = GRPOTrainer._compute_loss(trainer, trainer.model, dict(shaped_inputs))
    assert float(adapter) == pytest.approx(float(expected), abs=1e-6)
    assert float(trl_with_shaped) == pytest.approx(float(expected), abs=1e-6)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_generation_step_shapes_whole_groups_with_rollout_entropy(
    tmp_path: Path,
    tiny_model_and_tokenizer: tuple[Any, Any],
    monkeypatch: pytest.MonkeyPatch,
    temperature: float,
) -> None:
    trainer = make_trainer(tmp_path, tiny_model_and_tokenizer, temperature=temperature)
    assert isinstance(trainer.model, PreTrainedModel)  # TRL types it Optional
    trainer.model.train()
    batch = loss_inputs(trainer, seed=2)
    del batch["old_per_token_logps"], batch["ref_per_token_logps"]
    monkeypatch.setattr(GRPOTrainer, "_generate_and_score_completions", lambda self, inputs: dict(batch))
    output = trainer._generate_and_score_completions([])

    mask = batch["completion_mask"]
    logprobs, rollout_entropy, sum_sq = rollout_scores(trainer, batch, "train")
    input_ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
    with torch.no_grad():
        logits = trainer.model(input_ids=input_ids).logits[:, 2:-1] / temperature
        # TRL's own scoring (its fused LM head divides by self.temperature) gives the same numbers.
        trl_logprobs, trl_entropy, _ = trainer._get_per_token_logps_and_entropies(
            trainer.model, input_ids, torch.ones_like(input_ids), mask.size(1), compute_entropy=True
        )
    expected_logprobs, entropy = token_logprobs_and_entropy(logits, batch["completion_ids"], mask)
    # The entropy of softmax(z / T), the distribution TRL sampled from; Σπ² of the same distribution.
    torch.testing.assert_close(rollout_entropy, entropy * mask, atol=1e-5, rtol=0)
    torch.testing.assert_close(logprobs, expected_logprobs * mask, atol=1e-5, rtol=0)
    torch.testing.assert_close(rollout_entropy, trl_entropy.float() * mask, atol=1e-5, rtol=0)
    torch.testing.assert_close(logprobs, trl_logprobs.float() * mask, atol=1e-5, rtol=0)
    probs = torch.softmax(logits.double(), dim=-1)
    torch.testing.assert_close(sum_sq, probs.square().sum(-1) * mask, atol=1e-6, rtol=0)
    expected = shape_advantages(
        "eapo", token_advantages(batch["advantages"], mask), rollout_entropy, mask, GROUP
    )
    torch.testing.assert_close(output["advantages"], expected, atol=1e-6, rtol=0)
    assert output["eapo_quadrant"].shape == mask.shape
    assert bool(((output["eapo_quadrant"] >= 0) == (mask != 0)).all())
