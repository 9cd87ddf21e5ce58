"""load_task: reasoning-gym splits and solutions, JSONL and `datasets` sources, and their errors."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from eapo.errors import ConfigError, DataError
from eapo.tasks import (
    TaskConfig,
    extract_answer,
    last_number,
    load_task,
    reference_completion,
    score_completions,
)

SMALL = {"min_terms": 2, "max_terms": 4, "min_digits": 1, "max_digits": 2}


def _questions(problems: list) -> set[str]:
    return {p.question for p in problems}


def test_reasoning_gym_splits_are_disjoint_and_reproducible() -> None:
    config = TaskConfig(source="chain_sum", params=SMALL, num_train=300, num_eval=50, seed=3)
    task = load_task(config)
    again = load_task(TaskConfig(source="chain_sum", params=SMALL, num_train=300, num_eval=50, seed=3))
    other = load_task(TaskConfig(source="chain_sum", params=SMALL, num_train=300, num_eval=50, seed=4))
    assert (len(task.train), len(task.eval)) == (300, 50)
    assert not _questions(task.train) & _questions(task.eval)
    assert len(_questions(task.eval)) == 50  # eval questions are distinct
    assert task.train == again.train and task.eval == again.eval
    assert task.eval != other.eval
    assert len({p.id for p in task.train + task.eval}) == 350
    assert task.verifier == "numeric"


def test_small_problem_space_stays_disjoint() -> None:
    # Two one-digit terms: 200 distinct questions, fewer than num_train; eval is held out first.
    params = {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}
    task = load_task(TaskConfig(source="chain_sum", params=params, num_train=1000, num_eval=40))
    assert len(task.train) == 1000 and len(task.eval) == 40
    assert not _questions(task.train) & _questions(task.eval)
    one_term = params | {"min_terms": 1, "max_terms": 1}  # 10 distinct questions
    with pytest.raises(DataError, match=r"too few distinct problems.*task\.num_eval"):
        load_task(TaskConfig(source="chain_sum", params=one_term, num_eval=50))


_STEP = re.compile(r"^(-?\d+)([+\-*/])\(?(-?\d+)\)?=(-?\d+)$")


def test_chain_sum_solutions_are_right_partial_sums() -> None:
    task = load_task(TaskConfig(source="chain_sum", params=SMALL | {"allow_negation": True}, num_train=200))
    for problem in task.train + task.eval:
        assert problem.solution is not None
        assert last_number(problem.solution) == problem.answer
        steps = problem.solution.split(", ")
        expression = problem.metadata["expression"].split()
        assert len(steps) == len(expression) // 2
        running = int(expression[0])
        for step in steps:
            left, op, right, result = _STEP.match(step).groups()  # type: ignore[union-attr]
            assert int(left) == running
            running = running + int(right) if op == "+" else running - int(right)
            assert int(result) == running
        assert str(running) == problem.answer


def test_basic_arithmetic_and_gsm_symbolic_solutions_end_in_the_answer() -> None:
    for source, params in [("basic_arithmetic", {"max_terms": 4, "max_digits": 2}), ("gsm_symbolic", {})]:
        task = load_task(TaskConfig(source=source, params=params, num_train=40, num_eval=10))
        with_solution = [p for p in task.train if p.solution is not None]
        assert len(with_solution) == len(task.train), source
        for problem in with_solution:
            assert problem.solution is not None
            assert last_number(problem.solution) == problem.answer
            completion = reference_completion(problem, "answer_tag")
            assert extract_answer(completion, "answer_tag", fallback=None) == problem.answer


def test_prime_factorization_steps_divide_out_the_smallest_prime_and_score_one() -> None:
    params = {"min_value": 2, "max_value": 400}
    task = load_task(TaskConfig(source="prime_factorization", params=params, num_train=120, num_eval=20))
    assert task.config.verifier in ("auto", "reasoning_gym")
    problems = task.train + task.eval
    for problem in problems:
        assert problem.solution is not None
        number = problem.metadata["number"]
        steps, factors = problem.solution.rsplit(": ", 1)
        assert factors == problem.answer
        primes = [int(f) for f in factors.split(" × ")]
        assert math.prod(primes) == number and primes == sorted(primes)
        assert all(all(p % d for d in range(2, int(p**0.5) + 1)) for p in primes)
        if len(primes) == 1:
            assert steps == f"{number} is prime"
            continue
        rest = number
        for step, prime in zip(steps.split(", "), primes, strict=False):  # "84 = 2 × 42", one per factor
            assert step == f"{rest} = {prime} × {rest // prime}"
            rest //= prime
    completions = [reference_completion(p, "answer_tag") for p in problems]
    assert score_completions(completions, problems, task).rewards == [1.0] * len(problems)

    def coarse(answer: str) -> str:  # "2 × 2 × 3 × 7" -> "4 × 3 × 7": the same product, not primes
        first, second, *rest = [int(f) for f in answer.split(" × ")]
        return " × ".join(map(str, [first * second, *rest]))

    composite = [p for p in problems if " × " in p.answer]
    wrong = [f"<answer>{coarse(p.answer)}</answer>" for p in composite]
    # reasoning-gym's scorer gives these 0.5; eapo's rewards are 0/1 (a score of 1.0 only).
    assert score_completions(wrong, composite, task).rewards == [0.0] * len(composite)
    exact = load_task(
        TaskConfig(source="prime_factorization", params=params, num_train=8, num_eval=8, verifier="exact")
    )
    assert (
        score_completions(
            [reference_completion(p, "answer_tag") for p in exact.train], exact.train, exact
        ).rewards
        == [1.0] * 8
    )


_PART = re.compile(r"^(real|imaginary) part: (-?\d+)([+-])\(?(-?\d+)\)?=(-?\d+)$")


def test_complex_arithmetic_steps_add_part_by_part_and_score_one() -> None:
    params = {"operations": ["+", "-"], "operations_weights": [0.5, 0.5]}
    task = load_task(TaskConfig(source="complex_arithmetic", params=params, num_train=200, num_eval=50))
    problems = task.train + task.eval
    for problem in problems:
        assert problem.solution is not None
        real_step, imag_step = problem.solution.split(", ")
        op = problem.metadata["operation"]
        for step, index in ((real_step, 0), (imag_step, 1)):
            _, left, step_op, right, result = _PART.match(step).groups()  # type: ignore[union-attr]
            assert (int(left), int(right)) == (
                problem.metadata["num1"][index],
                problem.metadata["num2"][index],
            )
            assert step_op == op and int(result) == problem.metadata["result"][index]
            assert int(result) == (int(left) + int(right) if op == "+" else int(left) - int(right))
    completions = [reference_completion(p, "answer_tag") for p in problems]
    assert score_completions(completions, problems, task).rewards == [1.0] * len(problems)

    def plain(real: int, imag: int) -> str:  # "8 + 3i", "0 - 3i": whole numbers, both parts written
        return f"{real} {'-' if imag < 0 else '+'} {abs(imag)}i"

    short = [f"<answer>{plain(*p.metadata['result'])}</answer>" for p in problems]  # the gold: "8.0 + 3.0i"
    assert score_completions(short, problems, task).rewards == [1.0] * len(problems)
    off_by_one = [
        f"<answer>{plain(p.metadata['result'][0] + 1, p.metadata['result'][1])}</answer>"
        for p in problems[:20]
    ]
    # reasoning-gym's score exp(-distance) is about 0.37 there; eapo's rewards are 0/1 (a score of 1 only)
    assert score_completions(off_by_one, problems[:20], task).rewards == [0.0] * 20


def test_unknown_generator_suggests_close_names() -> None:
    with pytest.raises(ConfigError, match="did you mean 'chain_sum'"):
        load_task(TaskConfig(source="chain_summ"))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"max_term": 3}, "task.params.max_term.*did you mean 'max_terms'"),
        ({"max_terms": "3"}, r"task.params.max_terms = '3': expected int"),
        ({"min_terms": 3, "max_terms": 2}, "max_terms must be >= min_terms"),
        ({"seed": 1}, "task.params.seed is set by eapo"),
    ],
)
def test_bad_params_name_the_param(params: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_task(TaskConfig(source="chain_sum", params=params))


def test_config_values_are_validated() -> None:
    with pytest.raises(ConfigError, match=r"task\.answer_format"):
        load_task(TaskConfig(answer_format="xml"))
    with pytest.raises(ConfigError, match=r"task\.verifier"):
        load_task(TaskConfig(verifier="fuzzy"))
    with pytest.raises(ConfigError, match=r"task\.eval_source"):
        load_task(TaskConfig(source="chain_sum", eval_source="jsonl:x.jsonl"))


# --- jsonl: -----------------------------------------------------------------------------------------


def _write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def _rows(n: int) -> list[dict]:
    return [{"prompt": f"What is {i} + 1?", "answer": i + 1} for i in range(n)]


def test_jsonl_split_by_seed(tmp_path: Path) -> None:
    path = _write_jsonl(
        tmp_path / "data.jsonl", [*_rows(30), {"prompt": "P", "answer": "x", "solution": "s", "id": 7}]
    )
    config = TaskConfig(source=f"jsonl:{path}", num_eval=5, seed=1)
    task = load_task(config)
    assert len(task.eval) == 5 and len(task.train) == 26
    assert not _questions(task.train) & _questions(task.eval)
    assert load_task(TaskConfig(source=f"jsonl:{path}", num_eval=5, seed=1)).eval == task.eval
    assert load_task(TaskConfig(source=f"jsonl:{path}", num_eval=5, seed=2)).eval != task.eval
    by_question = {p.question: p for p in task.train + task.eval}
    assert by_question["What is 4 + 1?"].answer == "5"  # numbers become strings
    assert by_question["P"].solution == "s" and by_question["P"].id == "7"
    assert task.verifier == "math_verify"  # one gold ("x") is not a number


def test_jsonl_eval_source_and_overlap(tmp_path: Path) -> None:
    train_path = _write_jsonl(tmp_path / "train.jsonl", _rows(20))
    eval_path = _write_jsonl(tmp_path / "eval.jsonl", _rows(3))  # overlaps the first three train rows
    task = load_task(TaskConfig(source=f"jsonl:{train_path}", eval_source=f"jsonl:{eval_path}", num_eval=10))
    assert [p.question for p in task.eval] == [f"What is {i} + 1?" for i in range(3)]
    assert len(task.train) == 17 and not _questions(task.train) & _questions(task.eval)
    assert task.verifier == "numeric"


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ('{"prompt": "a", "answer": ', "line 3: invalid JSON"),
        ('{"prompt": "a"}', "line 3: missing field 'answer'"),
        ('{"answer": "1"}', "line 3: missing field 'prompt'"),
        ('{"prompt": 5, "answer": "1"}', "line 3: field 'prompt' must be a string, got int 5"),
        ('{"prompt": "a", "answer": [1]}', "line 3: field 'answer' must be a string or a finite number"),
        ('["prompt", "answer"]', "line 3: expected a JSON object"),
    ],
)
def test_jsonl_errors_name_file_line_and_field(tmp_path: Path, bad_line: str, message: str) -> None:
    path = _write_jsonl(tmp_path / "bad.jsonl", [*_rows(2), bad_line, *_rows(2)])
    with pytest.raises(DataError) as info:
        load_task(TaskConfig(source=f"jsonl:{path}", num_eval=1))
    assert str(path) in str(info.value)
    assert re.search(message, str(info.value)), str(info.value)


def test_jsonl_empty_or_missing_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(DataError, match=f"{re.escape(str(empty))}: empty file"):
        load_task(TaskConfig(source=f"jsonl:{empty}"))
    with pytest.raises(DataError, match="file not found"):
        load_task(TaskConfig(source=f"jsonl:{tmp_path / 'nope.jsonl'}"))
    few = _write_jsonl(tmp_path / "few.jsonl", _rows(3))
    with pytest.raises(DataError, match=r"3 rows cannot give task\.num_eval = 3"):
        load_task(TaskConfig(source=f"jsonl:{few}", num_eval=3))


# --- hf: --------------------------------------------------------------------------------------------


def test_hf_from_a_saved_dataset_with_field_mapping(tmp_path: Path) -> None:
    import datasets

    rows = {"question": [f"q{i}" for i in range(12)], "final": [str(i * 2) for i in range(12)]}
    splits = datasets.DatasetDict(
        {"train": datasets.Dataset.from_dict(rows), "test": datasets.Dataset.from_dict(rows)}
    )
    splits.save_to_disk(str(tmp_path / "saved"))
    saved = f"hf:{tmp_path / 'saved'}"
    fields = {"prompt": "question", "answer": "final"}
    task = load_task(TaskConfig(source=saved, fields=fields, num_eval=4))
    assert len(task.eval) == 4 and len(task.train) == 8
    assert all(p.answer == str(int(p.question[1:]) * 2) for p in task.train + task.eval)
    assert not _questions(task.train) & _questions(task.eval)

    with pytest.raises(
        DataError, match=r"column 'prompt' \(task.fields.prompt\) not found; available columns: "
    ):
        load_task(TaskConfig(source=saved, num_eval=4))
    with pytest.raises(DataError, match=r"no split 'dev'.*available: train, test"):
        load_task(TaskConfig(source=saved, fields=fields, split="dev"))
    # eval_split: the held-out problems come from another split of the same data set.
    task = load_task(TaskConfig(source=saved, fields=fields, eval_split="test", num_eval=3))
    assert [p.question for p in task.eval] == ["q0", "q1", "q2"] and len(task.train) == 9


def test_hf_from_a_local_json_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")
    path = _write_jsonl(tmp_path / "rows.jsonl", [{"q": f"q{i}", "a": i, "steps": f"{i}"} for i in range(10)])
    fields = {"prompt": "q", "answer": "a", "solution": "steps"}
    task = load_task(TaskConfig(source=f"hf:{path}", fields=fields, num_eval=2))
    assert len(task.train) == 8 and all(p.solution == p.answer for p in task.train)


def test_hf_bad_row_names_the_row(tmp_path: Path) -> None:
    import datasets

    datasets.Dataset.from_dict({"prompt": ["a", "b", "c"], "answer": ["1", None, "3"]}).save_to_disk(
        str(tmp_path / "d")
    )
    with pytest.raises(DataError, match=r"row 1: missing field 'answer'"):
        load_task(TaskConfig(source=f"hf:{tmp_path / 'd'}", num_eval=1, seed=0, num_train=5))
