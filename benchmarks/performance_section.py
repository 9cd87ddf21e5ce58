"""Render the README's "Performance" section from the benchmark JSON files, and write it into README.md.

    python benchmarks/performance_section.py           # rewrite the block in README.md
    python benchmarks/performance_section.py --check   # exit 1 if README.md's block is out of date

Only the text between `<!-- performance:start -->` and `<!-- performance:end -->` is replaced (the block
is appended at the end of README.md if the markers are absent). For each benchmark the full run's JSON
(`<name>.json`) is used, else the quick run's (`<name>_quick.json`); smoke runs are never shown.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import bench_utils as bu

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
README = REPO_ROOT / "README.md"
START = "<!-- performance:start -->"
END = "<!-- performance:end -->"
SWEEP_FILE = "entropy_memory_chunk1024.json"
LEVERS_FILE = "step_bound_levers_quick.json"  # step_bound.py with every lever setting (quick runs three)
DECODE_FILE = "step_bound_decode_quick.json"  # step_bound.py --quick --decode-only: top-p, side by side
BENCHMARKS = (
    "entropy_memory", "algo_overhead", "step_breakdown", "vs_trl", "step_bound", "shared_prompt",
    "decode_attention", "runaway_response",
)  # fmt: skip
PART_LABELS = {
    "rollout": "rollout (generate)",
    "scoring": "reward (verifier)",
    "old_logprobs": "old log-probs + entropy forward",
    "train_forward": "training forward + loss",
    "backward": "backward",
    "optimizer": "optimizer",
    "entropy_change": "entropy-change re-score (periodic)",
    "dump_rollouts": "rollout dumps (periodic)",
    "shaping_metrics": "advantages, shaper, metrics",
    "logging": "logging",
}


def current_targets(record: dict[str, Any]) -> list[dict[str, Any]]:
    """A record's targets judged by today's goals. `vs_trl`'s goal depends on the CPU kind (issue #18: 2.5x
    TRL with bf16 matrix units, 1.8x without); a record written under an earlier goal (1.0x) is judged
    again from its own runs, so the table never shows a goal the issue no longer sets."""
    if record.get("benchmark") == "vs_trl" and record.get("runs"):
        import vs_trl

        return vs_trl.summarise(record["runs"], bool(record["machine"]["cpu_fast_bf16"]))[1]
    return list(record.get("targets", []))


def _runaway(record: dict[str, Any]) -> list[str]:
    """One response at the length limit, padded and with `train.trim_padding` (`runaway_response.py`)."""
    medians, ratios = record["summary"]["median_s"], record["summary"]["ratios"]
    lines = [
        "#### One response at the length limit",
        "",
        f"`policy_update` on one rollout of `{record['model']}` ({record['rows']} rows, "
        f"{record['mini_batches']} mini-batches of {record['rows'] // record['mini_batches']}, longest "
        f"response {record['clean_width']} tokens), then on the same rollout with its first response "
        f"continued to the limit of {record['max_new_tokens']} tokens: padded as the update always did, "
        "and with `train.trim_padding: true` (each micro-batch cut to its own longest response; the same "
        "loss up to rounding). Interleaved rounds, a fresh copy of the weights each. Source: "
        f"{_source(record)}.",
        "",
    ]
    rows = [
        ["clean", medians["clean"], "1"],
        [
            "one at the limit, padded",
            medians["runaway_padded"],
            bu.ratio_text(ratios["runaway_padded / clean"]),
        ],
        [
            "one at the limit, trim_padding",
            medians["runaway_trimmed"],
            bu.ratio_text(ratios["runaway_trimmed / clean"]),
        ],
    ]
    lines += [*bu.markdown_table(["rollout", "update s", "against clean"], rows), ""]
    if "generate_runaway" not in medians:
        note = f"The rollout itself ({record['rollout_s']} s here) still ran every row to the longest."
        return [*lines, note, ""]
    generated = record["generated"]
    lines += [
        f"The rollout half, on the same step's prompts (seconds of `generate_rollouts`, interleaved): as the "
        "trainer samples, with one `generate` call per chunk; with the chunk's first row forced to write on "
        f"to the limit (its eos and every token holding `<` banned); and the same two with "
        f"`sampling.phase_tokens: {record['phase_tokens']}` (after each phase of that many tokens the rows "
        "that have ended leave, and the others go on from their key/value cache; the same distribution, but "
        "the rows left draw "
        "from the random stream without the others, so the samples need not be the same).",
        "",
    ]
    names = {
        "generate_clean": ("as sampled, one call", "generate_clean"),
        "generate_runaway": ("one at the limit, one call", "generate_runaway / generate_clean"),
        "generate_runaway_phased": ("one at the limit, phases", "generate_runaway_phased / generate_clean"),
        "generate_clean_phased": ("as sampled, phases", "generate_clean_phased / generate_clean"),
    }
    rows = [
        [
            label,
            medians[name],
            "1" if name == "generate_clean" else bu.ratio_text(ratios[ratio]),
            generated[name]["longest"],
            generated[name]["mean_length"],
        ]
        for name, (label, ratio) in names.items()
    ]
    header = ["rollout", "generate s", "against the first", "longest", "mean length"]
    return [*lines, *bu.markdown_table(header, rows), ""]


def load_results(
    results_dir: Path = RESULTS_DIR, modes: tuple[str, ...] = ("full", "quick")
) -> dict[str, Any]:
    """name -> the JSON of its preferred run (first mode in `modes` that has a file); also `index_quick`
    (the last `run_all.py --quick`) and `entropy_sweep` (the chunk-size sweep that chose the default chunk,
    `entropy_memory_chunk1024.json`) when present."""
    found: dict[str, Any] = {}
    for name in (*BENCHMARKS, "index"):
        for mode in modes:
            path = results_dir / (f"{name}.json" if mode == "full" else f"{name}_{mode}.json")
            if path.is_file():
                found[name] = json.loads(path.read_text())
                break
    for key, file in (
        ("index_quick", "index_quick.json"),
        ("entropy_sweep", SWEEP_FILE),
        ("step_bound_levers", LEVERS_FILE),
        ("step_bound_decode", DECODE_FILE),
    ):
        if (results_dir / file).is_file():
            found[key] = json.loads((results_dir / file).read_text())
    # A quick run on another CPU kind than the full one is shown too (e.g. the TRL comparison re-run on a CPU
    # with bf16 units beside the full run of an AVX2-only one): figures of one kind never replace another's.
    for name in BENCHMARKS:
        quick = results_dir / f"{name}_quick.json"
        if name in found and found[name]["mode"] == "full" and "quick" in modes and quick.is_file():
            other = json.loads(quick.read_text())
            if bu.cpu_kind(other["machine"]) != bu.cpu_kind(found[name]["machine"]):
                found[f"{name}_other_cpu"] = other
    return found


def _source(record: dict[str, Any]) -> str:
    load = record["load_average_start"][0], record["load_average_end"][0]
    return (
        f"`{record['command']}` ({record['mode']} setting, {record['duration_s']:.0f} s, "
        f"1-min load average {load[0]:g} → {load[1]:g}; CPU kind: {bu.cpu_kind(record['machine'])})"
    )


def render(results: dict[str, Any]) -> str:
    """The whole block, markers included, as Markdown."""
    lines = [START, "## Performance", ""]
    if not results:
        lines += ["No benchmark results yet: run `python benchmarks/run_all.py`.", END]
        return "\n".join(lines)
    any_record = next(results[name] for name in (*BENCHMARKS, "index") if name in results)
    machine = any_record["machine"]
    index = results.get("index")
    lines += [
        "Figures from `python benchmarks/run_all.py` (each script prints its table and writes "
        "`benchmarks/results/<name>.json`; `--quick` runs a reduced setting), rendered into this section by "
        "`python benchmarks/performance_section.py`. Machine: "
        f"{machine['cpu']}, {machine['usable_cpus']} cores, {machine['memory_gib']} GiB, torch "
        f"{machine['torch']}, {machine['torch_threads']} torch threads, OMP_WAIT_POLICY="
        f"{machine.get('omp_wait_policy') or 'unset'}. The cores were shared with other jobs while "
        "these ran, so every comparison interleaves its variants and reports the median of per-round "
        "ratios; absolute times are noisy.",
        "",
    ]
    kinds = sorted({bu.cpu_kind(results[name]["machine"]) for name in BENCHMARKS if name in results})
    if len(kinds) > 1:
        lines += [
            "The figures below come from more than one CPU kind ("
            + "; ".join(kinds)
            + "): each table names its own in its source line.",
            "",
        ]
    machines = {
        bu.cpu_kind(results[k]["machine"]): results[k]["machine"]
        for k in (*BENCHMARKS, "index")
        if k in results
    }
    for kind, each in machines.items():
        if each["amx_bf16"] or each["avx512_bf16"]:
            lines += [
                f"{kind} multiplies bf16 matrices in hardware: there `model.dtype: auto` resolves to bf16 "
                "autocast for the training forward and `model.rollout_dtype: auto` to a bf16 copy of the "
                "weights for sampling (π_old then from the training-precision forward); "
                "`model.dtype: float32` (the tiny default) stays fp32 everywhere, with π_old and the entropy "
                "taken from the decode loop (`train.rollout_logprobs`, on by default).",
                "",
            ]
        else:
            lines += [
                f"{kind}: bf16 matrix products are emulated (far slower than fp32), so eapo runs fp32 there "
                "(`eapo.models.autocast_context` turns bf16 autocast off; `model.rollout_dtype: auto` "
                "samples with the fp32 weights) and takes π_old and the entropy from the decode loop "
                "(`train.rollout_logprobs`, on by default; the figures of this kind below were measured "
                "before that lever existed). DESIGN.md §5's AMX speed-ups do not apply to them.",
                "",
            ]
    lines += [
        "On every kind, by default: each group's prompt is computed once when training, scoring and "
        "sampling (`train.shared_prompt_forward`, `sampling.shared_prompt_prefill`; fp32 results equal the "
        "plain path's up to rounding), AdamW runs its fused kernel (`train.fused_optimizer`), and on CPU "
        "a chunk of rows whose prompts need no padding decodes with the eager attention under grouped-query "
        "attention, where transformers' SDPA route is slow (`sampling.attention: auto`; the same samples in "
        "fp32; measurements in `eapo.rollout.attention`). The "
        "candidate draw (`sampling.candidate_draw`) is opt-in: the same distribution from another random "
        "stream; so is `train.trim_padding` (each update micro-batch cut to its own longest response, the "
        "same loss up to rounding: below, one response at the length limit), and so is "
        "`sampling.phase_tokens` (sampling in phases, the rows that have ended leaving after each: the same "
        "distribution, but a seed need not give the same samples). "
        "Results recorded before 2026-11-30 15:00 UTC (AVX2-only figures, the full runs, the lever "
        "table) were measured without them, and every result recorded before 2026-11-30 20:00 UTC "
        "decoded with the fused SDPA kernel.",
        "",
    ]
    for record in (index, results.get("index_quick")):
        if record is not None and (index is None or record is index or record["mode"] != index["mode"]):
            lines += [
                f"`{record['command']}` took {record['duration_s'] / 60:.1f} min wall "
                f"({record['cpu_s'] / 60:.1f} CPU-min) at a 1-min load average of "
                f"{record['load_average_start'][0]:g} → {record['load_average_end'][0]:g}.",
                "",
            ]
    shown = [key for name in BENCHMARKS for key in (name, f"{name}_other_cpu") if key in results]
    targets = [
        {**t, "name": f"{t['name']} ({bu.cpu_kind(results[key]['machine'])})"}
        for key in shown
        for t in current_targets(results[key])
    ]
    if targets:
        lines += ["### Targets", ""]
        lines += bu.markdown_table(
            ["target", "goal", "measured", "met"],
            [
                [t["name"], t["goal"], f"{bu.markdown_cell(t['value'])}: {t['note']}", t["met"]]
                for t in targets
            ],
        )
        lines.append("")
    if "entropy_memory" in results:
        lines += _entropy(results["entropy_memory"])
    if "entropy_sweep" in results:
        lines += _sweep(results["entropy_sweep"])
    if "algo_overhead" in results:
        lines += _algo(results["algo_overhead"])
    if "step_breakdown" in results:
        lines += _steps(results["step_breakdown"])
    if "vs_trl" in results:
        lines += _trl(results["vs_trl"])
    if "vs_trl_other_cpu" in results:
        lines += _trl(results["vs_trl_other_cpu"])
    if "step_bound" in results:
        lines += _bound(results["step_bound"])
    if "step_bound_levers" in results:
        lines += _levers(results["step_bound_levers"])
    if "step_bound_decode" in results:
        lines += _decode_top_p(results["step_bound_decode"])
    if "shared_prompt" in results:
        lines += _shared_prompt(results["shared_prompt"])
    if "decode_attention" in results:
        lines += _decode_attention(results["decode_attention"])
    if "runaway_response" in results:
        lines += _runaway(results["runaway_response"])
    lines.append(END)
    return "\n".join(lines)


def _entropy(record: dict[str, Any]) -> list[str]:
    chunk = record["settings"]["chunk"]
    described = (
        "at its default chunk (`eapo.core.default_chunk_size`: 2^22 elements / V positions on CPU)"
        if chunk == "default"
        else f"(chunk {chunk} positions)"
    )
    lines = [
        "### Log-probs and entropy: chunked against a full softmax",
        "",
        f"`eapo.core.token_logprobs_and_entropy` {described} against `log_softmax` + gather + "
        "−Σπ log π over the whole [1, T, V] tensor, fp32. Extra memory = torch allocator peak of the call "
        "beyond its inputs (and, forward + backward, beyond the [T, V] logits gradient both must produce), "
        "fresh process per case. Time ratio chunked / naive, median of interleaved rounds. "
        f"Source: {_source(record)}.",
        "",
    ]
    rows = [
        [
            r["vocab"],
            r["length"],
            r["mode"].replace("_", " + "),
            r.get("chunk", chunk),
            r["chunked_extra_mib"],
            "skipped (RAM)" if r["naive_skipped"] else r["naive_extra_mib"],
            r["memory_ratio"],
            r["time_ratio"],
        ]
        for r in record["summary"]
    ]
    headers = [
        "V",
        "T",
        "pass",
        "chunk",
        "chunked extra MiB",
        "naive extra MiB",
        "memory ratio",
        "time ratio",
    ]
    lines += bu.markdown_table(headers, rows)
    return [*lines, ""]


def _sweep(record: dict[str, Any]) -> list[str]:
    """The chunk-size sweep behind `eapo.core.default_chunk_size` (measured when the default was 1024)."""
    lines = [
        "#### Chunk size: the sweep that chose the default",
        "",
        "Time against the naive version and extra memory for several chunk sizes at one length. Chunks of "
        "a few MB beat one big softmax on this CPU; 1024 positions, the old default, did not; the default "
        "is now 2^22 elements (16 MiB fp32) per chunk. "
        f"Source: `benchmarks/results/{SWEEP_FILE}`, from {_source(record)}.",
        "",
    ]
    rows = [
        [r["vocab"], r["length"], r["mode"].replace("_", " + "), r["chunk"], r["extra_mib"], r["time_ratio"]]
        for r in record["sweep_summary"]
    ]
    lines += bu.markdown_table(["V", "T", "pass", "chunk", "chunked extra MiB", "time ratio"], rows)
    return [*lines, ""]


def _algo(record: dict[str, Any]) -> list[str]:
    lines = [
        "### Algorithm overhead against GRPO",
        "",
        "One `Trainer.train_step()` per algorithm on one replayed rollout batch, algorithms interleaved "
        "in rotating order, state restored before each step. Ratios are algorithm / GRPO: whole step; "
        "shaping + loss + backward (the parts that differ); torch allocator peak of the step. "
        f"Source: {_source(record)}.",
        "",
    ]
    rows = [
        [
            r["model"],
            r["algo"],
            r["step_ratio"],
            r["shaping_plus_loss_backward_ratio"],
            r["memory_ratio"],
            r["shaping_ms"],
            r["step_s"],
        ]
        for r in record["summary"]
    ]
    headers = [
        "model",
        "algo",
        "step time",
        "shaping + loss + backward",
        "peak memory",
        "shaping ms",
        "step s",
    ]
    lines += bu.markdown_table(headers, rows)
    return [*lines, ""]


def _steps(record: dict[str, Any]) -> list[str]:
    summary = record["summary"]
    lines = [
        "### Where a training step's time goes",
        "",
        "`Trainer.run()` (what `eapo train` runs) for a few steps per model, first step left out; the "
        "trainer's `time/*` metrics plus timers around `Tensor.backward`, the metrics logger and the "
        f"periodic extras. Source: {_source(record)}.",
        "",
    ]
    headers = ["part", *[f"{s['model']} share" for s in summary]]
    rows = [
        [label, *[f"{100 * s['shares'][key]:.1f}%" for s in summary]] for key, label in PART_LABELS.items()
    ]
    rows.append(["step (wall), s", *[s["step_s"] for s in summary]])
    rows.append(["generated tokens / s", *[s["tokens_per_s"] for s in summary]])
    lines += bu.markdown_table(headers, rows)
    policy = record.get("omp_wait_policy")
    if policy:
        ratio = policy["ratio_unset_over_passive"]
        lines += [
            "",
            f"OpenMP wait policy (tiny, {ratio['rounds']} interleaved round(s)): a step with OMP_WAIT_POLICY "
            f"unset takes {ratio['median']:.2f}x as long as with `OMP_WAIT_POLICY=PASSIVE` at 1-min load "
            f"averages {', '.join(f'{x:g}' for x in policy['load_average_1min_at_each_run'])}.",
        ]
    return [*lines, ""]


def _trl(record: dict[str, Any]) -> list[str]:
    s, cfg = record["summary"], record["settings"]
    lines = [  # two records (two CPU kinds) make two sections: the heading tells them apart
        f"### Against TRL's GRPOTrainer: {record['mode']} setting, {bu.cpu_kind(record['machine'])}",
        "",
        f"`eapo train --algo grpo` and `trl.GRPOTrainer` on {cfg['model']} (same policy object, prompts in "
        f"the same order, {cfg['prompts']} prompts x G = {cfg['group']}, at most {cfg['tokens']} new tokens, "
        f"{cfg['steps']} steps, micro-batch {cfg['micro']}, PPO-clip 0.2/0.28 token-mean, no KL), "
        f"{cfg['rounds']} interleaved round(s), fresh process each. Throughput = generated tokens per second "
        f"over steps 2..N. Source: {_source(record)}."
        + (
            " eapo runs its config's `model.dtype: auto` (on this CPU kind: bf16 autocast and a bf16 rollout "
            "copy); TRL runs with `bf16=False`, fp32."
            if record["machine"].get("cpu_fast_bf16")
            else ""
        ),
        "",
    ]
    rows = [
        ["eapo", s["eapo_tokens_per_s"], s["eapo_peak_rss_mib"], _shares(s["eapo_time_shares"])],
        ["TRL", s["trl_tokens_per_s"], s["trl_peak_rss_mib"], _shares(s["trl_time_shares"])],
        [
            "eapo / TRL",
            s["throughput_ratio_eapo_over_trl"],
            s["peak_rss_ratio_eapo_over_trl"],
            "",
        ],
    ]
    lines += bu.markdown_table(["", "tokens / s", "peak RSS MiB", "time shares"], rows)
    return [*lines, ""]


def _variant_rows(s: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for name, v in s["variants"].items():
        p = v["precision"]
        ratios = v["phase_over_bound"]
        rows.append(
            [
                name + (" (default here)" if name == s["default_variant"] else ""),
                f"{p['rollout']} / {p['training_forward']} / {p['old_logprobs']}",
                v["measured_s"]["step"],
                v["step_bound_s"],
                v["step_over_bound"],
                *[ratios[k] for k in ("rollout", "old_logprobs", "forward_backward", "optimizer")],
                v["tokens_per_s"],
                v["step_speedup_over_fp32"],
            ]
        )
    return rows


VARIANT_HEADERS = [
    "levers",
    "rollout / training forward / π_old from",
    "step s",
    "bound s",
    "step / bound",
    "rollout / bound",
    "old log-probs / bound",
    "fwd + bwd / bound",
    "optimizer / bound",
    "tokens / s",
    "speed-up vs fp32",
]


def _levers(record: dict[str, Any]) -> list[str]:
    """Every lever setting alone (`step_bound_levers_quick.json`)."""
    lines = [
        "#### Each lever alone",
        "",
        "The same measurement with every lever setting: `fp32_decode_logprobs` only skips the old-log-prob "
        "forward, `bf16_rollout` only samples from a bf16 copy, `bf16_autocast` only runs the training "
        "forward in bf16 autocast, `bf16_all` both, `bf16_all_micro16` that with one 16-row micro-batch. "
        f"Source: `benchmarks/results/{LEVERS_FILE}`, from {_source(record)}.",
        "",
    ]
    lines += bu.markdown_table(VARIANT_HEADERS, _variant_rows(record["summary"]))
    return [*lines, ""]


def _decode_top_p(record: dict[str, Any]) -> list[str]:
    """Decode steps/s with transformers' top-p warper against eapo's sampler (`--decode-only`)."""
    lines = [
        "#### Top-p without a full sort",
        "",
        "transformers' top-p warper sorts all 49,152 logits of every row at every decode step. eapo's "
        "sampler (`eapo.rollout.nucleus`, `sampling.top_p_candidates: 64`) keeps the same tokens, from the "
        "64 most likely ones, with a full sort only for rows whose nucleus is wider; with "
        "`sampling.candidate_draw: false` it draws the very samples transformers' warpers draw. "
        "Decode steps/s of `generate` on SmolLM2, the two alternating in one process (speed-up: median and "
        f"range over rounds). Source: `benchmarks/results/{DECODE_FILE}`, from {_source(record)}.",
        "",
    ]
    with_draw = all("eapo_draw" in d["steps_per_s"] for d in record["decode_ab"])
    if with_draw:
        lines[-2] += (
            " `eapo draw`: the same filter with the token drawn among the candidates "
            "(`sampling.candidate_draw`, opt-in): `generate` then skips its full-vocabulary softmax and "
            "multinomial; the same distribution, another random stream (not transformers' tokens under "
            "the same seed)."
        )

    rows = [
        [
            d["dtype"],
            d["rows"],
            d["steps_per_s"]["transformers"],
            d["steps_per_s"]["eapo"],
            bu.ratio_text(d["speedup"]),
            *([d["steps_per_s"]["eapo_draw"], bu.ratio_text(d["speedup_draw"])] if with_draw else []),
        ]
        for d in record["decode_ab"]
    ]
    headers = ["weights", "rows", "transformers steps / s", "eapo steps / s", "speed-up"]
    if with_draw:
        headers += ["eapo draw steps / s", "speed-up (draw)"]
    return [*lines, *bu.markdown_table(headers, rows), ""]


def _shared_prompt(record: dict[str, Any]) -> list[str]:
    """Each distinct prompt run once against the plain path (`shared_prompt.py`)."""
    shape = record["shape"]
    lines = [
        "#### One forward per distinct prompt",
        "",
        "A GRPO rollout holds every prompt G times. With `train.shared_prompt_forward` (on by default) the "
        "training forward and the π_old forward run each distinct prompt of a micro-batch once and reuse "
        "its keys and values for its rows (`eapo.rollout.shared_prompt`; gradients flow back into the one "
        "prompt forward); with `sampling.shared_prompt_prefill` (on by default) `generate` starts each row "
        "from a copy of its prompt's keys and values, prefilled once. Training and scoring: one micro-batch "
        f"of the SmolLM2 study's setting, {shape['rows']} rows, {shape['distinct_prompts']} distinct prompts "
        f"of width {shape['prompt_width']}, responses of width {shape['response_width']} (mean "
        f"{shape['response_tokens_mean']:.1f} tokens). Rollout: the study's whole step, "
        f"{record['settings']['rollout_prompts']} prompts x {record['settings']['group']}, same seeds. The "
        "two paths alternate in one process (speed-up: median and range over rounds; max |Δ log-prob| "
        "between the paths; the share of rows the two rollouts drew identically). "
        f"Source: {_source(record)}.",
        "",
    ]
    rows = [
        [
            d["precision"],
            d["phase"].replace("_", " "),
            d["seconds"]["plain"],
            d["seconds"]["shared"],
            bu.ratio_text(d["speedup"]),
            f"{d['max_abs_logprob_diff']:.1e}" if "max_abs_logprob_diff" in d else "–",
            f"{d['same_samples']:.3f}" if "same_samples" in d else "–",
        ]
        for d in record["summary"]
    ]
    headers = [
        "precision",
        "pass",
        "plain s",
        "shared s",
        "speed-up",
        "max abs log-prob difference",
        "same samples",
    ]
    notes = []
    for precision, g in record.get("logprob_gap_vs_fp32", {}).items():
        if precision == "float32":
            continue
        notes.append(
            f"Under {precision} the two paths round differently (different matrix shapes); |log π| against "
            f"the plain fp32 forward on the same rollout: plain mean {g['plain']['mean']:.3f} (max "
            f"{g['plain']['max']:.2f}), shared mean {g['shared']['mean']:.3f} "
            f"(max {g['shared']['max']:.2f}); "
            f"shared against plain mean {g['shared_vs_plain']['mean']:.3f}. π_old and the update take the "
            "same path, so the ratio starts at 1 either way; in bf16 rollouts the rounding moves a few draws."
        )
    return [*lines, *bu.markdown_table(headers, rows), "", *[line for n in notes for line in (n, "")]]


def _decode_attention(record: dict[str, Any]) -> list[str]:
    """SDPA against the eager attention in whole rollouts (`decode_attention.py`)."""
    st = record["settings"]
    heads, key_heads = record["heads_and_key_heads"]
    lines = [
        "#### The attention kernel of the decode",
        "",
        f"Whole rollouts of the SmolLM2 study's step ({st['prompts']} prompts x {st['group']} in one chunk, "
        f"{st['tokens']} new tokens) with transformers' SDPA (the model's own, "
        f"`{record['model_attention']}`) and with the eager attention, alternating in one process, same "
        f"seeds; SmolLM2 has {heads} query heads sharing {key_heads} key heads. Where no row of a chunk is "
        "padded, transformers drops the mask and asks torch's SDPA to expand the key heads itself, which "
        "its CPU kernel does slowly; with a padded chunk it folds the query groups into the key heads and "
        "SDPA wins. `sampling.attention: auto` (the default) decodes with the eager attention exactly in "
        "the first case, on CPU "
        f"(`eapo.rollout.attention`). Source: {_source(record)}.",
        "",
    ]
    rows = [
        [
            d["precision"],
            d["prompts"],
            "–".join(map(str, d["prompt_tokens"])),
            d["seconds"]["sdpa"],
            d["seconds"]["eager"],
            bu.ratio_text(d["speedup_eager"]),
            f"{d['same_samples']:.3f}",
            d["auto_picks"],
        ]
        for d in record["summary"]
    ]
    headers = ["precision", "prompts", "prompt tokens", "SDPA s", "eager s", "eager speed-up", "same samples"]
    return [*lines, *bu.markdown_table([*headers, "auto picks"], rows), ""]


def _bound(record: dict[str, Any]) -> list[str]:
    s, cfg = record["summary"], record["settings"]
    rates = s["rates"]
    lines = [
        "### One RL step against the hardware bound",
        "",
        f"`benchmarks/step_bound.py`: the bound of each phase from rates measured on this machine with "
        f"{cfg['model']}'s own weight shapes ({rates['matrix_params'] / 1e6:.0f}M matrix weights): dense "
        f"matmul {', '.join(f'{k} {v} GFLOP/s' for k, v in rates['flop_rate_gflops'].items())} at training "
        "shapes; one decode step's weight streaming "
        + "; ".join(
            f"{k} " + ", ".join(f"{ms} ms at {rows} rows" for rows, ms in v.items())
            for k, v in rates["streaming_ms"].items()
        )
        + f"; copy bandwidth {rates['bandwidth_gb_per_s']} GB/s. Rollout = prefill FLOPs + decode steps x "
        "streaming time; old log-probs 2N, forward + backward 6N FLOPs per token ("
        + (
            "each group's prompt counted once, as its G rows share it"
            if s.get("bound_prompt_tokens") == "distinct"
            else "every row's prompt counted"
        )
        + "); optimizer 28 bytes per "
        f"parameter. The bound uses the fastest precision the chip has ({s['bound_precision']}). Real steps: "
        f"`Trainer.run()` on {cfg['prompts']} prompts x G = {cfg['group']}, at most {cfg['tokens']} new "
        f"tokens, micro-batch {cfg['micro']}, GRPO, one update per batch, {cfg['steps']} steps (first left "
        f"out), one fresh process per lever setting. Source: {_source(record)}.",
        "",
    ]
    lines += bu.markdown_table(VARIANT_HEADERS, _variant_rows(s))
    lines += [
        "",
        "Decode steps per second against the weight-streaming bound (`generate`, T = 1, top-p 0.95):",
        "",
    ]
    lines += bu.markdown_table(
        [
            "weights",
            "rows",
            "KV cache",
            "top-p",
            "steps / s",
            "bound steps / s",
            "share of bound",
            "top-p warper share",
        ],
        [
            [
                d["dtype"],
                d["rows"],
                d["cache"],
                d.get("top_p", "transformers"),  # results before eapo's sampler used transformers' warper
                d["steps_per_s"],
                1 / d["streaming_bound_s"],
                d["fraction_of_bound"],
                "–" if d.get("top_p_share") is None else d["top_p_share"],
            ]
            for d in s["decode"]
        ],
    )
    agreement = s.get("bf16_rollout")
    if agreement:
        gap = agreement["logprob_gap_rollout_bf16_vs_fp32_forward"]
        gap_ac = agreement["logprob_gap_rollout_bf16_vs_autocast_forward"]
        share = agreement["quadrant_agreement_all_tokens"]
        share_grpo = agreement["quadrant_agreement_grpo_advantages"]
        lines += [
            "",
            f"bf16 rollouts ({agreement['tokens']} tokens of one rollout sampled by the bf16 copy): |log π "
            f"rollout − log π fp32 forward| mean {gap['mean_abs']:.3g}, p99 {gap['p99_abs']:.3g}, max "
            f"{gap['max_abs']:.3g}; against the bf16-autocast training forward: mean "
            f"{gap_ac['mean_abs']:.3g}. "
            "Tokens whose quadrant (PAPER.md §4.1, entropy against the group mean) is the same with the "
            f"rollout's bf16 entropies as with fp32 ones: {bu.markdown_cell(share)} of all tokens (signs "
            f"alternated by row{_interval(agreement, 'all_tokens')}), {bu.markdown_cell(share_grpo)} of "
            f"tokens with a nonzero GRPO advantage{_interval(agreement, 'grpo_advantages')}.",
        ]
    return [*lines, ""]


def _interval(agreement: dict[str, Any], name: str) -> str:
    """ ", 95% CI 0.986-0.994 over 2,990 tokens" where the record has the counts (older ones do not)."""
    count = agreement.get("quadrant_agreement_counts", {}).get(name)
    if not count or count.get("ci95") is None:
        return ""
    low, high = count["ci95"]
    return f"; 95% CI {low:.3f}-{high:.3f} over {count['tokens']:,} tokens"


def _shares(shares: dict[str, float]) -> str:
    return ", ".join(f"{key.replace('_', ' ')} {100 * value:.0f}%" for key, value in shares.items())


def main() -> None:
    bu.readme_block_main(
        __doc__.splitlines()[0],
        "Performance",
        lambda results_dir: render(load_results(results_dir)),
        START,
        END,
        README,
    )


if __name__ == "__main__":
    main()
