"""Splits beyond train and held-out eval: a validation split and a format warm-up split.

Every split is drawn like the held-out one, from the task's own generator (or data set) with `task.seed`
shifted, and every question that belongs to an earlier split is dropped, so the four never overlap:

| split      | drawn with            | drops the questions of   | used for                            |
| ---------- | --------------------- | ------------------------ | ----------------------------------- |
| train      | task.seed             | eval                     | RL                                  |
| eval       | task.seed (held out)  | -                        | reported results, never tuned on    |
| validation | task.seed + 250,000   | train, eval              | choosing settings, the warm-up stop |
| warm-up    | task.seed + 125,000   | train, eval, validation  | the supervised format warm-up       |

For reasoning-gym tasks a seed offset also moves the generator's seed range (item `i` of seed `s` is drawn
from `Random(s + i)`; eval draws from `s + 500,001`, a validation task from `s + 750,001`, a warm-up
task from `s + 625,001`), so splits of up to 125,000 problems come from disjoint seed ranges and the
question filter only removes the rare equal questions that different seeds produce.
"""

from __future__ import annotations

import dataclasses

from eapo.errors import ConfigError, DataError
from eapo.tasks.config import TaskConfig
from eapo.tasks.loading import load_task
from eapo.tasks.problem import Problem

VALIDATION_SEED_OFFSET = 250_000
WARMUP_SEED_OFFSET = 125_000


def validation_problems(
    task_config: TaskConfig, count: int, seed_offset: int = VALIDATION_SEED_OFFSET
) -> list[Problem]:
    """`count` problems outside both the train and the held-out split, for choosing hyper-parameters.

    The validation problems relate to training exactly as the held-out ones do, and the held-out split is
    never looked at. Reproducible: the same config and count give the same problems.
    """
    if count < 1:
        raise ConfigError(f"validation split of {count} problems (--val-problems): expected an integer >= 1")
    task = load_task(task_config)
    excluded = {p.question for p in task.train} | {p.question for p in task.eval}
    return _problems_outside(task_config, count, seed_offset, excluded, "a validation split", False)


def warmup_problems(
    task_config: TaskConfig,
    count: int,
    validation: list[Problem],
    seed_offset: int = WARMUP_SEED_OFFSET,
) -> list[Problem]:
    """`count` problems for a supervised warm-up, outside the train, eval and `validation` splits.

    Only problems with worked steps (`Problem.solution`) are kept where the task has any, so the warm-up
    teaches the steps as well as the answer format. Reproducible like `validation_problems`.
    """
    if count < 1:
        raise ConfigError(f"model.format_warmup.num_problems = {count}: expected an integer >= 1")
    task = load_task(task_config)
    excluded = {p.question for p in task.train + task.eval + validation}
    return _problems_outside(task_config, count, seed_offset, excluded, "a format warm-up split", True)


def _problems_outside(
    task_config: TaskConfig,
    count: int,
    seed_offset: int,
    excluded: set[str],
    what: str,
    prefer_solutions: bool,
) -> list[Problem]:
    """The first `count` problems of the task drawn with `seed + seed_offset` whose questions are not in
    `excluded` (and, with `prefer_solutions`, that have worked steps, when any candidate has them)."""
    last_error: Exception | None = None
    for factor in (2, 4, 8):  # draw more candidates while too many of them are excluded
        shifted = dataclasses.replace(
            task_config, seed=task_config.seed + seed_offset, num_eval=count * factor, num_train=1
        )
        try:
            candidates = load_task(shifted).eval
        except DataError as err:  # the source has fewer distinct problems than that: more will not help
            last_error = err
            break
        outside = [p for p in candidates if p.question not in excluded]
        if prefer_solutions and any(p.solution is not None for p in outside):
            outside = [p for p in outside if p.solution is not None]
        if len(outside) >= count:
            return outside[:count]
    detail = f" ({last_error})" if last_error else ""
    raise DataError(
        f"{what} of {count} problems: the task {task_config.source!r} has too few problems outside its other "
        f"splits{detail}; ask for fewer problems or lower task.num_train"
    )
