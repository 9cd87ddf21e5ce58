"""TRL runs as eapo run folders: same dumps and quadrant tables as `eapo train`, diagnostics for a plain
`trl.GRPOTrainer` without changing its math, and the example's acceptance commands (issue #22)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("trl", reason="TRL is not installed (pip install 'eapo[trl]')")

import torch
from datasets import Dataset
from trl import GRPOConfig, GRPOTrainer

import eapo.integrations.trl as trl_adapter
import eapo.train.trainer as trainer_module
from eapo.analysis.quadrants import analyze_quadrants
from eapo.core import group_advantages
from eapo.integrations.trl import EAPOConfig, EAPOTrainer, add_eapo_diagnostics
from eapo.train.config import load_config
from eapo.train.dumps import dump_paths, load_dump
from eapo.train.logging import read_metrics

from .fixed_batch import (
    GROUP,
    PROMPT_IDS,
    assert_same_dump,
    assert_same_quadrant_tables,
    eapo_train_run,
    expected_dump,
    fixed_batch,
    scores,
)

REPO = Path(__file__).resolve().parents[2]


def _trl_run(root: Path, model_and_tokenizer: Any, monkeypatch: pytest.MonkeyPatch) -> Path:
    """EAPOTrainer's generation step on the fixed batch, as if TRL had sampled and scored it."""
    batch = fixed_batch()
    model, tokenizer = model_and_tokenizer
    output_dir = root / "trl-run"
    args = EAPOConfig(
        output_dir=str(output_dir),
        eapo_dump_every=1,
        use_cpu=True,
        bf16=False,
        report_to="none",
        num_generations=GROUP,
        per_device_train_batch_size=GROUP,
        max_completion_length=6,
        gradient_checkpointing=False,
    )
    dataset = Dataset.from_dict({"prompt": ["1 + 2 =", "3 + 4 ="]})
    trainer = EAPOTrainer(
        model=model, reward_funcs=lambda completions, **_: [0.0] * len(completions), args=args,
        train_dataset=dataset, processing_class=tokenizer,
    )  # fmt: skip
    # TRL's own estimator adds 1e-4 to the std (eapo and verl 1e-6); the fixed batch gives every host the
    # same GRPO advantages, so that what is compared is the bookkeeping after them.
    advantages = group_advantages(batch["rewards"], GROUP, "grpo")[0]

    def generated(self: Any, inputs: Any) -> dict[str, torch.Tensor]:
        self.eapo_diagnostics.capture_rewards(batch["rewards"][:, None])
        return {
            "prompt_ids": PROMPT_IDS,
            "prompt_mask": torch.ones_like(PROMPT_IDS),
            "completion_ids": batch["response_ids"],
            "completion_mask": batch["response_mask"].long(),
            "advantages": advantages,
        }

    monkeypatch.setattr(GRPOTrainer, "_generate_and_score_completions", generated)
    monkeypatch.setattr(trl_adapter, "rollout_scores", lambda *args, **kwargs: scores())
    trainer.eapo_diagnostics.start(0)
    assert trainer.model is not None
    trainer.model.train()
    trainer._generate_and_score_completions([])
    trainer.eapo_diagnostics.end_step(1)
    trainer.eapo_diagnostics.close()
    return output_dir


def test_one_fixed_batch_gives_the_same_dump_and_quadrant_table_in_eapo_and_trl(
    tmp_path: Path, tiny_model_and_tokenizer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    eapo_dir = eapo_train_run(tmp_path, monkeypatch)
    trl_dir = _trl_run(tmp_path, tiny_model_and_tokenizer, monkeypatch)
    reference = expected_dump()
    eapo_dump = load_dump(eapo_dir / "rollouts" / "step_000001.safetensors")
    trl_dump = load_dump(trl_dir / "rollouts" / "step_000001.safetensors")
    assert (eapo_dump["host"], trl_dump["host"]) == ("eapo", "trl")
    assert_same_dump(eapo_dump, reference)
    assert_same_dump(trl_dump, reference)
    # The per-step quadrant metrics both hosts log (polarity by the GRPO advantage, PAPER.md §4.1).
    eapo_row = next(r for r in read_metrics(eapo_dir) if "quadrant/PHR/share" in r)
    trl_row = next(r for r in read_metrics(trl_dir) if "quadrant/PHR/share" in r)
    shared = sorted(k for k in trl_row if k.startswith("quadrant/") and k in eapo_row)
    assert {k.split("/")[-1] for k in shared} >= {
        "share", "mean_entropy", "mean_abs_advantage", "mean_abs_shaped_adv", "grad_norm_sum", "count",
    }  # fmt: skip
    for key in shared:
        assert trl_row[key] == pytest.approx(eapo_row[key], abs=1e-6), key
    for key in ("reward/mean", "entropy/mean", "advantage/mean_abs", "advantage/shaped_mean_abs"):
        assert trl_row[key] == pytest.approx(eapo_row[key], abs=1e-6), key
    tables = [
        analyze_quadrants(run, out_dir=tmp_path / f"analysis-{run.name}", n_bootstrap=20)
        for run in (eapo_dir, trl_dir)
    ]
    assert tables[0]["dumps_used"] == tables[1]["dumps_used"] == 1
    assert_same_quadrant_tables(tables[1], tables[0])
    assert tables[0]["entropy_information"] == tables[1]["entropy_information"]


def _count_ones(completions: list[str], **_: object) -> list[float | None]:
    """A reward with variance inside most groups of a random model: how many '1' tokens it wrote."""
    return [float(c.split().count("1")) for c in completions]


def _grpo_trainer(tmp_path: Path, name: str, model: Any, tokenizer: Any) -> GRPOTrainer:
    args = GRPOConfig(
        output_dir=str(tmp_path / name),
        use_cpu=True,
        bf16=False,
        report_to="none",
        num_generations=GROUP,
        per_device_train_batch_size=GROUP,
        max_completion_length=6,
        max_steps=2,
        logging_steps=1,
        save_strategy="no",
        learning_rate=1e-2,
        gradient_checkpointing=False,
        seed=0,
    )
    dataset = Dataset.from_dict({"prompt": ["1 + 2 =", "3 + 4 =", "a b", "c d"]})
    return GRPOTrainer(
        model=model,
        reward_funcs=_count_ones,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
    )


def test_add_eapo_diagnostics_leaves_grpo_trainer_math_unchanged(
    tmp_path: Path, tiny_model_and_tokenizer: Any
) -> None:
    model, tokenizer = tiny_model_and_tokenizer
    start = {k: v.clone() for k, v in model.state_dict().items()}
    plain = _grpo_trainer(tmp_path, "plain", model, tokenizer)
    plain.train()
    assert plain.model is not None
    plain_weights = {k: v.clone() for k, v in plain.model.state_dict().items()}
    model.load_state_dict(start)
    diagnosed = add_eapo_diagnostics(_grpo_trainer(tmp_path, "diagnosed", model, tokenizer), dump_every=1)
    diagnosed.train()
    # Same samples, same advantages, same loss: the weights end bit-identical.
    assert diagnosed.model is not None
    for key, value in diagnosed.model.state_dict().items():
        assert torch.equal(value, plain_weights[key]), key
    run = tmp_path / "diagnosed"
    assert [p.name for p in dump_paths(run)] == ["step_000001.safetensors", "step_000002.safetensors"]
    for path in dump_paths(run):
        dump = load_dump(path)
        assert dump["host"] == "trl" and dump["algo"] == "grpo"
        assert torch.equal(dump["shaped_advantages"], dump["advantages"])  # nothing shaped
        assert dump["rewards"].shape == (GROUP,) and len(dump["prompts"]) == 1  # one prompt per step
    rows = read_metrics(run)
    assert [r["step"] for r in rows] == [1, 2]
    assert all(sum(r[f"quadrant/{q}/share"] for q in ("PHR", "PLR", "NHR", "NLR", "ZERO")) == 1 for r in rows)
    logged = [entry for entry in diagnosed.state.log_history if "loss" in entry]
    assert all("quadrant/PHR/share" in entry for entry in logged)
    with pytest.raises(Exception, match="dump_every"):
        add_eapo_diagnostics(_grpo_trainer(tmp_path, "bad", model, tokenizer), dump_every=0)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600, check=False
    )


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_example_run_folder_is_read_by_quadrants_and_report(tmp_path: Path) -> None:
    """The issue's acceptance: the TRL example's tiny run, then `eapo quadrants` and `eapo report`."""
    out = tmp_path / "trl"
    example = REPO / "examples" / "trl" / "train_eapo_trl.py"
    trained = _cli(
        str(example),
        "--tiny",
        "--max-steps",
        "4",
        "--dump-every",
        "1",
        "--output-dir",
        str(out),
        cwd=tmp_path,
    )
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert len(dump_paths(out)) == 4 and (out / "config.yaml").is_file()
    quadrants = _cli("-m", "eapo.cli", "quadrants", "--run", str(out), "--no-progress", cwd=tmp_path)
    assert quadrants.returncode == 0, quadrants.stderr[-2000:]
    assert re.search(r"^\| PHR \| [0-9.]+ ", quadrants.stdout, flags=re.M), quadrants.stdout
    summary = json.loads((out / "analysis" / "quadrants" / "summary.json").read_text())
    assert summary["steps"] == 4 and summary["dumps_used"] == 4
    gradients = _cli("-m", "eapo.cli", "gradients", "--run", str(out), "--no-progress", cwd=tmp_path)
    assert gradients.returncode == 0, gradients.stderr[-2000:]  # Σπ² is in the dumps: no model reloaded

    config = load_config("smoke", {"run": {"output_dir": str(tmp_path), "name": "eapo-run"}})
    eapo_run = trainer_module.train(config, progress=False, reward_fn=lambda c, p: float(len(c) % 2 == 0))
    page = tmp_path / "report.html"
    runs = f"{out},{eapo_run.run_dir}"
    report = _cli(
        "-m", "eapo.cli", "report", "--runs", runs, "--out", str(page), "--no-progress", cwd=tmp_path
    )
    assert report.returncode == 0, report.stderr[-2000:]
    html = page.read_text()
    assert "trl" in html and "eapo-run" in html and 'class="tok"' in html
    chromium = _chromium()
    if chromium is None:
        message = "headless Chromium is not installed (Debian: apt-get install -y chromium)"
        if os.environ.get("EAPO_REQUIRE_CHROMIUM"):
            pytest.fail(message)
        pytest.skip(message + "; the report's rendering is not checked")
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
    ]
    dom = subprocess.run(
        [chromium, *flags, f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=3000",
         "--dump-dom", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    ).stdout  # fmt: skip
    n_spans = len(re.findall(r'<span class="tok"', html))
    assert n_spans > 0 and f'data-rendered="{n_spans}"' in dom
