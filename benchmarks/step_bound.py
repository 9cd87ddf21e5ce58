"""Benchmark 5: one RL step of `eapo train` against the bound this machine allows, phase by phase.

The bound is measured on the machine that runs the steps, with the model's own weight shapes:
(a) weight streaming: `linear(x [rows, in], W [out, in])` for every weight matrix of the model (each unique
    shape timed, times how often it occurs), at the rollout's row count and at 16 / 64 rows, fp32 and, where
    the CPU has bf16 matrix units, bf16: the time one decode step needs to read every weight once;
(b) dense matmul FLOP rate at training shapes (rows = micro-batch x sequence length), both precisions;
(c) memory bandwidth (a large copy) for AdamW's bytes (read p, g, m, v; write p, m, v: 28 bytes/param).
Phase bounds for one step of the config: rollout = prefill FLOPs / rate + decode steps x streaming time at
the rollout's rows; old log-probs = 2 N FLOPs per token / rate (0 when the decode loop supplies them);
training forward + backward = 6 N per token x PPO epochs / rate; optimizer = updates x 28 N bytes /
bandwidth. N counts the matrix weights (lm_head included, embedding lookups and attention's own O(L^2)
FLOPs left out: the bound is a lower bound). Tokens: each group's prompt once (its G rows share it) plus
every row's response tokens. The bound uses the fastest precision the chip has (bf16 where
it has the units); `bound_same_precision` uses each variant's own.

Then it runs real steps of `Trainer` (what `eapo train` runs) on the SmolLM2 setting of `vs_trl.py` for each
lever setting, each in a fresh process, and reports measured / bound per phase and for the whole step:
`fp32` (no lever), `fp32_decode_logprobs` (π_old and H from the decode loop), `bf16_rollout` (a bf16 copy
samples; training fp32), `bf16_autocast` (training forward in bf16 autocast; fp32 rollout), `bf16_all`
(both; what `model.dtype: auto` resolves to on a CPU with bf16 units) and `bf16_all_micro16` (that with one
16-row micro-batch instead of 8-row ones). The bf16 variants run only where the chip has bf16 units. It also
measures decode steps/s against the streaming bound at 16 and 64 rows (dynamic and static KV cache; top-p's
share of a step) and, under bf16 rollouts, the rollout-vs-training log-prob gap and the share of tokens whose
quadrant (PAPER.md §4.1) agrees between bf16 and fp32 entropies.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import bench_utils as bu
import vs_trl

NAME = "step_bound"
SCRIPT = Path(__file__).resolve()
ADAMW_BYTES_PER_PARAM = 28
SETTINGS: dict[str, dict[str, Any]] = {
    "full": dict(
        model="smollm2",
        prompts=2,
        group=8,
        tokens=64,
        micro=8,
        steps=4,
        decode_rows=[16, 64],
        decode_tokens=24,
    ),
    # quick: the lever settings that matter for the default (fp32, decode-loop log-probs, everything bf16),
    # in under 10 minutes on 2 cores; the full setting measures every lever alone.
    "quick": dict(
        model="smollm2",
        prompts=2,
        group=8,
        tokens=32,
        micro=8,
        steps=3,
        decode_rows=[16, 64],
        decode_tokens=8,
        variants=["fp32", "fp32_decode_logprobs", "bf16_all"],
    ),
    "smoke": dict(
        model="tiny-smoke",
        prompts=1,
        group=2,
        tokens=8,
        micro=2,
        steps=2,
        decode_rows=[2, 4],
        decode_tokens=4,
    ),
}
# name -> config overrides (model / train sections) and whether it needs bf16 units.
VARIANTS: dict[str, tuple[dict[str, Any], bool]] = {
    "fp32": ({"model": {"dtype": "float32"}, "train": {"rollout_logprobs": False}}, False),
    "fp32_decode_logprobs": ({"model": {"dtype": "float32"}, "train": {"rollout_logprobs": True}}, False),
    "bf16_rollout": ({"model": {"dtype": "float32", "rollout_dtype": "bfloat16"}}, True),
    "bf16_autocast": ({"model": {"dtype": "auto", "rollout_dtype": "float32"}}, True),
    "bf16_all": ({"model": {"dtype": "auto", "rollout_dtype": "auto"}}, True),
    # The micro-batch lever: all rows of the step in one forward/backward (no gradient accumulation).
    "bf16_all_micro16": (
        {"model": {"dtype": "auto", "rollout_dtype": "auto"}, "train": {"micro_batch_rows": 16}},
        True,
    ),
}


def _config(s: dict[str, Any], run_dir: str, variant: str) -> Any:
    """The `vs_trl.py` setting (GRPO, one optimizer step per batch, no analysis extras) plus the variant."""
    overrides = vs_trl.setting_overrides(s, run_dir)
    for section, fields in VARIANTS[variant][0].items():
        overrides.setdefault(section, {}).update(fields)
    overrides["model"]["device"] = s.get("device", "cpu")
    if s.get("model_path"):  # a saved model folder (gpu_check.sh: a randomly initialised ~0.5B Llama)
        overrides["model"]["name"] = s["model_path"]
        return bu.model_config("smollm2", overrides)
    return bu.model_config(s["model"], overrides)


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


# ---------------------------------------------------------------------------------------------- rates
def _median_time(fn: Any, repeats: int) -> float:
    fn()  # warm-up
    _sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def weight_shapes(model: Any) -> Counter:
    """(out, in) -> how many weight matrices of that shape the model multiplies by (lm_head included)."""
    import torch

    shapes: Counter = Counter()
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            shapes[tuple(module.weight.shape)] += 1
    return shapes


def streaming_time(shapes: Counter, rows: int, dtype: Any, repeats: int, device: str = "cpu") -> float:
    """Seconds to multiply `rows` activations by every weight once (one decode step's weight reads)."""
    import torch

    total = 0.0
    for (out_features, in_features), count in shapes.items():
        # Several copies of the weight, cycled, so that the timing reads it from memory as a decode step
        # does (one layer's weight is not in cache when the next token reaches it).
        copies = max(1, min(count, (64 * 2**20) // max(out_features * in_features * 4, 1)))
        weights = [torch.randn(out_features, in_features, device=device).to(dtype) for _ in range(copies)]
        x = torch.randn(rows, in_features, device=device).to(dtype)
        state = {"i": 0}

        def step(x: Any = x, weights: list[Any] = weights, state: dict[str, int] = state) -> None:
            torch.nn.functional.linear(x, weights[state["i"] % len(weights)])
            state["i"] += 1

        total += _median_time(step, repeats) * count
    return total


def flop_rate(shapes: Counter, tokens: int, dtype: Any, repeats: int, device: str = "cpu") -> float:
    """FLOP/s of dense matmuls at training shapes: [tokens, in] x each weight shape (count-weighted)."""
    import torch

    flops = seconds = 0.0
    for (out_features, in_features), count in shapes.items():
        w = torch.randn(out_features, in_features, device=device).to(dtype)
        x = torch.randn(tokens, in_features, device=device).to(dtype)
        t = _median_time(lambda x=x, w=w: torch.nn.functional.linear(x, w), repeats)
        flops += 2.0 * tokens * in_features * out_features * count
        seconds += t * count
    return flops / seconds


def copy_bandwidth(n_bytes: int, repeats: int, device: str = "cpu") -> float:
    """Bytes/s of a large fp32 copy (read + write), the memory traffic AdamW's update is made of."""
    import torch

    a = torch.randn(n_bytes // 4, device=device)
    b = torch.empty_like(a)
    return 2 * n_bytes / _median_time(lambda: b.copy_(a), repeats)


def decode_speed(
    model: Any,
    tokenizer: Any,
    prompt: str,
    rows: int,
    new_tokens: int,
    cache: str | None,
    top_p_candidates: int = 0,
    draw: bool = False,
) -> dict[str, float]:
    """Seconds per decode step of `generate` (sampling, T = 1, top-p 0.95, no early stop): the time between
    the first and the last token of a `new_tokens` generation (stamped by a stopping criterion, which
    `generate` calls once per token), over new_tokens - 1, the best of two runs; `prefill_and_first_s` is
    the time to the first token. `top_p_candidates` > 0: top-p by
    eapo's sampler (`eapo.rollout.nucleus`, what `generate_rollouts` uses) instead of transformers' warper;
    with `draw` it also draws the token among the candidates (`sampling.candidate_draw`), so `generate`
    runs in greedy mode and skips its full-vocabulary softmax and multinomial."""
    import torch
    from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

    from eapo.rollout.nucleus import NucleusSampling

    class Clock(StoppingCriteria):
        """Stamps the time at every token and never stops."""

        def __init__(self) -> None:
            self.stamps: list[float] = []

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            _sync()
            self.stamps.append(time.perf_counter())
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    encoded = tokenizer([prompt] * rows, return_tensors="pt").to(model.device)
    processors = LogitsProcessorList(
        [NucleusSampling(1.0, 0.95, top_p_candidates, draw=draw)] if top_p_candidates > 0 else []
    )

    def run(n: int) -> tuple[float, float]:
        own_draw = draw and top_p_candidates > 0
        config = GenerationConfig(
            do_sample=not own_draw,
            temperature=None if own_draw else 1.0,
            top_p=None if own_draw else (1.0 if top_p_candidates > 0 else 0.95),
            top_k=None if own_draw else 0,
            max_new_tokens=n,
            min_new_tokens=n,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            cache_implementation=cache,
        )
        clock = Clock()
        torch.manual_seed(0)
        _sync()
        start = time.perf_counter()
        with torch.no_grad():
            model.generate(
                **encoded,
                generation_config=config,
                logits_processor=processors,
                stopping_criteria=StoppingCriteriaList([clock]),
            )
        stamps = clock.stamps
        return (stamps[-1] - stamps[0]) / (len(stamps) - 1), stamps[0] - start

    run(2)  # warm-up
    step_s, first_s = min(run(new_tokens) for _ in range(2))
    return {"step_s": step_s, "prefill_and_first_s": first_s}


def top_p_share(rows: int, vocab: int, step_s: float, device: str = "cpu") -> float:
    """Seconds of transformers' top-p warper (a full-vocabulary sort per row) over one decode step's."""
    import torch
    from transformers.generation.logits_process import TopPLogitsWarper

    warper = TopPLogitsWarper(0.95)
    scores = torch.randn(rows, vocab, device=device)
    ids = torch.zeros(rows, 1, dtype=torch.long, device=device)
    return _median_time(lambda: warper(ids, scores), 5) / step_s


def rates_worker(s: dict[str, Any]) -> dict[str, Any]:
    import torch

    from eapo.models import device_has_fast_bf16, load_policy
    from eapo.tasks import build_prompt, load_task

    device = s.get("device", "cpu")
    fast_bf16 = device_has_fast_bf16(device)
    smoke = s["model"] == "tiny-smoke"
    repeats = 2 if smoke else 5
    with tempfile.TemporaryDirectory() as tmp:
        config = _config(s, tmp, "fp32")
    task = load_task(config.task)
    model, tokenizer = load_policy(config.model, task, progress=False)
    model.eval()
    shapes = weight_shapes(model)
    params = sum(p.numel() for p in model.parameters())
    matrix_params = sum(o * i * c for (o, i), c in shapes.items())
    prompt = build_prompt(task.train[0], tokenizer, config.task)
    prompt_tokens = len(tokenizer(prompt)["input_ids"])
    dtypes = {"float32": torch.float32, **({"bfloat16": torch.bfloat16} if fast_bf16 else {})}
    rollout_rows = s["prompts"] * s["group"]
    train_tokens = s["micro"] * (prompt_tokens + s["tokens"])
    out: dict[str, Any] = {
        "weight_shapes": {f"{o}x{i}": c for (o, i), c in shapes.items()},
        "params": params,
        "matrix_params": matrix_params,
        "prompt_tokens": prompt_tokens,
        "train_tokens_per_micro_batch": train_tokens,
        "fast_bf16": fast_bf16,
        "streaming_s": {},
        "flop_rate": {},
    }
    for name, dtype in dtypes.items():
        out["streaming_s"][name] = {
            str(rows): streaming_time(shapes, rows, dtype, repeats, device)
            for rows in sorted({rollout_rows, *s["decode_rows"]})
        }
        out["flop_rate"][name] = flop_rate(shapes, train_tokens, dtype, 1, device)
    out["bandwidth_bytes_per_s"] = copy_bandwidth((16 if smoke else 256) * 2**20, 3, device)
    # Decode steps/s against the streaming bound, fp32 and bf16 weights, dynamic and static KV cache, top-p
    # by transformers' warper (a full sort) or by eapo's sampler (SamplingConfig.top_p_candidates = 64, the
    # default; the candidate draw is opt-in and measured in the decode A/B below).
    decode: list[dict[str, Any]] = []
    variants = [(cache, top_p) for cache in (None, "static") for top_p in ("transformers", "eapo")]
    for name, dtype in dtypes.items():
        sampler = model if dtype == torch.float32 else _cast_copy(model, dtype)
        for rows in s["decode_rows"]:
            for cache, top_p in variants:
                labels = {"dtype": name, "rows": rows, "cache": cache or "dynamic", "top_p": top_p}
                candidates = 64 if top_p == "eapo" else 0
                try:
                    # "eapo": what generate_rollouts runs by default (eapo's top-p filter, generate's draw).
                    measured = decode_speed(
                        sampler, tokenizer, prompt, rows, s["decode_tokens"], cache, candidates
                    )
                except Exception as err:  # a cache kind this model or version does not support
                    decode.append({**labels, "error": str(err)})
                    continue
                bound = out["streaming_s"][name][str(rows)]
                decode.append(
                    {
                        **labels,
                        "step_s": measured["step_s"],
                        "steps_per_s": 1.0 / measured["step_s"],
                        "streaming_bound_s": bound,
                        "fraction_of_bound": bound / measured["step_s"],
                        # transformers' warper's share of the step (its full sort); eapo's rows skip it
                        "top_p_share": top_p_share(rows, len(tokenizer), measured["step_s"], device)
                        if top_p == "transformers"
                        else None,
                    }
                )
    out["decode"] = decode
    if fast_bf16:
        out["bf16_rollout_agreement"] = bf16_agreement(model, tokenizer, task, config, s)
    return out


def decode_ab_worker(s: dict[str, Any], rounds: int) -> dict[str, Any]:
    """Decode steps/s with transformers' top-p warper against eapo's sampler (its filter, and its filter with
    the candidate draw), alternating in one process
    (ratios measured side by side, so a loaded machine slows both alike), per weight dtype and row count."""
    import torch

    from eapo.models import device_has_fast_bf16, load_policy
    from eapo.tasks import build_prompt, load_task

    device = s.get("device", "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        config = _config(s, tmp, "fp32")
    task = load_task(config.task)
    model, tokenizer = load_policy(config.model, task, progress=False)
    model.eval()
    prompt = build_prompt(task.train[0], tokenizer, config.task)
    dtypes = {
        "float32": torch.float32,
        **({"bfloat16": torch.bfloat16} if device_has_fast_bf16(device) else {}),
    }
    rows_out = []
    for name, dtype in dtypes.items():
        sampler = model if dtype == torch.float32 else _cast_copy(model, dtype)
        for rows in s["decode_rows"]:
            times: dict[str, list[float]] = {"transformers": [], "eapo": [], "eapo_draw": []}
            for round_index in range(rounds):
                order = list(times) if round_index % 2 == 0 else list(reversed(times))
                for top_p in order:
                    candidates = 0 if top_p == "transformers" else 64
                    step = decode_speed(
                        sampler,
                        tokenizer,
                        prompt,
                        rows,
                        s["decode_tokens"],
                        None,
                        candidates,
                        draw=top_p == "eapo_draw",
                    )
                    times[top_p].append(step["step_s"])
            rows_out.append(
                {
                    "dtype": name,
                    "rows": rows,
                    "step_s": {k: statistics.median(v) for k, v in times.items()},
                    "steps_per_s": {k: 1 / statistics.median(v) for k, v in times.items()},
                    "speedup": bu.paired_ratio(times["transformers"], times["eapo"]),
                    "speedup_draw": bu.paired_ratio(times["transformers"], times["eapo_draw"]),
                }
            )
    return {"decode_ab": rows_out}


def _cast_copy(model: Any, dtype: Any) -> Any:
    import copy

    import torch

    clone = copy.deepcopy(model).eval()
    with torch.no_grad():
        for parameter in clone.parameters():
            parameter.data = parameter.data.to(dtype)
    return clone


def bf16_agreement(model: Any, tokenizer: Any, task: Any, config: Any, s: dict[str, Any]) -> dict[str, Any]:
    """One rollout of at least 16 prompts x G sampled by a bf16 copy (its decode-loop log-probs and entropies
    recorded), scored by the fp32 forward and by the bf16-autocast forward: the log-prob gaps, and the share
    of response tokens whose quadrant (GRPO advantage sign x entropy above the group mean) is the same with
    bf16 and fp32 entropies, with the number of tokens counted and a Wilson 95% interval."""
    import torch

    from eapo.core import group_advantages, quadrant_masks
    from eapo.rollout import generate_rollouts
    from eapo.tasks import build_prompt, score_completions
    from eapo.train.scoring import score_policy

    G = s["group"]
    problems = task.train[: max(s["prompts"], 16)]  # a few thousand tokens: the share's interval is ~±0.5%
    prompts = [build_prompt(p, tokenizer, config.task) for p in problems]
    sampler = _cast_copy(model, torch.bfloat16)
    batch = generate_rollouts(sampler, tokenizer, prompts, G, config.sampling, seed=0, with_logprobs=True)
    T = config.sampling.temperature
    kind = model.device.type
    fp32 = score_policy(model, batch, None, s["micro"], lambda: torch.autocast(kind, enabled=False), T)
    autocast = score_policy(model, batch, None, s["micro"], lambda: torch.autocast(kind, torch.bfloat16), T)
    mask = batch.response_mask
    rollout_logprobs, rollout_entropy = batch.logprobs, batch.entropy
    if rollout_logprobs is None or rollout_entropy is None:
        raise RuntimeError("the rollout recorded no log-probs or entropies: sample it with them")
    rows = [problems[i] for i in batch.prompt_index.tolist()]
    rewards = torch.tensor(score_completions(batch.completions, rows, task).rewards, dtype=torch.float32)
    advantages = group_advantages(rewards, G, "grpo")[0].to(mask.device)[:, None] * mask
    # Rewards often tie within a group on a weak base model; the entropy split is what bf16 can move, so
    # the agreement is also reported with every token given a nonzero (sign-only) advantage.
    signs = torch.where(torch.arange(mask.shape[0], device=mask.device) % 2 == 0, 1.0, -1.0)[:, None] * mask

    counts: dict[str, dict[str, Any]] = {}

    def agreement(name: str, adv: torch.Tensor, ent_a: torch.Tensor, ent_b: torch.Tensor) -> float | None:
        qa, qb = quadrant_masks(adv, ent_a, mask, G), quadrant_masks(adv, ent_b, mask, G)
        label_a = torch.stack([(i + 1) * qa[q].long() for i, q in enumerate(qa)]).sum(0)
        label_b = torch.stack([(i + 1) * qb[q].long() for i, q in enumerate(qb)]).sum(0)
        counted = (label_a > 0) | (label_b > 0)
        n, same = int(counted.sum()), int((label_a == label_b)[counted].sum())
        counts[name] = {"tokens": n, "agree": same, "ci95": list(bu.wilson_interval(same, n)) if n else None}
        return same / n if n else None

    def gap(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
        d = (a - b).abs()[mask]
        return {"mean_abs": float(d.mean()), "p99_abs": float(d.quantile(0.99)), "max_abs": float(d.max())}

    shares = {
        "quadrant_agreement_grpo_advantages": agreement(
            "grpo_advantages", advantages, rollout_entropy, fp32[1]
        ),
        "quadrant_agreement_all_tokens": agreement("all_tokens", signs, rollout_entropy, fp32[1]),
        "quadrant_agreement_autocast_vs_fp32_all_tokens": agreement(
            "autocast_vs_fp32_all_tokens", signs, autocast[1], fp32[1]
        ),
    }
    return {
        "tokens": int(mask.sum()),
        "rows": int(mask.shape[0]),
        **shares,
        "quadrant_agreement_counts": counts,
        "logprob_gap_rollout_bf16_vs_fp32_forward": gap(rollout_logprobs, fp32[0]),
        "logprob_gap_rollout_bf16_vs_autocast_forward": gap(rollout_logprobs, autocast[0]),
        "logprob_gap_autocast_forward_vs_fp32_forward": gap(autocast[0], fp32[0]),
        "entropy_gap_rollout_bf16_vs_fp32_forward": gap(rollout_entropy, fp32[1]),
    }


# ---------------------------------------------------------------------------------------------- steps
def step_worker(s: dict[str, Any], variant: str) -> dict[str, Any]:
    from eapo.train.logging import read_metrics
    from eapo.train.trainer import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(_config(s, tmp, variant), progress=False)
        shapes: list[dict[str, int]] = []
        inner = trainer._sample_and_score

        def sample_and_score(problems: Any) -> Any:
            scored = inner(problems)
            b = scored.batch
            shapes.append(
                {
                    "rows": int(b.sequences.shape[0]),
                    "prompts": int(b.sequences.shape[0]) // s["group"],
                    "prompt_width": int(b.prompt_length),
                    "decode_steps": int(b.response_ids.shape[1]),
                }
            )
            return scored

        trainer._sample_and_score = sample_and_score  # type: ignore[method-assign]
        trainer.run()
        rows = [r for r in read_metrics(trainer.run_dir) if "loss" in r]
        precision = dict(trainer.precision)
    keys = ("rollout", "scoring", "old_logprobs", "forward_backward", "optimizer", "step")
    return {
        "variant": variant,
        "precision": precision,
        "steps": [
            {
                **{k: r[f"time/{k}"] for k in keys},
                "tokens": r["tokens/generated"],
                "loss": r["loss"],
                **shape,
            }
            for r, shape in zip(rows, shapes, strict=True)
        ],
    }


def phase_bounds(
    step: dict[str, Any], rates: dict[str, Any], dtype: str, s: dict[str, Any]
) -> dict[str, float]:
    """Lower bounds (s) of each phase of one measured step at the rates of `dtype`."""
    n = rates["matrix_params"]
    rate = rates["flop_rate"][dtype]
    rows, width, steps = step["rows"], step["prompt_width"], step["decode_steps"]
    # A group's G rows share one prompt, whose forward is needed once (eapo.rollout.shared_prompt); results
    # recorded before the rows' prompt count was kept count every row's prompt.
    prompts = step.get("prompts", rows)
    streaming = rates["streaming_s"][dtype].get(str(rows))
    if (
        streaming is None
    ):  # a row count not measured (a DAPO refill): the smallest measured one, a lower bound
        streaming = min(rates["streaming_s"][dtype].values())
    tokens = prompts * width + rows * steps
    return {
        "rollout": 2.0 * n * prompts * width / rate + steps * streaming,
        "old_logprobs": 0.0 if step["old_logprobs_skipped"] else 2.0 * n * tokens / rate,
        "forward_backward": 6.0 * n * tokens / rate,
        "optimizer": ADAMW_BYTES_PER_PARAM * rates["params"] / rates["bandwidth_bytes_per_s"],
    }


def summarise(
    rates: dict[str, Any], runs: list[dict[str, Any]], s: dict[str, Any]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    best = "bfloat16" if "bfloat16" in rates["flop_rate"] else "float32"
    phases = ("rollout", "old_logprobs", "forward_backward", "optimizer")
    variants: dict[str, Any] = {}
    for run in runs:
        measured_steps = run["steps"][1:] or run["steps"]  # the first step is warm-up
        own = "bfloat16" if run["precision"]["autocast"] and best == "bfloat16" else "float32"
        skipped = run["precision"]["old_logprobs"] == "decode loop"
        measured = {k: statistics.mean(st[k] for st in measured_steps) for k in (*phases, "scoring", "step")}
        bounds = {"best": dict.fromkeys(phases, 0.0), "own": dict.fromkeys(phases, 0.0)}
        for st in measured_steps:
            st = {**st, "old_logprobs_skipped": skipped}
            for kind, dtype in (("best", best), ("own", own)):
                for k, v in phase_bounds(st, rates, dtype, s).items():
                    bounds[kind][k] += v / len(measured_steps)
        # The rollout's own precision sets its bound in the `own` column.
        rollout_dtype = (
            run["precision"]["rollout"] if run["precision"]["rollout"] in rates["flop_rate"] else best
        )
        own_rollout = statistics.mean(
            phase_bounds({**st, "old_logprobs_skipped": skipped}, rates, rollout_dtype, s)["rollout"]
            for st in measured_steps
        )
        bounds["own"]["rollout"] = own_rollout
        step_bound = sum(bounds["best"].values())
        variants[run["variant"]] = {
            "precision": run["precision"],
            "measured_s": {k: round(v, 4) for k, v in measured.items()},
            "bound_s": {k: round(v, 4) for k, v in bounds["best"].items()},
            "bound_same_precision_s": {k: round(v, 4) for k, v in bounds["own"].items()},
            "step_bound_s": round(step_bound, 4),
            "step_over_bound": round(measured["step"] / step_bound, 2),
            "step_over_bound_same_precision": round(measured["step"] / sum(bounds["own"].values()), 2),
            "phase_over_bound": {
                k: (round(measured[k] / bounds["best"][k], 2) if bounds["best"][k] > 0 else None)
                for k in phases
            },
            "tokens_per_s": round(
                sum(st["tokens"] for st in measured_steps) / sum(st["step"] for st in measured_steps), 2
            ),
            "first_step_loss": run["steps"][0]["loss"],
        }
    bound_prompts = "distinct" if all("prompts" in st for r in runs for st in r["steps"]) else "every row"
    # What the config resolves to on this machine: bf16_all where the chip has bf16 units, else fp32 with the
    # decode-loop log-probs; the last variant run when that one was left out.
    preferred = "bf16_all" if rates["fast_bf16"] else "fp32_decode_logprobs"
    default = preferred if preferred in variants else list(variants)[-1]
    base = variants["fp32"]["measured_s"]["step"]
    for v in variants.values():
        v["step_speedup_over_fp32"] = round(base / v["measured_s"]["step"], 2)
    decode = [d for d in rates["decode"] if "step_s" in d]
    rollout_dtype = variants[default]["precision"]["rollout"]
    # The target is judged on what `generate_rollouts` runs: the dynamic KV cache and eapo's top-p sampler.
    at16 = [
        d
        for d in decode
        if d["rows"] == min(s["decode_rows"])
        and d["dtype"] == rollout_dtype
        and d["cache"] == "dynamic"
        and d.get("top_p", "transformers") == "eapo"
    ]
    best16 = max(at16, key=lambda d: d["fraction_of_bound"]) if at16 else None
    summary: dict[str, Any] = {
        "default_variant": default,
        "bound_precision": best,
        "bound_prompt_tokens": bound_prompts,
        "step_over_bound": variants[default]["step_over_bound"],
        "phase_over_bound": variants[default]["phase_over_bound"],
        "variants": variants,
        "decode": decode,
        "decode_fraction_of_bound_at_16_rows": None
        if best16 is None
        else round(best16["fraction_of_bound"], 3),
        "rates": {
            "flop_rate_gflops": {k: round(v / 1e9, 1) for k, v in rates["flop_rate"].items()},
            "streaming_ms": {
                k: {rows: round(1e3 * t, 2) for rows, t in v.items()} for k, v in rates["streaming_s"].items()
            },
            "bandwidth_gb_per_s": round(rates["bandwidth_bytes_per_s"] / 1e9, 2),
            "params": rates["params"],
            "matrix_params": rates["matrix_params"],
        },
    }
    if "bf16_rollout_agreement" in rates:
        summary["bf16_rollout"] = rates["bf16_rollout_agreement"]
    ratio = summary["step_over_bound"]
    targets = [
        bu.target(
            "whole RL step against step_bound",
            "<= 2x the bound (aim 1.5x)",
            ratio,
            ratio <= 2.0,
            f"{default} ({variants[default]['measured_s']['step']:.2f} s vs bound "
            f"{variants[default]['step_bound_s']:.2f} s at {best} rates); per phase "
            + ", ".join(
                f"{k} {v}x" for k, v in variants[default]["phase_over_bound"].items() if v is not None
            ),
        ),
        bu.target(
            "decode against the weight-streaming bound at 16 rows",
            ">= 50% of the streaming bound",
            summary["decode_fraction_of_bound_at_16_rows"],
            None if best16 is None else best16["fraction_of_bound"] >= 0.5,
            ""
            if best16 is None
            else f"{rollout_dtype}, {best16['cache']} cache: {best16['steps_per_s']:.1f} "
            f"steps/s vs bound {1 / best16['streaming_bound_s']:.1f}",
        ),
    ]
    if "bf16_rollout" in summary:
        agreement = summary["bf16_rollout"]
        # The quadrants of PAPER.md §4.1 exist where the GRPO advantage is nonzero; the all-token figure
        # (signs alternated by row) measures the same entropy split on every token, a larger sample.
        share = agreement["quadrant_agreement_grpo_advantages"]
        every = agreement["quadrant_agreement_all_tokens"]
        gap = agreement["logprob_gap_rollout_bf16_vs_fp32_forward"]["mean_abs"]
        every_text = "none" if every is None else f"{every:.4g}"
        targets.append(
            bu.target(
                "bf16 rollouts: quadrant agreement with fp32 entropies",
                ">= 99% of tokens",
                None if share is None else round(share, 4),
                None if share is None else share >= 0.99,
                f"tokens with a nonzero GRPO advantage in one {agreement['tokens']}-token rollout "
                f"({_agreement_text(agreement, 'grpo_advantages')}); on all its tokens {every_text} "
                f"({_agreement_text(agreement, 'all_tokens')}); mean |Δ log π| vs the fp32 forward {gap:.3g}",
            )
        )
    return summary, targets


def _agreement_text(agreement: dict[str, Any], name: str) -> str:
    """ "2,964 of 2,990, 95% CI 0.986-0.994" for one quadrant-agreement count (older records have none)."""
    count = agreement.get("quadrant_agreement_counts", {}).get(name)
    if not count or count["ci95"] is None:
        return "counts not recorded"
    low, high = count["ci95"]
    return f"{count['tokens']:,} counted, 95% CI {low:.3f}-{high:.3f}"


def main() -> None:
    parser = bu.mode_parser(__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--model-path", help="a saved model folder to measure instead of the setting's model")
    parser.add_argument("--variants", help=f"comma-separated subset of {','.join(VARIANTS)}")
    parser.add_argument(
        "--decode-only",
        action="store_true",
        help="only decode steps/s, transformers' top-p warper against eapo's sampler, alternating in one "
        "process (writes step_bound_decode*.json)",
    )
    args = parser.parse_args()
    if args.worker:
        payload = json.loads(args.worker)
        s = payload["settings"]
        if payload["kind"] == "rates":
            print(json.dumps(rates_worker(s)))
        elif payload["kind"] == "decode_ab":
            print(json.dumps(decode_ab_worker(s, payload["rounds"])))
        else:
            print(json.dumps(step_worker(s, payload["variant"])))
        return
    mode = bu.run_mode(args)
    settings = dict(SETTINGS[mode.name], device=args.device)
    if args.model_path:
        settings["model_path"] = str(Path(args.model_path).resolve())
    if args.decode_only:
        rounds = 4 if mode.name == "full" else 2
        record = bu.start_record(f"{NAME}_decode", mode, {**settings, "rounds": rounds})
        record["command"] = record["command"].replace(f"{NAME}_decode.py", f"{NAME}.py --decode-only")
        record.update(bu.run_worker(SCRIPT, {"kind": "decode_ab", "settings": settings, "rounds": rounds}))
        print(
            bu.format_table(
                [
                    "dtype",
                    "rows",
                    "transformers steps/s",
                    "eapo filter steps/s",
                    "eapo draw steps/s",
                    "filter speed-up",
                    "draw speed-up",
                ],
                [
                    [
                        d["dtype"],
                        d["rows"],
                        round(d["steps_per_s"]["transformers"], 2),
                        round(d["steps_per_s"]["eapo"], 2),
                        round(d["steps_per_s"]["eapo_draw"], 2),
                        bu.ratio_text(d["speedup"]),
                        bu.ratio_text(d["speedup_draw"]),
                    ]
                    for d in record["decode_ab"]
                ],
            )
        )
        bu.finish_record(record, mode)
        return
    chosen = args.variants.split(",") if args.variants else list(settings.get("variants", VARIANTS))
    unknown = [v for v in chosen if v not in VARIANTS]
    if unknown:
        parser.error(f"--variants: unknown {unknown}; expected some of {', '.join(VARIANTS)}")
    if "fp32" not in chosen:
        chosen.insert(0, "fp32")  # the reference every speed-up is measured against
    record = bu.start_record(NAME, mode, settings)
    rates = bu.run_worker(SCRIPT, {"kind": "rates", "settings": settings})
    print(f"  rates done (load {bu.load_average()[0]})", file=sys.stderr)
    runs = []
    for variant in chosen:
        if VARIANTS[variant][1] and not rates["fast_bf16"]:
            continue
        runs.append(bu.run_worker(SCRIPT, {"kind": "steps", "settings": settings, "variant": variant}))
        print(f"  done {variant} (load {bu.load_average()[0]})", file=sys.stderr)
    record["rates_raw"] = rates
    record["runs"] = runs
    record["summary"], record["targets"] = summarise(rates, runs, settings)
    s = record["summary"]
    headers = ["variant", "step s", "bound s", "step/bound", "rollout", "old lp", "fwd+bwd", "optim", "tok/s"]
    rows = [
        [
            name,
            v["measured_s"]["step"],
            v["step_bound_s"],
            v["step_over_bound"],
            *[v["phase_over_bound"][k] for k in ("rollout", "old_logprobs", "forward_backward", "optimizer")],
            v["tokens_per_s"],
        ]
        for name, v in s["variants"].items()
    ]
    print(bu.format_table(headers, rows))
    print(
        bu.format_table(
            ["dtype", "rows", "cache", "top-p", "steps/s", "bound steps/s", "fraction", "warper share"],
            [
                [
                    d["dtype"],
                    d["rows"],
                    d["cache"],
                    d.get("top_p", "transformers"),
                    round(d["steps_per_s"], 2),
                    round(1 / d["streaming_bound_s"], 2),
                    round(d["fraction_of_bound"], 3),
                    "-" if d.get("top_p_share") is None else round(d["top_p_share"], 3),
                ]
                for d in s["decode"]
                if "step_s" in d
            ],
        )
    )
    bu.finish_record(record, mode)


if __name__ == "__main__":
    main()
