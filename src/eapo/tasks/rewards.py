"""Rewards: completions -> 0/1 by the task's verifier (or a user reward function), never blocking a step.

Cheap checks (`numeric`, `exact`, and `math_verify` when both answers are plain numbers or equal strings)
run inline: 128 completions cost about a millisecond. Everything that can hang (math_verify's sympy, a
reasoning-gym scorer, a user reward function) runs in a guarded worker: a forked process that gets one
call at a time and is SIGKILLed and replaced when a call runs past the timeout. A thread could not be
stopped, and a CPU-bound hung thread would keep taking the GIL from the trainer.

Consequences of the forked worker: a user reward function runs in a copy of the process made when it was
first used, so its side effects (appending to a list, counting calls) stay in that copy and it sees
globals as they were at that moment; the arguments (completion, Problem) travel by pickle.
"""

from __future__ import annotations

import atexit
import math
import multiprocessing
import numbers
import signal
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eapo.tasks.extraction import extract_answer, parse_number, strict_answer
from eapo.tasks.problem import Problem, Task
from eapo.tasks.verifiers import math_verify_equal, verify

RewardFn = Callable[[str, Problem], float]

# After this many timeouts in a row, a batch's remaining guarded calls are not run (they count as
# timeouts): a function that always hangs costs a step a few timeouts, not one per completion.
MAX_CONSECUTIVE_TIMEOUTS = 3
_MAX_WORKERS = 8  # distinct guarded functions kept warm (a task's verifier, a user reward function, ...)
_FLOAT32_MAX = 3.4028234663852886e38


@dataclass
class ScoreResult:
    """Rewards for one batch of completions, and how the verification went.

    `rewards[i]` is 0.0 or 1.0 for the built-in verifiers (a user `reward_fn`'s finite value otherwise);
    a verifier that raised, returned a non-number / NaN / inf / a value beyond the float32 range, or timed
    out gives 0.0 and is counted.
    `predictions[i]` is the extracted answer (None where none could be extracted).
    `n_well_formed` counts completions with a strict final answer (`strict_answer`), in every mode: the
    format rate that `task.strict_answer` rewards.
    """

    rewards: list[float]
    predictions: list[str | None]
    n_extracted: int
    n_well_formed: int = 0
    n_verifier_errors: int = 0
    n_verifier_timeouts: int = 0
    error_messages: list[str] = field(default_factory=list)  # the first few, for the run log

    def failure_warning(self, step: int) -> str | None:
        """The run log's warning when the verifier or reward function failed on this batch (None if not)."""
        if not (self.n_verifier_errors or self.n_verifier_timeouts):
            return None
        example = f" First: {self.error_messages[0]}." if self.error_messages else ""
        return (
            f"warning: step {step}: the verifier failed on {self.n_verifier_errors} completion(s) and timed "
            f"out on {self.n_verifier_timeouts}; each gets reward 0 and is counted (metrics verifier/errors, "
            f"verifier/timeouts).{example}"
        )


def score_completions(
    completions: Sequence[str],
    problems: Sequence[Problem],
    task: Task,
    timeout_s: float | None = None,
    reward_fn: RewardFn | None = None,
) -> ScoreResult:
    """Score `completions[i]` against `problems[i]`.

    `timeout_s` (default `task.config.verifier_timeout_s`) bounds each guarded call; a batch returns
    within about `MAX_CONSECUTIVE_TIMEOUTS * timeout_s` plus the time its non-hanging calls take.
    `reward_fn(completion, problem)`, if given, replaces the task's verifier.
    """
    if len(completions) != len(problems):
        raise ValueError(f"{len(completions)} completions for {len(problems)} problems")
    config = task.config
    timeout = config.verifier_timeout_s if timeout_s is None else timeout_s
    strict = [strict_answer(c, config.answer_format) for c in completions]
    if config.strict_answer:
        predictions = strict
    else:
        predictions = [extract_answer(c, config.answer_format, config.answer_fallback) for c in completions]
    result = ScoreResult(
        rewards=[0.0] * len(completions),
        predictions=predictions,
        n_extracted=sum(p is not None for p in predictions),
        n_well_formed=sum(p is not None for p in strict),
    )

    # (completion index, arguments) of the calls that need the guard.
    guarded: list[tuple[int, tuple[Any, ...]]] = []
    if reward_fn is not None:
        guarded = [(i, (completions[i], problems[i])) for i in range(len(completions))]
        _run_guarded(reward_fn, guarded, timeout, result, keep_value=True)
        return result
    for i, (predicted, problem) in enumerate(zip(predictions, problems, strict=True)):
        if predicted is None:
            continue
        if task.verifier in ("numeric", "exact"):
            result.rewards[i] = float(verify(predicted, problem.answer, task.verifier))
        elif task.verifier == "math_verify":
            quick = _quick_equal(predicted, problem.answer)
            if quick is None:
                guarded.append((i, (predicted, problem.answer)))
            else:
                result.rewards[i] = float(quick)
        elif task.verifier == "reasoning_gym":
            guarded.append((i, (predicted, problem)))
        else:
            raise ValueError(f"task.verifier {task.verifier!r} is not a verifier")
    if guarded:
        if task.verifier == "math_verify":
            import math_verify  # noqa: F401  (imported here, so the forked worker inherits it)

            function: Callable[..., Any] = math_verify_equal
        else:
            function = task.scorer  # type: ignore[assignment]
        _run_guarded(function, guarded, timeout, result, keep_value=False)
    return result


def _quick_equal(predicted: str, gold: str) -> bool | None:
    """math_verify's answer where it needs no sympy (equal strings, or two plain numbers), else None."""
    if predicted.strip() == gold.strip():
        return True
    if parse_number(predicted) is not None and parse_number(gold) is not None:
        return verify(predicted, gold, "numeric")
    return None


def _run_guarded(
    function: Callable[..., Any],
    calls: list[tuple[int, tuple[Any, ...]]],
    timeout_s: float,
    result: ScoreResult,
    keep_value: bool,
) -> None:
    """Run `function(*args)` for each call in its worker and write rewards and counts into `result`.

    `keep_value`: the reward is the returned number (a user reward function); otherwise it is 1.0 when
    the verifier returned 1 / True and 0.0 else.
    """
    outcomes = _worker_for(function).map([args for _, args in calls], timeout_s)
    for (index, _), (kind, value) in zip(calls, outcomes, strict=True):
        # The trainer holds rewards in float32: a finite value beyond its range would become inf there.
        if kind == "ok" and math.isfinite(value) and abs(value) <= _FLOAT32_MAX:
            result.rewards[index] = value if keep_value else float(value == 1.0)
            continue
        if kind == "timeout":
            result.n_verifier_timeouts += 1
        else:
            result.n_verifier_errors += 1
        if len(result.error_messages) < 5:
            shown = f"returned {value!r}" if kind == "ok" else str(value)
            result.error_messages.append(f"{getattr(function, '__name__', 'verifier')}: {kind}: {shown}")


# --- the guarded worker ------------------------------------------------------------------------------


class _Worker:
    """A child process that applies one function to argument tuples, one call at a time.

    Lockstep (send one call, wait for its result) keeps the pipe empty whenever the parent waits, so
    a hung child can never block a send, and a timeout pins the hung call exactly.
    """

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function
        self.process: Any = None
        self.connection: Any = None
        self.lock = threading.Lock()

    def map(self, calls: list[tuple[Any, ...]], timeout_s: float) -> list[tuple[str, Any]]:
        """[("ok", float) | ("not_a_number", repr) | ("error", message) | ("timeout", message)] per call."""
        outcomes: list[tuple[str, Any]] = []
        consecutive_timeouts = 0
        with self.lock:
            for args in calls:
                if consecutive_timeouts >= MAX_CONSECUTIVE_TIMEOUTS:
                    outcomes.append(("timeout", f"not run after {consecutive_timeouts} timeouts in a row"))
                    continue
                outcome = self._call(args, timeout_s)
                consecutive_timeouts = consecutive_timeouts + 1 if outcome[0] == "timeout" else 0
                outcomes.append(outcome)
        return outcomes

    def _call(self, args: tuple[Any, ...], timeout_s: float) -> tuple[str, Any]:
        if self.process is None or not self.process.is_alive():
            try:
                self._start()
            except Exception as err:  # e.g. a function that spawn (non-POSIX) cannot pickle
                self.stop()
                return ("error", f"could not start the verifier worker: {err!r}")
        try:
            self.connection.send(args)
        except (BrokenPipeError, EOFError, ConnectionError) as err:
            self.stop()
            return ("error", f"the verifier worker died: {err!r}")
        except Exception as err:  # pickling the arguments failed; nothing was written
            return ("error", f"could not send the arguments to the verifier worker: {err!r}")
        try:
            if not self.connection.poll(timeout_s):
                self.stop()  # the call hangs: SIGKILL; the next call starts a fresh worker
                return ("timeout", f"no result within {timeout_s:g} s")
            return self.connection.recv()
        except (EOFError, ConnectionError, OSError) as err:
            self.stop()
            return ("error", f"the verifier worker died during the call: {err!r}")

    def _start(self) -> None:
        # fork: the child inherits the function (closures and lambdas need no pickling) and the imported
        # modules, so a restart after a timeout costs milliseconds.
        fork = "fork" in multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork") if fork else multiprocessing.get_context("spawn")
        parent_end, child_end = context.Pipe()
        process = context.Process(
            target=_worker_loop, args=(child_end, self.function), daemon=True, name="eapo-verifier"
        )
        process.start()
        child_end.close()
        self.process, self.connection = process, parent_end

    def stop(self) -> None:
        if self.process is not None:
            if self.process.is_alive():
                self.process.kill()
            self.process.join(timeout=5)
            self.process = None
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def _worker_loop(connection: Any, function: Callable[..., Any]) -> None:
    """The child: receive argument tuples, send ("ok", float) / ("not_a_number", repr) / ("error", msg)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the trainer; the parent stops us
    while True:
        try:
            args = connection.recv()
        except (EOFError, OSError):
            return
        try:
            value = function(*args)
            if isinstance(value, numbers.Real):
                message: tuple[str, Any] = ("ok", float(value))
            else:
                message = ("not_a_number", f"returned {type(value).__name__} {repr(value)[:80]}")
        except BaseException as err:  # user code may raise anything, SystemExit included
            message = ("error", f"{type(err).__name__}: {str(err)[:300]}")
        connection.send(message)


_workers: dict[int, _Worker] = {}
_workers_lock = threading.Lock()


def _worker_for(function: Callable[..., Any]) -> _Worker:
    """The warm worker for `function`, keyed by identity (the worker holds a reference: ids stay unique)."""
    with _workers_lock:
        worker = _workers.get(id(function))
        if worker is None:
            if len(_workers) >= _MAX_WORKERS:
                oldest = next(iter(_workers))
                _workers.pop(oldest).stop()
            worker = _workers[id(function)] = _Worker(function)
        return worker


def stop_workers() -> None:
    """Stop every guarded worker (also done at exit)."""
    with _workers_lock:
        for worker in _workers.values():
            worker.stop()
        _workers.clear()


atexit.register(stop_workers)
