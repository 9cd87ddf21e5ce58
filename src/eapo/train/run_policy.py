"""One path from a config to a loaded policy: task, model and tokenizer, device, autocast and sampling.

The trainer, `eapo eval`, the grids' final evaluations, `eapo credit`, `eapo gradients` and the gradient
cosine all start from a `Config` and need the same chain (config -> task -> policy on its device -> the
autocast that the run's precision implies -> the sampling settings of training or of evaluation). It lives
here once, so a change to any link (a new precision rule, a new sampling field) reaches every command.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Literal

from eapo.models import autocast_context, load_policy
from eapo.rollout import SamplingConfig
from eapo.tasks import Task, load_task
from eapo.train.config import Config

__all__ = ["RunPolicy", "load_run_policy", "sampling_settings"]

SamplingKind = Literal["train", "eval"]


def sampling_settings(config: Config, kind: SamplingKind) -> SamplingConfig:
    """The sampling of rollouts (`kind="train"`: `config.sampling`) or of evaluations (`kind="eval"`:
    `config.eval`'s temperature and top-p, PAPER.md §6's T = 0.6, with the rollouts' stop strings, row
    chunk, top-p sampler, phases and, unless `eval.max_new_tokens` is set, their length limit)."""
    if kind == "train":
        return dataclasses.replace(config.sampling, stop_strings=list(config.sampling.stop_strings))
    if kind != "eval":
        raise ValueError(f"sampling kind {kind!r}: expected 'train' or 'eval'")
    return SamplingConfig(
        temperature=config.eval.temperature,
        top_p=config.eval.top_p,
        max_new_tokens=config.eval.max_new_tokens or config.sampling.max_new_tokens,
        stop_strings=list(config.sampling.stop_strings),
        batch_rows=config.sampling.batch_rows,
        top_p_candidates=config.sampling.top_p_candidates,
        candidate_draw=config.sampling.candidate_draw,
        shared_prompt_prefill=config.sampling.shared_prompt_prefill,
        attention=config.sampling.attention,
        phase_tokens=config.sampling.phase_tokens,
    )


@dataclass
class RunPolicy:
    """A config's policy, loaded: the model on its device, its tokenizer and task, and the run's autocast."""

    config: Config
    task: Task
    model: Any
    tokenizer: Any

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    @property
    def autocast(self) -> Callable[[], AbstractContextManager[Any]]:
        """A factory of the autocast context of the run's precision (`model.dtype` on this device)."""
        device, dtype = self.device, self.config.model.dtype
        return lambda: autocast_context(device, dtype)

    def sampling(self, kind: SamplingKind) -> SamplingConfig:
        return sampling_settings(self.config, kind)


def load_run_policy(
    config: Config, *, task: Task | None = None, progress: bool = True, eval_mode: bool = False
) -> RunPolicy:
    """Load `config`'s task (unless given) and policy (`eapo.models.load_policy`: the tiny model's SFT and
    the format warm-up run first where not cached). `eval_mode` puts the model in eval mode, for commands
    that only sample and score."""
    the_task = task if task is not None else load_task(config.task)
    model, tokenizer = load_policy(config.model, the_task, progress=progress)
    if eval_mode:
        model.eval()
    return RunPolicy(config=config, task=the_task, model=model, tokenizer=tokenizer)
