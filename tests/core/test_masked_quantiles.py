"""eapo.core.masked_quantiles: quantiles of a token statistic over the masked (response) tokens only."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from eapo.core import masked_quantiles


def test_quantiles_of_the_masked_values_only() -> None:
    values = torch.tensor([[0.0, 1.0, 2.0, 99.0], [3.0, 4.0, -50.0, 99.0]])
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    # Valid values 0, 1, 2, 3, 4: linear interpolation between order statistics.
    got = masked_quantiles(values, mask, (0.0, 0.1, 0.5, 0.9, 1.0))
    torch.testing.assert_close(got, torch.tensor([0.0, 0.4, 2.0, 3.6, 4.0]))


def test_an_empty_mask_gives_zeros() -> None:
    values = torch.ones(2, 3)
    got = masked_quantiles(values, torch.zeros(2, 3, dtype=torch.bool), (0.1, 0.5, 0.9))
    assert got.tolist() == [0.0, 0.0, 0.0]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(-10, 10), st.booleans()), min_size=1, max_size=24))
def test_quantiles_are_ordered_and_within_the_masked_range(cells: list[tuple[float, bool]]) -> None:
    values = torch.tensor([v for v, _ in cells])
    mask = torch.tensor([m for _, m in cells])
    got = masked_quantiles(values, mask, (0.1, 0.5, 0.9))
    if not bool(mask.any()):
        assert got.tolist() == [0.0, 0.0, 0.0]
        return
    valid = values[mask]
    assert bool((got[1:] >= got[:-1] - 1e-6).all())
    assert float(got.min()) >= float(valid.min()) - 1e-6 and float(got.max()) <= float(valid.max()) + 1e-6
