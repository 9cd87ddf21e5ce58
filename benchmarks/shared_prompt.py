"""Benchmark: each distinct prompt run once (`train.shared_prompt_forward`, `sampling.shared_prompt_prefill`).

One micro-batch of a real rollout on the SmolLM2 study's setting (`configs/smollm2_study.yaml`: chat
prompts of ~45 tokens, short worked answers, groups of 8, 16-row micro-batches): the training
forward + backward of the policy update (`eapo.rollout.response_logits` + log-probs/entropy + a backward)
and the no-grad scoring forward (π_old when the rollout ran in another precision), each with the plain path
and with each distinct prompt run once, alternating in one process (A B, B A, ...) in fp32 and, where the
chip has bf16 units, under bf16 autocast. Reports the median time, the median of the per-round speed-ups
and the largest log-prob difference between the two paths, and each path's |log π| gap to the plain fp32
forward (mean, p99, max over the response tokens).

Then whole rollouts of the study's step (8 prompts x 8, its stop strings) with each distinct prompt
prefilled once against the plain prefill, same seeds, alternating: time and the share of rows drawn
identically. Writes `benchmarks/results/shared_prompt.json`.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from pathlib import Path
from typing import Any

import bench_utils as bu

NAME = "shared_prompt"
SCRIPT = Path(__file__).resolve()
SETTINGS: dict[str, dict[str, Any]] = {
    "full": dict(config="configs/smollm2_study.yaml", prompts=2, rollout_prompts=8, group=8, rounds=6),
    "quick": dict(config="configs/smollm2_study.yaml", prompts=2, rollout_prompts=8, group=8, rounds=3),
    "smoke": dict(
        config="smoke", prompts=2, rollout_prompts=2, group=2, rounds=1
    ),  # the built-in config of the tests
}


def worker(s: dict[str, Any]) -> dict[str, Any]:
    import torch

    from eapo.core import token_logprobs_and_entropy
    from eapo.models import device_has_fast_bf16, load_policy
    from eapo.rollout import generate_rollouts, response_logits
    from eapo.tasks import build_prompt, load_task
    from eapo.train.config import load_config

    config = load_config(s["config"] if s["config"] == "smoke" else bu.REPO_ROOT / s["config"])
    task = load_task(config.task)
    model, tokenizer = load_policy(config.model, task, progress=False)
    prompts = [build_prompt(p, tokenizer, config.task) for p in task.train[: s["prompts"]]]
    model.eval()
    batch = generate_rollouts(model, tokenizer, prompts, s["group"], config.sampling, seed=0)
    temperature = config.sampling.temperature
    args = (batch.sequences, batch.attention_mask, batch.prompt_length)
    precisions: dict[str, Any] = {"float32": contextlib.nullcontext}
    if device_has_fast_bf16("cpu"):
        precisions["bfloat16 autocast"] = lambda: torch.autocast("cpu", torch.bfloat16)

    def logprobs(shared: bool, autocast: Any) -> torch.Tensor:
        with autocast():
            logits = response_logits(model, *args, share_prompts=shared)
        return token_logprobs_and_entropy(
            logits, batch.response_ids, batch.response_mask, None, temperature=temperature
        )[0].float()

    def train_pass(shared: bool, autocast: Any) -> None:
        model.train()
        model.zero_grad(set_to_none=True)
        (logprobs(shared, autocast) * batch.response_mask).sum().backward()

    def score_pass(shared: bool, autocast: Any) -> None:
        model.eval()
        with torch.no_grad():
            logprobs(shared, autocast)

    def gap(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
        diff = (a - b).abs()[batch.response_mask]
        return {"mean": float(diff.mean()), "p99": float(diff.quantile(0.99)), "max": float(diff.max())}

    out = []
    vs_fp32: dict[str, Any] = {}
    with torch.no_grad():
        model.eval()
        reference = logprobs(False, contextlib.nullcontext)  # the plain fp32 forward
    for precision, autocast in precisions.items():
        with torch.no_grad():
            model.eval()
            plain, shared = logprobs(False, autocast), logprobs(True, autocast)
        max_gap = gap(shared, plain)["max"]
        vs_fp32[precision] = {
            "plain": gap(plain, reference),
            "shared": gap(shared, reference),
            "shared_vs_plain": gap(shared, plain),
        }
        for phase, fn in (("forward_backward", train_pass), ("score_no_grad", score_pass)):
            fn(False, autocast)  # warm-up
            fn(True, autocast)
            times: dict[str, list[float]] = {"plain": [], "shared": []}
            for round_index in range(s["rounds"]):
                order = ("plain", "shared") if round_index % 2 == 0 else ("shared", "plain")
                for name in order:
                    start = time.perf_counter()
                    fn(name == "shared", autocast)
                    times[name].append(time.perf_counter() - start)
            out.append(
                {
                    "precision": precision,
                    "phase": phase,
                    "seconds": {k: statistics.median(v) for k, v in times.items()},
                    "speedup": bu.paired_ratio(times["plain"], times["shared"]),
                    "max_abs_logprob_diff": max_gap,
                }
            )
    out += rollout_ab(model, tokenizer, task, config, s)
    shape = {
        "rows": int(batch.sequences.shape[0]),
        "distinct_prompts": s["prompts"],
        "prompt_width": int(batch.prompt_length),
        "response_width": int(batch.response_ids.shape[1]),
        "response_tokens_mean": float(batch.response_mask.sum(1).float().mean()),
    }
    return {"shape": shape, "summary": out, "logprob_gap_vs_fp32": vs_fp32}


def rollout_ab(model: Any, tokenizer: Any, task: Any, config: Any, s: dict[str, Any]) -> list[dict[str, Any]]:
    """A whole rollout of the study's step (`rollout_prompts` x G rows, its stop strings) with each distinct
    prompt prefilled once against the plain prefill, in the weights' precision and, where the chip has bf16
    units, in a bf16 copy (the rollout precision `model.rollout_dtype: auto` picks there); same seeds, so
    `same_samples` counts the rows drawn identically by the two paths."""
    import copy
    import dataclasses

    import torch

    from eapo.models import device_has_fast_bf16
    from eapo.rollout import generate_rollouts
    from eapo.tasks import build_prompt

    prompts = [build_prompt(p, tokenizer, config.task) for p in task.train[: s["rollout_prompts"]]]
    samplers = {"float32": model}
    if device_has_fast_bf16("cpu"):
        samplers["bfloat16 weights"] = copy.deepcopy(model).to(torch.bfloat16)
    out = []
    for precision, sampler in samplers.items():
        sampling = {
            name: dataclasses.replace(config.sampling, shared_prompt_prefill=name == "shared")
            for name in ("plain", "shared")
        }
        times: dict[str, list[float]] = {"plain": [], "shared": []}
        same = total = 0
        for round_index in range(s["rounds"]):
            order = ("plain", "shared") if round_index % 2 == 0 else ("shared", "plain")
            drawn = {}
            for name in order:
                start = time.perf_counter()
                drawn[name] = generate_rollouts(
                    sampler, tokenizer, prompts, s["group"], sampling[name], seed=round_index
                )
                times[name].append(time.perf_counter() - start)
            a, b = drawn["plain"], drawn["shared"]
            same += sum(x == y for x, y in zip(a.completions, b.completions, strict=True))
            total += len(a.completions)
        out.append(
            {
                "precision": precision,
                "phase": "rollout",
                "seconds": {k: statistics.median(v) for k, v in times.items()},
                "speedup": bu.paired_ratio(times["plain"], times["shared"]),
                "same_samples": same / total,
            }
        )
    return out


def report(record: dict[str, Any]) -> None:
    print(f"micro-batch: {record['shape']}")
    print(
        bu.format_table(
            [
                "precision",
                "phase",
                "plain s",
                "shared s",
                "speed-up (median, min-max)",
                "max |Δ log-prob|",
                "same samples",
            ],
            [
                [
                    d["precision"],
                    d["phase"],
                    round(d["seconds"]["plain"], 3),
                    round(d["seconds"]["shared"], 3),
                    bu.ratio_text(d["speedup"]),
                    f"{d['max_abs_logprob_diff']:.1e}" if "max_abs_logprob_diff" in d else "-",
                    f"{d['same_samples']:.3f}" if "same_samples" in d else "-",
                ]
                for d in record["summary"]
            ],
        )
    )


def main() -> None:
    bu.benchmark_main(__doc__, NAME, SCRIPT, SETTINGS, worker, report)


if __name__ == "__main__":
    main()
