"""Shared test settings: caches in a per-session temp folder, single-threaded torch for stable timing."""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    # The tiny model's SFT warm-up caches here; a user's real cache is never touched by tests. CI sets
    # EAPO_CACHE_DIR itself, and then that folder is used (it starts empty on a fresh clone).
    if "EAPO_CACHE_DIR" not in os.environ:
        os.environ["EAPO_CACHE_DIR"] = str(tmp_path_factory.mktemp("eapo-cache"))
    # One thread: tiny models gain nothing from more, and a busy 2-core CI machine loses a lot to contention.
    torch.set_num_threads(1)
    # The same for the commands tests start as subprocesses, which would otherwise take a thread per core
    # and spin-wait between parallel regions (OpenMP's default); so a test run beside long training runs
    # (the SmolLM2 study's two, one thread each on 2 cores) asks for no more than its share.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


REPO_ROOT = Path(__file__).resolve().parents[1]


def _crc_parity_reward(completion: str, problem: Any) -> float:
    """The parity of the completion's CRC-32: a reward that varies inside most groups (the smoke model is
    rarely right), so groups update. (The length's parity was all-equal in a third of the groups: most
    smoke completions run to max_new_tokens.)"""
    return float(zlib.crc32(completion.encode()) % 2)


@pytest.fixture
def parity_reward() -> Callable[[str, Any], float]:
    return _crc_parity_reward
