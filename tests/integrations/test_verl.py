"""eapo.integrations.verl: losses equal verl's, exact group shaping on the driver, and the import hooks.

verl 0.9.1 pins transformers < 5.11, so it lives in its own environment (docs/integrations.md): these
tests are skipped where verl does not import, e.g. in eapo's main environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("verl", reason="verl is not installed here (it needs its own env: docs/integrations.md)")
pytest.importorskip(
    "transfer_queue", reason="verl's v1 trainer needs TransferQueue: pip install 'verl[verl-core]'"
)

import torch
from tensordict import NonTensorData, NonTensorStack, TensorDict
from verl.trainer.ppo.core_algos import POLICY_LOSS_REGISTRY, compute_policy_loss_vanilla
from verl.workers.config import ActorConfig

from eapo.core import QUADRANTS, policy_loss, shape_advantages, token_advantages
from eapo.errors import ConfigError, DataError
from eapo.integrations import verl as eapo_verl

GROUP = 4
AGG_MODES = [
    "token-mean",
    "token-sum",
    "seq-mean-token-mean",
    "seq-mean-token-sum",
    "seq-mean-token-sum-norm",
]


def actor_config() -> ActorConfig:
    return ActorConfig(
        strategy="fsdp",
        rollout_n=GROUP,
        ppo_micro_batch_size_per_gpu=2,
        clip_ratio_low=0.2,
        clip_ratio_high=0.28,
    )


def random_batch(seed: int = 0, rows: int = 2 * GROUP, length: int = 7) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, length + 1, (rows,), generator=generator)
    mask = (torch.arange(length)[None, :] < lengths[:, None]).float()
    old = -torch.rand(rows, length, generator=generator) * 3
    # Log-ratios up to ±1.5 so both clip sides and verl's dual clip (ratio > 3, Â < 0) are exercised.
    new = old + (torch.rand(rows, length, generator=generator) - 0.5) * 3
    sequence_adv = torch.randn(rows, generator=generator)
    return {
        "old": old,
        "new": new,
        "mask": mask,
        "advantages": token_advantages(sequence_adv, mask),
        "entropy": torch.rand(rows, length, generator=generator) * 2,
        "weights": torch.rand(rows, length, generator=generator) * 2,
    }


@pytest.mark.parametrize("agg_mode", AGG_MODES)
@pytest.mark.parametrize("distributed", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_registered_loss_equals_verl_vanilla(agg_mode: str, distributed: bool, weighted: bool) -> None:
    batch = random_batch()
    config = actor_config()
    if distributed:  # this micro-batch as one rank's share of a 2-rank global batch
        config.global_batch_info.update(
            dp_size=2,
            batch_num_tokens=int(batch["mask"].sum()) * 2 + 3,
            global_batch_size=19,
            loss_scale_factor=9,
        )
    weights = batch["weights"] if weighted else None
    args = (batch["old"], batch["new"], batch["advantages"], batch["mask"], agg_mode, config, weights)
    verl_loss, verl_metrics = compute_policy_loss_vanilla(*args)
    eapo_loss, eapo_metrics = POLICY_LOSS_REGISTRY["eapo"](*args)
    assert float(eapo_loss) == pytest.approx(float(verl_loss), rel=1e-6, abs=1e-6)
    for key in ("actor/pg_clipfrac", "actor/ppo_kl", "actor/pg_clipfrac_lower"):
        assert eapo_metrics[key] == pytest.approx(verl_metrics[key], abs=1e-6)


def test_core_grpo_loss_equals_verl_vanilla_token_mean() -> None:
    batch = random_batch(seed=1)
    verl_loss, _ = compute_policy_loss_vanilla(
        batch["old"], batch["new"], batch["advantages"], batch["mask"], "token-mean", actor_config()
    )
    core_loss, _, _ = policy_loss(
        batch["new"],
        batch["old"],
        batch["advantages"],
        batch["mask"],
        clip_low=0.2,
        clip_high=0.28,
        dual_clip=3.0,
    )
    assert float(core_loss) == pytest.approx(float(verl_loss), abs=1e-6)


def test_eapo_loss_on_shaped_advantages_equals_core_policy_loss() -> None:
    batch = random_batch(seed=2)
    shaped = shape_advantages("eapo", batch["advantages"], batch["entropy"], batch["mask"], GROUP)
    loss, _ = POLICY_LOSS_REGISTRY["eapo"](
        batch["old"], batch["new"], shaped, batch["mask"], "token-mean", actor_config()
    )
    expected, _, _ = policy_loss(
        batch["new"], batch["old"], shaped, batch["mask"], clip_low=0.2, clip_high=0.28, dual_clip=3.0
    )
    assert float(loss) == pytest.approx(float(expected), abs=1e-6)


def test_grouping_by_uid_matches_contiguous_groups() -> None:
    batch = random_batch(seed=3)
    expected = shape_advantages(
        "eapo", batch["advantages"], batch["entropy"], batch["mask"], GROUP, alpha=0.5
    )
    uids = [f"prompt-{row // GROUP}" for row in range(2 * GROUP)]
    order = torch.randperm(2 * GROUP, generator=torch.Generator().manual_seed(0))  # verl's balance_batch
    shaped, metrics = eapo_verl.shape_grouped_advantages(
        [uids[i] for i in order],
        batch["advantages"][order],
        batch["entropy"][order],
        batch["mask"][order],
        "eapo",
        alpha=0.5,
    )
    torch.testing.assert_close(shaped, expected[order], atol=1e-6, rtol=0)
    assert sum(metrics[f"quadrant/{name}/share"] for name in (*QUADRANTS, "ZERO")) == pytest.approx(1.0)
    with pytest.raises(DataError, match="different sizes"):
        eapo_verl.shape_grouped_advantages(
            uids[:-1], batch["advantages"][:-1], batch["entropy"][:-1], batch["mask"][:-1], "eapo"
        )


class FakeQueue:
    """The two TransferQueue calls the eapo trainer makes, over an in-memory TensorDict."""

    def __init__(self, store: TensorDict) -> None:
        self.store = store
        self.written: TensorDict | None = None

    def kv_batch_get(self, keys: list[int], partition_id: str, select_fields: list[str]) -> TensorDict:
        return self.store.select(*select_fields)

    def kv_batch_put(self, keys: list[int], partition_id: str, fields: TensorDict) -> SimpleNamespace:
        self.written = fields
        return SimpleNamespace(keys=keys, partition_id=partition_id)


class QueuedBatch(SimpleNamespace):
    """verl's KVBatchMeta as far as the trainer step uses it: keys, partition and length."""

    def __len__(self) -> int:
        return len(self.keys)


class VerlTrainerStub:
    """Stands in for verl's PPOTrainer: its advantages are already in the queue."""

    def _compute_advantage(self, batch: Any, metrics: dict[str, float]) -> Any:
        metrics["verl/advantage"] = 1.0
        return batch


def test_trainer_step_shapes_the_queued_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    from omegaconf import OmegaConf

    batch = random_batch(seed=4)
    lengths = batch["mask"].sum(dim=1).long().tolist()
    uids = [f"p{row % 2}" for row in range(2 * GROUP)]  # groups interleaved, as after balancing

    def nested(values: torch.Tensor) -> torch.Tensor:
        return torch.nested.as_nested_tensor(
            [values[i, :n] for i, n in enumerate(lengths)], layout=torch.jagged
        )

    store = TensorDict(
        {
            "advantages": nested(batch["advantages"]),
            "entropy": nested(batch["entropy"]),
            "response_mask": nested(batch["mask"].long()),
            "rm_scores": nested(torch.zeros_like(batch["mask"])),
            "uid": NonTensorStack(*[NonTensorData(uid) for uid in uids]),
        },
        batch_size=[2 * GROUP],
    )
    queue = FakeQueue(store)
    monkeypatch.setattr(eapo_verl, "tq", queue)
    trainer = type("Trainer", (eapo_verl.EAPOAdvantageMixin, VerlTrainerStub), {})()
    trainer.config = OmegaConf.create(
        {
            "actor_rollout_ref": {"actor": {"policy_loss": {"loss_mode": "eapo", "eapo_alpha": 0.4}}},
            "algorithm": {},
        }
    )
    metrics: dict[str, float] = {}
    trainer._compute_advantage(QueuedBatch(keys=list(range(2 * GROUP)), partition_id="train"), metrics)

    expected, _ = eapo_verl.shape_grouped_advantages(
        uids, batch["advantages"], batch["entropy"], batch["mask"], "eapo", alpha=0.4
    )
    assert queue.written is not None
    written = queue.written["advantages"]
    for row, n in enumerate(lengths):
        torch.testing.assert_close(written[row], expected[row, :n])
    assert metrics["verl/advantage"] == 1.0 and "quadrant/PHR/share" in metrics


def test_shaper_settings_validate_the_policy_loss_section() -> None:
    assert eapo_verl.shaper_settings({"loss_mode": "eapo"}) == ("eapo", {"alpha": 0.2, "phi": 2.0})
    assert eapo_verl.shaper_settings({"loss_mode": "forking", "eapo_params": {"top_fraction": 0.3}}) == (
        "forking",
        {"top_fraction": 0.3},
    )
    with pytest.raises(ConfigError, match="loss_mode"):
        eapo_verl.shaper_settings({"loss_mode": "vanilla"})
    with pytest.raises(ConfigError, match="eapo_params"):
        eapo_verl.shaper_settings({"loss_mode": "forking", "eapo_params": {"alpha": 1.0}})


def test_loss_warns_when_advantages_were_not_shaped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eapo_verl, "_warned_unshaped", set())
    batch = random_batch(seed=5)
    with pytest.warns(UserWarning, match="trainer_mode=eapo"):
        POLICY_LOSS_REGISTRY["forking"](
            batch["old"], batch["new"], batch["advantages"], batch["mask"], "token-mean", actor_config()
        )


def test_hydra_target_builds_the_eapo_policy_loss_config() -> None:
    import verl
    from hydra import compose, initialize_config_dir
    from verl.utils.config import omega_conf_to_dataclass

    config_dir = os.path.join(os.path.dirname(verl.__file__), "trainer", "config")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        config = compose(
            config_name="ppo_trainer",
            overrides=[
                "trainer.v1.trainer_mode=eapo",
                "actor_rollout_ref.actor.strategy=fsdp",
                "actor_rollout_ref.rollout.n=8",
                "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=4",
                "actor_rollout_ref.actor.policy_loss.loss_mode=eapo",
                "actor_rollout_ref.actor.policy_loss._target_=eapo.integrations.verl.EAPOPolicyLossConfig",
                "+actor_rollout_ref.actor.policy_loss.eapo_alpha=0.3",
            ],
        )
    actor = omega_conf_to_dataclass(config.actor_rollout_ref.actor)
    assert isinstance(actor.policy_loss, eapo_verl.EAPOPolicyLossConfig)
    assert eapo_verl.shaper_settings(actor.policy_loss) == ("eapo", {"alpha": 0.3, "phi": 2.0})


def test_environment_hook_registers_losses_and_trainers_on_import_verl() -> None:
    code = (
        "import verl\n"
        "from verl.trainer.ppo.core_algos import POLICY_LOSS_REGISTRY\n"
        "from verl.trainer.ppo.v1 import get_trainer_cls\n"
        "names = {'eapo', 'forking', 'entro_adv', 'w_reinf', 'gtpo', 'quadrant'}\n"
        "assert names <= set(POLICY_LOSS_REGISTRY)\n"
        "print(get_trainer_cls('eapo').__name__)\n"
    )
    env = dict(os.environ, VERL_USE_EXTERNAL_MODULES="eapo.integrations.verl")
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "EAPOPPOTrainerSync" in result.stdout


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_verl_scores_at_the_sampling_temperature_as_eapo_does(temperature: float) -> None:
    """verl's engine divides the logits by the rollout temperature before its log-prob and entropy
    functions (`_scale_logits_by_temperature`); eapo.core at the same temperature gives the same numbers."""
    from verl.utils.torch_functional import entropy_from_logits, logprobs_from_logits
    from verl.workers.engine.fsdp.transformer_impl import _scale_logits_by_temperature

    from eapo.core import token_logprobs_and_entropy

    generator = torch.Generator().manual_seed(7)
    logits = torch.randn(3, 5, 11, generator=generator) * 3
    tokens = torch.randint(0, 11, (3, 5), generator=generator)
    scaled = _scale_logits_by_temperature(
        logits, torch.full((3, 1, 1), temperature), is_unit_temperature=temperature == 1.0
    )
    verl_logprobs = logprobs_from_logits(scaled, tokens)
    verl_entropy = entropy_from_logits(scaled)
    mask = torch.ones(3, 5, dtype=torch.bool)
    logprobs, entropy = token_logprobs_and_entropy(logits, tokens, mask, temperature=temperature)
    torch.testing.assert_close(logprobs, verl_logprobs, atol=1e-5, rtol=0)
    torch.testing.assert_close(entropy, verl_entropy, atol=1e-5, rtol=0)


class VerlMetricsStub(VerlTrainerStub):
    """verl's PPOTrainer's two steps the mixin extends; the actor's loss is already in the step's metrics."""

    def _compute_metrics(
        self, batch: Any, metrics: dict[str, float], timing_raw: Any, global_steps: int, epoch: int
    ) -> None:
        metrics["actor/pg_loss"] = 0.0


def test_one_fixed_batch_gives_the_same_dump_and_quadrant_table_as_eapo_train(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The verl part of #22's cross-host test: verl's batch (rows interleaved by balance_batch, in the
    TransferQueue as nested tensors) gives the dump and `eapo quadrants` table of `eapo train`."""
    from omegaconf import OmegaConf

    from eapo.analysis.quadrants import analyze_quadrants
    from eapo.train.dumps import load_dump
    from eapo.train.logging import read_metrics

    from .fixed_batch import GROUP as FIXED_GROUP
    from .fixed_batch import (
        PROMPT_IDS,
        assert_same_dump,
        assert_same_quadrant_tables,
        eapo_train_run,
        expected_dump,
        fixed_batch,
    )

    batch, reference = fixed_batch(), expected_dump()
    mask = batch["response_mask"]
    order = torch.tensor([0, 4, 1, 5, 2, 6, 3, 7])  # balance_batch interleaves the two groups
    lengths = mask.sum(dim=1).tolist()
    rm_scores = torch.zeros(mask.shape)
    rm_scores[torch.arange(len(lengths)), torch.tensor(lengths) - 1] = batch[
        "rewards"
    ]  # verl: at the last token

    def nested(values: torch.Tensor, rows: list[int] | None = None) -> torch.Tensor:
        rows = rows or [lengths[i] for i in order.tolist()]
        return torch.nested.as_nested_tensor([values[i, :n] for i, n in enumerate(rows)], layout=torch.jagged)

    queued = {name: value[order] for name, value in reference.items() if isinstance(value, torch.Tensor)}
    store = TensorDict(
        {
            "advantages": nested(queued["advantages"]),  # verl's GRPO estimate (eps 1e-6, as eapo's)
            "entropy": nested(queued["entropy"]),
            "old_log_probs": nested(queued["logprobs"]),
            "responses": nested(queued["response_ids"]),
            "response_mask": nested(queued["response_mask"].long()),
            "rm_scores": nested(rm_scores[order]),
            "prompts": nested(PROMPT_IDS[order], [PROMPT_IDS.shape[1]] * len(order)),
            "uid": NonTensorStack(*[NonTensorData(f"prompt-{int(row) // FIXED_GROUP}") for row in order]),
        },
        batch_size=[len(order)],
    )
    queue = FakeQueue(store)
    monkeypatch.setattr(eapo_verl, "tq", queue)
    trainer = type("Trainer", (eapo_verl.EAPOAdvantageMixin, VerlMetricsStub), {})()
    trainer.global_steps = 1
    trainer.config = OmegaConf.create(
        {
            "actor_rollout_ref": {
                "actor": {"policy_loss": {"loss_mode": "eapo"}},
                "rollout": {"n": FIXED_GROUP, "temperature": 1.0},
                "model": {"path": "tiny"},
            },
            "algorithm": {},
            "trainer": {"eapo_dump_every": 1, "default_local_dir": str(tmp_path / "verl-run")},
        }
    )
    metrics: dict[str, float] = {}
    queued_batch = QueuedBatch(keys=list(range(len(order))), partition_id="train")
    trainer._compute_advantage(queued_batch, metrics)
    trainer._compute_metrics(queued_batch, metrics, {}, global_steps=1, epoch=0)

    verl_dir = tmp_path / "verl-run"
    dump = load_dump(verl_dir / "rollouts" / "step_000001.safetensors")
    assert dump["host"] == "verl" and "sum_sq_probs" not in dump
    assert_same_dump(dump, reference)
    eapo_dir = eapo_train_run(tmp_path, monkeypatch)
    assert_same_dump(load_dump(eapo_dir / "rollouts" / "step_000001.safetensors"), reference)
    verl_row = read_metrics(verl_dir)[0]
    eapo_row = read_metrics(eapo_dir)[0]
    shared = [k for k in verl_row if k.startswith("quadrant/") and k in eapo_row]
    assert len(shared) == 5 * 5  # count, share, mean_entropy, mean_abs_advantage, mean_abs_shaped_adv
    for key in [*shared, "reward/mean", "entropy/mean", "advantage/mean_abs", "advantage/shaped_mean_abs"]:
        assert verl_row[key] == pytest.approx(eapo_row[key], abs=1e-6), key
    tables = [
        analyze_quadrants(run, out_dir=tmp_path / f"q-{run.name}", n_bootstrap=20)
        for run in (eapo_dir, verl_dir)
    ]
    # verl's batch has no Σπ²: the Eq. 5 gradient-norm column is the one it cannot fill.
    assert_same_quadrant_tables(tables[1], tables[0], skip=("grad_share",))
    assert tables[0]["entropy_information"] == tables[1]["entropy_information"]


def test_overrides_file_composes_with_verl_config(capsys: pytest.CaptureFixture[str]) -> None:
    """examples/verl/eapo_overrides.txt is valid for verl's Hydra config (what EAPO_CHECK_ONLY runs)."""
    import importlib.util

    examples = Path(__file__).resolve().parents[2] / "examples" / "verl"
    lines = (examples / "eapo_overrides.txt").read_text().splitlines()
    overrides = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    spec = importlib.util.spec_from_file_location("check_config", examples / "check_config.py")
    assert spec is not None and spec.loader is not None
    check_config = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check_config)
    check_config.main([*overrides, "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2"])
    out = capsys.readouterr().out
    assert "trainer: eapo -> EAPOPPOTrainerSync" in out
    assert "driver shaper: eapo {'alpha': 0.2, 'phi': 2.0}" in out
    assert "eapo run folder (+trainer.eapo_dump_every): every 10 steps" in out
    assert "TransferQueue storage units: 1" in out
