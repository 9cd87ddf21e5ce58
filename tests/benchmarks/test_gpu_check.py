"""benchmarks/gpu_check.sh (issue #18 item 4) cannot run here without a GPU; what can be checked on CPU:
the script parses, refuses a missing output folder, and the Python it calls accepts the arguments it
passes. (`bash benchmarks/gpu_check.sh OUT --dry-run` runs every part on CPU, reduced.)"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = REPO_ROOT / "benchmarks"
SCRIPT = BENCH_DIR / "gpu_check.sh"


def _run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, **kwargs)


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_script_parses_and_wants_an_output_folder() -> None:
    assert _run(["bash", "-n", str(SCRIPT)]).returncode == 0
    usage = _run(["bash", str(SCRIPT)])
    assert usage.returncode == 2 and "usage" in usage.stderr


def test_step_bound_accepts_the_gpu_arguments() -> None:
    text = _run([sys.executable, str(BENCH_DIR / "step_bound.py"), "--help"]).stdout
    for flag in ("--device", "--model-path", "--variants", "--quick", "--out-dir"):
        assert flag in text
    wrong = _run([sys.executable, str(BENCH_DIR / "step_bound.py"), "--smoke", "--variants", "nope"])
    assert wrong.returncode == 2 and "--variants" in wrong.stderr


def test_random_llama_and_trl_check_run_on_cpu(tmp_path: Path) -> None:
    """The two helpers in their CPU form: a small random Llama that eapo loads, and the TRL adapter's step
    plus its GRPO loss against TRL's own (fp32 here, tolerance 1e-6)."""
    made = _run([sys.executable, str(BENCH_DIR / "gpu_random_llama.py"), str(tmp_path / "llama"), "--small"])
    assert made.returncode == 0, made.stderr
    from eapo.models import ModelConfig, load_policy

    model, tokenizer = load_policy(ModelConfig(name=str(tmp_path / "llama"), device="cpu"))
    assert model.config.num_hidden_layers == 2 and len(tokenizer) == model.config.vocab_size
    pytest.importorskip("trl")
    out = tmp_path / "trl.json"
    checked = _run(
        [sys.executable, str(BENCH_DIR / "gpu_trl_check.py"), "--device", "cpu", "--out", str(out)]
    )
    assert checked.returncode == 0, checked.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["ok"] and result["eapo_step"]["finite"]
    assert result["grpo_vs_trl_loss"]["abs_diff"] <= 1e-6


def test_default_device_plugin_sets_the_device(tmp_path: Path) -> None:
    probe = tmp_path / "test_probe.py"
    probe.write_text("import torch\n\ndef test_device():\n    assert torch.empty(1).device.type == 'meta'\n")
    env = {"EAPO_DEFAULT_DEVICE": "meta", "PYTHONPATH": str(BENCH_DIR), "PATH": "/usr/bin:/bin"}
    ran = _run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "gpu_default_device",
            str(probe),
        ],
        env=env,
    )
    assert ran.returncode == 0, ran.stdout[-2000:]
