"""Run every benchmark, write their JSON to benchmarks/results/ and regenerate the README's Performance block.

    python benchmarks/run_all.py            # the full setting (tens of minutes on 2 cores)
    python benchmarks/run_all.py --quick    # the reduced setting (a few minutes on 2 free cores)
    python benchmarks/run_all.py --smoke --out-dir /tmp/b   # seconds per script; README untouched

Each script runs in its own process. An index (`index.json`, `index_quick.json`) records how long each
took, wall and CPU, and the load average around the run.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

import bench_utils as bu

SCRIPTS = (
    "entropy_memory", "algo_overhead", "step_breakdown", "vs_trl", "step_bound", "shared_prompt",
    "decode_attention", "runaway_response",
)  # fmt: skip


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = bu.mode_parser(__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=SCRIPTS, help="run only these benchmarks")
    parser.add_argument("--no-readme", action="store_true", help="leave README.md as it is")
    args = parser.parse_args()
    mode = bu.run_mode(args)
    flag = {"smoke": ["--smoke"], "quick": ["--quick"], "full": []}[mode.name]
    index = bu.start_record("run_all", mode, {"scripts": list(args.only or SCRIPTS)})
    index["benchmark"] = "index"
    index["command"] = "python benchmarks/run_all.py" + "".join(f" {f}" for f in flag)
    cpu_start = _children_cpu_s()
    index["scripts"] = {}
    for name in args.only or SCRIPTS:
        print(f"=== {name} ({mode.name})", flush=True)
        start, cpu = time.perf_counter(), _children_cpu_s()
        cmd = [sys.executable, str(bu.BENCH_DIR / f"{name}.py"), *flag, "--out-dir", str(mode.out_dir)]
        subprocess.run(cmd, check=True, cwd=bu.REPO_ROOT)
        index["scripts"][name] = {
            "file": mode.result_path(name).name,
            "duration_s": round(time.perf_counter() - start, 1),
            "cpu_s": round(_children_cpu_s() - cpu, 1),
            "load_average_after": bu.load_average(),
        }
    index["cpu_s"] = round(_children_cpu_s() - cpu_start, 1)
    path = bu.finish_record(index, mode)
    total = json.loads(path.read_text())
    print(f"run_all ({mode.name}): {total['duration_s']:.0f} s wall, {total['cpu_s']:.0f} s CPU")
    if mode.name != "smoke" and not args.no_readme and mode.out_dir.resolve() == bu.RESULTS_DIR.resolve():
        subprocess.run([sys.executable, str(bu.BENCH_DIR / "performance_section.py")], check=True)


if __name__ == "__main__":
    main()
