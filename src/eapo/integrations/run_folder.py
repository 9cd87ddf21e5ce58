"""An eapo run folder written from another trainer (TRL, verl), so that eapo's analysis commands read it.

`eapo quadrants --run`, `eapo gradients --run` and `eapo report --runs` read three things from a run folder:
`config.yaml` (the algorithm's name for the report), `metrics.jsonl` (one row per step: `loss`, `reward/mean`,
`entropy/mean`, `quadrant/<Q>/<stat>`, ...) and `rollouts/step_N.{safetensors,json}` (`eapo.train.dumps`).
`RunRecorder` writes the same three from TRL's or verl's step, and `generation_metrics` computes a step's
rollout metrics with the formulas of `eapo train` (its metrics block, `eapo.core.quadrant_metrics`), so a
number of the same name means the same thing whichever host wrote it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from eapo.core import quadrant_metrics
from eapo.train.dumps import write_dump

__all__ = ["RunRecorder", "generation_metrics"]


def generation_metrics(
    rewards: torch.Tensor | None,
    advantages: torch.Tensor,
    shaped_advantages: torch.Tensor,
    entropy: torch.Tensor,
    response_mask: torch.Tensor,
    group_size: int,
    *,
    logprobs: torch.Tensor | None = None,
    sum_sq_probs: torch.Tensor | None = None,
) -> dict[str, float]:
    """The rollout half of `eapo train`'s step metrics, for one whole generation batch (all ranks).

    Args:
        rewards: [B] the scalar reward of each response, or None (then no `reward/mean`).
        advantages: [B,T] GRPO token advantages (PAPER.md Eq. 2, before shaping; they decide the
            quadrants). shaped_advantages: [B,T] after the shaper.
        entropy: [B,T] π_old's token entropy at the sampling temperature. response_mask: [B,T].
        logprobs, sum_sq_probs: [B,T], optional; with both, the Eq. 5 gradient norm per quadrant.

    Returns:
        `reward/mean`, `entropy/mean`, `advantage/mean_abs`, `advantage/shaped_mean_abs`,
        `response/length_mean`, `tokens/generated` and every `quadrant/<Q>/<stat>` of `quadrant_metrics`.
    """
    mask = response_mask.detach().cpu() != 0
    advantages = advantages.detach().float().cpu() * mask
    shaped = shaped_advantages.detach().float().cpu() * mask
    entropy = entropy.detach().float().cpu() * mask
    n_tokens = int(mask.sum())
    metrics = {} if rewards is None else {"reward/mean": float(rewards.detach().float().cpu().mean())}
    metrics |= {
        "entropy/mean": float((entropy * mask).sum() / max(n_tokens, 1)),
        "advantage/mean_abs": float(advantages.abs().sum() / max(n_tokens, 1)),
        "advantage/shaped_mean_abs": float(shaped.abs().sum() / max(n_tokens, 1)),
        "response/length_mean": float(mask.sum(dim=1).float().mean()),
        "tokens/generated": float(n_tokens),
    }
    metrics.update(
        quadrant_metrics(
            advantages,
            entropy,
            mask,
            group_size,
            shaped_advantages=shaped,
            logprobs=None if logprobs is None else logprobs.detach().float().cpu(),
            sum_sq_probs=None if sum_sq_probs is None else sum_sq_probs.detach().cpu(),
        )
    )
    return metrics


class RunRecorder:
    """Writes `config.yaml`, `metrics.jsonl` and rollout dumps into `run_dir` (made if missing).

    Call it on the process that writes (rank 0); the others need none. `dump_every` N > 0: steps N, 2N, ...
    get a rollout dump; every step logged gets a metrics row. `config`: the host's settings as plain data;
    it is written as `config.yaml` with `algo.name` (what `eapo report` shows) and the host's own section.
    `start_step`: the step training starts from (a resumed run); metrics rows after it are dropped, so a new
    run into an old folder starts a fresh `metrics.jsonl`.
    """

    def __init__(
        self,
        run_dir: str | Path,
        *,
        host: str,
        config: dict[str, Any],
        dump_every: int,
        start_step: int = 0,
    ) -> None:
        import yaml

        from eapo.train.logging import MetricsLogger

        if int(dump_every) < 1:
            raise ValueError(f"dump_every must be >= 1 for a RunRecorder; got {dump_every}")
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.dump_every = int(dump_every)
        (self.run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
        self._logger = MetricsLogger(self.run_dir, tensorboard=False, resume_from_step=int(start_step))

    def wants_dump(self, step: int) -> bool:
        return step % self.dump_every == 0

    def dump(self, step: int, **fields: Any) -> Path:
        """Write step `step`'s rollout dump (`fields`: `eapo.train.dumps.write_dump`'s keywords)."""
        return write_dump(self.run_dir / "rollouts", step, host=self.host, **fields)

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        self._logger.log(step, metrics)

    def close(self) -> None:
        self._logger.close()
