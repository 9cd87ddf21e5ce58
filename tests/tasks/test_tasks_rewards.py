"""score_completions: 0/1 rewards, and reward functions that raise, hang or return junk."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import pytest

from eapo.tasks import Problem, Task, TaskConfig, load_task, score_completions
from eapo.tasks.rewards import MAX_CONSECUTIVE_TIMEOUTS

TIMEOUT = 0.5
SLACK = 1.5  # fork of a fresh worker plus scheduling on a busy 2-core machine


@pytest.fixture(scope="module")
def task() -> Task:
    params = {"min_terms": 2, "max_terms": 3, "min_digits": 1, "max_digits": 2}
    return load_task(TaskConfig(source="chain_sum", params=params, num_train=50, num_eval=20))


def test_numeric_rewards(task: Task) -> None:
    problems = task.eval[:4]
    completions = [
        f"<answer>{problems[0].answer}</answer>",
        f"steps... so {problems[1].answer}",  # no tag: the last-number fallback
        f"<answer>{int(problems[2].answer) + 1}</answer>",
        "no idea",
    ]
    result = score_completions(completions, problems, task)
    assert result.rewards == [1.0, 1.0, 0.0, 0.0]
    assert result.n_extracted == 3
    assert result.predictions[3] is None
    assert (result.n_verifier_errors, result.n_verifier_timeouts) == (0, 0)


def test_numeric_scoring_is_cheap(task: Task) -> None:
    problems = (task.eval * 7)[:128]
    completions = [f"{p.solution}\n<answer>{p.answer}</answer>" for p in problems]
    score_completions(completions, problems, task)
    start = time.perf_counter()
    for _ in range(10):
        result = score_completions(completions, problems, task)
    per_step = (time.perf_counter() - start) / 10
    assert sum(result.rewards) == 128
    assert per_step < 0.010, f"{per_step * 1e3:.2f} ms for 128 completions"


def test_math_verify_rewards_through_the_worker(task: Task) -> None:
    math_task = dataclasses.replace(task, verifier="math_verify")
    problems = [
        Problem(question="q", answer="2\\sqrt{2}", id="a"),
        Problem(question="q", answer="0.5", id="b"),
    ]
    completions = ["<answer>\\sqrt{8}</answer>", "<answer>\\frac{1}{2}</answer>"]
    result = score_completions(completions, problems, math_task)
    assert result.rewards == [1.0, 1.0]


def _raises(completion: str, problem: Problem) -> float:
    raise RuntimeError("bad reward function")


def _sleeps_forever(completion: str, problem: Problem) -> float:
    time.sleep(10**6)
    return 1.0


@pytest.mark.parametrize(
    ("reward_fn", "kind"),
    [
        (_raises, "error"),
        (lambda c, p: "abc", "error"),
        (lambda c, p: float("nan"), "error"),
        (lambda c, p: float("inf"), "error"),
        (lambda c, p: None, "error"),
    ],
    ids=["raises", "string", "nan", "inf", "none"],
)
def test_bad_reward_functions_give_zero_and_are_counted(
    task: Task, reward_fn: Callable[[str, Problem], Any], kind: str
) -> None:
    problems = task.eval[:3]
    result = score_completions(["1", "2", "3"], problems, task, timeout_s=TIMEOUT, reward_fn=reward_fn)
    assert result.rewards == [0.0, 0.0, 0.0]
    assert result.n_verifier_errors == 3 and result.n_verifier_timeouts == 0
    assert result.error_messages


def test_hanging_reward_function_returns_within_the_timeout(task: Task) -> None:
    start = time.perf_counter()
    result = score_completions(["1"], task.eval[:1], task, timeout_s=TIMEOUT, reward_fn=_sleeps_forever)
    assert time.perf_counter() - start < TIMEOUT + SLACK
    assert result.rewards == [0.0] and result.n_verifier_timeouts == 1


def test_a_hang_does_not_block_later_calls(task: Task) -> None:
    problems = task.eval[:4]
    hang_on = problems[1].id

    def reward(completion: str, problem: Problem) -> float:
        if problem.id == hang_on:
            while True:  # CPU-bound: a thread could not be stopped; the worker process is killed
                pass
        return float(completion == problem.answer)

    completions = [p.answer for p in problems]
    start = time.perf_counter()
    result = score_completions(completions, problems, task, timeout_s=TIMEOUT, reward_fn=reward)
    assert time.perf_counter() - start < TIMEOUT + SLACK
    assert result.rewards == [1.0, 0.0, 1.0, 1.0]
    assert result.n_verifier_timeouts == 1
    start = time.perf_counter()
    again = score_completions(completions[:1], problems[:1], task, timeout_s=TIMEOUT, reward_fn=reward)
    assert again.rewards == [1.0] and time.perf_counter() - start < SLACK


def test_always_hanging_function_costs_a_few_timeouts_per_batch(task: Task) -> None:
    problems = task.train[:20]
    start = time.perf_counter()
    result = score_completions(["1"] * 20, problems, task, timeout_s=TIMEOUT, reward_fn=_sleeps_forever)
    assert time.perf_counter() - start < MAX_CONSECUTIVE_TIMEOUTS * TIMEOUT + SLACK
    assert result.n_verifier_timeouts == 20 and result.rewards == [0.0] * 20


def test_user_reward_values_are_kept(task: Task) -> None:
    problems = task.eval[:2]
    result = score_completions(["a", "b"], problems, task, reward_fn=lambda c, p: 0.25 if c == "a" else True)
    assert result.rewards == [0.25, 1.0]


def test_reasoning_gym_verifier_survives_a_hanging_answer() -> None:
    countdown = load_task(TaskConfig(source="countdown", num_train=3, num_eval=2))
    problem = countdown.eval[0]
    completions = [
        f"<answer>{problem.answer}</answer>",
        "<answer>9**9**9**9**9</answer>",
        "<answer>1+2</answer>",
    ]
    start = time.perf_counter()
    result = score_completions(completions, [problem] * 3, countdown, timeout_s=TIMEOUT)
    assert time.perf_counter() - start < TIMEOUT + SLACK + 1.0
    assert result.rewards == [1.0, 0.0, 0.0]  # 1+2 earns reasoning-gym's partial credit, not ours
    assert result.n_verifier_timeouts == 1


def test_length_mismatch_is_a_bug(task: Task) -> None:
    with pytest.raises(ValueError, match="2 completions for 1 problems"):
        score_completions(["a", "b"], task.eval[:1], task)


def test_failure_warning_names_the_counts_and_the_first_error() -> None:
    from eapo.tasks.rewards import ScoreResult

    clean = ScoreResult(rewards=[1.0], predictions=["1"], n_extracted=1)
    assert clean.failure_warning(3) is None
    failed = ScoreResult(
        rewards=[0.0, 0.0],
        predictions=[None, None],
        n_extracted=0,
        n_verifier_errors=1,
        n_verifier_timeouts=1,
        error_messages=["verifier: ValueError: bad"],
    )
    text = failed.failure_warning(3)
    assert text is not None and text.startswith("warning: step 3: the verifier failed on 1 completion(s)")
    assert "timed out on 1" in text and text.endswith("First: verifier: ValueError: bad.")
