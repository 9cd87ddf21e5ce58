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
   policy π_old and scores it with `eapo.core.token_logprobs_and_entropy` at the sampling temperature
   (logits / `temperature`, as TRL's own fused head scores them) to get the token entropies H_{i,t}
   (PAPER.md Notation), the log-probs and Σπ² (multimodal batches go through TRL's
   `_get_per_token_logps_and_entropies`, which gives no Σπ²). It then
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
3. **Metrics.** The quadrant metrics of `eapo train` (`eapo.core.quadrant_metrics`, polarity = sign of the
   GRPO advantage, PAPER.md §4.1: `quadrant/<Q>/share`, `mean_entropy`, `mean_abs_advantage`,
   `mean_abs_shaped_adv`, `grad_norm_sum`, ... for PHR, PLR, NHR, NLR and ZERO, from the generation
   step) and the quadrant's part of the policy loss (`quadrant/<Q>/loss`, from each loss step, summing to
   `eapo/policy_loss`), logged through TRL's `self._metrics` like TRL's own.
4. **An eapo run folder** (`eapo_dump_every` N > 0, off by default): `output_dir` gets `config.yaml`,
   `metrics.jsonl` (every optimizer step) and a rollout dump every N steps (`eapo.train.dumps`), so
   `eapo quadrants --run`, `eapo gradients --run` and `eapo report --runs` read a TRL run as they read
   one of `eapo train`.

A plain `trl.GRPOTrainer` gets the same diagnostics without changing its math: `add_eapo_diagnostics(trainer,
dump_every=1)` (one call before `trainer.train()`; the advantages are left as TRL computed them). So does
`EAPOTrainer` with `eapo_algo="grpo"`, which is TRL's GRPO loss (tested) plus the diagnostics.

Not supported (the config raises `ConfigError` naming the field): TRL's other loss types (`cispo`,
`sapo`, `luspo`, `vespo`), sequence-level importance sampling, `top_entropy_quantile` < 1 (use
`eapo_algo="forking"`), `delta`, `off_policy_mask_threshold`, the entropy bonus (`entropy_coef`,
`use_adaptive_entropy`) and `use_bias_correction_kl`.
Cost: the extra no-grad forward over each generation batch (TRL's own old-log-prob forward, when it
runs, does not return entropies).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import torch

from eapo.core import (
    QUADRANTS,
    agg_loss,
    policy_loss,
    quadrant_masks,
    token_advantages,
    token_logprobs_and_entropy,
)
from eapo.core.shapers import SHAPERS, shape_advantages
from eapo.errors import ConfigError, check_choice
from eapo.integrations.run_folder import RunRecorder, generation_metrics
from eapo.train.algorithms import check_shaper_params, eapo_alpha_phi

try:
    from transformers import PreTrainedTokenizerBase, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer
except ImportError as error:  # pragma: no cover - exercised only where trl is absent
    raise ImportError(
        "eapo.integrations.trl needs TRL: pip install 'eapo[trl]' (tested with trl 1.16.0)"
    ) from error

__all__ = ["EAPOConfig", "EAPOTrainer", "add_eapo_diagnostics"]

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
    eapo_dump_every: N > 0 makes `output_dir` an eapo run folder (config.yaml, metrics.jsonl every step, a
        rollout dump every N steps) for `eapo quadrants`, `gradients` and `report`; 0 (default) writes none.
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
    eapo_dump_every: int = field(
        default=0,
        metadata={
            "help": "Every N optimizer steps write a rollout dump, and every step a metrics row, into "
            "output_dir as an eapo run folder (0 = off)."
        },
    )
    epsilon_high: float | None = field(
        default=0.28, metadata={"help": "Upper clip ε_high (PAPER.md Eq. 2; DAPO's clip-higher)."}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self.eapo_shaper_kwargs()  # validates the shaper name and its parameters
        if isinstance(self.eapo_dump_every, bool) or int(self.eapo_dump_every) < 0:
            raise ConfigError(
                f"EAPOConfig.eapo_dump_every = {self.eapo_dump_every!r}: expected an integer >= 0 "
                "(N > 0 writes a rollout dump every N steps, 0 writes none)"
            )
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
        check_choice("EAPOConfig.eapo_algo", self.eapo_algo, sorted(SHAPERS))
        params = dict(self.eapo_params or {})
        eapo_params = eapo_alpha_phi(self.eapo_algo, self.eapo_alpha, self.eapo_phi)
        labels = {key: f"EAPOConfig.eapo_{key}" for key in eapo_params if key not in params}
        return check_shaper_params(
            self.eapo_algo, {**eapo_params, **params}, field="EAPOConfig.eapo_params", labels=labels
        )


def _policy(trainer: GRPOTrainer) -> torch.nn.Module:
    """The trainer's model; TRL types it optional, but a GRPOTrainer always builds one."""
    if trainer.model is None:
        raise ConfigError("the GRPOTrainer has no model: pass model=... when you build it")
    return trainer.model


def _text_tokenizer(trainer: GRPOTrainer) -> PreTrainedTokenizerBase:
    """The tokenizer behind TRL's `processing_class` (a processor's `.tokenizer`, or the tokenizer itself)."""
    tokenizer = getattr(trainer.processing_class, "tokenizer", trainer.processing_class)
    if not isinstance(tokenizer, PreTrainedTokenizerBase):
        raise ConfigError(
            f"the trainer's processing_class is {type(trainer.processing_class).__name__}, which holds no "
            "tokenizer: eapo decodes the completions of its rollout dumps with one"
        )
    return tokenizer


def _group_size(trainer: GRPOTrainer, mode: str) -> int:
    """G of a generation batch. TRL types both counts optional: its config checks num_generations >= 2,
    and an unset num_generations_eval means num_generations."""
    size = trainer.num_generations
    if mode != "train":
        size = trainer.num_generations_eval or size
    if size is None:
        raise ConfigError("GRPOConfig.num_generations is None: set the group size G (>= 2)")
    return size


def _loss_mask(batch: dict[str, Any]) -> torch.Tensor:
    """The tokens TRL's loss counts: the completion mask, times the tool mask where tools answered."""
    mask = batch["completion_mask"]
    return mask if "tool_mask" not in batch else mask * batch["tool_mask"]


@torch.no_grad()
def rollout_scores(
    trainer: GRPOTrainer, batch: dict[str, Any], mode: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """π_old's log-probs, entropy and Σπ² [B,T] on a generation batch's completions, at temperature T.

    One no-grad forward of `trainer.model` in chunks of the per-device batch size, scored by
    `eapo.core.token_logprobs_and_entropy` on logits / `trainer.temperature` (the distribution TRL sampled
    from and scores with its fused head), zero outside the loss mask; Σπ² is float64. Multimodal batches
    go through TRL's own `_get_per_token_logps_and_entropies` (same temperature) and give Σπ² = None.
    """
    from eapo.rollout import response_logits

    prompt_ids, completion_ids = batch["prompt_ids"], batch["completion_ids"]
    input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
    attention_mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
    mask = _loss_mask(batch)
    args = trainer.args
    chunk = args.per_device_train_batch_size if mode == "train" else args.per_device_eval_batch_size
    extra = {key: batch.get(key) for key in _FORWARD_KEYS}
    if any(value is not None for value in extra.values()):
        logprobs, entropy, _ = trainer._get_per_token_logps_and_entropies(
            trainer.model,
            input_ids,
            attention_mask,
            completion_ids.size(1),
            batch_size=chunk,
            compute_entropy=True,
            **extra,
        )
        return logprobs.float() * mask, entropy.float() * mask, None
    parts: list[tuple[torch.Tensor, ...]] = []
    for start in range(0, input_ids.size(0), chunk):
        rows = slice(start, start + chunk)
        with trainer.accelerator.autocast():
            logits = response_logits(
                _policy(trainer), input_ids[rows], attention_mask[rows], prompt_ids.size(1)
            )
        parts.append(
            token_logprobs_and_entropy(
                logits,
                completion_ids[rows],
                mask[rows],
                return_sum_sq_probs=True,
                temperature=float(trainer.temperature),
            )
        )
    logprobs, entropy, sum_sq = (torch.cat(values) for values in zip(*parts, strict=True))
    return logprobs.float(), entropy.float(), sum_sq


class _Diagnostics:
    """What a trainer keeps between TRL's hooks: latest rewards, metrics, step loss, and the run folder."""

    def __init__(self, trainer: GRPOTrainer, algo: str, dump_every: int, log_quadrants: bool) -> None:
        self.trainer = trainer
        self.algo = algo
        self.dump_every = int(dump_every)
        self.log_quadrants = log_quadrants
        self.recorder: RunRecorder | None = None
        self.rewards: torch.Tensor | None = None  # [B] of the gathered generation batch
        self.pending: dict[str, float] = {}  # the latest generation batch's metrics
        self.step_loss = 0.0

    def capture_rewards(self, rewards_per_func: torch.Tensor) -> None:
        """TRL's scalar reward per response (gathered over processes): Σ_f w_f r_f, NaN-skipping, as TRL's."""
        weights = self.trainer.reward_weights.to(rewards_per_func.device).unsqueeze(0)
        self.rewards = (rewards_per_func * weights).nansum(dim=1).detach().float()

    def start(self, step: int) -> None:
        """Open the run folder (main process only) at the first training step `step` + 1."""
        if self.dump_every < 1 or not self.trainer.accelerator.is_main_process or self.recorder is not None:
            return
        args = self.trainer.args
        settings = json.loads(args.to_json_string())
        config = {
            "host": "trl",
            "algo": {"name": self.algo, **_algo_settings(args)},
            "model": {"name": getattr(getattr(_policy(self.trainer), "config", None), "_name_or_path", "")},
            "train": {"group_size": self.trainer.num_generations, "dump_rollouts_every": self.dump_every},
            "sampling": {
                "temperature": float(self.trainer.temperature),
                "top_p": settings.get("top_p"),
                "max_new_tokens": settings.get("max_completion_length"),
            },
            "trl": settings,
        }
        if args.output_dir is None:
            raise ConfigError("eapo_dump_every > 0 writes an eapo run folder into output_dir: set output_dir")
        self.recorder = RunRecorder(
            args.output_dir, host="trl", config=config, dump_every=self.dump_every, start_step=step
        )

    def end_step(self, step: int) -> None:
        if self.recorder is not None:
            self.recorder.log(step, {"loss": self.step_loss, **self.pending})
        self.step_loss = 0.0

    def close(self) -> None:
        if self.recorder is not None:
            self.recorder.close()
            self.recorder = None


def _algo_settings(args: Any) -> dict[str, Any]:
    if isinstance(args, EAPOConfig):
        return {"alpha": args.eapo_alpha, "phi": args.eapo_phi, "params": dict(args.eapo_params or {})}
    return {}


class _DiagnosticsCallback(TrainerCallback):
    """Opens the run folder at the start of training, writes a metrics row after each optimizer step."""

    def __init__(self, diagnostics: _Diagnostics) -> None:
        self.diagnostics = diagnostics

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.diagnostics.start(state.global_step)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.diagnostics.end_step(state.global_step)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.diagnostics.close()


def _after_generation(
    trainer: GRPOTrainer,
    output: dict[str, Any],
    mode: str,
    shaper: str,
    shaper_kwargs: dict[str, Any],
    diagnostics: _Diagnostics,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Score π_old, shape over the gathered batch, log the quadrant metrics and, on a dump step, dump.

    Returns this process's rows of (shaped token advantages [b,T], quadrant id [b,T] int8 or None).
    """
    group_size = _group_size(trainer, mode)
    accelerator = trainer.accelerator
    mask = _loss_mask(output)
    logprobs, entropy, sum_sq = rollout_scores(trainer, output, mode)

    def gather_tokens(values: torch.Tensor, pad: int = 0, first: bool = False) -> torch.Tensor:
        padded = accelerator.pad_across_processes(values, dim=1, pad_index=pad, pad_first=first)
        return accelerator.gather(padded)

    # Every process shapes the gathered batch (whole groups, see the module doc) and keeps its rows.
    local_rows, local_length = mask.shape
    gathered_mask = gather_tokens(mask)
    gathered_entropy = gather_tokens(entropy)
    gathered_adv = accelerator.gather(output["advantages"].float())
    if gathered_adv.shape[0] % group_size != 0:
        raise ConfigError(
            f"the gathered generation batch has {gathered_adv.shape[0]} rows, not a multiple of "
            f"num_generations = {group_size}: make per_device_*_batch_size × processes × "
            "steps_per_generation a multiple of num_generations"
        )
    base = token_advantages(gathered_adv, gathered_mask)
    shaped = shape_advantages(shaper, base, gathered_entropy, gathered_mask, group_size, **shaper_kwargs)
    rows = slice(accelerator.process_index * local_rows, (accelerator.process_index + 1) * local_rows)
    quadrant_local = None
    record = mode == "train" and diagnostics.dump_every > 0
    if not (diagnostics.log_quadrants or record):
        return shaped[rows, :local_length], None

    masks = quadrant_masks(base, gathered_entropy, gathered_mask, group_size)
    quadrant_id = torch.full(base.shape, _NO_QUADRANT, dtype=torch.int8, device=base.device)
    for index, name in enumerate(QUADRANTS):
        quadrant_id[masks[name]] = index
    quadrant_local = quadrant_id[rows, :local_length]
    gathered_logprobs = gather_tokens(logprobs)
    gathered_sum_sq = None if sum_sq is None else gather_tokens(sum_sq)
    rewards = diagnostics.rewards
    if rewards is None or rewards.shape[0] != base.shape[0]:
        rewards = None  # not captured (a generation step that bypassed `_calculate_rewards`)
    metrics = generation_metrics(
        rewards,
        base,
        shaped,
        gathered_entropy,
        gathered_mask,
        group_size,
        logprobs=gathered_logprobs,
        sum_sq_probs=gathered_sum_sq,
    )
    if diagnostics.log_quadrants:
        for key, value in metrics.items():
            if key.startswith("quadrant/"):
                trainer._metrics[mode][key].append(value)
    if not record:
        return shaped[rows, :local_length], quadrant_local
    diagnostics.pending = metrics
    step = trainer.state.global_step + 1
    if step % diagnostics.dump_every == 0:
        tokenizer = _text_tokenizer(trainer)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        response_ids = gather_tokens(output["completion_ids"], pad=pad)
        prompt_ids = gather_tokens(output["prompt_ids"], pad=pad, first=True)
        if diagnostics.recorder is not None:
            valid = gathered_mask.bool().cpu()
            ids = response_ids.cpu()
            diagnostics.recorder.dump(
                step,
                algo=diagnostics.algo,
                group_size=group_size,
                temperature=float(trainer.temperature),
                response_ids=ids,
                response_mask=valid,
                rewards=rewards if rewards is not None else torch.full((ids.shape[0],), float("nan")),
                entropy=gathered_entropy,
                logprobs=gathered_logprobs,
                sum_sq_probs=gathered_sum_sq,
                advantages=base,
                shaped_advantages=shaped,
                prompts=tokenizer.batch_decode(prompt_ids[::group_size].cpu(), skip_special_tokens=True),
                completions=[
                    tokenizer.decode(row[m], skip_special_tokens=True)
                    for row, m in zip(ids, valid, strict=True)
                ],
                response_tokens=[
                    [tokenizer.decode([int(t)]) for t in row[m]] for row, m in zip(ids, valid, strict=True)
                ],
                world_size=accelerator.num_processes,
            )
    return shaped[rows, :local_length], quadrant_local


def add_eapo_diagnostics(trainer: GRPOTrainer, dump_every: int = 1) -> GRPOTrainer:
    """Add eapo's diagnostics to a plain `trl.GRPOTrainer`, leaving its math as it is; returns the trainer.

    One call before `trainer.train()`. Each generation batch then gets one extra no-grad forward of π_old
    (entropy, log-probs and Σπ² at the sampling temperature), its `quadrant/<Q>/<stat>` metrics are logged
    with TRL's own, and `output_dir` becomes an eapo run folder: config.yaml, metrics.jsonl (every step)
    and a rollout dump every `dump_every` steps, which `eapo quadrants`, `gradients` and `report` read.
    The advantages the loss uses are TRL's, untouched (the dump's `shaped_advantages` equal `advantages`).
    """
    if isinstance(trainer, EAPOTrainer):
        raise ConfigError(
            "add_eapo_diagnostics is for a plain trl.GRPOTrainer; EAPOTrainer writes the same run folder "
            "with EAPOConfig(eapo_dump_every=N)"
        )
    if isinstance(dump_every, bool) or int(dump_every) < 1:
        raise ConfigError(f"add_eapo_diagnostics: dump_every = {dump_every!r}; expected an integer >= 1")
    diagnostics = _Diagnostics(trainer, "grpo", int(dump_every), log_quadrants=True)
    generate = trainer._generate_and_score_completions
    calculate_rewards = trainer._calculate_rewards
    compute_loss = trainer._compute_loss

    def _calculate_rewards(*args: Any, **kwargs: Any) -> torch.Tensor:
        rewards_per_func = calculate_rewards(*args, **kwargs)
        diagnostics.capture_rewards(rewards_per_func)
        return rewards_per_func

    def _generate_and_score_completions(inputs: Any) -> dict[str, Any]:
        output = generate(inputs)
        mode = "train" if _policy(trainer).training else "eval"
        _after_generation(trainer, output, mode, "grpo", {}, diagnostics)
        return output

    def _compute_loss(model: Any, inputs: dict[str, Any]) -> torch.Tensor:
        loss = compute_loss(model, inputs)
        if _policy(trainer).training:
            diagnostics.step_loss += float(loss.detach())
        return loss

    trainer._calculate_rewards = _calculate_rewards  # type: ignore[method-assign]
    trainer._generate_and_score_completions = _generate_and_score_completions  # type: ignore[method-assign]
    trainer._compute_loss = _compute_loss  # type: ignore[method-assign]
    trainer.add_callback(_DiagnosticsCallback(diagnostics))
    trainer.eapo_diagnostics = diagnostics  # type: ignore[attr-defined]
    return trainer


class EAPOTrainer(GRPOTrainer):
    """`trl.GRPOTrainer` with eapo's shaped token advantages and `eapo.core.policy_loss` (module doc)."""

    args: EAPOConfig  # __init__ refuses any other

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        config = kwargs.get("args", args[2] if len(args) > 2 else None)
        if not isinstance(config, EAPOConfig):
            raise ConfigError(
                f"EAPOTrainer needs args=EAPOConfig(...); got {type(config).__name__} "
                "(EAPOConfig takes every GRPOConfig field plus eapo_algo, eapo_alpha, eapo_phi, eapo_params)"
            )
        super().__init__(*args, **kwargs)
        self.eapo_shaper_kwargs = config.eapo_shaper_kwargs()
        self.eapo_diagnostics = _Diagnostics(
            self, config.eapo_algo, config.eapo_dump_every, config.eapo_quadrant_metrics
        )
        if config.eapo_dump_every:
            self.add_callback(_DiagnosticsCallback(self.eapo_diagnostics))

    # ---- shaping: once per generation batch, over whole groups -------------------------------------------

    def _calculate_rewards(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        rewards_per_func = super()._calculate_rewards(*args, **kwargs)
        self.eapo_diagnostics.capture_rewards(rewards_per_func)
        return rewards_per_func

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        output = super()._generate_and_score_completions(inputs)
        mode = "train" if _policy(self).training else "eval"
        shaped, quadrant_id = _after_generation(
            self, output, mode, self.args.eapo_algo, self.eapo_shaper_kwargs, self.eapo_diagnostics
        )
        device = output["completion_mask"].device
        output["advantages"] = shaped.to(device)
        if quadrant_id is not None and self.args.eapo_quadrant_metrics:
            output["eapo_quadrant"] = quadrant_id.to(device)
        return output

    # ---- the loss ----------------------------------------------------------------------------------------

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
            if self.max_completion_length is None:
                raise ConfigError("loss_type='dr_grpo' normalises by max_completion_length: set it")
            return _AGGREGATION[loss_type], mask.size(0) * self.max_completion_length, None, accumulation
        # dapo: the generation batch's token count, rescaled to one process and one accumulation window.
        normaliser = inputs["num_items_in_batch"].clamp(min=1.0) / self.accelerator.num_processes
        if mode == "train":
            normaliser = (
                normaliser * self.current_gradient_accumulation_steps / self.args.steps_per_generation
            )
        return _AGGREGATION[loss_type], normaliser, None, 1.0

    def _compute_loss(self, model: torch.nn.Module, inputs: dict[str, Any]) -> torch.Tensor:
        mode = "train" if _policy(self).training else "eval"
        completion_ids = inputs["completion_ids"]
        input_ids = torch.cat([inputs["prompt_ids"], completion_ids], dim=1)
        attention_mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
        mask = _loss_mask(inputs)
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
                self._metrics[mode][f"quadrant/{name}/loss"].append(
                    self.accelerator.gather(part).mean().item()
                )
        if mode == "train":
            self.eapo_diagnostics.step_loss += float(loss.detach())
        return loss

    def _global_masked_mean(self, values: torch.Tensor, mask: torch.Tensor) -> float:
        totals = torch.stack([(values.detach().float() * mask).sum(), mask.sum().float()])
        totals = self.accelerator.reduce(totals, reduction="sum")
        return float(totals[0] / totals[1].clamp(min=1.0))

    def _mean_over_processes(self, value: float) -> float:
        return self.accelerator.gather(torch.tensor([value], device=self.accelerator.device)).mean().item()
