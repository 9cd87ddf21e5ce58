"""Worked steps for reasoning-gym problems, for the supervised warm-ups: the tiny model's (DESIGN.md §4) and
a pretrained model's format warm-up (eapo.models.format_warmup).

A solution is a short chain of steps that ends in the gold answer ("4+3=7, 7-12=-5"); for answers that are
not one number, the steps reach the generator's result (complex_arithmetic) or end in its answer after
": " (prime_factorization). Where a step-by-step derivation does not reproduce the generator's answer,
there is no solution (None), never a wrong one.
"""

from __future__ import annotations

import ast
from typing import Any

from eapo.tasks.extraction import last_number


def worked_solution(task_name: str, item: dict[str, Any]) -> str | None:
    """Steps ending in `item["answer"]` for the generators that have them, else None."""
    metadata = item.get("metadata") or {}
    answer = str(item.get("answer"))
    solution: str | None
    try:
        if task_name == "chain_sum":
            solution = _chain_sum_steps(metadata["expression"])
        elif task_name == "basic_arithmetic":
            solution = _arithmetic_steps(metadata["expression"])
        elif task_name == "gsm_symbolic":
            solution = _gsm_steps(metadata["answer_cot"], answer)
        elif task_name == "complex_arithmetic":
            # The answer is "a + bi", not a number: the steps must reach the generator's result.
            solution, result = _complex_steps(metadata["num1"], metadata["num2"], metadata["operation"])
            return solution if result == tuple(metadata["result"]) else None
        elif task_name == "prime_factorization":
            # The answer is a product, not a number: the steps end in it after ": ".
            solution = _prime_factor_steps(int(metadata["number"]))
            return solution if solution.rsplit(": ", 1)[-1] == answer else None
        else:
            return None
    except (KeyError, ValueError, SyntaxError, ZeroDivisionError, RecursionError):
        return None
    return solution if solution is not None and last_number(solution) == answer else None


def _signed(value: int) -> str:
    return f"({value})" if value < 0 else str(value)


def _chain_sum_steps(expression: str) -> str:
    """ "4 + 3 - 12" -> "4+3=7, 7-12=-5": running partial sums, left to right."""
    tokens = expression.split()
    total = int(tokens[0])
    steps = []
    for op, operand_text in zip(tokens[1::2], tokens[2::2], strict=True):
        if op not in ("+", "-"):
            raise ValueError(f"unexpected operator {op!r}")
        operand = int(operand_text)
        new_total = total + operand if op == "+" else total - operand
        steps.append(f"{total}{op}{_signed(operand)}={new_total}")
        total = new_total
    return ", ".join(steps) if steps else str(total)


_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.FloorDiv: "/"}


def _arithmetic_steps(expression: str) -> str | None:
    """One step per operation in evaluation order ("3 + 4 * 2" -> "4*2=8, 3+8=11").

    basic_arithmetic's "/" is floor division (reasoning_gym evaluates with `//`), so the steps are too.
    """
    tree = ast.parse(expression.replace("/", "//"), mode="eval")
    steps: list[str] = []

    def evaluate(node: ast.AST) -> int:
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            value = evaluate(node.operand)
            result = -value if isinstance(node.op, ast.USub) else value
            if not isinstance(node.operand, ast.Constant) and isinstance(node.op, ast.USub):
                steps.append(f"-({value})={result}")
            return result
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            left, right = evaluate(node.left), evaluate(node.right)
            if isinstance(node.op, ast.Add):
                result = left + right
            elif isinstance(node.op, ast.Sub):
                result = left - right
            elif isinstance(node.op, ast.Mult):
                result = left * right
            else:
                result = left // right
            steps.append(f"{left}{_OPS[type(node.op)]}{_signed(right)}={result}")
            return result
        raise ValueError(f"unexpected expression node {ast.dump(node)}")

    value = evaluate(tree.body)
    return ", ".join(steps) if steps else str(value)


def _whole(value: float) -> int:
    if value != int(value):
        raise ValueError(f"{value} is not a whole number")
    return int(value)


def _complex_steps(first: Any, second: Any, operation: str) -> tuple[str, tuple[int, int]]:
    """complex_arithmetic's + and - part by part: (7 - 6i) + (1 + 9i) -> "real part: 7+1=8, imaginary
    part: -6+9=3", and the result (8, 3). Other operations have no steps here (ValueError)."""
    if operation not in ("+", "-"):
        raise ValueError(f"no worked steps for complex {operation!r}")
    (a, b), (c, d) = (tuple(map(_whole, first)), tuple(map(_whole, second)))
    real = a + c if operation == "+" else a - c
    imag = b + d if operation == "+" else b - d
    steps = f"real part: {a}{operation}{_signed(c)}={real}, imaginary part: {b}{operation}{_signed(d)}={imag}"
    return steps, (real, imag)


def _prime_factor_steps(number: int) -> str:
    """Trial division, the smallest prime first, one step per factor found, then the factors joined as
    prime_factorization writes its answer: 84 -> "84 = 2 × 42, 42 = 2 × 21, 21 = 3 × 7: 2 × 2 × 3 × 7";
    a prime says so: 97 -> "97 is prime: 97"."""
    if number < 2:
        raise ValueError(f"no prime factorization of {number}")
    steps, factors, rest, divisor = [], [], number, 2
    while divisor * divisor <= rest:
        if rest % divisor:
            divisor += 1
            continue
        factors.append(divisor)
        steps.append(f"{rest} = {divisor} × {rest // divisor}")
        rest //= divisor
    factors.append(rest)  # what is left has no divisor up to its square root: the last prime
    if len(factors) == 1:
        return f"{number} is prime: {number}"
    return ", ".join(steps) + ": " + " × ".join(map(str, factors))


def _gsm_steps(answer_cot: str, answer: str) -> str:
    """gsm_symbolic's own chain of thought, without its "#### <answer>" line, ending in the answer."""
    body = "\n".join(line for line in answer_cot.strip().splitlines() if not line.startswith("####")).strip()
    return body if last_number(body) == answer else f"{body}\nThe answer is {answer}."
