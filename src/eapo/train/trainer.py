"""The RLVR training loop (DESIGN.md section 3), one step read top to bottom:

    prompts -> rollout (G per prompt) -> rewards (verifier) -> old log-probs + entropy (one chunked
    forward) -> group advantages -> shaper (the algorithm's credit assignment) -> PPO-clip policy loss
    -> optimizer step -> metrics (per quadrant) -> log; every N steps: held-out eval and a checkpoint.

All the math lives in `eapo.core`; this file only orders the calls, times them and keeps state.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import random
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from eapo.core import (
    QUADRANTS,
    RATIO_CLIPPING_LOSSES,
    clipped_tokens,
    group_advantages,
    masked_quantiles,
    overlong_penalty,
    policy_loss,
    quadrant_masks,
    quadrant_metrics,
    shape_advantages,
    token_advantages,
    token_logprobs_and_entropy,
    zero_variance_groups,
)
from eapo.errors import CheckpointError, ConfigError
from eapo.models import (
    effective_precision,
    record_format_warmup,
    resolve_device,
    resolve_rollout_dtype,
)
from eapo.rollout import (
    RolloutBatch,
    concat_rollouts,
    evaluate,
    generate_rollouts,
    response_logits,
    select_rollout_rows,
)
from eapo.tasks import Problem, Task, build_prompt, format_rate, score_completions
from eapo.train.algorithms import Algorithm, resolve_algorithm
from eapo.train.checkpoint import (
    checkpoint_state,
    restore_checkpoint,
    resume_point,
    run_completed,
    save_checkpoint,
    training_state,
)
from eapo.train.config import Config, dump_yaml, load_config
from eapo.train.dumps import write_dump
from eapo.train.logging import MetricsLogger, append_eval_counts, trim_jsonl_after
from eapo.train.precision import check_resume_precision, write_precision
from eapo.train.run_dir import (
    CONFIG_FILE,
    RunLock,
    check_new_run_dir,
    check_output_dir,
    check_resume_changes,
    create_run_dir,
    default_run_name,
    record_changes,
    recorded_config,
    resume_config,
)
from eapo.train.run_policy import load_run_policy, sampling_settings

RewardFn = Callable[[str, Problem], float]


@dataclass
class TrainResult:
    """How a run ended. `stopped`: completed | interrupted (SIGINT/SIGTERM) | bad_steps (train.max_bad_steps
    consecutive steps with a non-finite loss or gradient). `checkpoint`: the newest one written."""

    run_dir: Path
    steps_done: int
    stopped: str
    checkpoint: Path | None
    start_eval: dict[str, float] = field(default_factory=dict)
    final_eval: dict[str, float] = field(default_factory=dict)


# Signals that stop a run gracefully: Ctrl-C, `kill`, and SIGHUP (the terminal or SSH session closed).
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class _StopRequest:
    """SIGINT/SIGTERM/SIGHUP ask the loop to stop after the current step (it then checkpoints and exits 0).

    A second Ctrl-C interrupts at once, for a user who really means it.
    """

    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        tqdm.write(
            f"\n{self.signal_name} received: finishing this step, then saving a checkpoint "
            "(Ctrl-C again stops at once, without saving)."
        )

    def __enter__(self) -> _StopRequest:
        with contextlib.suppress(ValueError):  # not the main thread: no handlers, no graceful stop
            for sig in STOP_SIGNALS:
                # A run started under `nohup` ignores SIGHUP on purpose: keep it ignored.
                if sig != signal.SIGINT and signal.getsignal(sig) == signal.SIG_IGN:
                    continue
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (1 << 32))
    torch.manual_seed(seed)


def step_seed(run_seed: int, step: int) -> int:
    """Every step samples from its own seed, so a resumed run draws exactly what the original would."""
    return (run_seed * 1_000_003 + step * 7_919 + 17) % (1 << 31)


def data_order(num_problems: int, seed: int, start: int) -> Iterator[int]:
    """Indices into the train split from position `start` on: a fresh seeded permutation per epoch."""
    epoch, offset = divmod(start, num_problems)
    while True:
        order = np.random.default_rng([seed, epoch]).permutation(num_problems)
        yield from (int(i) for i in order[offset:])
        epoch, offset = epoch + 1, 0


def make_run_dir(config: Config) -> Path:
    """A new run's folder `run.output_dir/run.name`, created by this process alone (ConfigError naming it if
    it exists). Default name: `<algo>-<task>-<YYYYmmdd-HHMMSS>-<6 hex>`, see `eapo.train.run_dir`."""
    name = config.run.name or default_run_name(config.algo.name, config.task.source)
    return create_run_dir(Path(config.run.output_dir) / name)


@torch.no_grad()
def score_policy(
    model: Any,
    batch: RolloutBatch,
    chunk_size: int | None,
    micro_batch_rows: int,
    autocast: Any,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Log-probs, entropy and Σπ² of the rollout's response tokens under `model`, without gradients, for
    the distribution softmax(logits / temperature) (pass the sampling temperature).

    Returns three [B,T] tensors (zero outside the response mask); the last is float64.
    """
    outs: list[tuple[torch.Tensor, ...]] = []
    for rows in _row_chunks(batch.sequences.shape[0], micro_batch_rows):
        with autocast():
            logits = response_logits(
                model, batch.sequences[rows], batch.attention_mask[rows], batch.prompt_length
            )
        outs.append(
            token_logprobs_and_entropy(
                logits,
                batch.response_ids[rows],
                batch.response_mask[rows],
                chunk_size,
                return_sum_sq_probs=True,
                temperature=temperature,
            )
        )
    logprobs, entropy, sum_sq = (torch.cat(parts) for parts in zip(*outs, strict=True))
    # Σπ² stays float64: Eq. 5's 1 − 2π_y + Σπ² cancels to ~1e-8 at near-deterministic tokens.
    return logprobs.float(), entropy.float(), sum_sq


@torch.no_grad()
def update_size(before: list[torch.Tensor], after: list[torch.Tensor]) -> dict[str, float]:
    """How far one step moved the trainable weights: ‖θ_after − θ_before‖₂, and that over ‖θ_before‖₂.

    `before` (the snapshot taken before the update) is overwritten with the difference: no second copy of
    the weights, and fused per-tensor norms (about 0.1 s for SmolLM2's 135M parameters on one CPU core).
    """
    if not before:
        return {"drift/update_norm": 0.0, "drift/update_relative": 0.0}
    norm_before = float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(before))))
    torch._foreach_sub_(before, [a.detach() for a in after])
    delta = float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(before))))
    return {
        "drift/update_norm": delta,
        "drift/update_relative": delta / norm_before if norm_before > 0 else 0.0,
    }


def _row_chunks(num_rows: int, chunk: int) -> list[slice]:
    return [slice(i, min(i + chunk, num_rows)) for i in range(0, num_rows, chunk)]


@dataclass
class ScoredRollout:
    """One step's sampled groups with their rewards (rows of one prompt's group contiguous)."""

    problems: list[Problem]
    prompts: list[str]
    batch: RolloutBatch
    correct: torch.Tensor  # [B] the verifier's 0/1
    rewards: torch.Tensor  # [B] correct plus any overlong penalty
    group_size: int
    verifier_errors: int
    verifier_timeouts: int
    extracted: torch.Tensor  # [B] bool: the verifier could extract an answer from the row's completion
    sampling_time: float
    scoring_time: float

    def informative(self) -> torch.Tensor:
        """[P] bool: groups whose rewards differ (the others have zero GRPO advantage)."""
        return ~zero_variance_groups(self.rewards, self.group_size)

    def informative_groups(self) -> int:
        return int(self.informative().sum())

    def extend(self, more: ScoredRollout, pad_token_id: int) -> ScoredRollout:
        """This rollout followed by `more`'s groups (DAPO's refill)."""
        return ScoredRollout(
            problems=self.problems + more.problems,
            prompts=self.prompts + more.prompts,
            batch=concat_rollouts([self.batch, more.batch], pad_token_id),
            correct=torch.cat([self.correct, more.correct]),
            rewards=torch.cat([self.rewards, more.rewards]),
            group_size=self.group_size,
            verifier_errors=self.verifier_errors + more.verifier_errors,
            verifier_timeouts=self.verifier_timeouts + more.verifier_timeouts,
            extracted=torch.cat([self.extracted, more.extracted]),
            sampling_time=self.sampling_time + more.sampling_time,
            scoring_time=self.scoring_time + more.scoring_time,
        )

    def keep_informative_first(self, num_groups: int) -> ScoredRollout:
        """`num_groups` groups: the informative ones in sampling order, then (when refill ran out of
        rounds) uninformative ones to keep the batch size, which the update masks out as before. A rollout
        of exactly `num_groups` groups is returned unchanged."""
        total = len(self.problems)
        if total == num_groups:
            return self
        informative = self.informative()
        order = torch.cat([informative.nonzero()[:, 0], (~informative).nonzero()[:, 0]])[:num_groups]
        order = order.sort().values  # keep sampling order, so the batch reads as it was drawn
        G = self.group_size
        rows = (order[:, None] * G + torch.arange(G)).reshape(-1)
        return dataclasses.replace(
            self,
            problems=[self.problems[int(g)] for g in order],
            prompts=[self.prompts[int(g)] for g in order],
            batch=select_rollout_rows(self.batch, rows),
            correct=self.correct[rows],
            rewards=self.rewards[rows],
            extracted=self.extracted[rows],
        )


class Trainer:
    """Owns the model, optimizer and run folder; `run()` trains for `config.train.steps` steps."""

    def __init__(
        self,
        config: Config,
        *,
        run_dir: Path | None = None,
        resume: bool = False,
        progress: bool = True,
        reward_fn: RewardFn | None = None,
        allow_config_change: bool = False,
        trust_checkpoint: bool | None = None,
    ) -> None:
        self.config = config
        self.progress = progress
        self.reward_fn = reward_fn
        self.trust_checkpoint = trust_checkpoint
        # The run folder belongs to one process (eapo.train.run_dir). Everything that can refuse the run
        # is checked before the model loads: a resumed folder is locked and its recorded config compared
        # with `config`; a new run's output folder is checked (it is created only after the model loads).
        self._lock: RunLock | None = None
        self._config_changes: list[tuple[str, Any, Any]] = []
        self._precision_changes: list[tuple[str, Any, Any]] = []
        self.completed = False  # saved in state.json: a resume of a finished run has nothing to do
        if resume:
            if run_dir is None:
                raise ValueError("Trainer(resume=True) needs the run_dir to resume")
            self._lock = RunLock(Path(run_dir)).acquire()
            self._config_changes = check_resume_changes(
                Path(run_dir), recorded_config(Path(run_dir)), config, allow=allow_config_change
            )
            # Precision is part of the run's identity (eapo.train.precision): another one is refused.
            self._precision_changes = check_resume_precision(
                Path(run_dir),
                effective_precision(
                    resolve_device(config.model.device), config.model.dtype, config.model.rollout_dtype
                ),
                allow=allow_config_change,
            )
        else:
            check_output_dir(config.run.output_dir)
            if run_dir is not None:
                check_new_run_dir(Path(run_dir))
            elif config.run.name:
                check_new_run_dir(Path(config.run.output_dir) / config.run.name)
        self.algorithm: Algorithm = resolve_algorithm(config.algo)
        seed_everything(config.run.seed)

        policy = load_run_policy(config, progress=progress)
        self.task: Task = policy.task
        self.model, self.tokenizer = policy.model, policy.tokenizer
        self.device = policy.device
        self.autocast = policy.autocast
        # Rollouts sample from `rollout_model()`: the training weights, or a bf16 copy of them
        # (model.rollout_dtype) refreshed before every rollout; π_old then comes from the training-precision
        # forward. When sampling weights = training weights in fp32 without autocast, the decode loop's
        # log-probs and entropy are π_old's exactly (to rounding) and replace that forward
        # (train.rollout_logprobs).
        self.precision = effective_precision(self.device, config.model.dtype, config.model.rollout_dtype)
        self.rollout_dtype = resolve_rollout_dtype(
            self.device, config.model.dtype, config.model.rollout_dtype
        )
        self._rollout_copy: Any = None
        weights_dtype = next(self.model.parameters()).dtype
        self.rollout_logprobs = bool(
            config.train.rollout_logprobs
            and self.rollout_dtype == weights_dtype == torch.float32
            and not self.precision["autocast"]
        )
        self.precision["old_logprobs"] = "decode loop" if self.rollout_logprobs else "forward"
        self.ref_model = None
        if self.algorithm.kl_coef > 0:
            self.ref_model = load_run_policy(config, task=self.task, progress=False).model
            self.ref_model.eval().requires_grad_(False)

        params = [p for p in self.model.parameters() if p.requires_grad]
        t = config.train
        self.optimizer = torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay)
        warmup = max(t.warmup_steps, 0)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: min(1.0, (s + 1) / warmup) if warmup else 1.0
        )
        self.step = 0
        self.data_position = 0
        self.bad_steps = 0
        self.counters = {"skipped_steps": 0, "verifier_errors": 0, "verifier_timeouts": 0, "failed_saves": 0}
        self.resumed_from: Path | None = None
        self.resume_notes: list[str] = []  # what --resume skipped or cleaned up, printed by run()
        self._warned_verifier = False
        # The run folder is made only now that task and model have loaded: a bad input leaves nothing.
        if resume:
            self.run_dir = Path(run_dir)  # type: ignore[arg-type]
            self._restore()
            # config.yaml keeps the config the run started with; accepted changes are appended beside it.
            record_changes(self.run_dir, self.step, self._config_changes)
            # An allowed precision change is recorded like a config change; precision.json holds the latest.
            record_changes(self.run_dir, self.step, self._precision_changes)
            if self._precision_changes or not (self.run_dir / "precision.json").is_file():
                write_precision(self.run_dir, self.precision)
        else:
            self.run_dir = create_run_dir(Path(run_dir)) if run_dir is not None else make_run_dir(config)
            self._lock = RunLock(self.run_dir).acquire()
            (self.run_dir / CONFIG_FILE).write_text(dump_yaml(config))
            record_format_warmup(self.run_dir, config.model, self.task)  # format_warmup.json, if any
            write_precision(self.run_dir, self.precision)
        if self.resumed_from is not None:  # the steps after the checkpoint are replayed: drop their samples
            trim_jsonl_after(self.run_dir / "samples.jsonl", self.step)
        self.logger = MetricsLogger(
            self.run_dir, config.run.tensorboard, resume_from_step=self.step if self.resumed_from else None
        )

    # ------------------------------------------------------------------ checkpoints
    def _restore(self) -> None:
        """Continue from the run's newest valid checkpoint (see `restore_checkpoint`)."""
        restored = restore_checkpoint(
            self.run_dir, self.model, self.optimizer, self.scheduler, trust=self.trust_checkpoint
        )
        self.resume_notes.extend(restored.notes)
        self.step = restored.state["step"]
        self.data_position = restored.state["data_position"]
        self.bad_steps = restored.state.get("bad_steps", 0)
        self.counters.update(restored.state.get("counters", {}))
        self.resumed_from = restored.path

    def save(self, *, final: bool = False) -> Path | None:
        """Write a checkpoint of the current state. Returns its folder, or None when a periodic save failed.

        A failed save (e.g. a full disk) keeps the previous checkpoint. A periodic one prints the error and
        training goes on (the next periodic save tries again); a failed `final` save (end of run, interrupt,
        bad-step stop) raises CheckpointError, since the run's last progress would otherwise be lost silently.
        """
        state = {
            "step": self.step,
            "data_position": self.data_position,
            "bad_steps": self.bad_steps,
            "counters": self.counters,
            "algo": self.algorithm.name,
            "completed": self.completed,
        }
        try:
            # A LoRA (peft) model saves its adapters only; `_restore` loads them back the same way.
            return save_checkpoint(
                self.run_dir,
                self.step,
                self.model,
                self.tokenizer,
                training_state(self.optimizer, self.scheduler),
                state,
                self.config.run.keep_checkpoints,
            )
        except CheckpointError as err:
            self.counters["failed_saves"] += 1
            if final:
                raise
            tqdm.write(f"error: {err}. Training goes on; the next checkpoint will try again.")
            return None

    # ------------------------------------------------------------------ one step
    def _next_problems(self) -> list[Problem]:
        n = self.config.train.prompts_per_step
        order = data_order(len(self.task.train), self.config.run.seed, self.data_position)
        problems = [self.task.train[next(order)] for _ in range(n)]
        self.data_position += n
        return problems

    def rollout_model(self) -> Any:
        """The model that samples: the policy itself, or its copy in `model.rollout_dtype` with the current
        weights (made on first use, every parameter copied and cast at each call; buffers such as RoPE's
        inverse frequencies keep their dtype)."""
        if self.rollout_dtype == next(self.model.parameters()).dtype:
            return self.model
        with torch.no_grad():
            if self._rollout_copy is None:
                self._rollout_copy = copy.deepcopy(self.model).requires_grad_(False).eval()
                for parameter in self._rollout_copy.parameters():
                    parameter.data = parameter.data.to(self.rollout_dtype)
            else:
                sources = list(self.model.parameters())
                targets = list(self._rollout_copy.parameters())
                for target, source in zip(targets, sources, strict=True):
                    target.copy_(source)
        return self._rollout_copy

    def _sample_and_score(self, problems: list[Problem]) -> ScoredRollout:
        """G responses to each problem from the current policy, and their rewards (with DAPO's overlong
        penalty where the algorithm has one); verifier failures are counted and warned about once."""
        cfg, algo = self.config, self.algorithm
        prompts = [build_prompt(p, self.tokenizer, cfg.task) for p in problems]
        t0 = time.perf_counter()
        self.model.eval()  # no dropout while sampling or scoring
        sampler = self.rollout_model()
        # No autocast while sampling: the rollout runs in the sampling weights' own dtype.
        batch = generate_rollouts(
            sampler,
            self.tokenizer,
            prompts,
            cfg.train.group_size,
            cfg.sampling,
            seed=None,
            with_logprobs=self.rollout_logprobs,
            logprob_chunk_size=cfg.train.logprob_chunk_size,
        )
        sampling_time = time.perf_counter() - t0
        t0 = time.perf_counter()
        row_problems = [problems[i] for i in batch.prompt_index.tolist()]
        scored = score_completions(
            batch.completions, row_problems, self.task, cfg.task.verifier_timeout_s, reward_fn=self.reward_fn
        )
        self._warn_about_verifier(scored.n_verifier_errors, scored.n_verifier_timeouts, scored.error_messages)
        self.counters["verifier_errors"] += scored.n_verifier_errors
        self.counters["verifier_timeouts"] += scored.n_verifier_timeouts
        correct = torch.tensor(scored.rewards, dtype=torch.float32)
        lengths = batch.response_mask.sum(dim=1)
        buffer = algo.overlong_buffer if algo.overlong_buffer >= 0 else cfg.sampling.max_new_tokens // 4
        rewards = correct + overlong_penalty(lengths, cfg.sampling.max_new_tokens, buffer)
        return ScoredRollout(
            problems=problems,
            prompts=prompts,
            batch=batch,
            correct=correct,
            rewards=rewards,
            group_size=cfg.train.group_size,
            verifier_errors=scored.n_verifier_errors,
            verifier_timeouts=scored.n_verifier_timeouts,
            extracted=torch.tensor([p is not None for p in scored.predictions], dtype=torch.bool),
            sampling_time=sampling_time,
            scoring_time=time.perf_counter() - t0,
        )

    def train_step(self) -> dict[str, float]:
        cfg, algo = self.config, self.algorithm
        G = cfg.train.group_size
        timings: dict[str, float] = {}
        t_step = time.perf_counter()

        # 1-2. Rollout (G responses per prompt from the current policy, = π_old) and rewards (the verifier,
        # 0/1; a failing or hanging verifier gives 0 and is counted). With DAPO's dynamic sampling, groups
        # whose rewards are all equal are replaced by new prompts' groups, for up to `refill_rounds` rounds.
        seed_everything(step_seed(cfg.run.seed, self.step))
        t0 = time.perf_counter()
        rollout = self._sample_and_score(self._next_problems())
        refill_rounds = 0
        wanted = cfg.train.prompts_per_step
        while refill_rounds < algo.refill_rounds and rollout.informative_groups() < wanted:
            refill_rounds += 1
            more = self._sample_and_score(self._next_problems())
            rollout = rollout.extend(more, self.tokenizer.pad_token_id)
        extra_prompts = len(rollout.problems) - wanted
        rollout = rollout.keep_informative_first(wanted)
        prompts, batch, correct, rewards = (
            rollout.prompts,
            rollout.batch,
            rollout.correct,
            rollout.rewards,
        )
        lengths = batch.response_mask.sum(dim=1)
        timings["rollout"] = rollout.sampling_time
        timings["scoring"] = rollout.scoring_time

        # 3. Old log-probs and entropy: one chunked forward without gradients, at the sampling temperature
        # (logits / T: the distribution the tokens were drawn from, as TRL and verl score them).
        t0 = time.perf_counter()
        T = cfg.sampling.temperature
        if batch.logprobs is not None and batch.entropy is not None and batch.sum_sq_probs is not None:
            # Recorded by the decode loop from the training weights in fp32 (self.rollout_logprobs).
            old_logprobs, entropy, sum_sq = batch.logprobs, batch.entropy, batch.sum_sq_probs
        else:
            old_logprobs, entropy, sum_sq = score_policy(
                self.model, batch, cfg.train.logprob_chunk_size, cfg.train.micro_batch_rows, self.autocast, T
            )
        ref_logprobs = None
        if self.ref_model is not None:
            ref_logprobs, _, _ = score_policy(
                self.ref_model,
                batch,
                cfg.train.logprob_chunk_size,
                cfg.train.micro_batch_rows,
                self.autocast,
                T,
            )
        timings["old_logprobs"] = time.perf_counter() - t0
        mask = batch.response_mask
        if not (bool(torch.isfinite(old_logprobs[mask]).all()) and bool(torch.isfinite(entropy[mask]).all())):
            # Diverged weights (NaN/inf logits) cannot be shaped or updated: the step is skipped and counted
            # like a non-finite loss, so train.max_bad_steps stops the run with a checkpoint, not a traceback.
            return self._skipped_step(prompts, batch, correct, rewards, timings, t_step)

        # 4. Credit assignment: group advantages (Eq. 2), broadcast to tokens, then the algorithm's shaper.
        seq_adv, zero_var_groups = group_advantages(rewards, G, algo.advantage)
        advantages = token_advantages(seq_adv, mask)
        shaped = shape_advantages(algo.shaper, advantages, entropy, mask, G, **algo.shaper_params)
        update_mask = mask
        if cfg.train.drop_zero_variance_groups:
            informative = ~zero_variance_groups(rewards, G)
            update_mask = mask & informative.repeat_interleave(G)[:, None]

        # 5. Policy update: PPO epochs x mini-batches (whole groups) x micro-batches (gradient accumulation).
        t0 = time.perf_counter()
        update = self._policy_update(batch, old_logprobs, ref_logprobs, shaped, update_mask)
        timings["forward_backward"] = update.pop("time/forward_backward")
        timings["optimizer"] = update.pop("time/optimizer")
        timings["update"] = time.perf_counter() - t0

        # 6. Metrics: rewards, entropy, the four quadrants (PAPER.md §4.1). Quadrants by the sign of the GRPO
        # advantage (the outcome), as TRL, verl and the dump analysis split them; the shaped |Â| beside it.
        per_token_loss = update.pop("per_token_loss")
        quadrants = quadrant_metrics(
            advantages,
            entropy,
            mask,
            G,
            shaped_advantages=shaped,
            clipped=update.pop("clip_rate", None),
            logprobs=old_logprobs,
            sum_sq_probs=sum_sq,
            per_token_loss=per_token_loss,
        )
        n_tokens = int(mask.sum())
        step_number = self.step + 1
        every = cfg.run.entropy_change_every
        entropy_change = {}
        if every and step_number % every == 0:
            entropy_change = self._entropy_change(batch, entropy, advantages, mask)
        every = cfg.run.dump_rollouts_every
        if every and step_number % every == 0:
            self._dump_rollouts(
                step_number, batch, prompts, rewards, entropy, advantages, shaped, old_logprobs, sum_sq
            )
        timings["step"] = time.perf_counter() - t_step
        ent_q = masked_quantiles(entropy, mask, (0.1, 0.5, 0.9)).tolist()
        metrics: dict[str, float] = {
            "reward/mean": float(rewards.mean()),
            "accuracy": float(correct.mean()),
            "reward/zero_variance_groups": float(zero_var_groups),
            "response/length_mean": float(lengths.float().mean()),
            "response/truncated_frac": float(batch.truncated.float().mean()),
            "verifier/errors": float(rollout.verifier_errors),
            "verifier/timeouts": float(rollout.verifier_timeouts),
            "verifier/extracted_frac": float(rollout.extracted.float().mean()),
            "verifier/format_rate": format_rate(batch.completions, cfg.task.answer_format),
            # DAPO's dynamic sampling: extra rollout rounds and prompts drawn to fill the batch with
            # informative groups, and how many informative groups the update finally got.
            "sampling/refill_rounds": float(refill_rounds),
            "sampling/extra_prompts": float(extra_prompts),
            "sampling/informative_groups": float(rollout.informative_groups()),
            "entropy/mean": float((entropy * mask).sum() / max(n_tokens, 1)),
            "entropy/p10": ent_q[0],
            "entropy/p50": ent_q[1],
            "entropy/p90": ent_q[2],
            "advantage/mean_abs": float(advantages.abs().sum() / max(n_tokens, 1)),
            "advantage/shaped_mean_abs": float(shaped.abs().sum() / max(n_tokens, 1)),
            "tokens/generated": float(n_tokens),
            "tokens_per_s": n_tokens / max(timings["step"], 1e-9),
            "lr": float(self.scheduler.get_last_lr()[0]),
        }
        metrics.update(update)
        metrics.update(entropy_change)
        metrics.update(quadrants)
        for key, value in timings.items():
            metrics[f"time/{key}"] = value
        self._last_samples = self._samples(prompts, batch, rewards)
        return metrics

    def _skipped_step(
        self,
        prompts: list[str],
        batch: RolloutBatch,
        correct: torch.Tensor,
        rewards: torch.Tensor,
        timings: dict[str, float],
        t_step: float,
    ) -> dict[str, float]:
        """The metrics of a step whose scores were not finite: nothing is updated (the scheduler still
        advances, as for any step), and the loop counts it as a bad step."""
        tqdm.write(
            f"warning: step {self.step + 1}: the policy's log-probs or entropies are not finite (diverged "
            "weights?); the update is skipped and counted (train.max_bad_steps)."
        )
        self.scheduler.step()
        self._last_samples = self._samples(prompts, batch, rewards)
        timings["step"] = time.perf_counter() - t_step
        metrics = {
            "reward/mean": float(rewards.mean()),
            "accuracy": float(correct.mean()),
            "entropy/mean": float("nan"),
            "skipped_updates": 1.0,
            "non_finite_scores": 1.0,
        }
        metrics.update({f"time/{key}": value for key, value in timings.items()})
        return metrics

    def _samples(
        self, prompts: list[str], batch: RolloutBatch, rewards: torch.Tensor
    ) -> list[dict[str, Any]]:
        """The first `run.log_samples` completions of the step, for samples.jsonl and `eapo report`."""
        return [
            {
                "prompt": prompts[batch.prompt_index[i]],
                "completion": batch.completions[i],
                "reward": float(rewards[i]),
            }
            for i in range(min(self.config.run.log_samples, len(batch.completions)))
        ]

    def _warn_about_verifier(self, errors: int, timeouts: int, messages: list[str]) -> None:
        """Say once per run that the verifier or reward function failed (every failure is also counted)."""
        if self._warned_verifier or not (errors or timeouts):
            return
        self._warned_verifier = True
        example = f" First: {messages[0]}." if messages else ""
        tqdm.write(
            f"warning: step {self.step + 1}: the verifier failed on {errors} completion(s) and timed out on "
            f"{timeouts}; each gets reward 0 and is counted (metrics verifier/errors, verifier/timeouts)."
            f"{example}"
        )

    def _entropy_change(
        self, batch: RolloutBatch, entropy_before: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor
    ) -> dict[str, float]:
        """Mean entropy change of each quadrant's tokens caused by this step's update (PAPER.md Fig. 6b).

        Re-scores the same batch with the updated policy; quadrants by the sign of the GRPO (unshaped)
        `advantages`, as in the step's `quadrant/<Q>/...` metrics.
        """
        self.model.eval()
        _, entropy_after, _ = score_policy(
            self.model,
            batch,
            self.config.train.logprob_chunk_size,
            self.config.train.micro_batch_rows,
            self.autocast,
            self.config.sampling.temperature,
        )
        delta = entropy_after - entropy_before
        masks = quadrant_masks(advantages, entropy_before, mask, self.config.train.group_size)
        out = {"entropy_change/all": float((delta * mask).sum() / mask.sum().clamp(min=1))}
        for name in QUADRANTS:
            count = masks[name].sum()
            out[f"entropy_change/{name}"] = float((delta * masks[name]).sum() / count) if count else 0.0
        return out

    def _dump_rollouts(
        self,
        step: int,
        batch: RolloutBatch,
        prompts: list[str],
        rewards: torch.Tensor,
        entropy: torch.Tensor,
        advantages: torch.Tensor,
        shaped: torch.Tensor,
        logprobs: torch.Tensor,
        sum_sq_probs: torch.Tensor,
    ) -> None:
        """Token-level record of one step, for the analysis commands (histograms, Fig. 8, Fig. 11; Σπ² gives
        Eq. 5's per-token logit-gradient norm without the model), in the format of `eapo.train.dumps`."""
        write_dump(
            self.run_dir / "rollouts",
            step,
            host="eapo",
            algo=self.algorithm.name,
            group_size=self.config.train.group_size,
            temperature=self.config.sampling.temperature,
            response_ids=batch.response_ids,
            response_mask=batch.response_mask,
            prompt_index=batch.prompt_index,
            rewards=rewards,
            entropy=entropy,
            logprobs=logprobs,
            sum_sq_probs=sum_sq_probs,
            advantages=advantages,
            shaped_advantages=shaped,
            prompts=prompts,
            completions=batch.completions,
            response_tokens=[
                [self.tokenizer.decode([int(t)]) for t in row[m]]
                for row, m in zip(batch.response_ids, batch.response_mask.bool(), strict=True)
            ],
        )

    def _policy_update(
        self,
        batch: RolloutBatch,
        old_logprobs: torch.Tensor,
        ref_logprobs: torch.Tensor | None,
        advantages: torch.Tensor,
        update_mask: torch.Tensor,
    ) -> dict[str, Any]:
        """PPO epochs x mini-batches (whole groups, one optimizer step each) x micro-batches (gradient
        accumulation). With more than one mini-batch per rollout, π_θ has moved away from π_old by the later
        mini-batches, so the ratio differs from 1 and the clip binds (the paper's schedule, §6).

        Step metrics do not depend on the micro-batch size: per-token means are weighted by each
        micro-batch's valid tokens over all updates; `loss` and `pg_loss` are the mean over optimizer steps
        of each mini-batch's aggregated loss (its micro-batch shares summed).
        """
        cfg, algo = self.config, self.algorithm
        B = batch.sequences.shape[0]
        rows_per_mini = B // cfg.train.mini_batches
        need_entropy_grad = algo.entropy_coef > 0
        per_token_loss = torch.zeros_like(advantages)
        clip_counts = torch.zeros_like(advantages)  # updates in which each token's ratio was clipped
        token_sums: dict[str, float] = {}  # Σ over micro-batches of (per-token mean × valid tokens)
        counted_tokens = 0
        mini_losses: list[float] = []
        mini_pg_losses: list[float] = []
        grad_norms: list[float] = []
        t_fb = t_opt = 0.0
        skipped = 0
        params = [p for p in self.model.parameters() if p.requires_grad]
        before = None
        if cfg.run.update_size_every and (self.step + 1) % cfg.run.update_size_every == 0:
            before = [p.detach().clone() for p in params]
        self.model.train()
        for epoch in range(cfg.train.ppo_epochs):
            for mini in _row_chunks(B, rows_per_mini):
                num_tokens = int(update_mask[mini].sum())
                num_seqs = mini.stop - mini.start
                mini_loss = mini_pg_loss = 0.0  # one bad mini-batch must not veto the others
                self.optimizer.zero_grad(set_to_none=True)
                t0 = time.perf_counter()
                for micro in _row_chunks(num_seqs, cfg.train.micro_batch_rows):
                    rows = slice(mini.start + micro.start, mini.start + micro.stop)
                    with self.autocast():
                        logits = response_logits(
                            self.model, batch.sequences[rows], batch.attention_mask[rows], batch.prompt_length
                        )
                    outs = token_logprobs_and_entropy(
                        logits,
                        batch.response_ids[rows],
                        update_mask[rows],
                        cfg.train.logprob_chunk_size,
                        entropy_grad=need_entropy_grad,
                        temperature=cfg.sampling.temperature,
                    )
                    logprobs, entropy = outs[0], outs[1]
                    loss, token_loss, m = policy_loss(
                        logprobs.float(),
                        old_logprobs[rows],
                        advantages[rows],
                        update_mask[rows],
                        loss_type=algo.loss,
                        clip_low=algo.clip_low,
                        clip_high=algo.clip_high,
                        dual_clip=algo.dual_clip,
                        ref_logprobs=None if ref_logprobs is None else ref_logprobs[rows],
                        kl_coef=algo.kl_coef,
                        entropy=entropy.float() if need_entropy_grad else None,
                        entropy_coef=algo.entropy_coef,
                        agg=algo.agg,
                        num_tokens=num_tokens,
                        num_seqs=num_seqs,
                        **algo.loss_params,
                    )
                    loss.backward()
                    mini_loss += float(loss.detach())
                    mini_pg_loss += m.pop("pg_loss")
                    micro_tokens = int(update_mask[rows].sum())
                    counted_tokens += micro_tokens
                    for key, value in m.items():
                        token_sums[key] = token_sums.get(key, 0.0) + float(value) * micro_tokens
                    if algo.loss in RATIO_CLIPPING_LOSSES:  # KL-Cov clips nothing: its rate stays 0
                        clip_counts[rows] += clipped_tokens(
                            logprobs.detach().float(),
                            old_logprobs[rows],
                            advantages[rows],
                            update_mask[rows],
                            algo.clip_low,
                            algo.clip_high,
                        ).float()
                    if epoch == 0:
                        per_token_loss[rows] = token_loss.detach().float() / max(num_tokens, 1)
                mini_losses.append(mini_loss)
                mini_pg_losses.append(mini_pg_loss)
                t_fb += time.perf_counter() - t0
                t0 = time.perf_counter()
                grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.train.max_grad_norm))
                grad_norms.append(grad_norm)
                if math.isfinite(grad_norm) and math.isfinite(mini_loss):
                    self.optimizer.step()
                else:
                    # A NaN/inf loss or gradient: skip this update; weights and Adam moments stay unchanged.
                    skipped += 1
                self.optimizer.zero_grad(set_to_none=True)
                t_opt += time.perf_counter() - t0
        self.scheduler.step()
        finite_norms = [g for g in grad_norms if math.isfinite(g)]
        out: dict[str, Any] = {key: value / max(counted_tokens, 1) for key, value in token_sums.items()}
        out["loss"] = float(np.mean(mini_losses))
        out["pg_loss"] = float(np.mean(mini_pg_losses))
        out["grad_norm"] = float(np.mean(finite_norms)) if finite_norms else float("nan")
        out["skipped_updates"] = float(skipped)
        out["updates_per_rollout"] = float(len(mini_losses))
        if before is not None:
            out.update(update_size(before, params))
        out["time/forward_backward"] = t_fb
        out["time/optimizer"] = t_opt
        out["per_token_loss"] = per_token_loss
        # The share of this token's updates in which PPO's clip was active (0 with one on-policy update).
        out["clip_rate"] = clip_counts / cfg.train.ppo_epochs
        return out

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, num_problems: int | None = None) -> dict[str, float]:
        e = self.config.eval
        sampling = sampling_settings(self.config, "eval")
        problems = self.task.eval[: num_problems or e.num_problems]
        self.model.eval()
        with self.autocast():
            result = evaluate(
                self.model,
                self.tokenizer,
                self.task,
                problems,
                k=e.k,
                sampling=sampling,
                seed=self.config.run.seed,
            )
        append_eval_counts(self.run_dir, self.step, e.k, result["correct_per_problem"])
        return {f"eval/{k}": float(v) for k, v in result.items() if isinstance(v, int | float)}

    # ------------------------------------------------------------------ the loop
    def run(self) -> TrainResult:
        """Train until `train.steps`, a stop signal or too many bad steps; always end with a checkpoint.

        SIGINT/SIGTERM/SIGHUP (from the start evaluation to the last save) finish the current step, save and
        return `stopped="interrupted"`. A failed final save raises CheckpointError.
        """
        try:
            with _StopRequest() as stop:
                return self._run(stop)
        finally:
            self.logger.close()
            if self._lock is not None:
                self._lock.release()

    def _run(self, stop: _StopRequest) -> TrainResult:
        cfg = self.config
        total = cfg.train.steps
        start_eval: dict[str, float] = {}
        final_eval: dict[str, float] = {}
        stopped = "completed"
        checkpoint: Path | None = self.resumed_from
        if self.resumed_from is not None:
            for note in self.resume_notes:
                tqdm.write(note)
            tqdm.write(f"Resuming from {self.resumed_from} (step {self.step}).")
        else:
            start_eval = self.evaluate()
            self.logger.log(0, start_eval)
        bar = tqdm(
            total=total, initial=self.step, desc=f"eapo {self.algorithm.name}", disable=not self.progress
        )
        samples_path = self.run_dir / "samples.jsonl"
        while self.step < total and not stop.requested:
            metrics = self.train_step()
            self.step += 1
            bad = metrics["skipped_updates"] > 0
            self.bad_steps = self.bad_steps + 1 if bad else 0
            self.counters["skipped_steps"] += int(bad)
            metrics["skipped_steps_total"] = float(self.counters["skipped_steps"])
            metrics["verifier/errors_total"] = float(self.counters["verifier_errors"])
            metrics["verifier/timeouts_total"] = float(self.counters["verifier_timeouts"])
            metrics["checkpoint/failed_saves_total"] = float(self.counters["failed_saves"])
            if cfg.eval.every and self.step % cfg.eval.every == 0 and self.step < total:
                metrics.update(self.evaluate())
            self.logger.log(self.step, metrics)
            with samples_path.open("a") as f:
                for sample in self._last_samples:
                    f.write(json.dumps({"step": self.step, **sample}) + "\n")
            bar.update(1)
            bar.set_postfix(
                reward=f"{metrics['reward/mean']:.3f}",
                H=f"{metrics['entropy/mean']:.3f}",
                loss=f"{metrics.get('loss', float('nan')):.4f}",
                **({"eval": f"{metrics['eval/pass@1']:.3f}"} if "eval/pass@1" in metrics else {}),
            )
            if self.bad_steps >= cfg.train.max_bad_steps:
                stopped = "bad_steps"
                break
            if stop.requested:
                break
            if cfg.run.checkpoint_every and self.step % cfg.run.checkpoint_every == 0:
                checkpoint = self.save() or checkpoint
        bar.close()
        if stop.requested and stopped == "completed":
            stopped = "interrupted"  # the final evaluation is left to the resumed run
        if stopped == "completed":
            final_eval = self.evaluate()
            self.logger.log(self.step, final_eval)
        self.completed = stopped == "completed"
        checkpoint = self.save(final=True) or checkpoint
        if stopped == "bad_steps":
            tqdm.write(
                f"Stopping at step {self.step}: {self.bad_steps} consecutive steps had a non-finite loss or "
                f"gradient (train.max_bad_steps = {cfg.train.max_bad_steps}); their updates were skipped, so "
                f"checkpoint {checkpoint} holds the weights of the last good update. Lower train.lr or "
                "check the rewards, then continue with --resume."
            )
        elif stopped == "interrupted":
            tqdm.write(f"Stopped by {stop.signal_name} at step {self.step}; saved {checkpoint}.")
        return TrainResult(self.run_dir, self.step, stopped, checkpoint, start_eval, final_eval)


def train(
    config: Config | str | Path | None = None,
    overrides: list[str] | None = None,
    *,
    resume: str | Path | None = None,
    progress: bool = True,
    reward_fn: RewardFn | None = None,
    allow_config_change: bool = False,
    trust_checkpoint: bool | None = None,
) -> TrainResult:
    """Train a policy. `config` is a Config, a YAML path or None (built-in defaults); `resume` a run folder.

    Resuming continues the run's recorded config (its config.yaml plus config_changes.jsonl). `overrides`
    and `config` are compared with it: a longer `train.steps` and fields that do not change the math (e.g.
    `run.checkpoint_every`) are applied and recorded; any other change raises ConfigError listing the
    fields unless `allow_config_change`, which applies and records it. A finished run with nothing left to
    do returns `stopped="nothing_to_do"` and writes nothing. `trust_checkpoint`: see
    `eapo.train.checkpoint.read_trainer_state`.
    """
    if resume is not None:
        run_dir = Path(resume)
        if not (run_dir / CONFIG_FILE).is_file():
            raise ConfigError(f"--resume {run_dir}: not a run folder (no config.yaml)")
        recorded = recorded_config(run_dir)
        requested = resume_config(run_dir, recorded, config, overrides)
        scan = resume_point(run_dir)  # fail before loading a model when there is nothing to resume from
        assert scan.latest is not None
        state = checkpoint_state(scan.latest)
        step = int(state.get("step", 0))
        if requested.train.steps < step:
            raise ConfigError(
                f"--resume {run_dir}: train.steps = {requested.train.steps} is below the checkpoint's step "
                f"{step}; give --steps {step} or more"
            )
        check_resume_changes(run_dir, recorded, requested, allow=allow_config_change)
        if run_completed(run_dir, state) and step >= requested.train.steps:
            return TrainResult(run_dir, step, "nothing_to_do", scan.latest)
        trainer = Trainer(
            requested,
            run_dir=run_dir,
            resume=True,
            progress=progress,
            reward_fn=reward_fn,
            allow_config_change=allow_config_change,
            trust_checkpoint=trust_checkpoint,
        )
        return trainer.run()
    if not isinstance(config, Config):
        config = load_config(config, overrides)
    return Trainer(config, progress=progress, reward_fn=reward_fn).run()
