"""What a task is: problems with gold answers, split into train and held-out eval."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eapo.tasks.config import TaskConfig


@dataclass(frozen=True)
class Problem:
    """One problem.

    `question` is the user-facing text without any template; `answer` the gold final answer as a string;
    `solution` worked steps ending in the answer (for supervised warm-up), or None where the source has
    none; `metadata` is the generator's record (reasoning-gym scorers need it), not compared or hashed.
    """

    question: str
    answer: str
    solution: str | None = None
    id: str = ""
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)


@dataclass
class Task:
    """Problems, their config and the resolved verifier.

    `verifier` is never `auto`: `load_task` resolves it (see `TaskConfig`). `scorer` is set for
    reasoning-gym tasks: `scorer(predicted, problem)` returns the generator's own `score_answer`
    (partial credit included; eapo's reward takes `== 1.0` only).
    """

    name: str
    train: list[Problem]
    eval: list[Problem]
    config: TaskConfig
    verifier: str
    scorer: Callable[[str | None, Problem], float] | None = field(default=None, repr=False)
