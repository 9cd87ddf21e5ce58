"""The RLVR training loop (DESIGN.md section 3). `Trainer.train_step` is the recipe, read top to bottom:

    rollout (G per prompt) -> rewards (verifier) -> π_old's log-probs + entropy (one chunked forward)
    -> group advantages -> shaper (the algorithm's credit assignment) -> policy update -> metrics

and `run()` repeats it, with held-out evaluations and checkpoints every N steps. The math lives in
`eapo.core`; the parts live beside this file: scoring a rollout (`scoring`), the scored rollout
(`scored_rollout`), the update loop (`update`), the step metrics as pure functions (`step_metrics`),
checkpoints (`checkpoint`), seeds and data order (`seeding`). This file orders the calls and keeps state.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from eapo.core import (
    group_advantages,
    shape_advantages,
    token_advantages,
)
from eapo.errors import CheckpointError, ConfigError
from eapo.models import (
    effective_precision,
    record_format_warmup,
    resolve_device,
    resolve_rollout_dtype,
)
from eapo.rollout import RolloutBatch, evaluate, generate_rollouts
from eapo.tasks import Problem, RewardFn, Task, build_prompt, format_rate, score_completions
from eapo.train.algorithms import Algorithm, resolve_algorithm
from eapo.train.checkpoint import restore_checkpoint, resume_target, save_checkpoint, training_state
from eapo.train.config import Config, dump_yaml, load_config
from eapo.train.logging import MetricsLogger, append_eval_counts, trim_jsonl_after
from eapo.train.precision import check_resume_precision, write_precision
from eapo.train.provenance import record_segment
from eapo.train.rollout_weights import decode_loop_scores_old_policy, refresh_rollout_copy
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
from eapo.train.scored_rollout import ScoredRollout
from eapo.train.scoring import score_policy
from eapo.train.seeding import data_order, seed_everything, step_seed
from eapo.train.start_eval import reuse_or_compute, start_eval_key
from eapo.train.step_metrics import (
    entropy_change_metrics,
    rollout_metrics,
    run_totals,
    skipped_step_metrics,
    step_quadrant_metrics,
    timing_metrics,
    token_metrics,
    update_metrics,
    update_size,
)
from eapo.train.stop_signals import StopRequest
from eapo.train.update import build_optimizer, policy_update, set_optimizer_implementation


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


@dataclass
class StepResult:
    """What one training step returns: its metrics (one metrics.jsonl row, before the run's totals and any
    evaluation are added) and the first `run.log_samples` completions, for samples.jsonl."""

    metrics: dict[str, float]
    samples: list[dict[str, Any]]


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
        # Sampling weights and π_old's source (eapo.train.rollout_weights).
        self.precision = effective_precision(self.device, config.model.dtype, config.model.rollout_dtype)
        self.rollout_dtype = resolve_rollout_dtype(
            self.device, config.model.dtype, config.model.rollout_dtype
        )
        self._rollout_copy: Any = None
        self.rollout_logprobs = decode_loop_scores_old_policy(
            config.train.rollout_logprobs,
            self.rollout_dtype,
            next(self.model.parameters()).dtype,
            self.precision["autocast"],
        )
        self.precision["old_logprobs"] = "decode loop" if self.rollout_logprobs else "forward"
        self.ref_model = None
        if self.algorithm.kl_coef > 0:
            self.ref_model = load_run_policy(config, task=self.task, progress=False).model
            self.ref_model.eval().requires_grad_(False)

        self.optimizer, self.scheduler = build_optimizer(self.model, config.train)
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
            if (
                run_dir is None
            ):  # default name: `<algo>-<task>-<YYYYmmdd-HHMMSS>-<6 hex>` (eapo.train.run_dir)
                name = config.run.name or default_run_name(config.algo.name, config.task.source)
                run_dir = Path(config.run.output_dir) / name
            self.run_dir = create_run_dir(Path(run_dir))
            self._lock = RunLock(self.run_dir).acquire()
            (self.run_dir / CONFIG_FILE).write_text(dump_yaml(config))
            record_format_warmup(self.run_dir, config.model, self.task)  # format_warmup.json, if any
            write_precision(self.run_dir, self.precision)
        record_segment(self.run_dir, self.step, resumed=self.resumed_from is not None)  # code per stretch
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
        set_optimizer_implementation(self.optimizer, self.config.train.fused_optimizer)
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
        """The model that samples: the policy itself, or its copy in `model.rollout_dtype` refreshed with
        the current weights (eapo.train.rollout_weights)."""
        if self.rollout_dtype == next(self.model.parameters()).dtype:
            return self.model
        self._rollout_copy = refresh_rollout_copy(self.model, self._rollout_copy, self.rollout_dtype)
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
        warning = None if self._warned_verifier else scored.failure_warning(self.step + 1)
        if warning:  # once per run; every failure is also counted
            self._warned_verifier = True
            tqdm.write(warning)
        self.counters["verifier_errors"] += scored.n_verifier_errors
        self.counters["verifier_timeouts"] += scored.n_verifier_timeouts
        return ScoredRollout.from_scores(
            problems,
            prompts,
            batch,
            scored,
            group_size=cfg.train.group_size,
            max_new_tokens=cfg.sampling.max_new_tokens,
            overlong_buffer=algo.overlong_window(cfg.sampling.max_new_tokens),
            sampling_time=sampling_time,
            scoring_time=time.perf_counter() - t0,
        )

    def train_step(self) -> StepResult:
        """One step of the recipe: rollout -> rewards -> π_old's log-probs and entropy -> advantages and
        shaping -> policy update -> metrics. Returns the step's metrics and its samples for samples.jsonl."""
        cfg, algo = self.config, self.algorithm
        G = cfg.train.group_size
        t_step = time.perf_counter()

        # 1-2. Rollout (G responses per prompt from the current policy, = π_old) and rewards (the verifier,
        # 0/1; a failing or hanging verifier gives 0 and is counted), refilled by DAPO's dynamic sampling.
        seed_everything(step_seed(cfg.run.seed, self.step))
        rollout, refill_rounds, extra_prompts = self._rollout()
        batch, mask = rollout.batch, rollout.batch.response_mask
        timings = {"rollout": rollout.sampling_time, "scoring": rollout.scoring_time}

        # 3. π_old's log-probs, entropy and Σπ² (and π_ref's log-probs for a KL term).
        t0 = time.perf_counter()
        old_logprobs, entropy, sum_sq = self._old_scores(batch)
        ref_logprobs = None if self.ref_model is None else self._score(self.ref_model, batch)[0]
        timings["old_logprobs"] = time.perf_counter() - t0
        if not (bool(torch.isfinite(old_logprobs[mask]).all()) and bool(torch.isfinite(entropy[mask]).all())):
            # Diverged weights (NaN/inf logits) cannot be shaped or updated: the step is skipped and counted
            # like a non-finite loss, so train.max_bad_steps stops the run with a checkpoint, not a traceback.
            return self._skipped_step(rollout, timings, t_step)

        # 4. Credit assignment: group advantages (Eq. 2), broadcast to tokens, then the algorithm's shaper.
        seq_adv, zero_var_groups = group_advantages(rollout.rewards, G, algo.advantage)
        advantages = token_advantages(seq_adv, mask)
        shaped = shape_advantages(algo.shaper, advantages, entropy, mask, G, **algo.shaper_params)
        update_mask = mask
        if cfg.train.drop_zero_variance_groups:
            update_mask = mask & rollout.informative().repeat_interleave(G)[:, None]

        # 5. Policy update: PPO epochs x mini-batches (whole groups) x micro-batches (eapo.train.update).
        t0 = time.perf_counter()
        params = [p for p in self.model.parameters() if p.requires_grad]
        before = [p.detach().clone() for p in params] if self._due(cfg.run.update_size_every) else None
        record = policy_update(
            self.model,
            self.optimizer,
            batch,
            old_logprobs,
            ref_logprobs,
            shaped,
            update_mask,
            algorithm=algo,
            schedule=cfg.train,
            temperature=cfg.sampling.temperature,
            autocast=self.autocast,
            max_len=cfg.sampling.max_new_tokens,
        )
        self.scheduler.step()
        drift = update_size(before, params) if before is not None else {}
        timings |= {"forward_backward": record.forward_backward_time, "optimizer": record.optimizer_time}
        timings["update"] = time.perf_counter() - t0

        # 6. What the update did to the entropy (PAPER.md Fig. 6b), and the token-level dump for analysis.
        entropy_change = {}
        if self._due(cfg.run.entropy_change_every):
            entropy_change = self._entropy_change(batch, entropy, advantages)
        if self._due(cfg.run.dump_rollouts_every):
            rollout.write_dump(
                self.run_dir / "rollouts",
                self.step + 1,
                algo=algo.name,
                temperature=cfg.sampling.temperature,
                tokenizer=self.tokenizer,
                entropy=entropy,
                logprobs=old_logprobs,
                sum_sq_probs=sum_sq,
                advantages=advantages,
                shaped_advantages=shaped,
            )
        timings["step"] = time.perf_counter() - t_step

        # 7. Metrics, each group a pure function (eapo.train.step_metrics): rewards, entropy, the update, the
        # four quadrants by the sign of the GRPO advantage (PAPER.md §4.1) with the shaped |Â| beside it.
        metrics = {
            **rollout_metrics(
                rollout,
                zero_variance_groups=zero_var_groups,
                refill_rounds=refill_rounds,
                extra_prompts=extra_prompts,
                format_rate=format_rate(batch.completions, cfg.task.answer_format),
            ),
            **token_metrics(entropy, advantages, shaped, mask),
            "lr": float(self.scheduler.get_last_lr()[0]),
            **update_metrics(record),
            **drift,
            **entropy_change,
            **step_quadrant_metrics(record, advantages, shaped, entropy, old_logprobs, sum_sq, mask, G),
            **timing_metrics(timings, tokens=float(mask.sum())),
        }
        return StepResult(metrics, rollout.samples(cfg.run.log_samples))

    def _due(self, every: int) -> bool:
        """Whether the step being taken is one of every `every` (0: never)."""
        return bool(every) and (self.step + 1) % every == 0

    def _rollout(self) -> tuple[ScoredRollout, int, int]:
        """The step's scored rollout, the refill rounds run and the extra prompts drawn. With DAPO's dynamic
        sampling, groups whose rewards are all equal are replaced by new prompts' groups, for up to
        `algo.refill_rounds` rounds."""
        wanted = self.config.train.prompts_per_step
        rollout = self._sample_and_score(self._next_problems())
        rounds = 0
        while rounds < self.algorithm.refill_rounds and rollout.informative_groups() < wanted:
            rounds += 1
            more = self._sample_and_score(self._next_problems())
            rollout = rollout.extend(more, self.tokenizer.pad_token_id)
        extra_prompts = len(rollout.problems) - wanted
        return rollout.keep_informative_first(wanted), rounds, extra_prompts

    def _score(self, model: Any, batch: RolloutBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`score_policy` at the sampling temperature (logits / T: the distribution the tokens were drawn
        from, as TRL and verl score them), in the run's micro-batches."""
        t, temperature = self.config.train, self.config.sampling.temperature
        chunk, rows, shared = t.logprob_chunk_size, t.micro_batch_rows, t.shared_prompt_forward
        return score_policy(model, batch, chunk, rows, self.autocast, temperature, share_prompts=shared)

    def _entropy_change(
        self, batch: RolloutBatch, entropy: torch.Tensor, advantages: torch.Tensor
    ) -> dict[str, float]:
        """How the update moved each token's entropy, by quadrant (PAPER.md Fig. 6b): the batch rescored."""
        self.model.eval()
        entropy_after = self._score(self.model, batch)[1]
        mask, group_size = batch.response_mask, self.config.train.group_size
        return entropy_change_metrics(entropy, entropy_after, advantages, mask, group_size)

    def _old_scores(self, batch: RolloutBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """π_old's log-probs, entropy and Σπ²: recorded by the decode loop when it sampled from the training
        weights in fp32 (self.rollout_logprobs), else one chunked forward without gradients."""
        if batch.logprobs is not None and batch.entropy is not None and batch.sum_sq_probs is not None:
            return batch.logprobs, batch.entropy, batch.sum_sq_probs
        return self._score(self.model, batch)

    def _skipped_step(self, rollout: ScoredRollout, timings: dict[str, float], t_step: float) -> StepResult:
        """A step whose scores were not finite: nothing is updated (the scheduler still advances, as for any
        step), and the loop counts it as a bad step."""
        tqdm.write(
            f"warning: step {self.step + 1}: the policy's log-probs or entropies are not finite (diverged "
            "weights?); the update is skipped and counted (train.max_bad_steps)."
        )
        self.scheduler.step()
        timings["step"] = time.perf_counter() - t_step
        metrics = skipped_step_metrics(rollout) | timing_metrics(timings)
        return StepResult(metrics, rollout.samples(self.config.run.log_samples))

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, num_problems: int | None = None, *, at_start: bool = False) -> dict[str, float]:
        """Avg@k and Pass@k on the held-out problems. `at_start` with `eval.reuse_start`: read the result
        from the cache when an earlier run stored it under the same key (`eapo.train.start_eval`), else
        compute and store it; logged with `eval/reused` (1 read, 0 computed)."""
        e, seed = self.config.eval, self.config.run.seed
        sampling = sampling_settings(self.config, "eval")
        problems = self.task.eval[: num_problems or e.num_problems]
        self.model.eval()
        start = time.perf_counter()

        def compute() -> dict[str, Any]:
            with self.autocast():
                return evaluate(
                    self.model, self.tokenizer, self.task, problems, k=e.k, sampling=sampling, seed=seed
                )

        reused = None
        if at_start and e.reuse_start:
            key = start_eval_key(
                self.model,
                self.tokenizer,
                self.task,
                problems,
                k=e.k,
                sampling=sampling,
                seed=seed,
                precision=self.precision,
            )
            result, reused = reuse_or_compute(key, compute, run_dir=self.run_dir)
        else:
            result = compute()
        append_eval_counts(self.run_dir, self.step, e.k, result["correct_per_problem"])
        metrics = {f"eval/{k}": float(v) for k, v in result.items() if isinstance(v, int | float)}
        if reused is not None:
            metrics["eval/reused"] = float(reused)
        return {**metrics, "time/eval": time.perf_counter() - start}

    # ------------------------------------------------------------------ the loop
    def run(self) -> TrainResult:
        """Train until `train.steps`, a stop signal or too many bad steps; always end with a checkpoint.

        SIGINT/SIGTERM/SIGHUP (from the start evaluation to the last save) finish the current step, save and
        return `stopped="interrupted"`. A failed final save raises CheckpointError.
        """
        try:
            with StopRequest() as stop:
                return self._run(stop)
        finally:
            self.logger.close()
            if self._lock is not None:
                self._lock.release()

    def _run(self, stop: StopRequest) -> TrainResult:
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
            start_eval = self.evaluate(at_start=True)
            self.logger.log(0, start_eval)
        bar = tqdm(
            total=total, initial=self.step, desc=f"eapo {self.algorithm.name}", disable=not self.progress
        )
        samples_path = self.run_dir / "samples.jsonl"
        while self.step < total and not stop.requested:
            result = self.train_step()
            metrics = result.metrics
            self.step += 1
            bad = metrics["skipped_updates"] > 0
            self.bad_steps = self.bad_steps + 1 if bad else 0
            self.counters["skipped_steps"] += int(bad)
            metrics.update(run_totals(self.counters))
            if cfg.eval.every and self.step % cfg.eval.every == 0 and self.step < total:
                metrics.update(self.evaluate())
            self.logger.log(self.step, metrics)
            with samples_path.open("a") as f:
                for sample in result.samples:
                    f.write(json.dumps({"step": self.step, **sample}) + "\n")
            bar.update(1)
            postfix = {
                "reward": f"{metrics['reward/mean']:.3f}",
                "H": f"{metrics['entropy/mean']:.3f}",
                "loss": f"{metrics.get('loss', float('nan')):.4f}",
            }
            if "eval/pass@1" in metrics:
                postfix["eval"] = f"{metrics['eval/pass@1']:.3f}"
            bar.set_postfix(postfix)
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
        # Fail before loading a model when there is nothing to resume from, or nothing left to do.
        checkpoint, step, finished = resume_target(run_dir, requested.train.steps)
        check_resume_changes(run_dir, recorded, requested, allow=allow_config_change)
        if finished:
            return TrainResult(run_dir, step, "nothing_to_do", checkpoint)
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
