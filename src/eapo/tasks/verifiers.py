"""Verifiers: is an extracted answer equal to the gold answer? Exact 0/1, never partial credit.

`numeric` and `exact` are cheap and run inline. `math_verify` (sympy) and `reasoning_gym` (a generator's
own scorer) can be slow or hang on adversarial answers; `verify` runs them in the calling thread without
a timeout, and `score_completions` (rewards.py) runs them in a killable worker.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from typing import TYPE_CHECKING

from eapo.tasks.extraction import last_number, parse_number

if TYPE_CHECKING:
    from eapo.tasks.problem import Problem, Task

METHODS = ("numeric", "math_verify", "exact", "reasoning_gym")
_RELATIVE_TOLERANCE = Fraction(1, 10**9)  # for non-integers only: 1/3 vs 0.333333333333 is right


def verify(
    predicted: str | None,
    gold: str,
    method: str = "numeric",
    *,
    task: Task | None = None,
    problem: Problem | None = None,
) -> bool:
    """True when `predicted` is the gold answer under `method`.

    - `numeric`: exact equality of the numbers, after normalising ("12" = "12.0" = "+12", "1,200" = "1200",
      "1/2" = "0.5" = "\\frac{1}{2}"); integers exactly, non-integers within 1e-9 relative. A prediction
      that is not one number is judged by its last number ("x = 12" -> 12). A gold that is not a number
      falls back to `exact`.
    - `math_verify`: the `math_verify` package's parse + verify (its signal timeouts off; no timeout here).
    - `exact`: string equality after stripping whitespace.
    - `reasoning_gym`: the generator's `score_answer(predicted, entry) == 1.0`; needs `task` and `problem`.

    Never raises for `numeric` and `exact` on any string; None is never right.
    """
    if predicted is None:
        return False
    if method == "numeric":
        return numeric_equal(predicted, gold)
    if method == "exact":
        return predicted.strip() == gold.strip()
    if method == "math_verify":
        return math_verify_equal(predicted, gold)
    if method == "reasoning_gym":
        if task is None or task.scorer is None or problem is None:
            raise ValueError("verify(method='reasoning_gym') needs task= (a reasoning-gym task) and problem=")
        return task.scorer(predicted, problem) == 1.0
    raise ValueError(f"unknown verifier {method!r}: expected one of {', '.join(METHODS)}")


def numeric_equal(predicted: str, gold: str) -> bool:
    """The `numeric` verifier (see `verify`)."""
    gold_value = parse_number(gold)
    if gold_value is None:
        return predicted.strip() == gold.strip()
    value = parse_number(predicted)
    if value is None:
        value = parse_number(last_number(predicted))
    if value is None:
        return False
    if value == gold_value:
        return True
    if value.denominator == 1 and gold_value.denominator == 1:
        return False
    return abs(value - gold_value) <= _RELATIVE_TOLERANCE * max(abs(value), abs(gold_value))


def math_verify_equal(predicted: str, gold: str) -> bool:
    """The `math_verify` verifier: equal strings or numbers first (cheap), then math_verify's sympy check.

    Bare answers are wrapped in `\\boxed{}` so that LaTeX ("\\frac{1}{2}", "x^2+1") is parsed as LaTeX;
    math_verify's own timeouts use SIGALRM, which fails off the main thread, so they are off
    (`parsing_timeout=None`, `timeout_seconds=None`) and the caller bounds the time.
    """
    if predicted.strip() == gold.strip():
        return True
    gold_number, predicted_number = parse_number(gold), parse_number(predicted)
    if gold_number is not None and predicted_number is not None:
        return numeric_equal(predicted, gold)
    import math_verify

    _silence_math_verify_timeout_warning()
    gold_parsed = math_verify.parse(_as_latex(gold), parsing_timeout=None)
    predicted_parsed = math_verify.parse(_as_latex(predicted), parsing_timeout=None)
    if not gold_parsed or not predicted_parsed:
        return False
    return bool(math_verify.verify(gold_parsed, predicted_parsed, timeout_seconds=None))


def _as_latex(answer: str) -> str:
    if "$" in answer or "\\boxed" in answer or "\\(" in answer or "\\[" in answer:
        return answer
    return "\\boxed{" + answer + "}"


class _DropTimeoutWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Timeout is disabled" not in record.getMessage()


_warning_filtered = False


def _silence_math_verify_timeout_warning() -> None:
    """math_verify warns once that its timeout is off; here that is by design (rewards.py bounds it)."""
    global _warning_filtered
    if not _warning_filtered:
        for name in ("math_verify.parser", "math_verify.grader"):
            logging.getLogger(name).addFilter(_DropTimeoutWarning())
        _warning_filtered = True
