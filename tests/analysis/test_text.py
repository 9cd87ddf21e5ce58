"""One number formatter for the analyses' tables (`eapo.analysis.text`)."""

from __future__ import annotations

import math

from eapo.analysis.text import MISSING, format_number


def test_numbers_get_their_decimals_and_undefined_values_the_missing_mark() -> None:
    assert format_number(0.12345) == "0.123"
    assert format_number(3, 2) == "3.00"
    assert format_number(0.5, 1, signed=True) == "+0.5"
    assert format_number(-0.5, 1, signed=True) == "-0.5"
    for undefined in (None, math.nan, math.inf, -math.inf):
        assert format_number(undefined) == MISSING
    assert format_number(None, missing="-") == "-"
    assert format_number("PHR") == "PHR" and format_number(True) == "True"
