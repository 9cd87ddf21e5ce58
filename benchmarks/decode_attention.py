"""Benchmark: the attention kernel `generate` decodes with (`sampling.attention`, eapo.rollout.attention).

Whole rollouts of the SmolLM2 study's step (`configs/smollm2_study.yaml`: 8 prompts x G = 8 in one chunk of
64 rows, T = 1.4, top-p 0.95) with transformers' SDPA (`attention: model`) against the eager attention
(`attention: eager`), same seeds, alternating in one process (A B, B A, ...), for four prompt sets:

- `padded`: the study's own first 8 train prompts, of different token lengths, so the chunk is left-padded;
- `one length`: 8 train prompts of one token length, so no row is padded (transformers then drops the
  mask and, under grouped-query attention, asks torch's SDPA to expand the key heads itself);
- `padded, long` and `one length, long`: the same with ~180 tokens of instructions added to the system
  prompt, where the attention over the cache weighs more.

Each in the precision `model.rollout_dtype: auto` samples with on this machine (a bf16 copy where the chip has
bf16 matrix units, else fp32) and, in the full setting, also in fp32. Reports the median rollout time of each
kernel, the median of the per-round speed-ups (SDPA time / eager time), the share of rows drawn identically,
and what `attention: auto` picks for the chunk. Writes `benchmarks/results/decode_attention.json`.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

import bench_utils as bu

NAME = "decode_attention"
SCRIPT = Path(__file__).resolve()
STUDY = "configs/smollm2_study.yaml"
SETTINGS: dict[str, dict[str, Any]] = {
    "full": dict(config=STUDY, prompts=8, group=8, tokens=48, rounds=4, fp32=True),
    "quick": dict(config=STUDY, prompts=8, group=8, tokens=24, rounds=2, fp32=False),
    "smoke": dict(config="smoke", prompts=2, group=2, tokens=4, rounds=1, fp32=True),
}
# About 180 SmolLM2 tokens of instructions, added to the system prompt for the long prompt sets.
LONG_INSTRUCTIONS = "Think step by step and check each partial result before you write the answer. " * 12


def prompt_sets(task: Any, tokenizer: Any, config: Any, count: int) -> dict[str, list[str]]:
    """The four prompt sets of the module docstring: `count` prompts each."""
    import dataclasses

    from eapo.tasks import build_prompt
    from eapo.tasks.prompts import system_prompt

    def build(problems: list[Any], long: bool) -> list[str]:
        task_config = config.task
        if long:
            task_config = dataclasses.replace(
                task_config, system_prompt=f"{LONG_INSTRUCTIONS}{system_prompt(config.task)}"
            )
        return [build_prompt(p, tokenizer, task_config) for p in problems]

    def length(problem: Any) -> int:
        return len(tokenizer(build_prompt(problem, tokenizer, config.task))["input_ids"])

    pool = list(task.train[: 50 * count])
    lengths = [length(p) for p in pool]
    common, _ = Counter(lengths).most_common(1)[0]
    one_length = [p for p, n in zip(pool, lengths, strict=True) if n == common][:count]
    padded = list(task.train[:count])
    if len({length(p) for p in padded}) == 1:  # make sure the padded set is padded
        padded[-1] = next(p for p, n in zip(pool, lengths, strict=True) if n != common)
    return {
        "padded": build(padded, False),
        "one length": build(one_length, False),
        "padded, long": build(padded, True),
        "one length, long": build(one_length, True),
    }


def worker(s: dict[str, Any]) -> dict[str, Any]:
    import copy
    import dataclasses

    import torch

    from eapo.models import device_has_fast_bf16, load_policy
    from eapo.rollout import generate_rollouts
    from eapo.rollout.attention import resolve_decode_attention
    from eapo.tasks import load_task
    from eapo.train.config import load_config

    config = load_config(s["config"] if s["config"] == "smoke" else bu.REPO_ROOT / s["config"])
    task = load_task(config.task)
    model, tokenizer = load_policy(config.model, task, progress=False)
    model.eval()
    samplers: dict[str, Any] = {}
    if device_has_fast_bf16("cpu"):
        bf16_copy: torch.nn.Module = copy.deepcopy(model)
        samplers["bfloat16 weights"] = bf16_copy.to(torch.bfloat16)
    if s["fp32"] or not samplers:
        samplers["float32"] = model
    sampling = dataclasses.replace(
        config.sampling, max_new_tokens=s["tokens"], batch_rows=s["prompts"] * s["group"]
    )
    kernels = {"sdpa": "model", "eager": "eager"}
    out = []
    for precision, sampler in samplers.items():
        for label, prompts in prompt_sets(task, tokenizer, config, s["prompts"]).items():
            widths = [len(tokenizer(p)["input_ids"]) for p in prompts]
            padded = len(set(widths)) > 1
            times: dict[str, list[float]] = {name: [] for name in kernels}
            same = total = 0
            for name in kernels:  # warm-up
                generate_rollouts(
                    sampler,
                    tokenizer,
                    prompts[:1],
                    s["group"],
                    dataclasses.replace(sampling, attention=kernels[name]),
                )
            for round_index in range(s["rounds"]):
                order = list(kernels) if round_index % 2 == 0 else list(reversed(kernels))
                drawn = {}
                for name in order:
                    start = time.perf_counter()
                    drawn[name] = generate_rollouts(
                        sampler,
                        tokenizer,
                        prompts,
                        s["group"],
                        dataclasses.replace(sampling, attention=kernels[name]),
                        seed=round_index,
                    )
                    times[name].append(time.perf_counter() - start)
                a, b = drawn["sdpa"], drawn["eager"]
                same += sum(x == y for x, y in zip(a.completions, b.completions, strict=True))
                total += len(a.completions)
            out.append(
                {
                    "precision": precision,
                    "prompts": label,
                    "prompt_tokens": [min(widths), max(widths)],
                    "padded": padded,
                    "auto_picks": resolve_decode_attention(sampler, "auto", padded=padded)
                    or "the model's own",
                    "seconds": {k: statistics.median(v) for k, v in times.items()},
                    "speedup_eager": bu.paired_ratio(times["sdpa"], times["eager"]),
                    "same_samples": same / total,
                }
            )
    attention = getattr(model.config, "_attn_implementation", None)
    heads = (
        getattr(model.config, "num_attention_heads", None),
        getattr(model.config, "num_key_value_heads", None),
    )
    return {"model_attention": attention, "heads_and_key_heads": heads, "summary": out}


def report(record: dict[str, Any]) -> None:
    print(f"model attention: {record['model_attention']}; heads, key heads: {record['heads_and_key_heads']}")
    print(
        bu.format_table(
            ["precision", "prompts", "tokens", "SDPA s", "eager s", "eager speed-up", "same samples", "auto"],
            [
                [
                    d["precision"],
                    d["prompts"],
                    "-".join(map(str, d["prompt_tokens"])),
                    round(d["seconds"]["sdpa"], 2),
                    round(d["seconds"]["eager"], 2),
                    bu.ratio_text(d["speedup_eager"]),
                    f"{d['same_samples']:.3f}",
                    d["auto_picks"],
                ]
                for d in record["summary"]
            ],
        )
    )


def main() -> None:
    bu.benchmark_main(__doc__, NAME, SCRIPT, SETTINGS, worker, report)


if __name__ == "__main__":
    main()
