"""The experiment grid: identical data and initial weights across arms, resumability, final evaluations."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

import eapo.analysis.grid as grid
from eapo.analysis.grid import Arm, FinalEvalSettings, GridBusy, GridSpec, run_grid
from eapo.errors import ConfigError
from eapo.tasks.splits import validation_problems
from eapo.train.dumps import load_dump
from eapo.train.logging import read_metrics
from eapo.train.run_dir import LOCK_FILE, RunLock

# A grid small enough for a test: a 1-layer tiny model, 2 prompts x 4 samples, 2 steps.
TINY_GRID = {
    "task": {"num_train": 64, "num_eval": 16},
    "model": {
        "tiny": {
            "n_layer": 1,
            "n_embd": 32,
            "n_head": 2,
            "sft_max_steps": 40,
            "sft_eval_every": 20,
            "target_accuracy": [0.0, 1.0],
        }
    },
    "sampling": {"max_new_tokens": 24},
    "eval": {"every": 1, "num_problems": 4, "k": 2},
    "train": {"prompts_per_step": 2, "group_size": 4, "micro_batch_rows": 8, "lr": 1e-3, "mini_batches": 1},
    "run": {
        "checkpoint_every": 1,
        "keep_checkpoints": 3,
        "tensorboard": False,
        "entropy_change_every": 0,
        "dump_rollouts_every": 1,
    },
}
ARMS = [Arm("grpo", {"algo": {"name": "grpo"}}), Arm("eapo", {"algo": {"name": "eapo"}})]


def _spec(out: Path, **changes: Any) -> GridSpec:
    values = {
        "arms": ARMS,
        "seeds": [0, 1],
        "out_dir": out,
        "overrides": json.loads(json.dumps(TINY_GRID)),
        "steps": 2,
        "final_eval": FinalEvalSettings(samples=4, problems=4),
    }
    values.update(changes)
    return GridSpec(**values)


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Any:
    # The test machine's 2 cores are shared by parallel jobs: more than one intra-op thread per process
    # oversubscribes them (measured here: a 2-step grid run took 6x longer with 2 threads than with 1).
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def finished_grid(tmp_path_factory: pytest.TempPathFactory) -> tuple[GridSpec, list[grid.RunRecord]]:
    spec = _spec(tmp_path_factory.mktemp("grid") / "out")
    return spec, run_grid(spec, progress=False)


def _prompts(run_dir: Path, step: int) -> list[str]:
    return load_dump(run_dir / "rollouts" / f"step_{step:06d}.safetensors")["prompts"]


def test_arms_of_a_seed_share_data_order_and_initial_weights(finished_grid: Any) -> None:
    spec, records = finished_grid
    assert [(r.arm, r.seed) for r in records] == [("grpo", 0), ("eapo", 0), ("grpo", 1), ("eapo", 1)]
    out = spec.out_dir
    for step in (1, 2):
        for seed in (0, 1):
            assert _prompts(out / "grpo" / f"seed{seed}", step) == _prompts(
                out / "eapo" / f"seed{seed}", step
            )
    assert _prompts(out / "grpo" / "seed0", 1) != _prompts(out / "grpo" / "seed1", 1)
    # Same initial weights within a seed: the start-of-run evaluation (same sampling seed) is identical.
    for seed in (0, 1):
        starts = [read_metrics(out / arm / f"seed{seed}")[0] for arm in ("grpo", "eapo")]
        assert {k: v for k, v in starts[0].items() if k.startswith("eval/")} == {
            k: v for k, v in starts[1].items() if k.startswith("eval/")
        }
    # per_seed init: each seed warms up its own tiny model.
    configs = {seed: (out / "grpo" / f"seed{seed}" / "config.yaml").read_text() for seed in (0, 1)}
    assert "seed: 1" in configs[1].split("tiny:")[1].split("sampling:")[0]


def test_records_hold_curves_and_final_evaluation(finished_grid: Any) -> None:
    _, records = finished_grid
    for record in records:
        assert record.status == "completed"
        assert record.eval_curve["step"] == [0.0, 1.0, 2.0]
        assert set(record.eval_curve) == {"step", "avg@1", "pass@1", "avg@2", "pass@2"}
        assert record.entropy_curve["step"] == [1.0, 2.0]
        assert set(record.quadrant_shares) == {"step", "PHR", "PLR", "NHR", "NLR", "ZERO"}
        assert record.final is not None and record.final["samples"] == 4
        assert list(record.final["pass_at_k"]) == ["1", "2", "4"]
        assert len(record.final["correct_per_problem"]) == 4
        assert record.final["avg"] == pytest.approx(record.final["pass_at_k"]["1"])
        assert record.tokens_generated > 0 and record.train_seconds > 0 and record.wall_seconds > 0
        cached = json.loads((Path(record.run_dir) / grid.GRID_EVAL).read_text())
        assert cached["final"]["avg"] == record.final["avg"]


def test_finished_runs_are_not_rerun(finished_grid: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    spec, records = finished_grid
    calls: list[Any] = []
    monkeypatch.setattr("eapo.train.trainer.train", lambda *a, **k: calls.append((a, k)))
    evals = {r.run_dir: (Path(r.run_dir) / grid.GRID_EVAL).stat().st_mtime_ns for r in records}
    again = run_grid(spec, progress=False)
    assert calls == []
    assert {r.run_dir: (Path(r.run_dir) / grid.GRID_EVAL).stat().st_mtime_ns for r in again} == evals
    assert [r.final for r in again] == [r.final for r in records]


def test_a_changed_config_in_the_same_folder_is_an_error(finished_grid: Any) -> None:
    spec, _ = finished_grid
    changed = _spec(spec.out_dir)
    changed.overrides["train"]["lr"] = 5e-4
    with pytest.raises(ConfigError, match=r"train\.lr"):
        run_grid(changed, progress=False)


def test_an_arm_with_runs_of_reads_that_arms_runs_and_trains_nothing(
    finished_grid: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec, records = finished_grid
    again = Arm("grpo_again", {"algo": {"name": "grpo"}}, "the grpo runs again", runs_of="grpo")
    calls: list[Any] = []
    monkeypatch.setattr("eapo.train.trainer.train", lambda *a, **k: calls.append((a, k)))
    got = run_grid(_spec(spec.out_dir, arms=[*ARMS, again]), progress=False)
    assert calls == []
    assert [(r.arm, r.seed) for r in got] == [
        (arm, seed) for seed in (0, 1) for arm in ("grpo", "eapo", "grpo_again")
    ]
    grpo = {r.seed: r for r in records if r.arm == "grpo"}
    for record in got:
        if record.arm == "grpo_again":
            assert record.run_dir == grpo[record.seed].run_dir
            assert record.final == grpo[record.seed].final
    assert not (spec.out_dir / "grpo_again").exists()
    summary = grid.grid_summary(got, [*ARMS, again])
    assert summary["grpo_again"]["runs_of"] == "grpo" and "runs_of" not in summary["grpo"]
    (paired,) = grid.paired_comparisons(got, [("grpo_again", "grpo")])
    assert paired.differences == [0.0, 0.0]
    assert (paired.interval.low, paired.interval.high) == (0.0, 0.0)
    table = grid.markdown_table(summary, {"grpo_again": paired}, "Δ")
    row = next(line for line in table.splitlines() if line.startswith("| grpo_again (grpo's runs) | 2 |"))
    assert "nan" not in row


def test_status_reads_where_each_run_stands_without_training(
    finished_grid: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec, _ = finished_grid
    out = tmp_path / "copy"
    shutil.copytree(spec.out_dir, out)
    # eapo seed 1 killed after step 1's checkpoint; seed 2 never started; one arm reads grpo's runs.
    run_dir = out / "eapo" / "seed1"
    shutil.rmtree(run_dir / "checkpoints" / "step_000002")
    rows = read_metrics(run_dir)
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows if r["step"] <= 1))
    again = Arm("grpo_again", {"algo": {"name": "grpo"}}, runs_of="grpo")
    calls: list[Any] = []
    monkeypatch.setattr("eapo.train.trainer.train", lambda *a, **k: calls.append((a, k)))
    status = grid.grid_status(_spec(out, arms=[*ARMS, again], seeds=[0, 1, 2]))
    assert calls == []
    states = {(run.arm, run.seed): run.state for run in status["runs"]}
    assert states[("grpo", 0)] == states[("eapo", 0)] == states[("grpo", 1)] == "finished"
    assert states[("eapo", 1)] == "under way" and states[("grpo", 2)] == "not started"
    killed = next(run for run in status["runs"] if (run.arm, run.seed) == ("eapo", 1))
    assert (killed.step, killed.checkpoint_step, killed.steps) == (1, 1, 2)
    assert killed.latest_eval is not None and killed.latest_eval[0] == 1
    assert status["counts"] == {"finished": 3, "failed": 0, "under way": 1, "not started": 2}
    assert status["runs_to_train"] == 6  # grpo_again's three are grpo's
    assert status["steps_left"] == 1 + 2 + 2
    # The median cost of a step (its evaluations included) in the three finished runs, logged by them.
    finished = [r for r in status["runs"] if r.state == "finished" and not r.runs_of]
    per_step = sorted(r.seconds / r.steps for r in finished)
    assert status["step_seconds"] == pytest.approx(per_step[1])
    assert status["hours_left_one_process"] == pytest.approx(5 * per_step[1] / 3600)
    text = grid.format_grid_status(status)
    assert "reads grpo's run" in text and "6 runs to train: 3 finished, 1 under way, 2 not started" in text
    assert "5 steps left" in text and not (out / "grpo" / "seed2").exists()


def test_runs_of_must_name_an_arm_that_trains(tmp_path: Path) -> None:
    for target in ("nope", "eapo_again"):
        arms = [*ARMS, Arm("eapo_again", runs_of="eapo"), Arm("x", runs_of=target)]
        with pytest.raises(ConfigError, match=f"reads the runs of '{target}'"):
            _spec(tmp_path, arms=arms).validate()


def test_grid_fields_cannot_be_overridden(tmp_path: Path) -> None:
    spec = _spec(tmp_path, overrides={"run": {"seed": 3}})
    with pytest.raises(ConfigError, match="--seeds"):
        spec.validate()
    with pytest.raises(ConfigError, match="repeated: grpo"):
        _spec(tmp_path, arms=[ARMS[0], ARMS[0]]).validate()
    with pytest.raises(ConfigError, match="--final-samples 0"):
        _spec(tmp_path, final_eval=FinalEvalSettings(samples=0)).validate()


def test_validation_problems_are_outside_both_splits() -> None:
    from eapo.tasks import TaskConfig, load_task

    config = TaskConfig(
        source="basic_arithmetic",
        params={"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1},
        num_train=100,
        num_eval=20,
    )
    task = load_task(config)
    chosen = validation_problems(config, 15)
    questions = [p.question for p in chosen]
    assert len(questions) == 15 == len(set(questions))
    assert not set(questions) & {p.question for p in task.train + task.eval}
    assert [p.question for p in validation_problems(config, 15)] == questions  # reproducible


def test_an_interrupted_run_resumes_from_its_checkpoint(
    finished_grid: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Last in the file: it rewinds one run of the shared grid (and leaves it finished again).
    spec, records = finished_grid
    original = records[-1]
    run_dir = Path(original.run_dir)
    full_rows = read_metrics(run_dir)
    # Make it look killed after step 1's checkpoint: no step-2 checkpoint, rows up to step 1, no final eval.
    shutil.rmtree(run_dir / "checkpoints" / "step_000002")
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in full_rows if r["step"] <= 1))
    (run_dir / grid.GRID_EVAL).unlink()
    assert grid.run_status(run_dir, 2) == "resumable"

    from eapo.train import trainer

    calls: list[dict[str, Any]] = []
    real_train = trainer.train

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return real_train(*args, **kwargs)

    monkeypatch.setattr(trainer, "train", spy)
    resumed = run_grid(spec, progress=False)[-1]
    assert len(calls) == 1 and Path(calls[0]["resume"]) == run_dir  # the three finished runs are skipped
    assert grid.run_status(run_dir, 2) == "finished"

    def training(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {k: v for k, v in r.items() if not k.startswith("time/") and k != "tokens_per_s"}
            for r in rows
            if "loss" in r
        ]

    assert training(read_metrics(run_dir)) == training(full_rows)  # exact resume on CPU
    assert resumed.final is not None and resumed.eval_curve["step"] == original.eval_curve["step"]


def test_a_run_held_by_another_process_is_left_to_it(tmp_path: Path) -> None:
    """Two processes on one grid: a run whose folder is locked (as a second process running the grid holds
    it; flock is per open file, so a lock taken here blocks the grid like another process's would) is not
    removed, trained or evaluated; the grid does every other run, then says which runs are held and by
    whom. Once the lock is gone, the same call finishes the held run and leaves the others alone."""
    spec = _spec(tmp_path / "out", seeds=[0], steps=1)
    held = grid.run_dir_of(spec, ARMS[0], 0)
    held.mkdir(parents=True)
    lock = RunLock(held).acquire()
    with pytest.raises(GridBusy, match=rf"1 of 2 runs .*grpo/seed0 \(pid {os.getpid()} on host"):
        run_grid(spec, progress=False)
    assert [p.name for p in held.iterdir()] == [LOCK_FILE]  # untouched: not removed, not started
    other = grid.run_dir_of(spec, ARMS[1], 0)
    assert grid.run_status(other, 1) == "finished"
    finished_at = (other / grid.GRID_RUN).stat().st_mtime_ns
    lock.release()
    records = run_grid(spec, progress=False)
    assert [(r.arm, r.status) for r in records] == [("grpo", "completed"), ("eapo", "completed")]
    assert (other / grid.GRID_RUN).stat().st_mtime_ns == finished_at  # not trained or evaluated again


_GRID_PROCESS = """
import json, sys
from pathlib import Path
import torch
import eapo.train.trainer as trainer
from eapo.analysis.grid import Arm, FinalEvalSettings, GridBusy, GridSpec, run_grid
torch.set_num_threads(1)
real_train = trainer.train
def spy(config=None, *args, **kwargs):
    run = kwargs.get("resume") or Path(config.run.output_dir) / config.run.name
    print("TRAINED", Path(run).resolve(), flush=True)
    return real_train(config, *args, **kwargs)
trainer.train = spy
arms = [Arm(name, {"algo": {"name": name}}) for name in ("grpo", "eapo")]
spec = GridSpec(arms=arms, seeds=[0, 1], out_dir=sys.argv[1], overrides=json.loads(sys.argv[2]), steps=3,
                final_eval=FinalEvalSettings(samples=4, problems=4))
try:
    print("RECORDS", len(run_grid(spec, progress=False)))
except GridBusy as err:
    print("BUSY", err)
"""


@pytest.mark.slow
def test_two_processes_split_one_grid(tmp_path: Path) -> None:
    """The same grid started twice at once, as `eapo compare` twice side by side: every run is trained by
    exactly one process, both get work, every run ends finished, and the process that ends last returns
    the grid's records (the other one, if it ends while a run is still held, says so)."""
    import subprocess
    import sys

    out = tmp_path / "out"
    command = [sys.executable, "-c", _GRID_PROCESS, str(out), json.dumps(TINY_GRID)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outputs = [p.communicate(timeout=900)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    trained = [
        {line.split()[1] for line in text.splitlines() if line.startswith("TRAINED")} for text in outputs
    ]
    assert all(trained) and not trained[0] & trained[1], trained  # both worked, never on the same run
    assert len(trained[0] | trained[1]) == 4
    assert any("RECORDS 4" in text for text in outputs), outputs
    for arm in ARMS:
        for seed in (0, 1):
            run_dir = out / arm.name / f"seed{seed}"
            assert grid.run_status(run_dir, 3) == "finished"
            steps = [r["step"] for r in read_metrics(run_dir) if "loss" in r]
            assert steps == [1, 2, 3]  # trained once: no step repeated or lost


def test_a_result_neutral_field_does_not_make_a_run_different() -> None:
    from eapo.analysis.grid import config_differences

    old = {"train": {"logprob_chunk_size": 1024, "lr": 1e-5}}
    assert config_differences(old, {"train": {"logprob_chunk_size": None, "lr": 1e-5}}) == []
    assert config_differences(old, {"train": {"logprob_chunk_size": None, "lr": 2e-5}}) == [
        "train.lr: 1e-05 there, 2e-05 now"
    ]


@pytest.mark.parametrize("keep", ["weights", "none"])
def test_keep_finished_prunes_a_run_it_trained_and_the_run_stays_finished(
    tmp_path: Path, keep: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--keep-finished frees a finished run's disk after its final evaluation: the older checkpoints go,
    then the optimizer state (weights) or the weights too (none). The run still reads as finished: a rerun
    trains nothing and reports the same; what can no longer be done says why."""
    from eapo.errors import CheckpointError
    from eapo.train.checkpoint import list_checkpoints, load_trainer_state, pruned_files
    from eapo.train.evaluate import resolve_eval_target

    spec = _spec(tmp_path / "out", arms=[ARMS[0]], seeds=[0], keep_finished=keep)
    (record,) = run_grid(spec, progress=False)
    run_dir = Path(record.run_dir)
    (final,) = list_checkpoints(run_dir)  # keep_checkpoints 3 kept steps 0-2; only the last is left
    assert final.name == "step_000002" and not (final / "trainer_state.safetensors").exists()
    weights = sorted(str(p.relative_to(final)) for p in (final / "model").glob("*.safetensors"))
    assert (weights == []) == (keep == "none")
    assert "trainer_state.safetensors" in pruned_files(final)
    assert grid.run_status(run_dir, 2) == "finished"
    with pytest.raises(CheckpointError, match="cannot be resumed"):
        load_trainer_state(final)  # what a --resume asked for more steps would need
    from eapo.train.trainer import train

    assert train(resume=run_dir, progress=False).stopped == "nothing_to_do"  # finished: nothing to resume
    if keep == "none":
        with pytest.raises(ConfigError, match="--keep-finished none"):
            resolve_eval_target(run_dir, None, None, None)
    else:
        _, model = resolve_eval_target(run_dir, None, None, None)
        assert model == str(final / "model")

    calls: list[Any] = []
    monkeypatch.setattr("eapo.train.trainer.train", lambda *a, **k: calls.append((a, k)))
    (again,) = run_grid(spec, progress=False)
    assert calls == [] and again.final == record.final


def test_a_run_found_finished_is_not_pruned(finished_grid: Any) -> None:
    """Only the runs a grid trains are pruned: a finished run another grid shares keeps its checkpoints."""
    from eapo.train.checkpoint import list_checkpoints

    spec, records = finished_grid
    before = {r.run_dir: list_checkpoints(Path(r.run_dir)) for r in records}
    run_grid(_spec(spec.out_dir, keep_finished="none"), progress=False)
    assert {r.run_dir: list_checkpoints(Path(r.run_dir)) for r in records} == before
    assert all((c / "trainer_state.safetensors").is_file() for cs in before.values() for c in cs)


def test_keep_finished_choices_are_the_checkpoint_modules() -> None:
    from eapo.cli import build_parser
    from eapo.train.checkpoint import KEEP_FINISHED

    parser = build_parser()
    for command in (["compare"], ["ablate", "--mode", "isolate"]):
        assert parser.parse_args(command).keep_finished == "all"  # nothing is deleted unless asked
        for keep in KEEP_FINISHED:
            assert parser.parse_args([*command, "--keep-finished", keep]).keep_finished == keep
        with pytest.raises(SystemExit):
            parser.parse_args([*command, "--keep-finished", "some"])
    with pytest.raises(ConfigError, match="--keep-finished 'some'"):
        _spec(Path("unused"), keep_finished="some").validate()


def test_archived_finished_runs_come_back_finished_on_a_new_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """benchmarks/study_runs.py: the finished runs of a study, archived without weights or optimizer state
    (what a repository can hold), come back into the same relative folder on another machine reading as
    finished: the grid trains nothing and reports the same. A run under way is not archived, an archived
    run is never overwritten (only the grid's files that changed are copied again), a run not evaluated by
    its grid yet waits, and rollout dumps come along only for the runs named. The analyses folder
    (outputs, journals of analyses under way) is mirrored as it grows and restored where it is missing."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import study_runs

    from eapo.train.checkpoint import list_checkpoints, pruned_files

    machine_a, machine_b, archive = tmp_path / "a", tmp_path / "b", tmp_path / "archive"
    machine_a.mkdir()
    machine_b.mkdir()
    monkeypatch.chdir(machine_a)  # the study's folder is relative, as benchmarks/smollm2_study.sh gives it
    spec = _spec(Path("study/runs"), arms=[ARMS[0]])
    records = run_grid(spec, progress=False)
    under_way = Path("study/runs/grpo/seed7")  # a copy whose final checkpoint is not written yet
    shutil.copytree("study/runs/grpo/seed0", under_way)
    shutil.rmtree(list_checkpoints(under_way)[-1])
    unevaluated = Path("study/runs/grpo/seed8")  # trained, but the grid's final evaluation not written yet
    shutil.copytree("study/runs/grpo/seed0", unevaluated)
    (unevaluated / "grid_eval.json").unlink()

    journal = Path("study/analyses/credit_start/continuations.journal.jsonl")  # an analysis under way
    journal.parent.mkdir(parents=True)
    journal.write_text('{"fingerprint": "f"}\n')
    (journal.parent / ".credit_start.lock").write_text("held")
    # What an end-of-run analysis may probe: a finished run with its weights, not one under way.
    assert study_runs.not_ready_to_probe(Path("study/runs/grpo/seed0")) is None
    assert "not finished" in (study_runs.not_ready_to_probe(under_way) or "")
    assert "not finished" in (study_runs.not_ready_to_probe(unevaluated) or "")
    written = study_runs.archive(Path("study"), archive, dumps=["runs/grpo/seed0"])
    assert study_runs.mirror_analyses(Path("study"), archive) == [archive / journal.relative_to("study")]
    journal.write_text('{"fingerprint": "f"}\n{"piece": 0}\n')  # it grows: archived again, once
    assert len(study_runs.mirror_analyses(Path("study"), archive)) == 1
    assert study_runs.mirror_analyses(Path("study"), archive) == []
    assert [str(p.relative_to(archive)) for p in written] == ["runs/grpo/seed0", "runs/grpo/seed1"]
    assert study_runs.archive(Path("study"), archive, dumps=[]) == []  # archived once, never again
    assert study_runs.refresh_grid_results(Path("study"), archive) == []
    grid_run = Path("study/runs/grpo/seed1/grid_run.json")  # the grid adds to it later (another evaluation)
    grid_run.write_text(grid_run.read_text().replace("}", ', "more": 1}'))
    archived_grid_run = archive / grid_run.relative_to("study")
    assert study_runs.refresh_grid_results(Path("study"), archive) == [archived_grid_run]
    assert archived_grid_run.read_text() == grid_run.read_text()
    for folder in written:
        (final,) = list_checkpoints(folder)  # only the final checkpoint, without weights or optimizer
        assert final.name == "step_000002" and not list(final.rglob("*.safetensors"))
        assert "trainer_state.safetensors" in pruned_files(final)
        # Nor the tokenizer's vocabulary file (MBs for a real LM, the same in every run).
        assert not (final / "model" / "tokenizer.json").exists()
        assert "model/tokenizer.json" in pruned_files(final)
        assert not list(folder.rglob(".*"))  # no locks or unfinished writes
        assert (folder / "rollouts").is_dir() == (folder.name == "seed0")
    assert grid.run_status(archive / "runs" / "grpo" / "seed1", 2) == "finished"

    monkeypatch.chdir(machine_b)
    assert len(study_runs.restore(archive, Path("study"))) == 3  # two runs and the journal, not the lock
    assert study_runs.restore(archive, Path("study")) == []
    restored_reason = study_runs.not_ready_to_probe(Path("study/runs/grpo/seed0")) or ""
    assert "weights are not on this machine" in restored_reason
    assert journal.read_text().count("piece") == 1 and not (journal.parent / ".credit_start.lock").exists()
    calls: list[Any] = []
    monkeypatch.setattr("eapo.train.trainer.train", lambda *a, **k: calls.append((a, k)))
    again = run_grid(spec, progress=False)
    assert calls == []
    assert [(r.arm, r.seed, r.final) for r in again] == [(r.arm, r.seed, r.final) for r in records]
