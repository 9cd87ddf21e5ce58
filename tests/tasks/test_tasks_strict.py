"""Strict rewards (issue #17): only a well-formed final answer is credited; the format rate is counted."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eapo.tasks import Problem, Task, TaskConfig, extract_answer, score_completions, strict_answer
from eapo.tasks.rewards import ScoreResult

FORMATS = ("answer_tag", "boxed", "last_number")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<answer>2</answer>", "2"),
        ("12+34=46, 46-5=41\n<answer>41</answer>", "41"),  # worked steps before the tag are free
        ("<answer> -7 </answer>\n", "-7"),  # whitespace inside and after: fine
        ("<ANSWER>3</Answer>", "3"),
        ("2 - 0 = 2F", None),  # SmolLM2: no tag, the old fallback credited 2
        ("The answer is 5.", None),
        ("<answer>5</answer>\nuser\nWhat is 3 + 4?", None),  # text after the tag: not final
        ("<answer>3</answer> <answer>5</answer>", None),  # two answers: a hedge
        ("<answer><answer>5</answer>", None),  # two opening tags
        ("<answer></answer>", None),  # empty
        ("<answer>  </answer>", None),
        ("</answer>5<answer>", None),  # wrong order
        ("<answer>5", None),  # never closed (e.g. cut at max_new_tokens)
    ],
)
def test_strict_answer_tag(text: str, expected: str | None) -> None:
    assert strict_answer(text, "answer_tag") == expected
    assert extract_answer(text, "answer_tag", "last_number", strict=True) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so \\boxed{12}", "12"),
        ("$\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),  # nested braces, closing $ and a period
        ("\\[\\boxed{3}\\]", "3"),
        ("\\boxed{1} or \\boxed{2}", None),
        ("\\boxed{4} because 4 > 3", None),
        ("\\boxed{5", None),
        ("\\boxed{}", None),
    ],
)
def test_strict_boxed(text: str, expected: str | None) -> None:
    assert strict_answer(text, "boxed") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4+3=7, 7-12=-5", "-5"),
        ("so the total is 1,234.\n", "1234"),
        ("2 - 0 = 2F", None),
        ("5 apples", None),
        ("no number", None),
    ],
)
def test_strict_last_number(text: str, expected: str | None) -> None:
    assert strict_answer(text, "last_number") == expected


def test_strict_ignores_the_fallback() -> None:
    for fallback in ("last_number", "last_line", None):
        assert extract_answer("2 - 0 = 2F", "answer_tag", fallback, strict=True) is None
    assert extract_answer("2 - 0 = 2F", "answer_tag", "last_number") == "2"  # the old behaviour


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("<>/answerboxd{}\\$.0123456789- \n")), max_size=60))
def test_strict_is_total_and_implies_the_lenient_answer(text: str) -> None:
    """Never raises; a strict answer is also what the lenient extractor finds (strict only removes)."""
    for answer_format in FORMATS:
        found = strict_answer(text, answer_format)
        if found is not None:
            assert extract_answer(text, answer_format, fallback=None) == found


def _task(strict: bool) -> Task:
    config = TaskConfig(source="jsonl:unused", strict_answer=strict)
    problems = [Problem(question="2 - 0", answer="2"), Problem(question="3 + 4", answer="7")]
    return Task(name="toy", train=problems, eval=problems, config=config, verifier="numeric")


COMPLETIONS = [
    "2 - 0 = 2F",  # SmolLM2 base model: right number, no format
    "<answer>2</answer>",
    "<answer>2</answer> <answer>3</answer>",  # the last tag is wrong, the first right: hedged
    "3+4=7\n<answer>7</answer>",
    "3+4=7\n<answer>7</answer>\nassistant: 7",
]


def test_strict_mode_scores_only_well_formed_answers() -> None:
    problems = [_task(False).eval[i] for i in (0, 0, 0, 1, 1)]
    lenient = score_completions(COMPLETIONS, problems, _task(False))
    strict = score_completions(COMPLETIONS, problems, _task(True))
    assert lenient.rewards == [1.0, 1.0, 0.0, 1.0, 1.0]
    assert strict.rewards == [0.0, 1.0, 0.0, 1.0, 0.0]
    # The format rate is the same strict count in both modes.
    assert lenient.n_well_formed == strict.n_well_formed == 2
    assert strict.n_extracted == 2 and lenient.n_extracted == 5


def test_strict_answer_is_a_config_field() -> None:
    config = TaskConfig(strict_answer=True)
    config.validate()
    assert not TaskConfig().strict_answer  # default unchanged for existing configs
    assert "n_well_formed" in {f.name for f in dataclasses.fields(ScoreResult)}


def test_format_rate_is_the_share_of_strict_answers() -> None:
    from eapo.tasks import format_rate

    assert format_rate(COMPLETIONS) == 2 / 5
    assert format_rate([]) == 0.0
