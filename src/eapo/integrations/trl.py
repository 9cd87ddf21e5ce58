"""EAPO inside TRL: a `GRPOTrainer` whose token advantages come from `eapo.core` (DESIGN.md §6).

```python
from eapo.integrations.trl import EAPOConfig, EAPOTrainer

args = EAPOConfig(output_dir="out", eapo_algo="eapo", eapo_alpha=0.2, eapo_phi=2.0)
trainer = EAPOTrainer(model="Qwen/Qwen2.5-Math-7B", reward_funcs=my_reward, args=args, train_dataset=ds)
trainer.train()
```

What changes against `trl.GRPOTrainer` (tested with trl 1.16.0):

1. **Shaping, once per generation batch.** After TRL has generated, scored and normalised the rewards
   (its own `_generate_and_score_completions`), the trainer runs one no-grad forward of the rollout
   policy π_old through TRL's own `_get_per_token_logps_and_entropies` to get the token entropies
   H_{i,t} (PAPER.md Notation: from the rollout policy's logits, at the sampling temperature). It then
   gathers advantages, entropies and masks from every process and shapes the token advantages with
   `eapo.core.shape_advantages` over the **whole** batch. TRL lays the gathered batch out as whole
   groups (its `RepeatSampler` repeats each prompt `num_generations` times in a row and TRL normalises
   rewards with `view(-1, num_generations)` on the same gathered order), so µ_H and σ_H of PAPER.md
   Eq. 6 are always the statistics of one complete group, whatever the per-device batch size, the number
   of processes or `steps_per_generation`. Each process keeps its own rows. The shaping has to happen
   here: TRL shuffles the rows before it splits them into micro-batches, so no micro-batch of
   `_compute_loss` holds whole groups.
2. **The loss.** `_compute_loss` calls `eapo.core.policy_loss` (PPO-clip with ε_low = `epsilon`,
   ε_high = `epsilon_high`, the k3 KL when `beta` > 0) with the aggregation that matches TRL's
   `loss_type`: `grpo` → `seq_mean_token_mean`, `bnpo` → `token_mean` over the micro-batch, `dr_grpo` →
   token sum / (B × max_completion_length), `dapo` → token sum / the generation batch's token count
   (the paper's token-mean, PAPER.md Eq. 2). With `algo="grpo"` it equals TRL's own loss (tested to
   1e-6). vLLM's importance-sampling ratio w ≥ 0 multiplies the advantages, which for PPO-clip is the
   same as TRL multiplying the per-token loss by w.
3. **Metrics.** Per quadrant (PAPER.md §4.1: PHR, PLR, NHR, NLR, and ZERO for Â = 0) the batch share,
   mean entropy, mean |Â| before and after shaping (`eapo/<Q>/...`, from the generation step) and the
   quadrant's part of the policy loss (`eapo/<Q>/loss`, from each loss step, summing to
   `eapo/policy_loss`), logged through TRL's `self._metrics` like TRL's own.

Not supported (the config raises `ConfigError` naming the field): TRL's other loss types (`cispo`,
`sapo`, `luspo`, `vespo`), sequence-level importance sampling, `top_entropy_quantile` < 1 (use
`eapo_algo="forking"`), `delta`, `off_policy_mask_threshold`, the entropy bonus (`entropy_coef`,
`use_adaptive_entropy`) and `use_bias_correction_kl`.
Cost: the extra no-grad forward over each generation batch (TRL's own old-log-prob forward, when it
runs, does not return entropies).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from eapo.core import QUADRANTS, agg_loss, policy_loss, quadrant_masks, quadrant_stats, token_advantages
from eapo.core.shapers import SHAPERS, shape_advantages, shaper_params
from eapo.errors import ConfigError

try:
    from trl import GRPOConfig, GRPOTrainer
except ImportError as error:  # pragma: no cover - exercised only where trl is absent
    raise ImportError(
        "eapo.integrations.trl needs TRL: pip install 'eapo[trl]' (tested with trl 1.16.0)"
    ) from error

__all__ = ["EAPOConfig", "EAPOTrainer"]

# TRL loss_type -> eapo.core aggregation mode; the normaliser of each is set in `_aggregation`.
_AGGREGATION = {
    "grpo": "seq_mean_token_mean",
    "bnpo": "token_mean",
    "dr_grpo": "token_mean",
    "dapo": "token_mean",
}
# Extra model inputs TRL forwards for multimodal models; passed through unchanged.
_FORWARD_KEYS = (
    "pixel_values",
    "image_grid_thw",
    "num_images",
    "pixel_attention_mask",
    "spatial_shapes",
    "num_tiles",
    "image_sizes",
    "token_type_ids",
    "mm_token_type_ids",
    "image_position_ids",
)
# Quadrant id per token, stored with the batch: index into QUADRANTS, -1 for no quadrant.
_NO_QUADRANT = -1


@dataclass
class EAPOConfig(GRPOConfig):
    """`trl.GRPOConfig` plus eapo's advantage shaping (PAPER.md §5).

    eapo_algo: a key of `eapo.core.SHAPERS` (`eapo`, `grpo`, `forking`, `entro_adv`, `w_reinf`, `gtpo`,
        `quadrant`). eapo_alpha, eapo_phi: α and φ of Eq. 6–7 (paper defaults 0.2 and 2), passed to the
        shapers that take them (`eapo`, and `quadrant` for its `eapo_without` mode).
    eapo_params: the shaper's other parameters, e.g. `{"top_fraction": 0.2}` for `forking`,
        `{"alpha": 0.4, "kappa": 2.0}` for `entro_adv`, `{"mode": "isolate", "quadrants": ["PHR"]}` for
        `quadrant`. eapo_quadrant_metrics: log the per-quadrant statistics.
    `epsilon_high` defaults to the paper's 0.28 (TRL's default is `epsilon`); everything else is TRL's.
    """

    eapo_algo: str = field(
        default="eapo",
        metadata={"help": "Advantage shaper from eapo.core.SHAPERS: eapo, grpo, forking, entro_adv, ..."},
    )
    eapo_alpha: float = field(
        default=0.2, metadata={"help": "α of PAPER.md Eq. 7 (weight of the entropy term)."}
    )
    eapo_phi: float = field(default=2.0, metadata={"help": "φ of PAPER.md Eq. 6 (clip at |Â|/φ)."})
    eapo_params: dict[str, Any] | None = field(
        default=None, metadata={"help": "Other parameters of the shaper, by name."}
    )
    eapo_quadrant_metrics: bool = field(
        default=True, metadata={"help": "Log per-quadrant statistics (PAPER.md §4.1) through TRL's metrics."}
    )
    epsilon_high: float | None = field(
        default=0.28, metadata={"help": "Upper clip ε_high (PAPER.md Eq. 2; DAPO's clip-higher)."}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self.eapo_shaper_kwargs()  # validates the shaper name and its parameters
        unsupported = {
            "importance_sampling_level": (self.importance_sampling_level != "token", "'token'"),
            "top_entropy_quantile": (self.top_entropy_quantile < 1.0, "1.0 (use eapo_algo='forking')"),
            "delta": (self.delta is not None, "None"),
            "off_policy_mask_threshold": (self.off_policy_mask_threshold is not None, "None"),
            "entropy_coef": (self.entropy_coef != 0.0, "0.0"),
            "use_adaptive_entropy": (bool(self.use_adaptive_entropy), "False"),
            "use_bias_correction_kl": (self.beta != 0.0 and bool(self.use_bias_correction_kl), "False"),
        }
        if self.loss_type not in _AGGREGATION:
            raise ConfigError(
                f"EAPOConfig.loss_type = {self.loss_type!r} is not supported by EAPOTrainer; "
                f"use one of {', '.join(_AGGREGATION)} ('dapo' is the paper's token-mean)"
            )
        for name, (bad, expected) in unsupported.items():
            if bad:
                raise ConfigError(
                    f"EAPOConfig.{name} = {getattr(self, name)!r} is not supported by EAPOTrainer; "
                    f"set it to {expected}"
                )

    def eapo_shaper_kwargs(self) -> dict[str, Any]:
        """The keyword arguments for `shape_advantages(self.eapo_algo, ...)`, checked against the shaper."""
        if self.eapo_algo not in SHAPERS:
            raise ConfigError(
                f"EAPOConfig.eapo_algo = {self.eapo_algo!r} is unknown; "
                f"choose from {', '.join(sorted(SHAPERS))}"
            )
        accepted = shaper_params(self.eapo_algo)
        kwargs: dict[str, Any] = {}
        if self.eapo_algo in ("eapo", "quadrant"):
            kwargs = {"alpha": self.eapo_alpha, "phi": self.eapo_phi}
        extra = dict(self.eapo_params or {})
        unknown = sorted(set(extra) - set(accepted))
        if unknown:
            raise ConfigError(
                f"EAPOConfig.eapo_params has {', '.join(unknown)}, unknown to shaper {self.eapo_algo!r}; "
                f"it takes: {', '.join(accepted) or 'no parameters'}"
            )
        kwargs.update(extra)
        return kwargs


class EAPOTrainer(GRPOTrainer):
    """`trl.GRPOTrainer` with eapo's shaped token advantages and `eapo.core.policy_loss` (module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        config = kwargs.get("args", args[2] if len(args) > 2 else None)
        if not isinstance(config, EAPOConfig):
            raise ConfigError(
                f"EAPOTrainer needs args=EAPOConfig(...); got {type(config).__name__} "
                "(EAPOConfig takes every GRPOConfig field plus eapo_algo, eapo_alpha, eapo_phi, eapo_params)"
            )
        super().__init__(*args, **kwargs)
        self.eapo_shaper_kwargs = config.eapo_shaper_kwargs()

    # ---- shaping: once per generation batch, over whole groups -------------------------------------------

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        output = super()._generate_and_score_completions(inputs)
        mode = "train" if self.model.training else "eval"
        group_size = self.num_generations if mode == "train" else self.num_generations_eval
        mask = self._loss_mask(output)
        entropy = self._rollout_entropy(output, mode)

        # Every process shapes the gathered batch (whole groups, see the module doc) and keeps its rows.
        local_rows, local_length = mask.shape
        gathered_mask = self.accelerator.gather(self.accelerator.pad_across_processes(mask, dim=1))
        gathered_entropy = self.accelerator.gather(self.accelerator.pad_across_processes(entropy, dim=1))
        gathered_adv = self.accelerator.gather(output["advantages"].float())
        if gathered_adv.shape[0] % group_size != 0:
            raise ConfigError(
                f"the gathered generation batch has {gathered_adv.shape[0]} rows, not a multiple of "
                f"num_generations = {group_size}: make per_device_*_batch_size × processes × "
                "steps_per_generation a multiple of num_generations"
            )
        base = token_advantages(gathered_adv, gathered_mask)
        shaped = shape_advantages(
            self.args.eapo_algo, base, gathered_entropy, gathered_mask, group_size, **self.eapo_shaper_kwargs
        )
        rows = slice(
            self.accelerator.process_index * local_rows, (self.accelerator.process_index + 1) * local_rows
        )
        output["advantages"] = shaped[rows, :local_length].to(mask.device)

        if self.args.eapo_quadrant_metrics:
            masks = quadrant_masks(base, gathered_entropy, gathered_mask, group_size)
            quadrant_id = torch.full(base.shape, _NO_QUADRANT, dtype=torch.int8, device=base.device)
            for index, name in enumerate(QUADRANTS):
                quadrant_id[masks[name]] = index
            output["eapo_quadrant"] = quadrant_id[rows, :local_length].to(mask.device)
            self._log_quadrant_batch(base, shaped, gathered_entropy, gathered_mask, group_size, mode)
        return output

    @torch.no_grad()
    def _rollout_entropy(self, batch: dict[str, Any], mode: str) -> torch.Tensor:
        """H_{i,t} [B,T] fp32 of the policy that sampled the batch, from TRL's own chunked forward."""
        input_ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
        attention_mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
        chunk = (
            self.args.per_device_train_batch_size if mode == "train" else self.args.per_device_eval_batch_size
        )
        _, entropy, _ = self._get_per_token_logps_and_entropies(
            self.model,
            input_ids,
            attention_mask,
            batch["completion_ids"].size(1),
            batch_size=chunk,
            compute_entropy=True,
            **{key: batch.get(key) for key in _FORWARD_KEYS},
        )
        return entropy.float()

    def _log_quadrant_batch(
        self,
        base: torch.Tensor,
        shaped: torch.Tensor,
        entropy: torch.Tensor,
        mask: torch.Tensor,
        group_size: int,
        mode: str,
    ) -> None:
        """Per-quadrant share, mean entropy, mean |Â| (GRPO's and shaped) of the gathered batch."""
        stats = quadrant_stats(base, entropy, mask, group_size)
        masks = quadrant_masks(base, entropy, mask, group_size)
        for name, values in stats.items():
            for key in ("share", "mean_entropy", "mean_abs_advantage"):
                self._metrics[mode][f"eapo/{name}/{key}"].append(values[key])
        # Shaping keeps the sign of Â but may zero it (forking, quadrant isolation), so the shaped |Â| is
        # averaged over the quadrant of the *unshaped* advantage.
        for name in QUADRANTS:
            selected = masks[name]
            count = int(selected.sum())
            mean = float(shaped[selected].abs().double().mean()) if count else 0.0
            self._metrics[mode][f"eapo/{name}/mean_abs_shaped_advantage"].append(mean)

    # ---- the loss ----------------------------------------------------------------------------------------

    @staticmethod
    def _loss_mask(batch: dict[str, Any]) -> torch.Tensor:
        mask = batch["completion_mask"]
        return mask if "tool_mask" not in batch else mask * batch["tool_mask"]

    def _aggregation(
        self, mask: torch.Tensor, inputs: dict[str, Any], mode: str
    ) -> tuple[str, Any, Any, float]:
        """(agg mode, num_tokens, num_seqs, divisor) reproducing TRL's normalisation for `loss_type`."""
        accumulation = float(self.current_gradient_accumulation_steps) if mode == "train" else 1.0
        loss_type = self.loss_type
        if loss_type == "grpo":  # mean over every row of the micro-batch, even an all-masked one
            return _AGGREGATION[loss_type], None, mask.size(0), accumulation
        if loss_type == "bnpo":
            return _AGGREGATION[loss_type], None, None, accumulation
        if loss_type == "dr_grpo":
            return _AGGREGATION[loss_type], mask.size(0) * self.max_completion_length, None, accumulation
        # dapo: the generation batch's token count, rescaled to one process and one accumulation window.
        normaliser = inputs["num_items_in_batch"].clamp(min=1.0) / self.accelerator.num_processes
        if mode == "train":
            normaliser = (
                normaliser * self.current_gradient_accumulation_steps / self.args.steps_per_generation
            )
        return _AGGREGATION[loss_type], normaliser, None, 1.0

    def _compute_loss(self, model: torch.nn.Module, inputs: dict[str, Any]) -> torch.Tensor:
        mode = "train" if self.model.training else "eval"
        completion_ids = inputs["completion_ids"]
        input_ids = torch.cat([inputs["prompt_ids"], completion_ids], dim=1)
        attention_mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
        mask = self._loss_mask(inputs)
        logprobs, entropy, aux_loss = self._get_per_token_logps_and_entropies(
            model,
            input_ids,
            attention_mask,
            completion_ids.size(1),
            compute_entropy=True,
            compute_aux_loss=self.aux_loss_enabled,
            **{key: inputs.get(key) for key in _FORWARD_KEYS},
        )
        advantages = inputs["advantages"]
        if advantages.dim() == 1:  # a batch that did not go through the shaping step
            advantages = token_advantages(advantages, mask)
        old_logprobs = inputs.get("old_per_token_logps")
        old_logprobs = logprobs.detach() if old_logprobs is None else old_logprobs
        if self.use_vllm and self.vllm_importance_sampling_correction:
            # w ≥ 0, so w·max(−Âρ, −Â·clip(ρ)) = max(−(wÂ)ρ, −(wÂ)·clip(ρ)): the same as weighting the loss.
            advantages = advantages * inputs["importance_sampling_ratio"]

        agg, num_tokens, num_seqs, divisor = self._aggregation(mask, inputs, mode)
        loss, per_token_loss, metrics = policy_loss(
            logprobs,
            old_logprobs,
            advantages,
            mask,
            loss_type="ppo_clip",
            clip_low=self.epsilon_low,
            clip_high=self.epsilon_high,
            ref_logprobs=inputs.get("ref_per_token_logps") if self.beta != 0.0 else None,
            kl_coef=self.beta,
            agg=agg,
            num_tokens=num_tokens,
            num_seqs=num_seqs,
        )
        policy_loss_value = loss.detach()
        loss = loss / divisor
        if self.aux_loss_enabled:
            loss = loss + self.router_aux_loss_coef * aux_loss / divisor
            self._metrics[mode]["aux_loss"].append(
                self.accelerator.gather_for_metrics(aux_loss).mean().item()
            )

        self._metrics[mode]["entropy"].append(self._global_masked_mean(entropy, mask))
        self._metrics[mode]["clip_ratio/region_mean"].append(
            self._mean_over_processes(metrics["clip_fraction"])
        )
        if "kl" in metrics:
            self._metrics[mode]["kl"].append(self._mean_over_processes(metrics["kl"]))
        self._metrics[mode]["eapo/policy_loss"].append(
            self.accelerator.gather(policy_loss_value).mean().item()
        )
        if self.args.eapo_quadrant_metrics and "eapo_quadrant" in inputs:
            quadrant_id = inputs["eapo_quadrant"]
            for index, name in enumerate(QUADRANTS):
                # agg is linear in the per-token loss, so the quadrants' parts add up to the policy loss.
                part = agg_loss(per_token_loss * (quadrant_id == index), mask, agg, num_tokens, num_seqs)
                self._metrics[mode][f"eapo/{name}/loss"].append(self.accelerator.gather(part).mean().item())
        return loss

    def _global_masked_mean(self, values: torch.Tensor, mask: torch.Tensor) -> float:
        totals = torch.stack([(values.detach().float() * mask).sum(), mask.sum().float()])
        totals = self.accelerator.reduce(totals, reduction="sum")
        return float(totals[0] / totals[1].clamp(min=1.0))

    def _mean_over_processes(self, value: float) -> float:
        return self.accelerator.gather(torch.tensor([value], device=self.accelerator.device)).mean().item()
