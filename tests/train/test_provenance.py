"""`<run>/segments.jsonl` (eapo.train.provenance): one row per start or resume, with the step it starts at and
the code (eapo version, git commit and whether the source differs from it) and machine that ran it."""

from __future__ import annotations

import platform
import re
from pathlib import Path

import pytest

from eapo.train import provenance
from eapo.train.config import load_config
from eapo.train.provenance import code_version, read_segments
from eapo.train.trainer import train


def test_every_start_and_resume_records_its_code_and_first_step(tmp_path: Path) -> None:
    config = load_config(
        "smoke",
        {"train": {"steps": 1}, "run": {"output_dir": str(tmp_path), "name": "r", "checkpoint_every": 1}},
    )
    first = train(config, progress=False)
    train(resume=first.run_dir, overrides=["--train.steps", "2"], progress=False)
    segments = read_segments(first.run_dir)
    assert [(s["step"], s["resumed"]) for s in segments] == [(0, False), (1, True)]
    for segment in segments:
        assert segment["eapo"] and segment["torch"] and segment["cpu"] and segment["torch_threads"] >= 1
        commit = segment["git_commit"]
        assert commit is None or re.fullmatch(r"[0-9a-f]{40}", commit)
        assert segment["git_dirty"] in (None, True, False)
        assert (commit is None) == (segment["git_dirty"] is None)
        assert set(segment["cpu_features"]) <= set(provenance.CPU_FEATURES)


@pytest.mark.skipif(not Path("/proc/cpuinfo").is_file(), reason="reads the CPU's flags from /proc/cpuinfo")
def test_the_cpu_features_agree_with_torchs_own_probe_of_bf16_units() -> None:
    """The model name can hide the machine kind ("AMD EPYC" was AVX2-only one day, AVX512-BF16 another):
    the recorded flags tell them apart, and they say bf16 units exactly where torch finds them."""
    from eapo.models.device import cpu_has_fast_bf16

    features = provenance.cpu_features()
    if platform.machine() == "x86_64":
        assert "avx2" in features  # every x86 machine this project has run on
    assert ("avx512_bf16" in features or "amx_bf16" in features) == cpu_has_fast_bf16()


def test_outside_a_git_checkout_the_package_version_identifies_the_code(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(provenance, "_git", lambda args, folder: None)
    version = code_version()
    assert version["git_commit"] is None and version["git_dirty"] is None and version["eapo"]


def test_a_run_made_before_segments_has_none(tmp_path: Path) -> None:
    assert read_segments(tmp_path) == []
