"""Fixtures for the reliability tests: one torch thread, and a data file shared by the whole session.

One thread: these tests train a 1-layer, 16-wide model, where a second thread only adds contention (on two
busy cores a tiny matmul measured 10x slower with two threads than with one).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from .reliability_support import write_problems


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def problems_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One JSONL task file for every test, so that the tiny model's warm-up is cached once per session."""
    return write_problems(tmp_path_factory.mktemp("reliability-data") / "sums.jsonl")
