"""Seeds and the data order of a run: every step samples from its own seed and the train split is read in a
seeded permutation per epoch, so a resumed run draws exactly what the uninterrupted one would have."""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (1 << 32))
    torch.manual_seed(seed)


def step_seed(run_seed: int, step: int) -> int:
    """Every step samples from its own seed, so a resumed run draws exactly what the original would."""
    return (run_seed * 1_000_003 + step * 7_919 + 17) % (1 << 31)


def data_order(num_problems: int, seed: int, start: int) -> Iterator[int]:
    """Indices into the train split from position `start` on: a fresh seeded permutation per epoch."""
    epoch, offset = divmod(start, num_problems)
    while True:
        order = np.random.default_rng([seed, epoch]).permutation(num_problems)
        yield from (int(i) for i in order[offset:])
        epoch, offset = epoch + 1, 0
