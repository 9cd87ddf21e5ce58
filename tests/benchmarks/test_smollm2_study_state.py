"""benchmarks/smollm2_study_state.py reads a grid's runs as `eapo compare` lays them out."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from eapo.train.config import load_config
from eapo.train.trainer import Trainer

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH_DIR))


def test_state_of_a_run_names_its_step_checkpoint_and_eval_curve(tmp_path: Path) -> None:
    state = importlib.import_module("smollm2_study_state")
    run_dir = tmp_path / "runs" / "pilot" / "grpo" / "seed0"
    config = load_config("smoke", {"algo": {"name": "grpo"}, "eval": {"every": 2, "k": 8}})
    Trainer(config, run_dir=run_dir, progress=False).run()
    one = state.run_state(run_dir)
    assert one["algo"] == "grpo" and one["last_step"] == config.train.steps == one["horizon"]
    assert one["resumes_from"] == f"step_{config.train.steps:06d}"
    assert one["eval_curve"][0]["step"] == 0  # the start is evaluated
    assert one["last_10_steps"]["reward_mean"] is not None

    out = tmp_path / "state.json"
    cmd = [sys.executable, str(BENCH_DIR / "smollm2_study_state.py"), "--runs", str(tmp_path / "runs")]
    subprocess.run([*cmd, "--out", str(out)], check=True, capture_output=True, text=True)
    written = json.loads(out.read_text())
    assert written["final"] is False and len(written["runs"]) == 1 and "machine" in written


def test_slow_steps_count_the_time_lost_past_the_median() -> None:
    state = importlib.import_module("smollm2_study_state")
    # Median 30 s; the 100 s step is past 1.8x (54 s) and loses 70 s of 370; the 50 s step is not slow.
    seconds = [30.0, 30.0, 30.0, 30.0, 30.0, 30.0, 30.0, 40.0, 50.0, 100.0]
    rows = [{"time/step": s, "response/truncated_frac": 0.0 if s < 100 else 1 / 64} for s in seconds]
    lost = state.slow_steps([*rows, {"step": 10, "eval/avg@8": 0.5}])  # an evaluation row has no step time
    assert lost["count"] == 1 and lost["share_of_step_time"] == round(70 / 400, 3)
    assert lost["with_truncated_response"] == 1
    rows[-1]["response/truncated_frac"] = 0.0
    assert state.slow_steps(rows)["with_truncated_response"] == 0
    assert state.slow_steps([]) == {
        "count": 0,
        "with_truncated_response": 0,
        "excess_hours": 0.0,
        "share_of_step_time": 0.0,
    }


def test_the_pilot_screen_decides_only_when_every_rate_has_its_step_100_evaluation() -> None:
    state = importlib.import_module("smollm2_study_state")

    def run(rate: str, values: list[float]) -> dict:
        curve = [{"step": 20 * i, "avg@8": v} for i, v in enumerate(values)]
        return {"run": f"runs/smollm2_study/pilot_lr{rate}/grpo/seed0", "eval_curve": curve}

    flat = [0.4] * 6  # steps 0..100: AUC 0.4
    runs = [run("3e-6", [0.4, 0.5, 0.5, 0.5, 0.5, 0.5]), run("1e-5", flat), run("1e-6", flat[:4])]
    pending = state.screen_decision(runs)
    assert not pending["decided"] and pending["pending"] == ["1e-6"] and "continue" not in pending
    runs[2] = run("1e-6", [0.4, 0.5, 0.5, 0.5, 0.5, 0.49, 0.9])  # the step-120 point is not counted
    decided = state.screen_decision(runs)
    assert decided["auc"]["1e-5"] == 0.4 and decided["auc"]["3e-6"] == 0.49
    # 1e-6's AUC is 0.489 (within 0.02 of the best), 1e-5's 0.4: only 1e-5 is screened out.
    assert (
        decided["decided"] and decided["continue"] == ["1e-6", "3e-6"] and decided["screened_out"] == ["1e-5"]
    )


def test_the_horizon_is_the_first_step_where_the_mean_pilot_curve_reaches_90_percent_of_its_gain() -> None:
    state = importlib.import_module("smollm2_study_state")
    steps = [0, 20, 40, 60, 80, 100, 120, 140, 160, 180, 200, 220, 240, 250]

    def run(seed: int, values: list[float]) -> dict:
        curve = [{"step": s, "avg@8": v} for s, v in zip(steps, values, strict=False)]
        return {"run": f"runs/smollm2_study/pilot_lr3e-6/grpo/seed{seed}", "seed": seed, "eval_curve": curve}

    rising = [0.4 + 0.03 * i for i in range(len(steps))]  # 0.40 ... 0.79
    runs = [run(0, rising), run(1, rising[:11]), run(0, rising)]  # seed 1 stopped at step 200
    runs[2]["run"] = runs[2]["run"].replace("3e-6", "1e-5")  # another rate's run is not read
    assert not state.horizon_decision(runs)["decided"]
    runs[1] = run(1, [v + 0.02 for v in rising])
    decided = state.horizon_decision(runs)
    # Mean curve 0.41 + 0.03 i; end = mean of the points at 240 and 250 = 0.785; 90% of the gain: 0.7475,
    # first reached at i = 12 (step 240): a curve that never flattens gets its last steps.
    assert decided["decided"] and decided["seeds"] == [0, 1]
    assert abs(decided["end"] - 0.785) < 1e-9 and decided["horizon"] == 240
    flattening = [0.4, 0.5, 0.6, 0.66, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7]
    runs = [run(0, flattening), run(1, flattening)]
    assert state.horizon_decision(runs)["horizon"] == 80  # threshold 0.4 + 0.9 x 0.3 = 0.67; 0.66 at step 60


def test_the_snapshot_lists_every_planned_analysis_finished_under_way_or_not_started(tmp_path: Path) -> None:
    from eapo.journal import append_row, open_journal

    state = importlib.import_module("smollm2_study_state")
    analyses = tmp_path / "runs" / "analyses"
    open_journal(analyses / "credit_start" / "continuations.journal.jsonl", "key", chunks=600)
    for chunk in range(3):
        append_row(analyses / "credit_start" / "continuations.journal.jsonl", {"chunk": chunk, "outputs": []})
    (analyses / "gradients_cosine_start.json").write_text("{}")
    (analyses / "quadrants_grpo").mkdir()
    (analyses / "quadrants_grpo" / "summary.json").write_text("{}")
    listed = {a["name"]: a for a in state.analyses_state(tmp_path / "runs")}
    assert list(listed) == list(state.PLANNED_ANALYSES)
    assert listed["credit_start"]["state"] == "under way"
    assert listed["credit_start"]["finished_pieces"] == 3 and listed["credit_start"]["pieces"] == 600
    assert listed["gradients_cosine_start"]["state"] == "finished"
    assert listed["quadrants_grpo"]["output"].endswith("quadrants_grpo/summary.json")
    assert listed["credit_end_eapo"]["state"] == "not started"


def test_the_planned_analyses_are_the_study_scripts() -> None:
    """Each planned analysis writes where the study script puts it (its arm loop reads `$arm`)."""
    state = importlib.import_module("smollm2_study_state")
    text = (BENCH_DIR / "smollm2_study.sh").read_text()
    for name in state.PLANNED_ANALYSES:
        generic = re.sub(r"_(grpo|eapo)$", "_$arm", name)
        assert f"analyses/{generic}" in text, name


def _script_commands() -> dict[str, str]:
    """The study script's grid commands, joined across their line continuations, by their --out folder."""
    text = (BENCH_DIR / "smollm2_study.sh").read_text().replace("\\\n", " ")
    commands = re.findall(r"eapo (?:compare|ablate) [^\n]*", text)
    outs = [(re.search(r'--out "\$OUT/(\w+)"', command), command) for command in commands]
    return {out.group(1): command for out, command in outs if out is not None}


def test_the_queue_plan_matches_the_study_script() -> None:
    state = importlib.import_module("smollm2_study_state")
    commands = _script_commands()
    for part, (folder, arms, seeds) in state.QUEUE_GRIDS.items():
        command = commands[part]
        assert f'--runs-dir "$OUT/{folder}"' in command and f'--seeds "${seeds}"' in command, part
        if isinstance(arms, list):
            assert f"--algos {','.join(arms)}" in command, part
        else:
            mode, random_controls = arms
            assert f"--mode {mode}" in command and ("--random-controls" in command) == random_controls, part
        assert state.script_seeds(seeds)


def test_queue_progress_counts_each_parts_runs_and_the_time_left(tmp_path: Path) -> None:
    state = importlib.import_module("smollm2_study_state")

    def run(folder: str, arm: str, seed: int, step: int, hours: float) -> dict:
        path = state._shown(tmp_path / folder / arm / f"seed{seed}")
        return {"run": path, "last_step": step, "horizon": 180, "finished": step == 180, "hours": hours}

    first = state.script_seeds("HEADLINE_SEEDS")[0]
    states = [
        run("runs", "grpo", first, 180, 3.0),
        run("runs", "eapo", first, 180, 2.0),
        run("runs", "grpo", first + 1, 90, 1.0),
    ]
    queue = state.queue_progress(tmp_path, states, horizon=180)
    headline = queue["parts"]["headline"]
    planned = 2 * len(state.script_seeds("HEADLINE_SEEDS"))
    assert headline == {
        "planned": planned,
        "finished": 2,
        "under_way": [f"grpo/seed{first + 1} at step 90"],
        "not_started": planned - 3,
    }
    assert queue["parts"]["complex_headline"]["finished"] == 0  # its runs live in complex_runs
    # The controls' α = 0 arm reads the grpo runs (Arm.runs_of): 7 of its 8 arms train.
    assert queue["parts"]["controls"]["planned"] == 7 * len(state.script_seeds("GRID_SEEDS"))
    # The median cost of a step in the finished runs (3.0 h and 2.0 h over 180 steps: the upper middle,
    # 60 s), over two slots; the run under way has 90 steps left, each run not started 180.
    assert queue["median_step_seconds"] == 60.0 and queue["run_hours"] == 3.0
    assert queue["steps_left"] == 90 + 180 * (queue["runs_left"] - 1)
    assert queue["hours_left_two_side_by_side"] == round(queue["steps_left"] * 60 / 3600 / 2, 1)
    assert queue["run_equivalents_left"] == queue["runs_left"] - 0.5


def test_a_step_is_the_unit_of_the_time_left(tmp_path: Path) -> None:
    """A finished pilot run of 250 steps costs more than a grid run of 180 but not more per step: the
    estimate must not read it as the cost of a grid run."""
    state = importlib.import_module("smollm2_study_state")
    pilot = {"run": "pilot/grpo/seed0", "last_step": 250, "horizon": 250, "finished": True, "hours": 5.0}
    queue = state.queue_progress(tmp_path, [pilot], horizon=180)
    assert queue["median_step_seconds"] == 72.0 and queue["run_hours"] == 3.6
    assert queue["step_timed_by"] == "finished runs"


def test_before_any_run_finishes_the_runs_under_way_time_a_step(tmp_path: Path) -> None:
    """On a new machine no run has finished yet: the runs past their first evaluations time a step (their
    hours over their steps so far), the ones that have barely started do not, and with neither the time
    left is unknown rather than guessed."""
    state = importlib.import_module("smollm2_study_state")
    started = {"run": "runs/grpo/seed100", "last_step": 10, "horizon": 180, "finished": False, "hours": 0.5}
    going = {"run": "runs/eapo/seed100", "last_step": 120, "horizon": 180, "finished": False, "hours": 2.0}
    queue = state.queue_progress(tmp_path, [started, going], horizon=180)
    assert queue["median_step_seconds"] == 60.0 and queue["step_timed_by"].startswith("runs under way")
    unknown = state.queue_progress(tmp_path, [started], horizon=180)
    assert unknown["median_step_seconds"] is None and unknown["hours_left_two_side_by_side"] is None


def test_the_pilot_decisions_come_from_its_report_once_written(tmp_path: Path, monkeypatch: Any) -> None:
    """The pilot's report is the record the grids read: with it written, its screen and horizon stand even
    when the pilot's runs are gone (a replaced machine); without it, the rules read the runs here."""
    state = importlib.import_module("smollm2_study_state")
    report = tmp_path / "compare_smollm2_pilot.json"
    screen = {"step": 100, "decided": True, "continue": ["3e-6"]}
    report.write_text(json.dumps({"screen": screen, "horizon": {"decided": True, "horizon": 180}}))
    monkeypatch.setattr(state, "PILOT_REPORT", report)
    decided_screen, decided_horizon = state.pilot_decisions([])
    assert decided_screen["continue"] == ["3e-6"] and decided_horizon["horizon"] == 180
    assert decided_horizon["source"] == "benchmarks/results/compare_smollm2_pilot.json"
    report.unlink()
    pending_screen, pending_horizon = state.pilot_decisions([])
    assert not pending_screen["decided"] and not pending_horizon["decided"]
