"""Shared pieces of eapo's benchmarks: the machine record, A/B interleaving, memory probes, JSON and tables.

Every benchmark script runs in one of three modes: `--smoke` (seconds, for the test suite), `--quick`
(the setting `run_all.py --quick` uses, minutes on 2 cores) and the full default. Results go to
`benchmarks/results/<name>.json` (full), `<name>_quick.json` or `<name>_smoke.json`.

Timing on a shared machine: absolute times move with the load other processes put on the cores, so each
comparison runs its variants interleaved (A B, then B A, ...) and reports the median of the per-round
ratios; the load average before and after is stored with the figures.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# libgomp (torch's OpenMP) spins its worker threads while they wait; on cores that other processes share,
# a spinning thread holds a core the thread it waits for needs, and every parallel op then costs
# milliseconds (measured here: 2 threads 25-40x slower than with PASSIVE under a load average of 8 on 2
# cores). The policy is read when torch loads, so it is set here, before any benchmark imports torch;
# an explicit OMP_WAIT_POLICY in the environment wins and is recorded with the results.
# (EAPO_BENCH_OMP_DEFAULT=1 leaves the runtime's default, for the step_breakdown experiment that compares.)
if not os.environ.get("EAPO_BENCH_OMP_DEFAULT"):
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
MODES = ("smoke", "quick", "full")


# ---------------------------------------------------------------------------------------------- CLI
@dataclass
class RunMode:
    name: str  # smoke | quick | full
    out_dir: Path

    def result_path(self, benchmark: str) -> Path:
        suffix = "" if self.name == "full" else f"_{self.name}"
        return self.out_dir / f"{benchmark}{suffix}.json"


def mode_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--smoke", action="store_true", help="a seconds-long run that checks the script works")
    group.add_argument("--quick", action="store_true", help="the reduced setting run_all.py --quick uses")
    parser.add_argument(
        "--out-dir", type=Path, default=RESULTS_DIR, help=f"where the JSON goes (default {RESULTS_DIR})"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: one case in a fresh process
    return parser


def run_mode(args: argparse.Namespace) -> RunMode:
    name = "smoke" if args.smoke else "quick" if args.quick else "full"
    return RunMode(name, Path(args.out_dir))


# ---------------------------------------------------------------------------------------------- machine
def machine_info() -> dict[str, Any]:
    """CPU model, cores, memory, accelerator flags and library versions of this process's machine."""
    import torch

    cpu_model = platform.processor() or "unknown"
    flags: set[str] = set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        text = cpuinfo.read_text()
        match = re.search(r"^model name\s*:\s*(.+)$", text, flags=re.M)
        cpu_model = match.group(1).strip() if match else cpu_model
        match = re.search(r"^flags\s*:\s*(.+)$", text, flags=re.M)
        flags = set(match.group(1).split()) if match else set()
    info: dict[str, Any] = {
        "cpu": cpu_model,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "avx2": "avx2" in flags,
        "avx512_bf16": "avx512_bf16" in flags,
        "amx_bf16": "amx_bf16" in flags,
        # The probes eapo.models.cpu_has_fast_bf16 uses (importing eapo.models would load transformers).
        "cpu_fast_bf16": any(
            getattr(torch.cpu, probe, lambda: False)()
            for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
        ),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "memory_gib": round(_meminfo_kib("MemTotal") / 2**20, 1),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    for package in ("transformers", "trl"):
        try:
            info[package] = __import__(package).__version__
        except ImportError:
            info[package] = None
    return info


def cpu_kind(machine: dict[str, Any]) -> str:
    """The CPU and its bf16 matrix units, e.g. `AMD EPYC (AVX512-BF16, no AMX)`, or the GPU's name."""
    if machine.get("cuda"):
        return str(machine["cuda"])
    if machine.get("amx_bf16"):
        units = "AMX"
    elif machine.get("avx512_bf16"):
        units = "AVX512-BF16, no AMX"
    else:
        units = "AVX2 only: no AMX, no AVX512-BF16"
    return f"{machine['cpu']} ({units})"


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _meminfo_kib(field: str) -> int:
    text = Path("/proc/meminfo").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, flags=re.M)
    return int(match.group(1)) if match else 0


def available_memory_bytes() -> int:
    return _meminfo_kib("MemAvailable") * 1024


# ---------------------------------------------------------------------------------------------- memory
def _status_bytes(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), flags=re.M)
    if match is None:
        raise RuntimeError(f"/proc/self/status has no {field}: the RSS probes need Linux")
    return int(match.group(1)) * 1024


def reset_peak_rss() -> int:
    """Reset this process's RSS high-water mark (VmHWM) to its current RSS; returns that RSS in bytes.

    Writing 5 to /proc/self/clear_refs is Linux's documented way to reset the peak resident set size.
    """
    Path("/proc/self/clear_refs").write_text("5")
    return _status_bytes("VmRSS")


def peak_rss() -> int:
    """The RSS high-water mark (bytes) since the process started or the last `reset_peak_rss`."""
    return _status_bytes("VmHWM")


def allocator_peak_bytes(fn: Callable[[], Any]) -> int:
    """Peak bytes of torch tensor memory allocated by `fn` and alive at once (CPU or CUDA).

    From `torch.profiler` with `profile_memory=True`: its memory timeline lists every allocation and
    free of the torch allocator; tensors that existed before `fn` are not counted. This sees torch's
    allocations only (not Python objects, not the allocator's own caching), which is what a comparison
    between two implementations of the same tensor computation needs.
    """
    from torch.profiler import ProfilerActivity, profile
    from torch.profiler._memory_profiler import Action

    activities = [ProfilerActivity.CPU]
    with profile(activities=activities, profile_memory=True, record_shapes=True, with_stack=True) as prof:
        fn()
    live: dict[Any, int] = {}
    current = peak = 0
    for _, action, (key, _version), size in prof._memory_profile().timeline:
        if action == Action.CREATE:
            live[key] = size
            current += size
        elif action == Action.DESTROY and key in live:
            current -= live.pop(key)
        peak = max(peak, current)
    return peak


# ---------------------------------------------------------------------------------------------- timing
def interleave(
    variants: Mapping[str, Callable[[], float]], repeats: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Run each variant `warmup` times, then `repeats` rounds in a rotating order (A B C, B C A, ...).

    Each variant returns its own elapsed seconds, so per-call setup (restoring state) stays out of the
    timing. Returns the timed seconds of each variant, one entry per round.
    """
    names = list(variants)
    for _ in range(warmup):
        for name in names:
            variants[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(variants[name]())
    return times


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median(values: list[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        raise ValueError("median of no values")
    mid = n // 2
    return ordered[mid] if n % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])


def ratio_text(ratio: dict[str, float]) -> str:
    """A `paired_ratio` as `median (min-max)`, e.g. `1.24 (1.04-1.43)`."""
    return f"{ratio['median']:.2f} ({ratio['min']:.2f}-{ratio['max']:.2f})"


def paired_ratio(numerator: list[float], denominator: list[float]) -> dict[str, float]:
    """Median, min and max of the per-round ratios numerator[i] / denominator[i]."""
    ratios = [a / b for a, b in zip(numerator, denominator, strict=True) if b > 0]
    return {"median": median(ratios), "min": min(ratios), "max": max(ratios), "rounds": len(ratios)}


# ---------------------------------------------------------------------------------------------- subprocess
def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95% by default) of a proportion: sensible near 0 and 1, where shares
    such as "99% of tokens agree" live and the normal interval would cross the boundary."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def run_worker(script: Path, payload: dict[str, Any], timeout_s: float = 4 * 3600) -> dict[str, Any]:
    """Run `script --worker '<json payload>'` in a fresh Python and parse the JSON it prints last."""
    proc = subprocess.run(
        [sys.executable, str(script), "--worker", json.dumps(payload)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=REPO_ROOT,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{script.name} worker {payload} failed with exit code {proc.returncode}:\n{proc.stderr[-4000:]}"
        )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"{script.name} worker {payload} printed no JSON:\n{proc.stdout[-2000:]}")
    return json.loads(lines[-1])


def benchmark_main(
    doc: str,
    name: str,
    script: Path,
    settings: dict[str, dict[str, Any]],
    worker: Callable[[dict[str, Any]], dict[str, Any]],
    report: Callable[[dict[str, Any]], None],
    measure: Callable[[dict[str, Any], dict[str, Any]], None] | None = None,
) -> None:
    """`main()` of a benchmark that measures in fresh worker processes (`script --worker PAYLOAD`); `doc`
    is the script's docstring, whose first line describes it in --help.

    In a worker: print `worker(payload)` as JSON. Otherwise: start the record of the chosen mode
    (--smoke / --quick / full, `settings[mode]`), fill it with `measure(record, settings)` (default: one
    worker on the mode's settings, its JSON merged into the record), show it with `report(record)` and
    write it (`finish_record`).
    """
    args = mode_parser(doc.splitlines()[0]).parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    mode = run_mode(args)
    chosen = settings[mode.name]
    record = start_record(name, mode, chosen)
    if measure is None:
        record.update(run_worker(script, chosen))
    else:
        measure(record, chosen)
    report(record)
    finish_record(record, mode)


# ---------------------------------------------------------------------------------------------- output
def start_record(benchmark: str, mode: RunMode, settings: dict[str, Any]) -> dict[str, Any]:
    """The header every result JSON carries; `finish_record` adds the end time and load average."""
    script = f"benchmarks/{benchmark}.py"
    flag = {"smoke": " --smoke", "quick": " --quick", "full": ""}[mode.name]
    return {
        "benchmark": benchmark,
        "mode": mode.name,
        "command": f"python {script}{flag}",
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine_info(),
        "load_average_start": load_average(),
        "settings": settings,
        "_t0": time.perf_counter(),
    }


def finish_record(record: dict[str, Any], mode: RunMode) -> Path:
    record["duration_s"] = round(time.perf_counter() - record.pop("_t0"), 1)
    record["load_average_end"] = load_average()
    path = mode.result_path(record["benchmark"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, sort_keys=False) + "\n")
    print(f"\nwrote {path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path}")
    return path


def target(name: str, goal: str, value: float | None, met: bool | None, note: str = "") -> dict[str, Any]:
    """One target of the issue: what it asks, the measured value, whether it is met, and why not."""
    return {"name": name, "goal": goal, "value": value, "met": met, "note": note}


def format_table(headers: list[str], rows: list[list[Any]]) -> str:
    """A plain-text table with right-aligned numbers (what the scripts print)."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def mib(n_bytes: float | None) -> float | None:
    return None if n_bytes is None else round(n_bytes / 2**20, 1)


def replace_block(text: str, block: str, start_marker: str, end_marker: str) -> str:
    """`text` with its generated block (from `start_marker` to `end_marker`) replaced by `block`, or `block`
    appended at the end if `text` has none."""
    start, end = text.find(start_marker), text.find(end_marker)
    if start == -1 or end == -1 or end < start:
        return text.rstrip("\n") + "\n\n" + block + "\n"
    return text[:start] + block + text[end + len(end_marker) :]


def current_block(text: str, start_marker: str, end_marker: str) -> str | None:
    """The generated block of `text`, markers included, or None."""
    start, end = text.find(start_marker), text.find(end_marker)
    if start == -1 or end == -1 or end < start:
        return None
    return text[start : end + len(end_marker)]


# The model settings the training benchmarks accept, as configs: the tiny default, the built-in `smoke`
# config (the tests' setting) and SmolLM2 on chain_sum.
MODEL_CONFIGS: dict[str, str | Path | None] = {
    "tiny": None,
    "tiny-smoke": "smoke",
    "smollm2": REPO_ROOT / "configs" / "smollm2_chain_sum.yaml",
    "smollm2-study": REPO_ROOT / "configs" / "smollm2_study.yaml",  # issue #19's setting (fp32)
}


def model_config(model: str, overrides: dict[str, Any]) -> Any:
    """The eapo Config of a benchmark's model setting (see MODEL_CONFIGS) with `overrides`."""
    from eapo.train.config import load_config

    if model not in MODEL_CONFIGS:
        raise ValueError(f"unknown model setting {model!r}; expected one of {', '.join(MODEL_CONFIGS)}")
    return load_config(MODEL_CONFIGS[model], overrides)


def readme_block_main(
    description: str, what: str, render_block: Callable[[Path], str], start: str, end: str, readme: Path
) -> None:
    """The command line of a script that renders one generated README block from `benchmarks/results/`:
    write it, or with `--check` exit 1 when README.md's copy is out of date. `render_block(results_dir)`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md's block is out of date")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--readme", type=Path, default=readme)
    args = parser.parse_args()
    block = render_block(args.results_dir)
    text = args.readme.read_text()
    if args.check:
        if current_block(text, start, end) != block:
            print(f"{args.readme}: the {what} block is out of date; rerun the script that renders it")
            sys.exit(1)
        print(f"{args.readme}: the {what} block matches the results")
        return
    args.readme.write_text(replace_block(text, block, start, end))
    print(f"wrote the {what} block of {args.readme}")


def markdown_cell(value: Any, digits: int = 3) -> str:
    """A value as README table text: `–` for None, yes/no, 3 significant digits, thousands separators."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    return str(value)


def markdown_table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    """The lines of a Markdown table; cells go through `markdown_cell` (strings stay as they are)."""
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    return lines + ["| " + " | ".join(markdown_cell(v) for v in row) + " |" for row in rows]
