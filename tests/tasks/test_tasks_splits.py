"""The validation and format warm-up splits: disjoint from train, eval and each other, reproducible."""

from __future__ import annotations

import pytest

from eapo.errors import ConfigError
from eapo.tasks import TaskConfig, load_task
from eapo.tasks.splits import validation_problems, warmup_problems

# The study's primary task (issue #19): 3-4 terms of 1-2 digits, + and -.
STUDY_TASK = TaskConfig(
    source="basic_arithmetic",
    params={
        "min_terms": 3,
        "max_terms": 4,
        "min_digits": 1,
        "max_digits": 2,
        "operators": ["+", "-"],
        "allow_parentheses": False,
        "allow_negation": False,
    },
    num_train=300,
    num_eval=100,
)
# A task with few distinct problems (~250), where equal questions from different seeds are common.
SMALL_TASK = TaskConfig(
    source="basic_arithmetic",
    params={"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1, "operators": ["+", "-"]},
    num_train=60,
    num_eval=20,
)


@pytest.mark.parametrize("config", [STUDY_TASK, SMALL_TASK], ids=["study", "small"])
def test_the_four_splits_never_share_a_question(config: TaskConfig) -> None:
    task = load_task(config)
    validation = validation_problems(config, 30)
    warmup = warmup_problems(config, 40, validation)
    splits = {
        "train": {p.question for p in task.train},
        "eval": {p.question for p in task.eval},
        "validation": {p.question for p in validation},
        "warmup": {p.question for p in warmup},
    }
    assert len(splits["validation"]) == 30 and len(splits["warmup"]) == 40  # distinct within each split
    for name in ("train", "eval", "validation"):
        assert not splits["warmup"] & splits[name], f"warm-up problems shared with {name}"
    assert not splits["validation"] & (splits["train"] | splits["eval"])
    # Every warm-up problem has worked steps ending in its answer (the warm-up's target).
    assert all(p.solution is not None for p in warmup)


def test_the_splits_are_reproducible() -> None:
    validation = validation_problems(STUDY_TASK, 20)
    first = [p.question for p in warmup_problems(STUDY_TASK, 25, validation)]
    again = [p.question for p in warmup_problems(STUDY_TASK, 25, validation_problems(STUDY_TASK, 20))]
    assert first == again
    assert [p.question for p in validation] == [p.question for p in validation_problems(STUDY_TASK, 20)]


def test_split_sizes_are_checked() -> None:
    with pytest.raises(ConfigError, match="num_problems = 0"):
        warmup_problems(STUDY_TASK, 0, [])
    with pytest.raises(ConfigError, match="validation split of 0"):
        validation_problems(STUDY_TASK, 0)
