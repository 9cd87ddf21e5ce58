"""ScoredRollout (eapo.train.scored_rollout) on a hand-made batch: rewards with DAPO's overlong penalty, the
informative groups, DAPO's refill (join, then keep the informative groups first) and the logged samples."""

from __future__ import annotations

import torch

from eapo.rollout import RolloutBatch
from eapo.tasks import Problem, ScoreResult
from eapo.train.scored_rollout import ScoredRollout


def batch(lengths: list[int], width: int = 4, tag: str = "") -> RolloutBatch:
    """Rows of the given response lengths, two per prompt, with completions named by prompt and row."""
    rows = len(lengths)
    mask = torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]
    return RolloutBatch(
        sequences=torch.zeros(rows, 1 + width, dtype=torch.long),
        attention_mask=torch.ones(rows, 1 + width, dtype=torch.long),
        prompt_length=1,
        response_ids=torch.arange(rows * width).reshape(rows, width),
        response_mask=mask,
        truncated=torch.tensor([n == width for n in lengths]),
        completions=[f"{tag}{i}" for i in range(rows)],
        prompt_index=torch.arange(rows // 2).repeat_interleave(2),
        num_generated_tokens=int(mask.sum()),
    )


def rollout(rewards: list[float], tag: str) -> ScoredRollout:
    groups = len(rewards) // 2
    scored = ScoreResult(rewards=rewards, predictions=["1", None] * groups, n_extracted=groups)
    problems = [Problem(question=f"{tag}q{g}", answer="1") for g in range(groups)]
    return ScoredRollout.from_scores(
        problems,
        [f"{tag}p{g}" for g in range(groups)],
        batch([2] * len(rewards), tag=tag),
        scored,
        group_size=2,
        max_new_tokens=4,
        overlong_buffer=0,
        sampling_time=1.0,
        scoring_time=0.5,
    )


def test_from_scores_adds_the_overlong_penalty_to_the_verifier_reward() -> None:
    scored = ScoreResult(rewards=[1.0, 1.0, 0.0, 1.0], predictions=["1", None, "2", "3"], n_extracted=3)
    problems = [Problem(question="a", answer="1"), Problem(question="b", answer="1")]
    # max_new_tokens 4, buffer 2: lengths 2, 3, 4, 1 get 0, −0.5, −1, 0.
    got = ScoredRollout.from_scores(
        problems, ["pa", "pb"], batch([2, 3, 4, 1]), scored, group_size=2, max_new_tokens=4,
        overlong_buffer=2, sampling_time=0.0, scoring_time=0.0,
    )  # fmt: skip
    assert got.correct.tolist() == [1.0, 1.0, 0.0, 1.0]
    assert got.rewards.tolist() == [1.0, 0.5, -1.0, 1.0]
    assert got.extracted.tolist() == [True, False, True, True]
    assert got.informative().tolist() == [True, True]


def test_refill_joins_rounds_and_keeps_the_informative_groups_first_in_sampling_order() -> None:
    first = rollout([1.0, 1.0, 0.0, 1.0], "a")  # group a0 uninformative, a1 informative
    more = rollout([0.0, 0.0, 1.0, 0.0], "b")  # b0 uninformative, b1 informative
    joined = first.extend(more, pad_token_id=0)
    assert joined.informative().tolist() == [False, True, False, True]
    assert joined.sampling_time == 2.0 and joined.scoring_time == 1.0
    kept = joined.keep_informative_first(2)
    assert [p.question for p in kept.problems] == ["aq1", "bq1"]
    assert kept.batch.completions == ["a2", "a3", "b2", "b3"]
    assert kept.rewards.tolist() == [0.0, 1.0, 1.0, 0.0]
    assert kept.informative_groups() == 2
    # Too few informative groups: uninformative ones fill the batch (the update masks them out).
    three = joined.keep_informative_first(3)
    assert [p.question for p in three.problems] == ["aq0", "aq1", "bq1"]
    assert first.keep_informative_first(2) is first  # the right size already: unchanged


def test_samples_are_the_first_rows_with_their_prompt_and_reward() -> None:
    got = rollout([1.0, 0.0, 0.0, 1.0], "a").samples(3)
    assert got == [
        {"prompt": "ap0", "completion": "a0", "reward": 1.0},
        {"prompt": "ap0", "completion": "a1", "reward": 0.0},
        {"prompt": "ap1", "completion": "a2", "reward": 0.0},
    ]
    assert len(rollout([1.0, 0.0], "a").samples(10)) == 2
