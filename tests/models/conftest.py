"""Fixtures: a small arithmetic task and untrained tiny models (no warm-up, so they build in milliseconds)."""

from __future__ import annotations

import pytest

from eapo.models import TinyConfig
from eapo.tasks import Task, TaskConfig, load_task

SMALL_TASK = TaskConfig(
    source="basic_arithmetic",
    params={
        "min_terms": 2,
        "max_terms": 2,
        "min_digits": 1,
        "max_digits": 1,
        "operators": ["+", "-"],
        "allow_parentheses": False,
        "allow_negation": False,
    },
    num_train=64,
    num_eval=16,
    system_prompt="",
)


@pytest.fixture(scope="session")
def small_task() -> Task:
    return load_task(SMALL_TASK)


@pytest.fixture
def quick_tiny() -> TinyConfig:
    """A warm-up that runs in about a second: one narrow layer, a few steps."""
    return TinyConfig(
        n_layer=1,
        n_embd=16,
        n_head=1,
        sft_max_steps=6,
        sft_eval_every=3,
        sft_batch_size=8,
        sft_eval_problems=8,
    )
