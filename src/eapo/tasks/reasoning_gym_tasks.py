"""Problems from reasoning-gym's procedural generators, with disjoint train / held-out eval splits.

reasoning-gym item `i` of a generator seeded `s` is drawn from `Random(s + i)`, so two data sets whose
seed ranges overlap repeat items. Eval and train draw from seed ranges half a stride apart, and every
further chunk (when duplicates must be replaced) moves a full stride, so no seed is reused; eval is drawn
first and train drops any question that is also in eval, so the splits are disjoint even for generators
with few distinct problems.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import types
import typing
from typing import Any

from eapo.errors import ConfigError, DataError
from eapo.tasks.config import TaskConfig
from eapo.tasks.problem import Problem
from eapo.tasks.solutions import worked_solution

_SEED_STRIDE = 1_000_003  # > the largest chunk, so the seed ranges of chunks never overlap
_EVAL_SEED_OFFSET = _SEED_STRIDE // 2
_MAX_CHUNK = _EVAL_SEED_OFFSET - 1
_RESERVED_PARAMS = {"seed": "task.seed", "size": "task.num_train / task.num_eval"}


def generator_names() -> list[str]:
    """Every generator name reasoning-gym knows."""
    import reasoning_gym  # noqa: F401  (importing registers the generators)
    from reasoning_gym.factory import DATASETS

    return sorted(DATASETS)


def load_reasoning_gym(config: TaskConfig) -> tuple[list[Problem], list[Problem], Any]:
    """(train, eval, generator) for `config.source`, a reasoning-gym generator name.

    Raises ConfigError for an unknown name (with close matches) or bad `params` (naming the param), and
    DataError when the generator has too few distinct problems to fill the splits.
    """
    import reasoning_gym  # noqa: F401
    from reasoning_gym.factory import DATASETS

    name = config.source
    if name not in DATASETS:
        close = difflib.get_close_matches(name, list(DATASETS), n=5, cutoff=0.5)
        if close:
            names = ", ".join(repr(c) for c in close)
            hint = f"did you mean {names}? (eapo.tasks.generator_names() lists all)"
        else:
            hint = f"known generators: {', '.join(sorted(DATASETS))}"
        raise ConfigError(
            f"task.source = {name!r} is neither a reasoning-gym generator nor 'jsonl:<path>' / 'hf:<name>': "
            + hint
        )
    dataset_cls, config_cls = DATASETS[name]
    params = _checked_params(name, config_cls, config.params)

    def make(seed: int, size: int) -> Any:
        try:
            generator_config = config_cls(**params, seed=seed, size=size)
            if hasattr(generator_config, "validate"):
                generator_config.validate()
            return dataset_cls(config=generator_config)
        except (AssertionError, ValueError, TypeError, KeyError) as err:
            raise ConfigError(
                f"task.params for {name!r} are invalid: {err or type(err).__name__} (params: {params})"
            ) from None

    eval_items = _draw(
        name, make, config.seed + _EVAL_SEED_OFFSET, config.num_eval, set(), "eval", params, distinct=True
    )
    eval_questions = {item["question"] for item in eval_items}
    train_items = _draw(
        name, make, config.seed, config.num_train, eval_questions, "train", params, distinct=False
    )
    train = [_problem(name, item, f"{name}-train-{i}") for i, item in enumerate(train_items)]
    held_out = [_problem(name, item, f"{name}-eval-{i}") for i, item in enumerate(eval_items)]
    return train, held_out, make(config.seed, 1)


def reasoning_gym_scorer(generator: Any) -> functools.partial[float]:
    """`scorer(predicted, problem)`: the generator's own `score_answer` on the problem's record."""
    return functools.partial(_score, generator)


def _score(generator: Any, predicted: str | None, problem: Problem) -> float:
    entry = {"question": problem.question, "answer": problem.answer, "metadata": problem.metadata}
    return generator.score_answer(predicted, entry)


def _problem(name: str, item: dict[str, Any], problem_id: str) -> Problem:
    answer = item.get("answer")
    return Problem(
        question=str(item["question"]),
        answer="" if answer is None else str(answer),
        solution=worked_solution(name, item),
        id=problem_id,
        metadata=dict(item.get("metadata") or {}),
    )


def _draw(
    name: str,
    make: Any,
    base_seed: int,
    count: int,
    exclude: set[str],
    split: str,
    params: dict[str, Any],
    distinct: bool,
) -> list[dict[str, Any]]:
    """`count` items whose questions are not in `exclude` (and, if `distinct`, not repeated)."""
    items: list[dict[str, Any]] = []
    seen: set[str] = set()
    budget = 20 * count + 1000  # draws before concluding the generator has too few distinct problems
    drawn = 0
    chunk = 0
    while len(items) < count and drawn < budget:
        size = min(max(count - len(items), 64), _MAX_CHUNK, budget - drawn)
        generator = make(base_seed + chunk * _SEED_STRIDE, size)
        for index in range(size):
            try:
                item = generator[index]
            except Exception as err:  # a generator bug or a params combination it cannot serve
                raise ConfigError(
                    f"reasoning-gym {name!r} failed to generate a problem with params {params}: {err!r}"
                ) from err
            drawn += 1
            question = item["question"]
            if question in exclude or (distinct and question in seen):
                continue
            seen.add(question)
            items.append(item)
            if len(items) == count:
                break
        chunk += 1
    if len(items) < count:
        field_name = "task.num_eval" if split == "eval" else "task.num_train"
        raise DataError(
            f"reasoning-gym {name!r} with params {params} gave only {len(items)} usable {split} problems in "
            f"{drawn} draws, expected {field_name} = {count}: the generator has too few distinct problems "
            f"(eval questions must be distinct and unseen in train); lower {field_name} or widen task.params"
        )
    return items


def _checked_params(name: str, config_cls: type, params: dict[str, Any]) -> dict[str, Any]:
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    try:
        hints = typing.get_type_hints(config_cls)
    except Exception:  # an annotation reasoning-gym cannot resolve itself: skip the type check
        hints = {}
    for key, value in params.items():
        if key in _RESERVED_PARAMS:
            raise ConfigError(
                f"task.params.{key} is set by eapo from {_RESERVED_PARAMS[key]}; remove it from task.params"
            )
        if key not in fields:
            valid = [f for f in fields if f not in _RESERVED_PARAMS]
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(
                f"task.params.{key}: {name!r} has no parameter {key!r}; {hint}valid: {', '.join(valid)}"
            )
        if key in hints and not _matches(value, hints[key]):
            default = fields[key].default
            shown = "" if default is dataclasses.MISSING else f" (default {default!r})"
            raise ConfigError(f"task.params.{key} = {value!r}: expected {_type_name(hints[key])}{shown}")
    return dict(params)


def _matches(value: Any, hint: Any) -> bool:
    """Loose isinstance against a type hint: int fits float, lists fit tuples; unknown hints accept."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in args)
    if origin is typing.Literal:
        return value in args
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple, set, frozenset) or hint in (list, tuple):
        if not isinstance(value, list | tuple):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(_matches(v, a) for v, a in zip(value, args, strict=True))
        item_hint = args[0] if args else Any
        return all(_matches(v, item_hint) for v in value)
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    return True


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
