"""Compose a verl launch's Hydra overrides and build what eapo reads from them, on CPU, without launching.

    EAPO_CHECK_ONLY=1 bash examples/verl/run_qwen2.5_math_7b_eapo.sh
    python examples/verl/check_config.py actor_rollout_ref.actor.policy_loss.loss_mode=eapo ...

Checks that verl's config accepts the overrides, that the actor config builds (with eapo's
`EAPOPolicyLossConfig` when its `_target_` is set), that the eapo trainer is registered, and prints the
shaper and parameters the driver will apply.
"""

from __future__ import annotations

import os
import sys


def main(overrides: list[str]) -> None:
    os.environ.setdefault("VERL_USE_EXTERNAL_MODULES", "eapo.integrations.verl")
    import verl
    from hydra import compose, initialize_config_dir
    from verl.trainer.ppo.v1 import get_trainer_cls
    from verl.utils.config import omega_conf_to_dataclass

    from eapo.integrations.verl import eapo_dump_every, shaper_settings

    config_dir = os.path.join(os.path.dirname(verl.__file__), "trainer", "config")
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        config = compose(config_name="ppo_trainer", overrides=overrides)
    actor = omega_conf_to_dataclass(config.actor_rollout_ref.actor)
    trainer = get_trainer_cls(config.trainer.v1.trainer_mode)
    shaper, params = shaper_settings(actor.policy_loss)
    print(f"trainer: {config.trainer.v1.trainer_mode} -> {trainer.__name__}")
    print(f"policy loss: {actor.policy_loss.loss_mode} ({type(actor.policy_loss).__name__})")
    print(f"driver shaper: {shaper} {params}")
    print(f"clip: [{actor.clip_ratio_low}, {actor.clip_ratio_high}], agg: {actor.loss_agg_mode}")
    print(f"group size (rollout.n): {config.actor_rollout_ref.rollout.n}")
    temperature = config.actor_rollout_ref.rollout.temperature
    print(f"sampling temperature (log-probs and entropy at logits / T): {temperature}")
    dump_every = eapo_dump_every(config)
    where = f"every {dump_every} steps into {config.trainer.default_local_dir}" if dump_every else "off"
    print(f"eapo run folder (+trainer.eapo_dump_every): {where}")
    units = config.transfer_queue.backend.SimpleStorage.num_data_storage_units
    print(f"TransferQueue storage units: {units}")


if __name__ == "__main__":
    main(sys.argv[1:])
