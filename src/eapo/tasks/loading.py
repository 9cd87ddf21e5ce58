"""`load_task`: problems from reasoning-gym, a JSONL file or a `datasets` data set, split and checked.

Rows are validated where they enter: every error names the file (or data set), the 1-based line (or row
index), the field and what was expected.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from eapo.errors import ConfigError, DataError, read_utf8
from eapo.tasks.config import TaskConfig
from eapo.tasks.extraction import parse_number
from eapo.tasks.problem import Problem, Task
from eapo.tasks.reasoning_gym_tasks import load_reasoning_gym, reasoning_gym_scorer

_FILE_BUILDERS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}


def load_task(config: TaskConfig) -> Task:
    """Build the task `config` describes: fixed train / held-out eval splits (reproducible by `seed`)."""
    config.validate()
    scorer = None
    if config.source.startswith(("jsonl:", "hf:")):
        train, held_out = _load_rows_task(config)
    else:
        train, held_out, generator = load_reasoning_gym(config)
        scorer = reasoning_gym_scorer(generator)
    if not train:
        raise DataError(f"{config.source}: the train split is empty (task.num_train = {config.num_train})")
    if not held_out:
        raise DataError(f"{config.source}: the eval split is empty (task.num_eval = {config.num_eval})")
    verifier = _resolve_verifier(config, train + held_out, is_generator=scorer is not None)
    return Task(
        name=config.source, train=train, eval=held_out, config=config, verifier=verifier, scorer=scorer
    )


def _resolve_verifier(config: TaskConfig, problems: list[Problem], is_generator: bool) -> str:
    if config.verifier == "reasoning_gym" and not is_generator:
        raise ConfigError(
            f"task.verifier = 'reasoning_gym' needs a reasoning-gym source, got {config.source!r}"
        )
    if config.verifier != "auto":
        return config.verifier
    if all(parse_number(p.answer) is not None for p in problems):
        return "numeric"
    return "reasoning_gym" if is_generator else "math_verify"


# --- jsonl: and hf: sources --------------------------------------------------------------------------

# A row source: its length and a function that turns row `i` into a Problem (validating it).
_Rows = tuple[int, Callable[[int], Problem]]


def _load_rows_task(config: TaskConfig) -> tuple[list[Problem], list[Problem]]:
    rows = _open_rows(config.source, config.split, config.fields)
    if config.eval_source is None and config.eval_split is None:
        # Hold out `num_eval` rows by seed; train is the rest, without questions that are also in eval.
        count, get = rows
        if count <= config.num_eval:
            raise DataError(
                f"{config.source}: {count} rows cannot give task.num_eval = {config.num_eval} held-out "
                f"problems and a non-empty train split; lower task.num_eval or set task.eval_source"
            )
        rest = list(range(count))
        random.Random(config.seed).shuffle(rest)
        held_out = _take(get, rest, config.num_eval, exclude=set(), distinct=True)
    else:
        eval_rows = _open_rows(
            config.eval_source or config.source, config.eval_split or config.split, config.fields
        )
        held_out = _take(eval_rows[1], range(eval_rows[0]), config.num_eval, exclude=set(), distinct=True)
        rest = list(range(rows[0]))
        random.Random(config.seed).shuffle(rest)
    eval_questions = {p.question for p in held_out}
    train = _take(rows[1], rest, config.num_train, exclude=eval_questions, distinct=False)
    return train, held_out


def _take(
    get: Callable[[int], Problem], order: Sequence[int], count: int, exclude: set[str], distinct: bool
) -> list[Problem]:
    taken: list[Problem] = []
    seen: set[str] = set()
    for index in order:
        if len(taken) == count:
            break
        problem = get(index)
        if problem.question in exclude or (distinct and problem.question in seen):
            continue
        seen.add(problem.question)
        taken.append(problem)
    return taken


def _open_rows(source: str, split: str, fields: dict[str, str]) -> _Rows:
    if source.startswith("jsonl:"):
        problems = _read_jsonl(Path(source[len("jsonl:") :]), fields)
        return len(problems), problems.__getitem__
    return _open_hf(source[len("hf:") :], split, fields)


def _read_jsonl(path: Path, fields: dict[str, str]) -> list[Problem]:
    """Every row of a JSONL file, validated (one bad line anywhere is an error, not a silent skip)."""
    if not path.is_file():
        raise DataError(f"{path}: file not found (task.source = 'jsonl:{path}')")
    problems = []
    for line_number, line in enumerate(read_utf8(path).split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{path}, line {line_number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{where}: invalid JSON ({err.msg} at column {err.colno})") from None
        if not isinstance(row, dict):
            raise DataError(
                f"{where}: expected a JSON object with fields {_required(fields)}, got {_kind(row)}"
            )
        problems.append(_row_problem(row, fields, where, default_id=f"{path.name}:{line_number}"))
    if not problems:
        raise DataError(
            f"{path}: empty file: expected one JSON object a line with fields {_required(fields)}"
        )
    return problems


def _open_hf(reference: str, split: str, fields: dict[str, str]) -> _Rows:
    """A `datasets` data set: a folder from `save_to_disk`, a local data file, or a Hub name."""
    import datasets

    where = f"hf:{reference}"
    path = Path(reference)
    try:
        if path.is_dir() and any(
            (path / f).exists() for f in ("dataset_info.json", "state.json", "dataset_dict.json")
        ):
            data = datasets.load_from_disk(str(path))
            if isinstance(data, datasets.DatasetDict):
                if split not in data:
                    raise DataError(f"{where}: no split {split!r} (task.split); available: {', '.join(data)}")
                data = data[split]
        elif path.is_file() and path.suffix in _FILE_BUILDERS:
            data = datasets.load_dataset(_FILE_BUILDERS[path.suffix], data_files=str(path), split=split)
        else:
            data = datasets.load_dataset(reference, split=split)
    except DataError:
        raise
    except Exception as err:
        raise DataError(f"{where}: could not load the data set (split {split!r}): {err}") from None
    columns = list(data.column_names)
    for key, column in fields.items():
        if column not in columns:
            raise DataError(
                f"{where} [{split}]: column {column!r} (task.fields.{key}) not found; available columns: "
                f"{', '.join(columns)}"
            )
    optional = [key for key in ("solution", "id") if key not in fields and key in columns]
    data = data.select_columns(sorted({*fields.values(), *optional}))

    def get(index: int) -> Problem:
        where_row = f"{where} [{split}], row {index}"
        return _row_problem(data[index], fields, where_row, default_id=f"{reference}[{split}][{index}]")

    return len(data), get


def _row_problem(row: dict[str, Any], fields: dict[str, str], where: str, default_id: str) -> Problem:
    prompt_key, answer_key = fields["prompt"], fields["answer"]
    for key in (prompt_key, answer_key):
        if key not in row or row[key] is None:
            raise DataError(f"{where}: missing field {key!r}")
    prompt = row[prompt_key]
    if not isinstance(prompt, str):
        raise DataError(f"{where}: field {prompt_key!r} must be a string, got {_kind(prompt)}")
    if not prompt.strip():
        raise DataError(f"{where}: field {prompt_key!r} is empty")
    answer = _answer_text(row[answer_key], answer_key, where)
    solution = None
    solution_key = fields.get("solution", "solution")
    if row.get(solution_key) is not None:
        solution = row[solution_key]
        if not isinstance(solution, str):
            raise DataError(f"{where}: field {solution_key!r} must be a string, got {_kind(solution)}")
    row_id = row.get(fields.get("id", "id"))
    return Problem(
        question=prompt, answer=answer, solution=solution, id=default_id if row_id is None else str(row_id)
    )


def _answer_text(value: Any, key: str, where: str) -> str:
    if isinstance(value, str):
        if not value.strip():
            raise DataError(f"{where}: field {key!r} is empty")
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
    raise DataError(f"{where}: field {key!r} must be a string or a finite number, got {_kind(value)}")


def _required(fields: dict[str, str]) -> str:
    return f"{fields['prompt']!r} and {fields['answer']!r}"


def _kind(value: Any) -> str:
    shown = repr(value)
    return f"{type(value).__name__} {shown[:60]}{'...' if len(shown) > 60 else ''}"
