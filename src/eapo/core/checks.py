"""Argument checks shared by `eapo.core`'s public functions: a wrong argument is a ValueError that names it
and says what was expected, never a silent NaN, a silent cast or a silent broadcast.

Pure functions of their arguments (no config, no I/O), like the rest of `eapo.core`.
"""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = [
    "check_finite_number",
    "check_finite_tensor",
    "check_integer",
    "check_integer_tensor",
    "check_same_shape",
]


def check_finite_number(
    name: str, value: Any, *, low: float | None = None, low_inclusive: bool = True
) -> float:
    """`value` as a float; ValueError naming `name` unless it is a finite real number (and >= / > `low`).

    A 0-dim tensor is accepted (its item); bool is not a number here.
    """
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite number; got {value!r}")
    if low is not None and (float(value) < low or (not low_inclusive and float(value) == low)):
        raise ValueError(f"{name} must be {'>=' if low_inclusive else '>'} {low}; got {value!r}")
    return float(value)


def check_integer(name: str, value: Any, *, low: int | None = None) -> int:
    """`value` as an int; ValueError naming `name` if it is not an integer (8.9 is refused, not truncated)."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point():
        value = int(value.item())
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer; got {value!r}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be an integer >= {low}; got {value}")
    return value


def check_integer_tensor(name: str, values: Any) -> torch.Tensor:
    """`values` as an int64 tensor; ValueError naming `name` if an entry is not a whole number (a float
    such as 8.9 is refused rather than truncated; 8.0 is accepted)."""
    tensor = torch.as_tensor(values)
    if not isinstance(values, torch.Tensor) and tensor.is_floating_point():
        tensor = torch.as_tensor(values, dtype=torch.float64)  # Python floats: keep their digits
    if tensor.dtype == torch.bool or tensor.is_complex():
        raise ValueError(f"{name} must hold integers; got dtype {tensor.dtype}")
    if tensor.is_floating_point():
        whole = torch.isfinite(tensor) & (tensor == tensor.round())
        if not bool(whole.all()):
            raise ValueError(f"{name} must hold integers; got {tensor[~whole].reshape(-1)[0].item()!r}")
    return tensor.to(torch.int64)


def check_finite_tensor(name: str, values: torch.Tensor, mask: torch.Tensor | None = None) -> None:
    """ValueError naming `name` and the first position if an entry (where `mask` is set) is NaN or ±inf."""
    if not values.is_floating_point():
        return
    bad = ~torch.isfinite(values)
    if mask is not None:
        bad = bad & (mask != 0)
    if bool(bad.any()):
        index = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(
            f"{name} must be finite at every valid position; got {float(values[index])} at index "
            f"{index[0] if len(index) == 1 else index}"
        )


def check_same_shape(reference: str, shape: tuple[int, ...] | torch.Size, **tensors: Any) -> None:
    """ValueError naming the first tensor in `tensors` (None = absent) whose shape is not `shape`."""
    for name, tensor in tensors.items():
        if tensor is not None and tuple(tensor.shape) != tuple(shape):
            raise ValueError(
                f"{name} must have the shape of {reference}, {tuple(shape)}; got {tuple(tensor.shape)}"
            )
