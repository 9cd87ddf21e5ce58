"""Running a grid: each run's status, the run loop, and the final evaluations of finished runs.

A run whose metrics have the final evaluation row and whose newest checkpoint is at the last step is never
trained again; one with a checkpoint but no final row resumes from it (`train(resume=...)`); one with
neither starts afresh. Final evaluations are cached in `<run>/grid_eval.json`, keyed by their settings,
and the grid's wall clock and stopping reason of each run in `<run>/grid_run.json`.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from eapo.analysis.grid.spec import (
    GRID_EVAL,
    GRID_RUN,
    FinalEvalSettings,
    GridBusy,
    GridInterrupted,
    GridSpec,
    config_differences,
    run_config,
    run_dir_of,
)
from eapo.analysis.grid.summary import RunRecord, collect_run
from eapo.analysis.run_io import read_json, write_json
from eapo.analysis.stats import pass_at_k_curve
from eapo.errors import ConfigError, RunFolderTaken
from eapo.train.run_dir import RunLock, run_holder

# ---------------------------------------------------------------------------------------- run status


def final_eval_row(rows: list[dict[str, Any]], steps: int) -> dict[str, Any] | None:
    """The trainer's end-of-run evaluation row: the eval row logged at the last step (the periodic
    evaluation never runs at the last step, so an eval row there is the final one)."""
    for row in reversed(rows):
        if row.get("step") == steps and "eval/pass@1" in row:
            return row
    return None


def run_status(run_dir: Path, steps: int, *, verify: bool = True) -> str:
    """`finished`, `failed` (stopped on non-finite steps), `resumable` or `fresh` for a run folder, by its
    newest checkpoint (checked against its manifest unless `verify` is False: a quick look, as `--status`
    takes, that a damaged checkpoint may fool)."""
    from eapo.train.checkpoint import checkpoint_step, latest_checkpoint
    from eapo.train.logging import read_metrics

    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        return "fresh"
    record = read_json(run_dir / GRID_RUN) or {}
    if record.get("stopped") == "bad_steps":
        return "failed"
    checkpoint = latest_checkpoint(run_dir, verify=verify)
    if checkpoint is None:
        return "fresh"
    done = checkpoint_step(checkpoint) == steps
    if done and (run_dir / "metrics.jsonl").is_file() and final_eval_row(read_metrics(run_dir), steps):
        return "finished"
    return "resumable"


# ---------------------------------------------------------------------------------------- evaluation


def _eval_settings(config: Any, kind: str, samples: int, problems: int, extra: str = "") -> dict[str, Any]:
    return {
        "kind": kind,
        "samples": samples,
        "num_problems": problems,
        "temperature": config.eval.temperature,
        "top_p": config.eval.top_p,
        "seed": config.run.seed,
        "problems_from": extra,
    }


def final_evaluations(
    run_dir: Path, settings: FinalEvalSettings, progress: bool = False, *, base_model: bool = False
) -> dict[str, Any]:
    """The final evaluations of a finished run (cached in `<run>/grid_eval.json` by their settings).

    Loads the run's newest checkpoint (`base_model`: the config's starting weights instead) once and
    samples, at the config's evaluation temperature and top-p with `run.seed` as the sampling seed (the
    same in every arm):
      - `final`: `settings.samples` per problem on the first `settings.problems` held-out problems;
      - `pass_curve` (if `pass_curve_samples`): that many per problem on the first `pass_curve_problems`;
      - `validation` (if `settings.validation`): `settings.samples` per validation problem.
    Each entry: the settings, `avg` (Avg@n), `pass_at_k` {k: value} for k = 1, 2, 4, ..., n,
    `correct_per_problem`, response statistics and seconds.
    """
    import hashlib

    from eapo.train.config import load_config

    run_dir = Path(run_dir)
    config = load_config(run_dir / "config.yaml")
    problems = settings.problems or config.eval.num_problems
    wanted: dict[str, dict[str, Any]] = {
        "final": _eval_settings(config, "final", settings.samples, problems, "eval"),
    }
    if settings.pass_curve_samples:
        wanted["pass_curve"] = _eval_settings(
            config, "pass_curve", settings.pass_curve_samples, settings.pass_curve_problems, "eval"
        )
    if settings.validation:
        digest = hashlib.sha256("\n".join(p.question for p in settings.validation).encode()).hexdigest()
        wanted["validation"] = _eval_settings(
            config, "validation", settings.samples, len(settings.validation), f"validation:{digest[:12]}"
        )
    cached = read_json(run_dir / GRID_EVAL) or {}
    missing = {k: s for k, s in wanted.items() if (cached.get(k) or {}).get("settings") != s}
    if not missing:
        return {k: cached[k] for k in wanted}

    model, tokenizer, task, sampling, autocast = _load_final_policy(run_dir, base_model)
    from eapo.rollout import evaluate

    for kind, eval_settings in missing.items():
        started = time.perf_counter()
        if kind == "validation":
            chosen = list(settings.validation or [])
        else:
            chosen = task.eval[: eval_settings["num_problems"]]
        n = eval_settings["samples"]
        with autocast():
            result = evaluate(
                model,
                tokenizer,
                task,
                chosen,
                k=n,
                sampling=sampling,
                seed=config.run.seed,
                progress=progress,
            )
        counts = result["correct_per_problem"]
        cached[kind] = {
            "settings": wanted[kind],
            "num_problems": len(chosen),
            "samples": n,
            "avg": result[f"avg@{n}"],
            "pass_at_k": pass_at_k_curve(counts, n),
            "correct_per_problem": counts,
            "mean_response_tokens": result["mean_response_tokens"],
            "truncated_fraction": result["truncated_fraction"],
            "extracted_fraction": result["extracted_fraction"],
            "seconds": round(time.perf_counter() - started, 2),
        }
        write_json(run_dir / GRID_EVAL, cached)
    return {k: cached[k] for k in wanted}


def _load_final_policy(run_dir: Path, base_model: bool = False) -> tuple[Any, Any, Any, Any, Any]:
    from eapo.train.config import load_config
    from eapo.train.evaluate import resolve_eval_target
    from eapo.train.run_policy import load_run_policy

    if base_model:
        config = load_config(Path(run_dir) / "config.yaml")
    else:
        config, _ = resolve_eval_target(Path(run_dir), None, None, None)
    loaded = load_run_policy(config, progress=False, eval_mode=True)
    return loaded.model, loaded.tokenizer, loaded.task, loaded.sampling("eval"), loaded.autocast


BASE_MODEL_DIR = "base_model"  # <out>/base_model/seed<k>/: the starting policy's evaluations


def base_model_evaluations(spec: GridSpec, progress: bool = False) -> dict[int, dict[str, Any]]:
    """{seed: evaluations} of the policy every run of that seed starts from, evaluated exactly like the
    finished runs (`final`, and `pass_curve` when asked; same problems, samples, temperature and sampling
    seed): the base model of the Pass@k comparisons (PAPER.md §4.2 compares Pass@k with the base's).

    Every arm of a seed starts from the same weights, so each seed is evaluated once, from the first arm's
    config, in `<out>/base_model/seed<k>/` (its config.yaml and a cached grid_eval.json, dropped when the
    model, task, sampling or eval section changes).
    """
    from eapo.train.config import dump_yaml, load_config, to_dict

    def sections(config: Any) -> dict[str, Any]:
        values = to_dict(config)
        return {name: values[name] for name in ("model", "task", "sampling", "eval")}

    settings = dataclasses.replace(spec.final_eval, validation=None)
    out: dict[int, dict[str, Any]] = {}
    for seed in spec.seeds:
        folder = Path(spec.out_dir) / BASE_MODEL_DIR / f"seed{seed}"
        folder.mkdir(parents=True, exist_ok=True)
        config = run_config(spec, spec.arms[0], seed)
        config_path = folder / "config.yaml"
        if not config_path.is_file() or sections(load_config(config_path)) != sections(config):
            (folder / GRID_EVAL).unlink(missing_ok=True)
            config_path.write_text(dump_yaml(config))
        out[seed] = final_evaluations(folder, settings, progress=progress, base_model=True)
    return out


# ---------------------------------------------------------------------------------------- running


def run_grid(spec: GridSpec, *, progress: bool = True) -> list[RunRecord]:
    """Train and evaluate every (arm, seed) not finished yet, seed by seed, and return all records.

    Seed-major order: every arm of seed 0, then of seed 1, ..., so paired comparisons exist early. An arm
    with `runs_of` trains nothing: its records are the runs of the arm it names.
    Several processes may run one grid side by side: a run another process holds (its claim, `claim_run`,
    or its folder's lock) is left to that process, and this one goes on with the next.
    Raises GridInterrupted when a run is stopped by Ctrl-C (it checkpointed; run the grid again to go on),
    GridBusy when every run this process could do is done but others are still held elsewhere (the last
    process to finish returns the records), and ConfigError when an existing run folder was made with a
    different config.
    """
    from eapo.train.config import to_dict

    spec.validate()
    out = Path(spec.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    trained = [arm for arm in spec.arms if not arm.runs_of]
    configs = {(arm.name, seed): run_config(spec, arm, seed) for seed in spec.seeds for arm in trained}
    for (name, seed), config in configs.items():
        _check_same_config(out / name / f"seed{seed}", to_dict(config))
    arms = {arm.name: arm for arm in spec.arms}
    records: dict[tuple[str, int], RunRecord] = {}
    held: dict[tuple[str, int], str] = {}
    bar = tqdm(total=len(configs), desc="grid", unit="run", disable=not progress, position=0)
    # The second pass takes up the runs another process held during the first: finished since, they are
    # collected here too, so the process that ends last returns the whole grid.
    for first_pass in (True, False):
        todo = list(configs) if first_pass else list(held)
        for name, seed in todo:
            arm = arms[name]
            label = f"{name}/seed{seed}"
            bar.set_postfix_str(label)
            try:
                records[(name, seed)] = _run_one(spec, arm, seed, configs[(name, seed)], progress=progress)
            except RunFolderTaken as err:
                held[(name, seed)] = f"{label} ({err.holder or 'being started by another process'})"
                if first_pass:
                    tqdm.write(f"{label}: held by another process, left to it")
                continue
            except GridInterrupted:
                bar.close()
                raise
            held.pop((name, seed), None)
            bar.update(1)
    bar.close()
    if held:
        raise GridBusy(
            f"{len(held)} of {len(configs)} runs are held by other processes: {', '.join(held.values())}; "
            "this process did the others. The process that finishes last writes the report (or run the "
            "same command again once they are done)"
        )
    for arm in spec.arms:  # the arms that read another arm's runs (Arm.runs_of), under their own name
        if arm.runs_of:
            for seed in spec.seeds:
                run_dir = run_dir_of(spec, arms[arm.runs_of], seed)
                records[(arm.name, seed)] = collect_run(arm.name, seed, run_dir, spec.final_eval)
    return [records[(arm.name, seed)] for seed in spec.seeds for arm in spec.arms]


def claim_run(run_dir: Path) -> RunLock:
    """Take the grid's claim on a run: an exclusive lock on `<arm>/.<seed folder>.claim`, next to the run's
    folder, held while this process trains and evaluates it, so that a second process running the same grid
    never starts the same run (the run's own lock is taken only once its folder exists, after the model
    loads). Raises RunFolderTaken when another process holds the claim."""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    return RunLock(run_dir.parent, name=f".{run_dir.name}.claim").acquire()


def _run_one(spec: GridSpec, arm: Any, seed: int, config: Any, *, progress: bool) -> RunRecord:
    """Train (or resume) one run of the grid unless it is finished, evaluate it, and collect its record.
    Raises RunFolderTaken when another process holds the run (its claim, or its folder's lock)."""
    run_dir = run_dir_of(spec, arm, seed)
    claim = claim_run(run_dir)
    try:
        holder = run_holder(run_dir)  # e.g. an `eapo train --resume` of it outside any grid
        if holder is not None:
            raise RunFolderTaken(f"{run_dir} is held by {holder}", holder=holder)
        _train_and_evaluate(spec, arm, seed, config, run_dir, progress=progress)
    finally:
        claim.release()
    return collect_run(arm.name, seed, run_dir, spec.final_eval)


def _train_and_evaluate(
    spec: GridSpec, arm: Any, seed: int, config: Any, run_dir: Path, *, progress: bool
) -> None:
    from eapo.train.trainer import train

    status = run_status(run_dir, config.train.steps)
    trained_here = status not in ("finished", "failed")  # only these are pruned (--keep-finished)
    started = time.perf_counter()
    if status in ("finished", "failed"):
        tqdm.write(f"{arm.name}/seed{seed}: {status} earlier, not rerun")
    else:
        if status == "fresh" and run_dir.exists():
            shutil.rmtree(run_dir)  # leftovers of a run killed before its first checkpoint (nobody holds it)
        if status == "resumable":
            tqdm.write(f"{arm.name}/seed{seed}: resuming from its checkpoint")
            result = train(resume=run_dir, progress=progress)
        else:
            result = train(config, progress=progress)
        if result.stopped == "interrupted":
            _add_wall_time(run_dir, time.perf_counter() - started, None)
            raise GridInterrupted(
                f"{arm.name}/seed{seed} was interrupted at step {result.steps_done} and saved a "
                "checkpoint; run the same command again to resume the grid"
            )
        _add_wall_time(run_dir, time.perf_counter() - started, result.stopped)
        status = "failed" if result.stopped == "bad_steps" else "finished"
    if status == "finished":
        started = time.perf_counter()
        cached = read_json(run_dir / GRID_EVAL) or {}
        final_evaluations(run_dir, spec.final_eval, progress=False)
        if cached != read_json(run_dir / GRID_EVAL):
            _add_wall_time(run_dir, time.perf_counter() - started, None)
        if trained_here and spec.keep_finished != "all":
            from eapo.train.checkpoint import prune_finished_run

            deleted = prune_finished_run(run_dir, spec.keep_finished)
            kept = f"kept {spec.keep_finished} of its checkpoints ({len(deleted)} paths deleted)"
            tqdm.write(f"{arm.name}/seed{seed}: evaluated; {kept}")


def _check_same_config(run_dir: Path, wanted: dict[str, Any]) -> None:
    from eapo.train.config import load_config, to_dict

    path = run_dir / "config.yaml"
    if not path.is_file():
        return
    existing = to_dict(load_config(path))
    differences = config_differences(existing, wanted)
    if differences:
        shown = "; ".join(differences[:5]) + (" ..." if len(differences) > 5 else "")
        raise ConfigError(
            f"{run_dir} holds a run made with a different config ({shown}); use another --out or remove "
            "that folder"
        )


def _add_wall_time(run_dir: Path, seconds: float, stopped: str | None) -> None:
    record = read_json(run_dir / GRID_RUN) or {"wall_seconds": 0.0}
    record["wall_seconds"] = round(record.get("wall_seconds", 0.0) + seconds, 2)
    if stopped is not None:
        record["stopped"] = stopped
    write_json(run_dir / GRID_RUN, record)
