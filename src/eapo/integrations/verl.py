"""EAPO inside verl (tested with verl 0.9.1, its default v1 trainer): registrations, no patches.

Importing this module registers, in verl's own registries:

- **policy losses** `eapo`, `forking`, `entro_adv`, `w_reinf`, `gtpo` and `quadrant` in
  `verl.trainer.ppo.core_algos.POLICY_LOSS_REGISTRY`. Each is PPO-clip computed by `eapo.core.policy_loss`
  with verl's clip settings (`clip_ratio_low`, `clip_ratio_high`, dual-clip `clip_ratio_c`), verl's
  rollout-correction weights and verl's global-batch aggregation (`loss_agg_mode` with the
  `global_batch_info` that makes the loss independent of data parallelism). With unshaped advantages it
  equals verl's `vanilla` loss (tested to 1e-6). The name chosen in `policy_loss.loss_mode` also names the
  `eapo.core` shaper the driver applies (below).
- **trainers** `eapo` (verl's `sync` trainer) and `eapo_sync`, `eapo_colocate_async`, `eapo_separate_async`
  in `verl.trainer.ppo.v1.TRAINER_REGISTRY`. They differ from verl's in one step: after verl has computed
  the GRPO advantages, the driver shapes them with `eapo.core.shape_advantages`.

Why the shaping runs on the driver and not in the loss: EAPO needs, for every token, the rollout policy's
entropy H_{i,t} and the mean µ_H and standard deviation σ_H of the entropies of the token's **group**
(PAPER.md Eq. 6). verl's policy-loss hook gets neither (its arguments are old and new log-probs,
advantages, the mask, the aggregation mode, the actor config and rollout weights), and its micro-batches
do not hold whole groups (`trainer.balance_batch` reorders rows across data-parallel ranks). The driver
does have both: verl's `_compute_old_log_prob` always computes π_old's entropy and stores it with the
batch (field `entropy`), and every row carries its group id `uid`. So the `eapo` trainer reads `uid`,
`advantages`, `entropy` and `response_mask` of the whole batch, groups rows by `uid`, shapes, and writes
`advantages` back. The group statistics are exact; nothing is approximated. The metrics of `eapo train` are
logged with verl's: `quadrant/<Q>/<stat>` from `eapo.core.quadrant_metrics` (polarity = sign of verl's GRPO
advantage, PAPER.md §4.1; `share`, `mean_entropy`, `mean_abs_advantage`, `mean_abs_shaped_adv`, ...),
`reward/mean`, `entropy/mean`, `advantage/mean_abs` and `advantage/shaped_mean_abs`.

Temperature: verl's driver sends `actor_rollout_ref.rollout.temperature` with every batch
(`batch.extra_info["temperature"]` in the v1 trainer's `_step_once`) and its FSDP engine divides the logits by
it before the log-probs and the entropy (`_scale_logits_by_temperature`), so the entropy the shaper uses is
that of the sampling distribution, as in `eapo train` and TRL (tested against verl's functions at T = 0.7).

An eapo run folder (`+trainer.eapo_dump_every=N`, off by default): `trainer.default_local_dir` gets
`config.yaml`, `metrics.jsonl` (every step, with verl's `actor/pg_loss` as `loss`) and, every N steps, a
rollout dump of the whole batch (`eapo.train.dumps`: token ids, mask, rewards = the summed `rm_scores`,
entropy, π_old's log-probs, advantages before and after shaping; verl's batch has no Σπ², so the dumps and
the `eapo quadrants` table have no Eq. 5 gradient-norm column), which `eapo quadrants`, `eapo report` read.

What a user changes in a verl GRPO recipe (docs/integrations.md has a full launch script):

    export VERL_USE_EXTERNAL_MODULES=eapo.integrations.verl   # verl imports it in every process
    python -m verl.trainer.main_ppo ... \\
        trainer.v1.trainer_mode=eapo \\
        actor_rollout_ref.actor.policy_loss.loss_mode=eapo

Parameters (optional) live in the `policy_loss` section once its `_target_` is this module's
`EAPOPolicyLossConfig` (verl builds that section with Hydra, so the class is instantiated by name):

    actor_rollout_ref.actor.policy_loss._target_=eapo.integrations.verl.EAPOPolicyLossConfig
    +actor_rollout_ref.actor.policy_loss.eapo_alpha=0.2       # α, PAPER.md Eq. 7
    +actor_rollout_ref.actor.policy_loss.eapo_phi=2.0         # φ, PAPER.md Eq. 6
    +actor_rollout_ref.actor.policy_loss.eapo_params={top_fraction:0.2}   # the shaper's other params

Not supported: verl's legacy trainer (`trainer.use_v1=False`) and rollout-correction bypass mode
(`algorithm.rollout_correction.bypass_mode=True`, which skips the π_old forward and so the entropy).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from eapo.core import policy_loss
from eapo.core.shapers import shape_advantages
from eapo.errors import ConfigError, DataError, check_choice
from eapo.integrations.run_folder import RunRecorder, generation_metrics
from eapo.train.algorithms import check_shaper_params, eapo_alpha_phi

try:
    import transfer_queue as tq
    from omegaconf import DictConfig, ListConfig, OmegaConf
    from tensordict import TensorDict
    from verl.protocol import DataProto
    from verl.trainer.ppo.core_algos import POLICY_LOSS_REGISTRY, register_policy_loss
    from verl.trainer.ppo.v1.trainer_base import TRAINER_REGISTRY, register_trainer
    from verl.workers.config import PolicyLossConfig
    from verl.workers.utils.padding import response_to_nested
except ImportError as error:  # pragma: no cover - exercised only where verl is absent
    raise ImportError(
        "eapo.integrations.verl needs verl with its v1 trainer (TransferQueue): pip install 'eapo[verl]', "
        "i.e. verl[verl-core]==0.9.1"
    ) from error

__all__ = [
    "EAPO_LOSS_MODES",
    "EAPOAdvantageMixin",
    "EAPOPolicyLossConfig",
    "eapo_dump_every",
    "shape_grouped_advantages",
    "shaper_settings",
    "verl_aggregation",
]

# verl loss_mode -> eapo.core shaper applied on the driver. All are PPO-clip in the loss itself.
EAPO_LOSS_MODES = ("eapo", "forking", "entro_adv", "w_reinf", "gtpo", "quadrant")
_CONFIG_PATH = "actor_rollout_ref.actor.policy_loss"


@dataclass
class EAPOPolicyLossConfig(PolicyLossConfig):
    """verl's `PolicyLossConfig` with eapo's shaper parameters (set `_target_` to this class to use them).

    eapo_alpha, eapo_phi: α and φ of PAPER.md Eq. 6–7 (defaults 0.2 and 2), used by `eapo` and by the
    `quadrant` shaper's `eapo_without` mode. eapo_params: the shaper's other parameters by name, e.g.
    `{top_fraction: 0.2}` for `forking`, `{alpha: 0.4, kappa: 2.0}` for `entro_adv`,
    `{mode: isolate, quadrants: [PHR]}` for `quadrant`.
    """

    eapo_alpha: float = 0.2
    eapo_phi: float = 2.0
    eapo_params: dict[str, Any] = field(default_factory=dict)


def shaper_settings(policy_loss_config: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(shaper name, its keyword arguments) from verl's `policy_loss` config section, validated.

    Raises ConfigError naming the `actor_rollout_ref.actor.policy_loss` key that is wrong.
    """
    loss_mode = policy_loss_config.get("loss_mode", "vanilla")
    check_choice(
        f"{_CONFIG_PATH}.loss_mode",
        loss_mode,
        EAPO_LOSS_MODES,
        "the eapo trainer shapes advantages for these; use verl's own trainer_mode for other losses",
    )
    extra = policy_loss_config.get("eapo_params", None) or {}
    if isinstance(extra, DictConfig):  # OmegaConf nodes (lists included) become plain Python values
        extra = OmegaConf.to_container(extra, resolve=True)
    params = {
        key: list(value) if isinstance(value, ListConfig) else value for key, value in dict(extra).items()
    }
    eapo_params = eapo_alpha_phi(
        loss_mode,
        float(policy_loss_config.get("eapo_alpha", 0.2)),
        float(policy_loss_config.get("eapo_phi", 2.0)),
    )
    labels = {key: f"{_CONFIG_PATH}.eapo_{key}" for key in eapo_params if key not in params}
    params = check_shaper_params(
        loss_mode, {**eapo_params, **params}, field=f"{_CONFIG_PATH}.eapo_params", labels=labels
    )
    return loss_mode, params


def shape_grouped_advantages(
    uids: list[Any] | np.ndarray,
    advantages: torch.Tensor,
    entropy: torch.Tensor,
    response_mask: torch.Tensor,
    shaper: str,
    *,
    rewards: torch.Tensor | None = None,
    **params: Any,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Shape a verl batch whose groups are given by `uid`, not by row order, and measure it.

    Rows are stably sorted so each group is contiguous (the layout `eapo.core` expects), shaped with
    `shape_advantages(shaper, ...)` and put back in the caller's order.

    Args:
        uids: [B] group ids (verl's `uid`: one per prompt, shared by its `rollout.n` responses).
        advantages: [B,T] token advantages from verl's estimator. entropy: [B,T] π_old token entropies.
        response_mask: [B,T]. shaper: a key of `eapo.core.SHAPERS`; params: its parameters.
        rewards: [B] each response's reward, optional (for `reward/mean`).

    Returns:
        (shaped advantages [B,T] fp32 in the caller's row order, the step metrics of `eapo train` from
        `generation_metrics`: `quadrant/<Q>/<stat>` with quadrants by the sign of the unshaped advantages,
        PAPER.md §4.1, and the batch means).
    Raises:
        DataError if the groups do not all have the same number of rows.
    """
    order, group_size = _group_order(uids)
    order = order.to(advantages.device)
    grouped_adv = advantages.detach().float()[order]
    grouped_entropy = entropy.detach().float()[order]
    grouped_mask = response_mask[order]
    shaped = shape_advantages(shaper, grouped_adv, grouped_entropy, grouped_mask, group_size, **params)
    restored = torch.empty_like(shaped)
    restored[order] = shaped
    metrics = generation_metrics(
        None if rewards is None else rewards[order],
        grouped_adv,
        shaped,
        grouped_entropy,
        grouped_mask,
        group_size,
    )
    return restored, metrics


def _group_order(uids: list[Any] | np.ndarray) -> tuple[torch.Tensor, int]:
    """(row order that makes each uid's rows contiguous, stable; group size). DataError if the groups
    differ in size: EAPO's group entropy statistics need whole groups."""
    keys = np.asarray([str(uid) for uid in uids])
    _, group_index, counts = np.unique(keys, return_inverse=True, return_counts=True)
    if len(set(counts.tolist())) != 1:
        raise DataError(
            f"uid groups have different sizes {sorted(set(counts.tolist()))}: EAPO's group entropy "
            "statistics (PAPER.md Eq. 6) need every prompt's rollout.n responses in the batch"
        )
    return torch.from_numpy(np.argsort(group_index, kind="stable")), int(counts[0])


# ---- the loss --------------------------------------------------------------------------------


def verl_aggregation(
    loss_agg_mode: str, response_mask: torch.Tensor, global_batch_info: Mapping[str, Any] | None
) -> tuple[str, Any, Any]:
    """(eapo agg mode, num_tokens, num_seqs) that reproduce verl's `agg_loss` for `loss_agg_mode`.

    verl divides a micro-batch's sums by global counts and multiplies by the data-parallel size, so each
    rank's gradient adds up to the global mean (`global_batch_info`: dp_size, batch_num_tokens,
    global_batch_size, loss_scale_factor). Every verl mode except seq-mean-token-mean is a token sum over a
    constant, i.e. `token_mean` with `num_tokens` set to that constant.
    """
    info = dict(global_batch_info or {})
    dp_size = info.get("dp_size") or 1
    valid = response_mask != 0
    if loss_agg_mode == "token-mean":
        tokens = info.get("batch_num_tokens")
        return "token_mean", (valid.sum() if tokens is None else tokens) / dp_size, None
    if loss_agg_mode == "token-sum":
        return "token_mean", 1.0 / dp_size, None
    sequences = info.get("global_batch_size")
    sequences = (valid.sum(dim=-1) > 0).sum() if sequences is None else sequences
    if loss_agg_mode == "seq-mean-token-mean":
        return "seq_mean_token_mean", None, sequences / dp_size
    if loss_agg_mode == "seq-mean-token-sum":
        return "token_mean", sequences / dp_size, None
    if loss_agg_mode == "seq-mean-token-sum-norm":
        horizon = info.get("loss_scale_factor") or response_mask.shape[-1]
        return "token_mean", sequences / dp_size * horizon, None
    raise ConfigError(
        f"actor_rollout_ref.actor.loss_agg_mode = {loss_agg_mode!r} is unknown; use token-mean, token-sum, "
        "seq-mean-token-mean, seq-mean-token-sum or seq-mean-token-sum-norm"
    )


_warned_unshaped: set[str] = set()


def _warn_if_unshaped(loss_mode: str, advantages: torch.Tensor, response_mask: torch.Tensor) -> None:
    """Warn once when entropy-shaped advantages are constant along every response (shaping did not run)."""
    if loss_mode == "w_reinf" or loss_mode in _warned_unshaped:
        return
    valid = response_mask != 0
    if not bool((valid.sum(dim=-1) > 1).any()) or not bool((advantages[valid] != 0).any()):
        return
    high = torch.where(valid, advantages, -torch.inf).amax(dim=-1)
    low = torch.where(valid, advantages, torch.inf).amin(dim=-1)
    if bool((high[valid.any(dim=-1)] == low[valid.any(dim=-1)]).all()):
        _warned_unshaped.add(loss_mode)
        warnings.warn(
            f"{_CONFIG_PATH}.loss_mode = {loss_mode!r} but every response's advantage is constant over its "
            "tokens: the entropy shaping did not run. Set trainer.v1.trainer_mode=eapo (and "
            "VERL_USE_EXTERNAL_MODULES=eapo.integrations.verl) so the driver shapes the advantages.",
            stacklevel=3,
        )


def _make_policy_loss(loss_mode: str) -> Callable[..., tuple[torch.Tensor, dict[str, Any]]]:
    def eapo_policy_loss(
        old_log_prob: torch.Tensor,
        log_prob: torch.Tensor,
        advantages: torch.Tensor,
        response_mask: torch.Tensor,
        loss_agg_mode: str = "token-mean",
        config: Any = None,
        rollout_is_weights: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """PPO-clip (PAPER.md Eq. 2) on advantages the eapo trainer already shaped; verl's signature."""
        if config is None:
            raise ConfigError(f"policy loss {loss_mode!r} needs verl's actor config")
        _warn_if_unshaped(loss_mode, advantages, response_mask)
        clip_ratio = config.clip_ratio
        clip_low = config.clip_ratio_low if config.clip_ratio_low is not None else clip_ratio
        clip_high = config.clip_ratio_high if config.clip_ratio_high is not None else clip_ratio
        if rollout_is_weights is not None:
            # Weights are ≥ 0, and w·max(−Âρ, −Â·clip(ρ)) = max(−(wÂ)ρ, −(wÂ)·clip(ρ)) (also under the
            # dual clip), so weighting the advantages equals verl weighting the per-token loss.
            advantages = advantages * rollout_is_weights
        agg, num_tokens, num_seqs = verl_aggregation(
            loss_agg_mode, response_mask, getattr(config, "global_batch_info", None)
        )
        loss, _, metrics = policy_loss(
            log_prob,
            old_log_prob,
            advantages,
            response_mask,
            loss_type="ppo_clip",
            clip_low=clip_low,
            clip_high=clip_high,
            dual_clip=config.get("clip_ratio_c", 3.0),
            agg=agg,
            num_tokens=num_tokens,
            num_seqs=num_seqs,
        )
        valid = response_mask != 0
        ppo_kl = (
            (old_log_prob - log_prob).detach()[valid].mean() if bool(valid.any()) else log_prob.new_zeros(())
        )
        return loss, {
            "actor/pg_clipfrac": metrics["clip_fraction"],
            "actor/ppo_kl": float(ppo_kl),
            "actor/pg_clipfrac_lower": metrics.get("clip_fraction_dual", 0.0),
        }

    eapo_policy_loss.__name__ = f"eapo_policy_loss_{loss_mode}"
    return eapo_policy_loss


for _loss_mode in EAPO_LOSS_MODES:
    if _loss_mode not in POLICY_LOSS_REGISTRY:  # a re-import must not replace verl's (or our) entry
        register_policy_loss(_loss_mode)(_make_policy_loss(_loss_mode))


# ---- the driver step -------------------------------------------------------------------------


def _rows(values: Any) -> list[torch.Tensor]:
    """The rows of a TransferQueue field: a jagged nested tensor's own lengths, or a padded tensor's rows."""
    if isinstance(values, torch.Tensor) and values.is_nested:
        return list(values.unbind())
    return list(values)


class EAPOAdvantageMixin:
    """Put before a verl v1 `PPOTrainer` subclass: shapes the batch's advantages after verl computes them,
    logs eapo's metrics and, with `+trainer.eapo_dump_every=N`, writes an eapo run folder (module doc)."""

    config: Any
    global_steps: int
    tokenizer: Any

    def _compute_advantage(self, batch: Any, metrics: dict) -> Any:
        batch = super()._compute_advantage(batch, metrics=metrics)  # type: ignore[misc]
        shaper, params = shaper_settings(self.config.actor_rollout_ref.actor.policy_loss)
        rollout_correction = self.config.algorithm.get("rollout_correction", None)
        if rollout_correction and rollout_correction.get("bypass_mode", False):
            raise ConfigError(
                "algorithm.rollout_correction.bypass_mode = True skips verl's π_old forward, so there are no "
                "token entropies to shape with; set it to False for the eapo trainer"
            )
        dump_every = eapo_dump_every(self.config)
        dump = dump_every > 0 and self.global_steps % dump_every == 0
        fields = ["uid", "advantages", "entropy", "response_mask", "rm_scores"]
        if dump:
            fields += ["old_log_probs", "responses", "prompts"]
        data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=fields)
        response_mask = data["response_mask"]
        prompts = data["prompts"] if dump else None
        padded = DataProto(batch=data.select(*[f for f in fields if f != "prompts"]).to_padded_tensor())
        uids = padded.batch.pop("uid").tolist()
        mask = padded.batch["response_mask"]
        rewards = (padded.batch["rm_scores"].float() * mask).sum(dim=-1)
        shaped, step_metrics = shape_grouped_advantages(
            uids, padded.batch["advantages"], padded.batch["entropy"], mask, shaper, rewards=rewards, **params
        )
        metrics.update(step_metrics)
        if dump:  # whole groups in contiguous rows, the layout of `eapo train`'s dumps
            order, group_size = _group_order(uids)
            self._eapo_dump(padded, prompts, rewards, shaped, order, group_size, shaper)
        fields = TensorDict({"advantages": response_to_nested(shaped, response_mask)}, batch_size=len(batch))
        return tq.kv_batch_put(keys=batch.keys, partition_id=batch.partition_id, fields=fields)

    def _compute_metrics(
        self, batch: Any, metrics: dict, timing_raw: Any, global_steps: int, epoch: int
    ) -> Any:
        result = super()._compute_metrics(batch, metrics, timing_raw, global_steps, epoch)  # type: ignore[misc]
        recorder = self._eapo_recorder()
        if recorder is not None:
            row = {"loss": metrics.get("actor/pg_loss")}
            row.update({k: v for k, v in metrics.items() if k in _RUN_METRICS or k.startswith("quadrant/")})
            recorder.log(global_steps, row)
        return result

    def _eapo_recorder(self) -> RunRecorder | None:
        """The run folder under `trainer.default_local_dir`, opened on first use (None when dumps are off)."""
        if eapo_dump_every(self.config) < 1:
            return None
        recorder = getattr(self, "_eapo_run", None)
        if recorder is None:
            shaper, params = shaper_settings(self.config.actor_rollout_ref.actor.policy_loss)
            rollout = self.config.actor_rollout_ref.rollout
            config = {
                "host": "verl",
                "algo": {"name": shaper, **{k: v for k, v in params.items() if isinstance(v, int | float)}},
                "model": {"name": str(self.config.actor_rollout_ref.model.get("path", ""))},
                "train": {"group_size": int(rollout.n), "dump_rollouts_every": eapo_dump_every(self.config)},
                "sampling": {"temperature": float(rollout.temperature)},
                "verl": OmegaConf.to_container(self.config, resolve=False),
            }
            recorder = RunRecorder(
                self.config.trainer.default_local_dir,
                host="verl",
                config=config,
                dump_every=eapo_dump_every(self.config),
                start_step=max(int(getattr(self, "global_steps", 1)) - 1, 0),
            )
            self._eapo_run = recorder
        return recorder

    def _eapo_dump(
        self,
        padded: Any,
        prompts: Any,
        rewards: torch.Tensor,
        shaped: torch.Tensor,
        order: torch.Tensor,
        group_size: int,
        shaper: str,
    ) -> None:
        recorder = self._eapo_recorder()
        if recorder is None:
            return
        mask = padded.batch["response_mask"][order].bool()
        ids = padded.batch["responses"][order].long()
        prompt_rows = _rows(prompts)
        tokenizer = getattr(self, "tokenizer", None)

        def decode(tokens: Any) -> str:
            tokens = [int(t) for t in tokens]
            return (
                tokenizer.decode(tokens, skip_special_tokens=True) if tokenizer is not None else str(tokens)
            )

        recorder.dump(
            self.global_steps,
            algo=shaper,
            group_size=group_size,
            temperature=float(self.config.actor_rollout_ref.rollout.temperature),
            response_ids=ids,
            response_mask=mask,
            rewards=rewards[order],
            entropy=padded.batch["entropy"][order],
            logprobs=padded.batch["old_log_probs"][order],
            advantages=padded.batch["advantages"][order] * mask,
            shaped_advantages=shaped[order],
            prompts=[decode(prompt_rows[int(row)]) for row in order[::group_size]],
            completions=[decode(row[m]) for row, m in zip(ids, mask, strict=True)],
            response_tokens=[[decode([t]) for t in row[m]] for row, m in zip(ids, mask, strict=True)],
        )


# What `eapo train` logs per step and the run folder's metrics.jsonl keeps (besides `quadrant/...`).
_RUN_METRICS = (
    "reward/mean",
    "entropy/mean",
    "advantage/mean_abs",
    "advantage/shaped_mean_abs",
    "response/length_mean",
    "tokens/generated",
)


def eapo_dump_every(config: Any) -> int:
    """`trainer.eapo_dump_every` of a verl config (0 if absent), checked; N > 0 writes an eapo run folder."""
    value = config.trainer.get("eapo_dump_every", 0) if "trainer" in config else 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(
            f"trainer.eapo_dump_every = {value!r}: expected an integer >= 0 (N > 0 writes an eapo run folder "
            "with a rollout dump every N steps into trainer.default_local_dir)"
        )
    return value


def _register_trainers() -> None:
    for base_name in ("sync", "colocate_async", "separate_async"):
        base = TRAINER_REGISTRY[base_name]
        name = f"eapo_{base_name}"
        if name not in TRAINER_REGISTRY:
            class_name = f"EAPO{base.__name__}"
            trainer = type(class_name, (EAPOAdvantageMixin, base), {"__module__": __name__})
            globals()[class_name] = trainer  # importable by name, so it pickles like verl's own
            register_trainer(name)(trainer)
    if "eapo" not in TRAINER_REGISTRY:  # the paper's setting: on-policy, synchronous
        register_trainer("eapo")(TRAINER_REGISTRY["eapo_sync"])


_register_trainers()
