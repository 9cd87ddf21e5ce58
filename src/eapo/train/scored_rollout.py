"""One step's sampled groups with their rewards: built from the rollout and the verifier's scores (plus
DAPO's overlong penalty), joined and filtered by DAPO's dynamic sampling, and written out as samples and as
the token-level dump the analysis commands read."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from eapo.core import overlong_penalty, zero_variance_groups
from eapo.rollout import RolloutBatch, concat_rollouts, select_rollout_rows
from eapo.tasks import Problem, ScoreResult
from eapo.train.dumps import write_dump


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

    @classmethod
    def from_scores(
        cls,
        problems: list[Problem],
        prompts: list[str],
        batch: RolloutBatch,
        scored: ScoreResult,
        *,
        group_size: int,
        max_new_tokens: int,
        overlong_buffer: int,
        sampling_time: float,
        scoring_time: float,
    ) -> ScoredRollout:
        """The rollout with the verifier's rewards, plus DAPO's overlong penalty over the last
        `overlong_buffer` tokens before `max_new_tokens` (0: none)."""
        correct = torch.tensor(scored.rewards, dtype=torch.float32)
        lengths = batch.response_mask.sum(dim=1)
        return cls(
            problems=problems,
            prompts=prompts,
            batch=batch,
            correct=correct,
            rewards=correct + overlong_penalty(lengths, max_new_tokens, overlong_buffer),
            group_size=group_size,
            verifier_errors=scored.n_verifier_errors,
            verifier_timeouts=scored.n_verifier_timeouts,
            extracted=torch.tensor([p is not None for p in scored.predictions], dtype=torch.bool),
            sampling_time=sampling_time,
            scoring_time=scoring_time,
        )

    def informative(self) -> torch.Tensor:
        """[P] bool: groups whose rewards differ (the others have zero GRPO advantage)."""
        return ~zero_variance_groups(self.rewards, self.group_size)

    def informative_groups(self) -> int:
        return int(self.informative().sum())

    def samples(self, count: int) -> list[dict[str, Any]]:
        """The first `count` completions with their prompt and reward, for samples.jsonl and `eapo report`."""
        batch = self.batch
        return [
            {
                "prompt": self.prompts[batch.prompt_index[i]],
                "completion": batch.completions[i],
                "reward": float(self.rewards[i]),
            }
            for i in range(min(count, len(batch.completions)))
        ]

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

    def write_dump(
        self,
        folder: Path,
        step: int,
        *,
        algo: str,
        temperature: float,
        tokenizer: Any,
        entropy: torch.Tensor,
        logprobs: torch.Tensor,
        sum_sq_probs: torch.Tensor,
        advantages: torch.Tensor,
        shaped_advantages: torch.Tensor,
    ) -> None:
        """Token-level record of one step, for the analysis commands (histograms, Fig. 8, Fig. 11; Σπ² gives
        Eq. 5's per-token logit-gradient norm without the model), in the format of `eapo.train.dumps`."""
        batch = self.batch
        write_dump(
            folder,
            step,
            host="eapo",
            algo=algo,
            group_size=self.group_size,
            temperature=temperature,
            response_ids=batch.response_ids,
            response_mask=batch.response_mask,
            prompt_index=batch.prompt_index,
            rewards=self.rewards,
            entropy=entropy,
            logprobs=logprobs,
            sum_sq_probs=sum_sq_probs,
            advantages=advantages,
            shaped_advantages=shaped_advantages,
            prompts=self.prompts,
            completions=batch.completions,
            response_tokens=[
                [tokenizer.decode([int(t)]) for t in row[m]]
                for row, m in zip(batch.response_ids, batch.response_mask.bool(), strict=True)
            ],
        )
