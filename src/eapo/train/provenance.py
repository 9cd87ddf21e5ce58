"""Which code ran which steps of a run: one row in `<run>/segments.jsonl` each time the run starts or resumes.

Long runs outlive the code that started them: a run resumed after a change to eapo continues with the new
code from its checkpoint on. `config_changes.jsonl` records what the config changed; this file records the
code and machine of each stretch, so that a result can say which steps ran under which commit:
`{"step": <first step of the stretch>, "resumed": bool, "started_at", "eapo", "git_commit", "git_dirty",
"torch", "transformers", "cpu", "cpu_features", "torch_threads"}`. `git_commit` and `git_dirty` are null
outside a git checkout of eapo (an installed wheel): then `eapo` (the package version) is what identifies
the code.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import time
from pathlib import Path
from typing import Any

SEGMENTS_FILE = "segments.jsonl"
_GIT_TIMEOUT_S = 5.0


def _git(args: list[str], folder: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), *args],
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def code_version() -> dict[str, Any]:
    """eapo's version, and where eapo is imported from a git checkout, its commit and whether its source
    differs from that commit (`git_dirty`, over the package's own folder)."""
    import torch
    import transformers

    import eapo

    package = Path(eapo.__file__).resolve().parent
    commit = _git(["rev-parse", "HEAD"], package)
    status = _git(["status", "--porcelain", "--", "."], package) if commit else None
    return {
        "eapo": eapo.__version__,
        "git_commit": commit,
        "git_dirty": None if status is None else bool(status),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        match = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), flags=re.M)
        if match:
            return match.group(1).strip()
    return platform.processor() or "unknown"


# The instruction sets that decide how fast (and, with dtype auto, in which precision) a CPU computes. A
# model name alone can hide them: "AMD EPYC" named both an AVX2-only and an AVX512-BF16 machine here.
CPU_FEATURES = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def cpu_features() -> list[str]:
    """Which of CPU_FEATURES this CPU has (from /proc/cpuinfo's flags; [] where there is none)."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return []
    match = re.search(r"^flags\s*:\s*(.+)$", cpuinfo.read_text(), flags=re.M)
    flags = set(match.group(1).split()) if match else set()
    return [feature for feature in CPU_FEATURES if feature in flags]


def record_segment(run_dir: Path, step: int, *, resumed: bool) -> dict[str, Any]:
    """Append the stretch that starts now, at `step`, to `<run_dir>/segments.jsonl` and return it."""
    import torch

    row = {
        "step": int(step),
        "resumed": bool(resumed),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **code_version(),
        "cpu": cpu_model(),
        "cpu_features": cpu_features(),
        "torch_threads": torch.get_num_threads(),
    }
    with (Path(run_dir) / SEGMENTS_FILE).open("a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return row


def read_segments(run_dir: Path) -> list[dict[str, Any]]:
    """The run's stretches in order (empty for a run made before segments were recorded)."""
    path = Path(run_dir) / SEGMENTS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
