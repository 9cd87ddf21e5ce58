"""Verifiers: numeric normalisation, math_verify, exact, and reasoning-gym's own scorer."""

from __future__ import annotations

import threading

import pytest

from eapo.tasks import TaskConfig, load_task, verify


@pytest.mark.parametrize(
    ("predicted", "gold"),
    [
        ("12", "12"),
        ("12.0", "12"),
        ("12", "12.00"),
        ("+12", "12"),
        ("1,200", "1200"),
        ("-3", "-3"),
        ("1/2", "0.5"),
        ("\\frac{1}{2}", "0.5"),
        ("0.333333333333", "1/3"),  # non-integers: 1e-9 relative
        ("x = 12", "12"),  # not one number: judged by its last number
        ("$12$", "12"),
    ],
)
def test_numeric_equal(predicted: str, gold: str) -> None:
    assert verify(predicted, gold, "numeric")


@pytest.mark.parametrize(
    ("predicted", "gold"),
    [
        ("13", "12"),
        ("-12", "12"),
        ("1000000000001", "1000000000000"),  # integers are exact: no float tolerance
        ("0.3333", "1/3"),
        ("12 or 13", "12"),
        ("twelve", "12"),
        ("", "12"),
        (None, "12"),
    ],
)
def test_numeric_not_equal(predicted: str | None, gold: str) -> None:
    assert not verify(predicted, gold, "numeric")


def test_numeric_with_a_non_numeric_gold_compares_strings() -> None:
    assert verify(" Paris ", "Paris", "numeric")
    assert not verify("London", "Paris", "numeric")


def test_exact() -> None:
    assert verify("  abc \n", "abc", "exact")
    assert not verify("12.0", "12", "exact")


@pytest.mark.parametrize(
    ("predicted", "gold", "expected"),
    [
        ("\\frac{1}{2}", "0.5", True),
        ("0.5", "\\frac{1}{2}", True),
        ("\\sqrt{8}", "2\\sqrt{2}", True),
        ("x^2+1", "1+x^2", True),
        ("Paris", "Paris", True),
        ("\\frac{1}{3}", "0.5", False),
        ("x^2", "x^3", False),
    ],
)
def test_math_verify(predicted: str, gold: str, expected: bool) -> None:
    assert verify(predicted, gold, "math_verify") is expected


def test_math_verify_off_the_main_thread() -> None:
    # math_verify's own timeouts use SIGALRM, which raises off the main thread; ours are off.
    results: list[bool] = []
    thread = threading.Thread(target=lambda: results.append(verify("\\sqrt{8}", "2\\sqrt{2}", "math_verify")))
    thread.start()
    thread.join(30)
    assert results == [True]


def test_reasoning_gym_scorer_takes_only_full_credit() -> None:
    task = load_task(TaskConfig(source="countdown", num_train=3, num_eval=2))
    assert task.verifier == "reasoning_gym"  # countdown answers are expressions, not numbers
    problem = task.eval[0]
    assert verify(problem.answer, problem.answer, "reasoning_gym", task=task, problem=problem)
    # Wrong but well-formed: reasoning-gym gives partial credit (0.05); eapo's reward is 0.
    assert task.scorer is not None
    assert 0 < task.scorer("1 + 2", problem) < 1
    assert not verify("1 + 2", problem.answer, "reasoning_gym", task=task, problem=problem)
    with pytest.raises(ValueError, match="needs task="):
        verify("1", "1", "reasoning_gym")


def test_unknown_method() -> None:
    with pytest.raises(ValueError, match="unknown verifier"):
        verify("1", "1", "fuzzy")
