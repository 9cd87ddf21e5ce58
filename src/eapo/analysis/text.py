"""How the analyses write numbers into Markdown and HTML tables: one formatter, so every table shows a
missing or undefined value (None, NaN, ±inf: a statistic with too few points) the same way."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["MISSING", "format_number"]

MISSING = "–"  # an en dash: what a table shows where a statistic is undefined


def format_number(value: Any, digits: int = 3, *, signed: bool = False, missing: str = MISSING) -> str:
    """A number (int or float, not bool) with `digits` decimals (a sign always with `signed`); `missing` for
    None and non-finite floats; anything else (a label) as `str(value)`."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return missing
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"
    return str(value)
