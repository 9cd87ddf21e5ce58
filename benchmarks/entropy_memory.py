"""Benchmark 1: `token_logprobs_and_entropy` (chunked) against the naive full-softmax computation.

For vocabularies of 49,152 (SmolLM2) and 151,936 (Qwen2.5) and response lengths up to 8,192 (one row),
forward only (the no-grad scoring pass) and forward + backward (the training pass), it measures:

- peak extra memory, two ways, each case in a fresh subprocess:
  * torch allocator peak: `torch.profiler` (profile_memory=True) memory timeline, the bytes of tensors
    created by the call and alive at once (logits and tokens existed before and are not counted);
  * RSS high-water delta: VmHWM reset through /proc/self/clear_refs just before the call, minus the RSS
    at that moment (tracemalloc cannot see torch's CPU allocations);
- time, chunked and naive interleaved in one subprocess per case, median of per-round ratios;
- a chunk-size sweep at one length: time against naive and allocator peak for several `chunk_size`s.

The forward + backward figures include the [B,T,V] gradient of the logits, which both versions must
produce; `extra_beyond_grad` subtracts it. Cases whose estimated peak does not fit in the memory budget
(default: 60% of MemAvailable, at most --max-gb) are skipped and recorded as such.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import bench_utils as bu

NAME = "entropy_memory"
SCRIPT = Path(__file__).resolve()
MODES = ("forward", "forward_backward")
SETTINGS: dict[str, dict[str, Any]] = {
    # grid: every (vocab, length) at `chunk`: "default" is the library's own choice for that vocabulary on
    # CPU (eapo.core.default_chunk_size, what the trainer uses); sweep: `sweep_chunks` (plus the default) at
    # `sweep_length` for each of `sweep_vocabs`.
    "full": {
        "vocabs": [49152, 151936],
        "lengths": [512, 1024, 2048, 4096, 8192],
        "chunk": "default",
        "repeats": 3,
        "sweep_length": 2048,
        "sweep_vocabs": [49152, 151936],
        "sweep_chunks": [8, 32, 128, 1024],
    },
    "quick": {
        "vocabs": [49152, 151936],
        "lengths": [512, 1024],
        "chunk": "default",
        "repeats": 2,
        "sweep_length": 1024,
        "sweep_vocabs": [],  # the full setting sweeps chunk sizes
        "sweep_chunks": [],
    },
    "smoke": {
        "vocabs": [4096],
        "lengths": [256],
        "chunk": 64,
        "repeats": 1,
        "sweep_length": 128,
        "sweep_vocabs": [4096],
        "sweep_chunks": [16, 128],
    },
}


# ------------------------------------------------------------------------------------ the two versions
def naive_logprobs_and_entropy(logits: Any, tokens: Any) -> tuple[Any, Any]:
    """The textbook computation: a full [B,T,V] log-softmax, then gather and −Σ π log π.

    logits [B,T,V], tokens [B,T] -> (logprobs [B,T] with gradient, entropy [B,T] detached), like the
    trainer's default (`entropy_grad=False`).
    """
    import torch

    logp = torch.log_softmax(logits.float(), dim=-1)
    logprobs = logp.gather(-1, tokens[..., None]).squeeze(-1)
    with torch.no_grad():
        detached = logp.detach()
        entropy = -(detached.exp() * detached).sum(-1)
    return logprobs, entropy


def _make_inputs(vocab: int, length: int, mode: str, seed: int = 0) -> tuple[Any, Any, Any]:
    import torch

    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(1, length, vocab, generator=generator).mul_(3.0)
    tokens = torch.randint(vocab, (1, length), generator=generator)
    mask = torch.ones(1, length, dtype=torch.bool)
    logits.requires_grad_(mode == "forward_backward")
    return logits, tokens, mask


def _call(impl: str, mode: str, logits: Any, tokens: Any, mask: Any, chunk: int) -> None:
    """One forward (no grad) or forward + backward of `impl` on the given inputs."""
    import torch

    from eapo.core import token_logprobs_and_entropy

    def compute() -> Any:
        if impl == "chunked":
            return token_logprobs_and_entropy(logits, tokens, mask, chunk)[0]
        return naive_logprobs_and_entropy(logits, tokens)[0]

    if mode == "forward":
        with torch.no_grad():
            compute()
    else:
        logits.grad = None
        compute().sum().backward()


def estimated_peak_bytes(impl: str, mode: str, vocab: int, length: int, chunk: int) -> int:
    """Rough peak of a case (inputs included), to skip what cannot fit: [T,V] fp32 buffers counted."""
    full = 4 * vocab * length
    chunk_bytes = 4 * vocab * min(chunk, length)
    if impl == "naive":
        return 4 * full  # logits, log π, π, π·log π (forward) / logits, log π, two gradients (backward)
    return (2 if mode == "forward_backward" else 1) * full + 2 * chunk_bytes


# ---------------------------------------------------------------------------------------------- workers
def memory_worker(case: dict[str, Any]) -> dict[str, Any]:
    """Peak memory of one implementation, fresh process: RSS high-water delta and allocator peak."""
    import torch

    out: dict[str, Any] = {}
    for mode in case["modes"]:
        logits, tokens, mask = _make_inputs(case["vocab"], case["length"], mode)
        gc.collect()
        base = bu.reset_peak_rss()
        start = time.perf_counter()
        _call(case["impl"], mode, logits, tokens, mask, case["chunk"])
        seconds = time.perf_counter() - start
        rss_extra = bu.peak_rss() - base
        logits.grad = None
        gc.collect()
        alloc_peak = bu.allocator_peak_bytes(
            partial(_call, case["impl"], mode, logits, tokens, mask, case["chunk"])
        )
        grad_bytes = logits.numel() * logits.element_size() if mode == "forward_backward" else 0
        out[mode] = {
            "rss_extra_bytes": rss_extra,
            "allocator_peak_bytes": alloc_peak,
            "grad_bytes": grad_bytes,
            "allocator_extra_beyond_grad_bytes": alloc_peak - grad_bytes,
            "first_call_s": seconds,
        }
        del logits, tokens, mask
        gc.collect()
    out["torch_threads"] = torch.get_num_threads()
    return out


def time_worker(case: dict[str, Any]) -> dict[str, Any]:
    """Variants ("naive" or "chunked@<chunk>") timed interleaved on the same inputs, per mode.

    With `measure_memory`, also the allocator peak of each variant (beyond the logits' gradient).
    """
    return {mode: _time_mode(case, mode) for mode in case["modes"]}


def _time_mode(case: dict[str, Any], mode: str) -> dict[str, Any]:
    logits, tokens, mask = _make_inputs(case["vocab"], case["length"], mode)

    def run(variant: str) -> None:
        impl, _, chunk = variant.partition("@")
        _call(impl, mode, logits, tokens, mask, int(chunk or 0))

    variants = case["variants"][mode]
    times = bu.interleave(
        {v: partial(bu.timed, partial(run, v)) for v in variants}, case["repeats"], warmup=1
    )
    out: dict[str, Any] = {"times_s": times}
    if "naive" in variants:
        out["ratio_over_naive"] = {
            v: bu.paired_ratio(times[v], times["naive"]) for v in variants if v != "naive"
        }
    if case.get("measure_memory"):
        grad_bytes = logits.numel() * logits.element_size() if mode == "forward_backward" else 0
        out["allocator_extra_beyond_grad_bytes"] = {
            v: bu.allocator_peak_bytes(partial(run, v)) - grad_bytes for v in variants
        }
    return out


# ---------------------------------------------------------------------------------------------- driver
def main() -> None:
    parser = bu.mode_parser(__doc__.splitlines()[0])
    parser.add_argument("--max-gb", type=float, default=12.0, help="largest estimated peak to attempt, GB")
    args = parser.parse_args()
    if args.worker:
        case = json.loads(args.worker)
        result = memory_worker(case) if case["kind"] == "memory" else time_worker(case)
        print(json.dumps(result))
        return
    mode = bu.run_mode(args)
    settings = dict(SETTINGS[mode.name])
    budget = int(min(args.max_gb * 1e9, 0.6 * bu.available_memory_bytes()))
    settings["memory_budget_bytes"] = budget
    record = bu.start_record(NAME, mode, settings)
    record["memory_method"] = (
        "allocator peak: torch.profiler(profile_memory=True) memory timeline, bytes of tensors created by "
        "the call alive at once; RSS: VmHWM high-water delta after /proc/self/clear_refs reset; one fresh "
        "subprocess per (vocab, length, implementation)"
    )
    repeats = settings["repeats"]
    cases: list[dict[str, Any]] = []
    for vocab in settings["vocabs"]:
        chunk = chunk_for(settings["chunk"], vocab)
        for length in settings["lengths"]:
            row: dict[str, Any] = {"vocab": vocab, "length": length, "chunk": chunk}
            fits = {
                (impl, m): estimated_peak_bytes(impl, m, vocab, length, chunk) <= budget
                for impl in ("chunked", "naive")
                for m in MODES
            }
            row["skipped"] = sorted(f"{impl}/{m}" for (impl, m), ok in fits.items() if not ok)
            for impl in ("chunked", "naive"):
                modes = [m for m in MODES if fits[(impl, m)]]
                if modes:
                    payload = {"kind": "memory", "impl": impl, "vocab": vocab, "length": length}
                    payload.update(chunk=chunk, modes=modes)
                    row[f"memory_{impl}"] = bu.run_worker(SCRIPT, payload)
            names = {"chunked": f"chunked@{chunk}", "naive": "naive"}
            variants = {m: [names[i] for i in ("chunked", "naive") if fits[(i, m)]] for m in MODES}
            timed_modes = [m for m in MODES if variants[m]]
            if timed_modes:
                payload = {"kind": "time", "vocab": vocab, "length": length, "repeats": repeats}
                payload.update(modes=timed_modes, variants=variants)
                row["time"] = bu.run_worker(SCRIPT, payload)
            cases.append(row)
            print(f"  done V={vocab} T={length} (load {bu.load_average()[0]})", file=sys.stderr)
    sweeps = []
    length = settings["sweep_length"]
    for vocab in settings["sweep_vocabs"]:
        chunks = sorted({*settings["sweep_chunks"], chunk_for("default", vocab)})
        if not all(estimated_peak_bytes("naive", m, vocab, length, 0) <= budget for m in MODES):
            continue
        swept = ["naive", *[f"chunked@{c}" for c in chunks]]
        payload = {"kind": "time", "vocab": vocab, "length": length, "repeats": repeats}
        payload.update(modes=list(MODES), variants={m: swept for m in MODES}, measure_memory=True)
        sweeps.append({"vocab": vocab, "length": length, "chunks": chunks, **bu.run_worker(SCRIPT, payload)})
        print(f"  done sweep V={vocab} T={length} (load {bu.load_average()[0]})", file=sys.stderr)
    record["cases"] = cases
    record["sweeps"] = sweeps
    record["summary"], record["sweep_summary"], record["targets"] = summarise(cases, sweeps)
    print(render_table(record))
    bu.finish_record(record, mode)


def chunk_for(setting: int | str, vocab: int) -> int:
    """The chunk (positions) a setting means for a vocabulary: an int as is, "default" the library's."""
    if setting == "default":
        from eapo.core import default_chunk_size

        return default_chunk_size(vocab, "cpu")
    return int(setting)


def summarise(
    cases: list[dict[str, Any]], sweeps: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows per (vocab, length, mode) with the ratios, rows of the chunk sweep, and the two targets."""
    rows: list[dict[str, Any]] = []
    extra = "allocator_extra_beyond_grad_bytes"
    for case in cases:
        chunk = case["chunk"]
        for m in MODES:
            chunked = case.get("memory_chunked", {}).get(m)
            naive = case.get("memory_naive", {}).get(m)
            timing = case.get("time", {}).get(m, {})
            times = timing.get("times_s", {})
            ratio = timing.get("ratio_over_naive", {}).get(f"chunked@{chunk}")
            rows.append(
                {
                    "vocab": case["vocab"],
                    "length": case["length"],
                    "mode": m,
                    "chunk": chunk,
                    "chunked_extra_mib": bu.mib(chunked[extra]) if chunked else None,
                    "naive_extra_mib": bu.mib(naive[extra]) if naive else None,
                    "chunked_rss_extra_mib": bu.mib(chunked["rss_extra_bytes"]) if chunked else None,
                    "naive_rss_extra_mib": bu.mib(naive["rss_extra_bytes"]) if naive else None,
                    "memory_ratio": round(chunked[extra] / naive[extra], 4) if chunked and naive else None,
                    "chunked_s": _median_or_none(times.get(f"chunked@{chunk}")),
                    "naive_s": _median_or_none(times.get("naive")),
                    "time_ratio": round(ratio["median"], 3) if ratio else None,
                    "naive_skipped": f"naive/{m}" in case["skipped"],
                }
            )
    sweep_rows = [
        {
            "vocab": sweep["vocab"],
            "length": sweep["length"],
            "mode": m,
            "chunk": c,
            "time_ratio": round(sweep[m]["ratio_over_naive"][f"chunked@{c}"]["median"], 3),
            "extra_mib": bu.mib(sweep[m][extra][f"chunked@{c}"]),
            "naive_extra_mib": bu.mib(sweep[m][extra]["naive"]),
        }
        for sweep in sweeps
        for m in MODES
        for c in sweep["chunks"]
    ]

    targets = []
    # Memory: with two or more chunks (length >= 2 x chunk) the chunked extra must not grow with length.
    # (At length <= chunk there is one chunk and the backward holds one chunk buffer fewer.)
    spreads = []
    for vocab in sorted({r["vocab"] for r in rows}):
        for m in MODES:
            series = [
                r["chunked_extra_mib"]
                for r in rows
                if r["vocab"] == vocab
                and r["mode"] == m
                and r["length"] >= 2 * r["chunk"]
                and r["chunked_extra_mib"]
            ]
            if len(series) >= 2:
                spreads.append((max(series) / min(series), vocab, m))
    if spreads:
        worst = max(spreads)
        lengths = sorted({r["length"] for r in rows if r["length"] >= 2 * r["chunk"]})
        chunks = ", ".join(f"{c} at V={v}" for v, c in sorted({(r["vocab"], r["chunk"]) for r in rows}))
        targets.append(
            bu.target(
                "entropy: peak extra memory independent of length",
                f"chunked extra memory (beyond the logits' gradient) constant over T at the default chunk "
                f"({chunks})",
                round(worst[0], 4),
                worst[0] <= 1.05,
                f"max / min over T = {lengths[0]}..{lengths[-1]} (>= 2 chunks): x{worst[0]:.3f} "
                f"(V={worst[1]}, {worst[2]})",
            )
        )
    ratios = [(r["time_ratio"], r) for r in rows if r["time_ratio"] is not None]
    if ratios:
        worst_ratio, worst_row = max(ratios, key=lambda x: x[0])
        where = f"V={worst_row['vocab']}, T={worst_row['length']}, {worst_row['mode']}"
        note = f"worst at chunk {worst_row['chunk']}: {where}"
        best: dict[tuple[int, str], dict[str, Any]] = {}
        for r in sweep_rows:
            key = (r["vocab"], r["mode"])
            if key not in best or r["time_ratio"] < best[key]["time_ratio"]:
                best[key] = r
        if best:
            note += "; chunk sweep, best chunk per case: " + ", ".join(
                f"V={v} {m}: chunk {r['chunk']} x{r['time_ratio']}" for (v, m), r in sorted(best.items())
            )
        targets.append(
            bu.target(
                "entropy: time within 1.1x of naive",
                "chunked / naive time <= 1.1 in every measured case",
                worst_ratio,
                worst_ratio <= 1.1,
                note,
            )
        )
    return rows, sweep_rows, targets


def _median_or_none(values: list[float] | None) -> float | None:
    return round(bu.median(values), 4) if values else None


def render_table(record: dict[str, Any]) -> str:
    headers = ["V", "T", "pass", "chunked MiB", "naive MiB", "mem ratio", "chunked s", "naive s", "t ratio"]
    rows = [
        [
            r["vocab"],
            r["length"],
            r["mode"],
            r["chunked_extra_mib"],
            r["naive_extra_mib"] if not r["naive_skipped"] else "skipped",
            r["memory_ratio"],
            r["chunked_s"],
            r["naive_s"],
            r["time_ratio"],
        ]
        for r in record["summary"]
    ]
    sweep = [
        [r["vocab"], r["length"], r["mode"], r["chunk"], r["extra_mib"], r["time_ratio"]]
        for r in record["sweep_summary"]
    ]
    return (
        bu.format_table(headers, rows)
        + "\n\nchunk sweep\n"
        + bu.format_table(["V", "T", "pass", "chunk", "extra MiB", "t ratio"], sweep)
    )


if __name__ == "__main__":
    main()
