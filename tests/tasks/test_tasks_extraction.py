"""Answer extraction and number parsing: unit cases, and fuzzing that they never raise."""

from __future__ import annotations

import time
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eapo.tasks import extract_answer, last_number, parse_number, verify

FORMATS = ("answer_tag", "boxed", "last_number")
FALLBACKS = ("last_number", "last_line", None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so <answer>42</answer>", "42"),
        ("<answer>1</answer> then <answer> 7 </answer>.", "7"),  # the last pair, stripped
        ("<ANSWER>x = 3</Answer>", "x = 3"),
        ("<answer>\\frac{1}{2}</answer>", "\\frac{1}{2}"),
        ("unclosed <answer>12", "12"),  # no complete pair: fallback to the last number
        ("<answer></answer> 5", "5"),  # empty pair: fallback
        ("</answer> 3 <answer>", "3"),  # wrong order: no pair
        ("no answer here", None),
    ],
)
def test_answer_tag(text: str, expected: str | None) -> None:
    assert extract_answer(text, "answer_tag") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\\boxed{5}", "5"),
        ("\\boxed{1} and \\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),  # nested braces balance
        ("\\boxed{\\boxed{7}}", "7"),  # the last box opened
        ("\\boxed{2} then \\boxed{3", "2"),  # the last one is unclosed: the last balanced one
        ("\\boxed {x^{2}}", "x^{2}"),
        ("no box", None),
    ],
)
def test_boxed_without_fallback(text: str, expected: str | None) -> None:
    assert extract_answer(text, "boxed", fallback=None) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is 42.", "42"),
        ("x = -3", "-3"),
        ("5-3=2", "2"),
        ("7-3", "3"),  # subtraction, not a negative number
        ("(-4)", "-4"),
        ("total 1,234 apples", "1234"),
        ("1,234,567.5", "1234567.5"),
        ("1, 2, 3", "3"),  # a list, not a thousands-separated number
        ("half is 1/2", "1/2"),
        ("3.14 and 2.5", "2.5"),
        ("minus −7", "-7"),  # Unicode minus
        ("٣ is not ASCII", None),
        ("", None),
    ],
)
def test_last_number(text: str, expected: str | None) -> None:
    assert last_number(text) == expected
    assert extract_answer(text, "last_number") == expected


def test_fallback_is_a_choice() -> None:
    text = "I think\nthe result is 12\n"
    assert extract_answer(text, "answer_tag") == "12"
    assert extract_answer(text, "answer_tag", fallback=None) is None
    assert extract_answer(text, "answer_tag", fallback="last_line") == "the result is 12"
    assert extract_answer(text, "boxed", fallback="last_number") == "12"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("12", Fraction(12)),
        ("12.0", Fraction(12)),
        ("+12", Fraction(12)),
        ("-3", Fraction(-3)),
        ("1,200", Fraction(1200)),
        ("0.5", Fraction(1, 2)),
        ("3/4", Fraction(3, 4)),
        ("-3/4", Fraction(-3, 4)),
        ("\\frac{3}{4}", Fraction(3, 4)),
        ("\\dfrac34", Fraction(3, 4)),
        ("$\\boxed{12}$", Fraction(12)),
        ("42.", Fraction(42)),
        ("1.5e3", Fraction(1500)),
        ("1/0", None),
        ("12,00", None),
        ("x = 12", None),
        ("", None),
        ("9" * 5000, None),
    ],
)
def test_parse_number(text: str, value: Fraction | None) -> None:
    assert parse_number(text) == value


# Adversarial building blocks: tags, braces, signs, separators and non-ASCII digits in any order.
_PIECES = st.sampled_from(
    [
        *[
            "<answer>",
            "</answer>",
            "<ANSWER >",
            "\\boxed{",
            "\\boxed",
            "{",
            "}",
            "$",
            "-",
            "−",
            "+",
            ",",
            ".",
        ],
        *["/", "1", "0", "123", "1,234", "\\frac{", "e9", "\n", " ", "٣", "𝟘", "½", "é", "\x00", "\\"],
    ]
)
_SOUP = st.lists(_PIECES, max_size=60).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.text(max_size=300), _SOUP))
def test_extraction_never_raises(text: str) -> None:
    for answer_format in FORMATS:
        for fallback in FALLBACKS:
            answer = extract_answer(text, answer_format, fallback)
            assert answer is None or isinstance(answer, str)
            verify(answer, "12", "numeric")
            verify(answer, "12", "exact")
    value = parse_number(text)
    assert value is None or isinstance(value, Fraction)


@settings(max_examples=100, deadline=None)
@given(number=st.integers(min_value=-(10**12), max_value=10**12), prefix=st.text(max_size=20))
def test_last_number_finds_an_appended_integer(number: int, prefix: str) -> None:
    text = f"{prefix} so the answer is {number}"
    assert parse_number(extract_answer(text, "answer_tag")) == number


@pytest.mark.parametrize(
    "text",
    [
        "<answer>" * 100_000,
        "</answer>" * 100_000,
        "\\boxed{" * 100_000,
        "{" * 200_000 + "}",
        "1," * 200_000 + "123",
        "9" * 1_000_000,
        "-" * 500_000 + "5",
        "1/" * 300_000,
        "٣𝟘½" * 100_000,
    ],
    ids=["opens", "closes", "boxes", "braces", "commas", "digits", "minus", "slashes", "unicode"],
)
def test_huge_adversarial_strings_are_linear(text: str) -> None:
    start = time.perf_counter()
    for answer_format in FORMATS:
        verify(extract_answer(text, answer_format), "5", "numeric")
    assert time.perf_counter() - start < 2.0
