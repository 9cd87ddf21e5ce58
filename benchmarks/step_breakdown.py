"""Benchmark 3: where the time of an `eapo train` step goes, on `tiny` and on SmolLM2.

Each model trains for a few steps in a fresh subprocess through `Trainer.run()`, the code `eapo train`
runs. The trainer's own per-step timers (metrics.jsonl `time/*`) give rollout, scoring, old log-probs and
forward+backward and optimizer; the benchmark adds timers around the trainer's methods (no trainer code
changes): `torch.Tensor.backward` (splits the training forward from the backward), the entropy-change
re-scoring and rollout dumps (every `run.entropy_change_every` / `dump_rollouts_every` steps), the metrics
logger, evaluation and checkpointing. What remains of a step is shaping + metrics (advantages, shaper,
per-quadrant statistics); what remains of the loop is logging (samples.jsonl, the progress bar).
The first step is reported apart (warm-up) and left out of the means.

A second experiment measures the thread wait policy of torch's OpenMP runtime (a speed lever on a shared
CPU): the same tiny run with OMP_WAIT_POLICY unset (libgomp's default: spin, then sleep) and PASSIVE,
interleaved, one subprocess each.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bench_utils as bu

NAME = "step_breakdown"
SCRIPT = Path(__file__).resolve()
SETTINGS: dict[str, dict[str, Any]] = {
    # models: model -> steps and config overrides (quick trains SmolLM2 on half its packaged batch)
    "full": {
        "models": {"tiny": {"steps": 30}, "smollm2": {"steps": 4}},
        "omp_policy": {"model": "tiny", "steps": 10, "rounds": 2},
    },
    "quick": {
        "models": {
            "tiny": {"steps": 12},
            "smollm2": {"steps": 2, "overrides": {"train": {"prompts_per_step": 2}}},
        },
        "omp_policy": {"model": "tiny", "steps": 8, "rounds": 1},
    },
    "smoke": {"models": {"tiny-smoke": {"steps": 3}}, "omp_policy": None},
}
# Evaluation is not part of a step; it is kept small so that start and end evals do not dominate.
EVAL = {"every": 0, "num_problems": 2, "k": 1}
PARTS = [
    ("rollout", "rollout (generate)"),
    ("scoring", "reward (verifier)"),
    ("old_logprobs", "old log-probs + entropy forward"),
    ("train_forward", "training forward + loss"),
    ("backward", "backward"),
    ("optimizer", "optimizer (clip + AdamW)"),
    ("entropy_change", "entropy-change re-score"),
    ("dump_rollouts", "rollout dumps"),
    ("shaping_metrics", "advantages, shaper, metrics"),
    ("logging", "logging (metrics, TensorBoard, samples)"),
]


def _config(model: str, steps: int, run_dir: str, extra: dict[str, Any] | None = None) -> Any:
    overrides: dict[str, Any] = json.loads(json.dumps(extra or {}))
    overrides.setdefault("train", {})["steps"] = steps
    overrides["eval"] = dict(EVAL)
    overrides.setdefault("run", {})["output_dir"] = run_dir
    return bu.model_config(model, overrides)


def _wrap(owner: Any, attribute: str, totals: dict[str, list[float]], key: str) -> None:
    """Replace owner.attribute by a timed version that appends each call's seconds to totals[key]."""
    original: Callable[..., Any] = getattr(owner, attribute)

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            totals.setdefault(key, []).append(time.perf_counter() - start)

    setattr(owner, attribute, timed)


def worker(payload: dict[str, Any]) -> dict[str, Any]:
    import torch

    from eapo.train.logging import read_metrics
    from eapo.train.scored_rollout import ScoredRollout
    from eapo.train.trainer import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        config = _config(payload["model"], payload["steps"], tmp, payload.get("overrides"))
        start = time.perf_counter()
        trainer = Trainer(config, progress=False)
        setup_s = time.perf_counter() - start
        calls: dict[str, list[float]] = {}
        step_marks: list[int] = []  # number of backward calls seen when each step ends

        for attribute, key in (
            ("train_step", "train_step"),
            ("_entropy_change", "entropy_change"),
            ("evaluate", "evaluate"),
            ("save", "checkpoint"),
        ):
            _wrap(trainer, attribute, calls, key)
        _wrap(trainer.logger, "log", calls, "logger_log")
        _wrap(ScoredRollout, "write_dump", calls, "dump_rollouts")  # this worker process only
        original_backward = torch.Tensor.backward

        def timed_backward(self: torch.Tensor, *args: Any, **kwargs: Any) -> None:
            t0 = time.perf_counter()
            original_backward(self, *args, **kwargs)
            calls.setdefault("backward", []).append(time.perf_counter() - t0)

        torch.Tensor.backward = timed_backward  # type: ignore[method-assign]
        inner_step = trainer.train_step

        def step_and_mark() -> Any:
            out = inner_step()
            step_marks.append(len(calls.get("backward", [])))
            return out

        trainer.train_step = step_and_mark  # type: ignore[method-assign]
        start = time.perf_counter()
        trainer.run()
        run_s = time.perf_counter() - start
        torch.Tensor.backward = original_backward  # type: ignore[method-assign]
        rows = [r for r in read_metrics(trainer.run_dir) if "loss" in r]
        n_params = sum(p.numel() for p in trainer.model.parameters())

    # Backward seconds per step, from the marks.
    backward_per_step = []
    previous = 0
    for mark in step_marks:
        backward_per_step.append(sum(calls.get("backward", [])[previous:mark]))
        previous = mark
    entropy_change = iter(calls.get("entropy_change", []))
    dumps = iter(calls.get("dump_rollouts", []))
    every_ec = config.run.entropy_change_every
    every_dump = config.run.dump_rollouts_every
    logs = calls.get("logger_log", [])
    # logger.log runs once for the start eval, once per step and once for the final eval.
    step_logs = logs[1 : 1 + len(rows)]
    loop_s = run_s - sum(calls.get("evaluate", [])) - sum(calls.get("checkpoint", []))
    loop_other = (loop_s - sum(calls["train_step"]) - sum(logs[: 1 + len(rows)])) / len(rows)
    steps = []
    for index, row in enumerate(rows):
        number = row["step"]
        ec = next(entropy_change) if every_ec and number % every_ec == 0 else 0.0
        dump = next(dumps) if every_dump and number % every_dump == 0 else 0.0
        backward = backward_per_step[index]
        known = {
            "rollout": row["time/rollout"],
            "scoring": row["time/scoring"],
            "old_logprobs": row["time/old_logprobs"],
            "train_forward": row["time/forward_backward"] - backward,
            "backward": backward,
            "optimizer": row["time/optimizer"],
            "entropy_change": ec,
            "dump_rollouts": dump,
        }
        # time/step covers the step from rollout to metrics; the rest of the update (its bookkeeping,
        # between forward_backward+optimizer and update) counts with shaping + metrics.
        known["shaping_metrics"] = row["time/step"] - sum(known.values())
        known["logging"] = step_logs[index] + loop_other
        known["step_wall"] = calls["train_step"][index] + known["logging"]
        known["tokens"] = row["tokens/generated"]
        steps.append(known)
    return {
        "model": payload["model"],
        "parameters": n_params,
        "config": {
            "prompts_per_step": config.train.prompts_per_step,
            "group_size": config.train.group_size,
            "max_new_tokens": config.sampling.max_new_tokens,
            "micro_batch_rows": config.train.micro_batch_rows,
            "algo": config.algo.name,
            "entropy_change_every": every_ec,
            "dump_rollouts_every": every_dump,
            "tensorboard": config.run.tensorboard,
        },
        "setup_s": setup_s,
        "run_s": run_s,
        "eval_s": calls.get("evaluate", []),
        "checkpoint_s": calls.get("checkpoint", []),
        "steps": steps,
        "torch_threads": torch.get_num_threads(),
    }


def omp_policy_worker(payload: dict[str, Any]) -> dict[str, Any]:
    """Seconds per training step of a short tiny run, in this process (its OMP policy set by the parent)."""
    result = worker({"model": payload["model"], "steps": payload["steps"]})
    walls = [s["step_wall"] for s in result["steps"][1:]]
    return {"policy": os.environ.get("OMP_WAIT_POLICY", "unset"), "step_s": walls}


def run_policy(policy: str | None, payload: dict[str, Any]) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy is not None:
        env["OMP_WAIT_POLICY"] = policy
    else:
        # bench_utils sets PASSIVE when the variable is absent; this marker keeps the child at the default.
        env["EAPO_BENCH_OMP_DEFAULT"] = "1"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--worker", json.dumps({**payload, "kind": "omp"})],
        capture_output=True,
        text=True,
        env=env,
        cwd=bu.REPO_ROOT,
        timeout=1800,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"OMP policy worker ({policy}) failed:\n{proc.stderr[-4000:]}")
    return json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for run in runs:
        measured = run["steps"][1:] or run["steps"]
        n = len(measured)
        mean = {key: sum(s[key] for s in measured) / n for key, _ in PARTS}
        wall = sum(s["step_wall"] for s in measured) / n
        tokens = sum(s["tokens"] for s in measured) / n
        out.append(
            {
                "model": run["model"],
                "steps_measured": n,
                "step_s": round(wall, 4),
                "first_step_s": round(run["steps"][0]["step_wall"], 4),
                "tokens_per_step": round(tokens, 1),
                "tokens_per_s": round(tokens / wall, 1),
                "parts_s": {key: round(mean[key], 5) for key, _ in PARTS},
                "shares": {key: round(mean[key] / wall, 4) for key, _ in PARTS},
                "setup_s": round(run["setup_s"], 2),
                "eval_s": [round(x, 2) for x in run["eval_s"]],
            }
        )
    return out


def render_table(summary: list[dict[str, Any]]) -> str:
    headers = ["part", *[f"{s['model']} s" for s in summary], *[f"{s['model']} share" for s in summary]]
    rows = [
        [label, *[s["parts_s"][key] for s in summary], *[f"{100 * s['shares'][key]:.1f}%" for s in summary]]
        for key, label in PARTS
    ]
    rows.append(["step (wall)", *[s["step_s"] for s in summary], *["100%" for _ in summary]])
    return bu.format_table(headers, rows)


def any_worker(payload: dict[str, Any]) -> dict[str, Any]:
    return omp_policy_worker(payload) if payload.get("kind") == "omp" else worker(payload)


def measure(record: dict[str, Any], settings: dict[str, Any]) -> None:
    runs = []
    for model, spec in settings["models"].items():
        runs.append(bu.run_worker(SCRIPT, {"model": model, **spec}))
        print(f"  done {model} (load {bu.load_average()[0]})", file=sys.stderr)
    record["runs"] = runs
    record["summary"] = summarise(runs)
    policy = settings["omp_policy"]
    if policy:
        results: dict[str, list[float]] = {"unset": [], "PASSIVE": []}
        loads = []
        for round_index in range(policy["rounds"]):
            order = ["unset", "PASSIVE"] if round_index % 2 == 0 else ["PASSIVE", "unset"]
            for name in order:
                loads.append(bu.load_average()[0])
                payload = {"model": policy["model"], "steps": policy["steps"]}
                out = run_policy(None if name == "unset" else name, payload)
                results[name].append(bu.median(out["step_s"]))
        record["omp_wait_policy"] = {
            "step_s_median_per_run": results,
            "load_average_1min_at_each_run": loads,
            "ratio_unset_over_passive": bu.paired_ratio(results["unset"], results["PASSIVE"]),
        }


def report(record: dict[str, Any]) -> None:
    print(render_table(record["summary"]))
    if "omp_wait_policy" in record:
        ratio = record["omp_wait_policy"]["ratio_unset_over_passive"]["median"]
        print(f"\nOMP_WAIT_POLICY: default (unset) / PASSIVE step time = {ratio:.2f}x")


def main() -> None:
    bu.benchmark_main(__doc__, NAME, SCRIPT, SETTINGS, any_worker, report, measure)


if __name__ == "__main__":
    main()
