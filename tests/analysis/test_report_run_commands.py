"""End to end: train two tiny runs for real, then run `eapo quadrants`, `gradients`, `credit` and `report`
on them through the command line, and open the HTML report in headless Chromium when it is installed."""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from eapo.cli.run_commands import register
from eapo.errors import ConfigError
from eapo.tasks import Problem
from eapo.train.config import load_config
from eapo.train.trainer import train

# The built-in `smoke` config, with every step dumped and checkpointed (the gradients command re-scores a
# dump with the checkpoint one step before it) and the entropy change logged every step.
SMOKE_RUN = {"run": {"checkpoint_every": 1, "keep_checkpoints": 5, "dump_rollouts_every": 1}}


def _config(root: Path, name: str, algo: str) -> Any:
    values = {"run": {**SMOKE_RUN["run"], "output_dir": str(root), "name": name}, "algo": {"name": algo}}
    return load_config("smoke", values)


def _mixed_reward(completion: str, problem: Problem) -> float:
    # A 40-step SFT model is almost never right, and all-wrong groups have no quadrants (Â = 0); a reward
    # that splits each group (decided by the text, so any worker process agrees) populates all four.
    return float(len(completion) % 2 == 0)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("analysis-runs")
    return {
        algo: train(_config(root, algo, algo), progress=False, reward_fn=_mixed_reward).run_dir
        for algo in ("eapo", "grpo")
    }


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="eapo")
    register(parser.add_subparsers(dest="command"))
    args, rest = parser.parse_known_args(argv)
    return args.func(args, rest)


def test_quadrants_command(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli(["quadrants", "--run", str(runs["eapo"]), "--no-progress"]) == 0
    out = runs["eapo"] / "analysis" / "quadrants"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 3 and summary["dumps_used"] == 3
    # the run's precision travels with its analysis (a study's runs may train on machines that differ)
    assert summary["run_precision"] == json.loads((runs["eapo"] / "precision.json").read_text())
    shares = [summary["quadrants"][q]["share"] for q in ("PHR", "PLR", "NHR", "NLR", "ZERO")]
    assert sum(shares) == pytest.approx(1.0, abs=1e-6)
    grad_shares = [summary["quadrants"][q]["grad_share"] for q in ("PHR", "PLR", "NHR", "NLR")]
    if all(g is not None for g in grad_shares):
        assert sum(grad_shares) == pytest.approx(1.0, abs=1e-6)
    info = summary["entropy_information"]
    assert info["n"] > 0 and math.isfinite(info["corrected"])
    assert summary["advantages"]["sign_kept"]  # EAPO keeps the sign of Â (PAPER.md Eq. 7)
    for name in summary["figures"]:
        assert (out / name).stat().st_size > 5000
    assert "Four Quadrant Decomposition" in (out / "summary.md").read_text()
    assert "summary.md" in capsys.readouterr().out


def test_gradients_command(runs: dict[str, Path]) -> None:
    assert _cli(["gradients", "--run", str(runs["grpo"]), "--no-progress"]) == 0
    summary = json.loads((runs["grpo"] / "analysis" / "gradients" / "summary.json").read_text())
    assert summary["dumps_used"] == 3  # step 1 from the initial policy, steps 2-3 from checkpoints 1-2
    assert summary["run_precision"] == json.loads((runs["grpo"] / "precision.json").read_text())
    table = summary["table"]
    for label, shares in table["share"].items():
        assert sum(shares) == pytest.approx(1.0, abs=1e-6) or sum(shares) == 0.0, label
    # Each method's total Eq. 5 norm against GRPO's on the same tokens: EAPO moves every |Â| by at most
    # α/φ = 10% (Eq. 7) and does move it; W-REINF (positives × 0.1) and Forking (top 20% only) remove signal.
    ratios = table["total_vs_grpo"]
    assert 0.9 <= ratios["eapo"] <= 1.1 and ratios["eapo"] != pytest.approx(1.0, abs=1e-9)
    assert ratios["w_reinf"] < 1.0 and ratios["forking"] < 1.0
    assert table["mean_entropy"] == sorted(table["mean_entropy"])
    assert (runs["grpo"] / "analysis" / "gradients" / summary["figure"]).stat().st_size > 5000


def test_credit_command_on_a_run_and_on_a_model(runs: dict[str, Path]) -> None:
    argv = [
        "--positions",
        "10",
        "--k",
        "3",
        "--m",
        "4",
        "--problems",
        "4",
        "--bootstrap",
        "50",
        "--no-progress",
    ]
    assert _cli(["credit", "--run", str(runs["eapo"]), *argv]) == 0
    out = runs["eapo"] / "analysis" / "credit"
    positions = [json.loads(line) for line in (out / "positions.jsonl").read_text().splitlines()]
    assert len(positions) == 10
    for p in positions:
        assert p["quadrant"] in ("PHR", "PLR", "NHR", "NLR", "ZERO")
        assert p["entropy"] >= 0 and len(p["alternatives"]) == 3 and p["trials"] == [4, 4, 4]
        assert p["ci_low"] <= p["corrected"] + 1e-12 <= p["ci_high"] + 2e-12
        assert p["plugin"] <= math.log(2) + 1e-9  # a binary reward carries at most log 2 nats
        assert abs(p["hindsight_kl"] - p["plugin"]) < 1e-9  # Proposition 2
        # EAPO's rule is recorded for every position; in a group with mixed rewards it is the quadrant's H.
        assert isinstance(p["above_group_mean"], bool)
        if p["quadrant"] != "ZERO":
            assert p["above_group_mean"] == (p["quadrant"] in ("PHR", "NHR"))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["all"]["n"] == 10 and 0.0 <= summary["all"]["exceed_fraction"] <= 1.0
    rule = summary["eapo_rule"]
    assert rule["n"] == 10 and rule["above_share"] == sum(p["above_group_mean"] for p in positions) / 10
    assert set(rule) >= {"detectable", "top_quarter"}
    assert (out / "credit_vs_entropy.png").stat().st_size > 5000

    assert not (out / "continuations.journal.jsonl").exists()  # removed once the results are written

    checkpoint = sorted((runs["eapo"] / "checkpoints").iterdir())[-1]
    model_out = runs["eapo"].parent / "credit-of-checkpoint"
    assert _cli(["credit", "--model", str(checkpoint), "--out", str(model_out), *argv]) == 0
    assert len((model_out / "positions.jsonl").read_text().splitlines()) == 10


def test_a_stopped_credit_probe_resumes_from_its_journal_with_the_same_results(
    runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from eapo.rollout import continuation

    argv = ["--positions", "6", "--k", "2", "--m", "3", "--problems", "3", "--bootstrap", "20"]
    argv += ["--no-progress", "--model", str(sorted((runs["grpo"] / "checkpoints").iterdir())[-1])]
    argv += ["--sampling.batch_rows", "8"]  # 36 continuations in 5 chunks
    assert _cli(["credit", *argv, "--out", str(tmp_path / "whole")]) == 0

    real_append = continuation.append_row
    written = 0

    def stop_after_two_chunks(path: Path, row: dict[str, Any]) -> None:
        nonlocal written
        if written == 2:
            raise KeyboardInterrupt
        real_append(path, row)
        written += 1

    monkeypatch.setattr(continuation, "append_row", stop_after_two_chunks)
    with pytest.raises(KeyboardInterrupt):
        _cli(["credit", *argv, "--out", str(tmp_path / "stopped")])
    journal = tmp_path / "stopped" / "continuations.journal.jsonl"
    assert len(journal.read_text().splitlines()) == 1 + 2
    monkeypatch.setattr(continuation, "append_row", real_append)
    assert _cli(["credit", *argv, "--out", str(tmp_path / "stopped")]) == 0
    assert not journal.exists()
    whole = (tmp_path / "whole" / "positions.jsonl").read_text()
    assert (tmp_path / "stopped" / "positions.jsonl").read_text() == whole


def test_gradient_cosine_command_writes_its_tables_and_leaves_no_journal(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "cosine.json"
    argv = ["gradients", "--cosine", "--run", str(runs["grpo"]), "--prompts", "2", "--algos", "grpo,eapo"]
    assert _cli([*argv, "--output", str(out), "--all-groups", "--no-progress"]) == 0
    result = json.loads(out.read_text())
    assert set(result["algorithms"]) == {"grpo", "eapo"} and "control" in result
    assert out.with_suffix(".md").is_file() and not out.with_suffix(".journal.jsonl").exists()


def test_credit_needs_exactly_one_source(runs: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match="exactly one"):
        _cli(["credit"])
    with pytest.raises(ConfigError, match="unknown arguments"):
        _cli(["quadrants", "--run", str(runs["eapo"]), "--bogus", "1"])


def _report(runs: dict[str, Path], path: Path) -> str:
    assert (
        _cli(["report", "--runs", f"{runs['eapo']},{runs['grpo']}", "--out", str(path), "--no-progress"]) == 0
    )
    return path.read_text()


def test_report_is_self_contained(runs: dict[str, Path], tmp_path: Path) -> None:
    page = _report(runs, tmp_path / "report.html")
    assert page.count("<svg") >= 4  # three curves and the quadrant figure
    spans = re.findall(r'<span class="tok" [^>]*data-h="([-0-9.]+)"', page)
    assert len(spans) > 10
    # Nothing is fetched: no external scripts, styles, images or fonts (an SVG xmlns is a name, not a fetch).
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "<link" not in page and "@import" not in page
    assert "eapo" in page and "grpo" in page


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]


def test_report_renders_in_headless_chromium(runs: dict[str, Path], tmp_path: Path) -> None:
    chromium = _chromium()
    if chromium is None:
        # CI installs Chromium and sets EAPO_REQUIRE_CHROMIUM, so there a missing browser fails the test.
        message = "headless Chromium is not installed (Debian: apt-get install -y chromium)"
        if os.environ.get("EAPO_REQUIRE_CHROMIUM"):
            pytest.fail(message)
        pytest.skip(message + "; the HTML report's rendering is not checked")
    path = tmp_path / "report.html"
    page = _report(runs, path)
    n_spans = len(re.findall(r'<span class="tok"', page))
    profile = tmp_path / "profile"
    command = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=3000"]
    dom = subprocess.run(
        [*command, "--dump-dom", path.resolve().as_uri()], capture_output=True, text=True, timeout=120
    ).stdout
    # The script ran: it marks the body and paints every token from its data attributes.
    assert f'data-rendered="{n_spans}"' in dom
    painted = re.findall(r'<span class="tok"[^>]*style="background-color: rgb\((\d+), (\d+), (\d+)\);?"', dom)
    assert len(painted) == n_spans
    assert any(tuple(map(int, rgb)) != (255, 255, 255) for rgb in painted)  # some tokens are coloured
    assert dom.count("<svg") >= 4
    shot = tmp_path / "report.png"
    subprocess.run(
        [*command, f"--screenshot={shot}", "--window-size=1200,1600", path.resolve().as_uri()],
        capture_output=True,
        timeout=120,
    )
    assert shot.is_file() and shot.stat().st_size > 20_000
