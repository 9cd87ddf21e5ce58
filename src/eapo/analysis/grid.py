"""Experiment grids: arms x seeds trained under identical conditions, resumable, then summarised.

An *arm* is a name plus config overrides (an algorithm, a quadrant mode, an α). Every arm of a grid shares:

- **the data order and rollout budget**: the same `run.seed`, `train.steps`, `prompts_per_step` and
  `group_size`; the trainer seeds every step from (run.seed, step), so the same seed draws the same prompts
  in every arm (the tests check the dumped prompts);
- **the initial weights**: with `init="per_seed"` (the default) seed k starts from the tiny model warmed
  up with `model.tiny.seed = k` (cached, so every arm of seed k loads the same weights) and the spread over
  seeds includes the initialisation; `init="shared"` keeps the config's `model.tiny.seed` for all seeds, so
  seeds differ only in data order and sampling. Pretrained models start from the same weights either way;
- **the evaluation**: the trainer's periodic held-out evaluation (config `eval`), then one final
  held-out evaluation per run with `FinalEvalSettings.samples` samples per problem at the config's
  evaluation temperature and top-p (PAPER.md §6: 0.6 / 0.95), giving Avg@n and the unbiased Pass@k for
  k = 1, 2, 4, ..., n (`eapo.core.pass_at_k`); optionally a Pass@k curve with many samples on fewer
  problems, and an evaluation on a validation split (for choosing hyper-parameters, never the held-out one).

Runs live in `<out>/<arm>/seed<k>/` (an ordinary trainer run folder). A run whose metrics have the final
evaluation row and whose newest checkpoint is at the last step is never trained again; one with a
checkpoint but no final row resumes from it (`train(resume=...)`); one with neither starts afresh. Final
evaluations are cached in `<run>/grid_eval.json`, keyed by their settings.
"""

from __future__ import annotations

import dataclasses
import math
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from eapo.analysis.run_io import read_json, write_json
from eapo.analysis.stats import Interval, PairedDifference, curve_interval, mean_interval, paired_difference
from eapo.errors import ConfigError, EapoError
from eapo.tasks.splits import validation_problems  # noqa: F401  (re-exported for compare)

QUADRANT_NAMES = ("PHR", "PLR", "NHR", "NLR")
GRID_EVAL = "grid_eval.json"  # final / pass-curve / validation evaluations of one run
GRID_RUN = "grid_run.json"  # what the grid recorded about one run: wall time, how it stopped
INIT_MODES = ("per_seed", "shared")
# Fields the grid sets itself for every run; a user override of them would break the pairing.
GRID_FIELDS = {
    "run.seed": "--seeds",
    "run.name": "--out",
    "run.output_dir": "--out",
}
_ARM_NAME = re.compile(r"^[A-Za-z0-9_.+=-]+$")
# "Final entropy" is the mean of the last FINAL_ENTROPY_STEPS training steps' entropy/mean: one step's
# batch (16 prompts on tiny) is too small for a stable single reading.
FINAL_ENTROPY_STEPS = 10


class GridInterrupted(EapoError):
    """A run was stopped by Ctrl-C / SIGTERM; it saved a checkpoint and the grid can be resumed."""


@dataclass(frozen=True)
class Arm:
    """One condition of a grid: a folder-safe name and the config overrides (nested dict) that define it."""

    name: str
    overrides: dict[str, Any] = field(default_factory=dict)
    description: str = ""


@dataclass
class FinalEvalSettings:
    """The held-out evaluation of every finished run (PAPER.md §6 protocol, temperature and top-p from
    the config's `eval` section).

    `samples`: n per problem for Avg@n and Pass@k, k = 1, 2, 4, ..., n. `problems`: the first N held-out
    problems (None: `eval.num_problems`). `pass_curve_samples` > 0 adds a Pass@k curve with that many
    samples on the first `pass_curve_problems` problems (PAPER.md Fig. 2 style, k up to 256).
    `validation` is a list of problems outside both splits, evaluated the same way with `samples`.
    """

    samples: int = 16
    problems: int | None = None
    pass_curve_samples: int = 0
    pass_curve_problems: int = 32
    validation: list[Any] | None = None  # list[eapo.tasks.Problem]

    def validate(self) -> None:
        if self.samples < 1:
            raise ConfigError(f"--final-samples {self.samples}: expected an integer >= 1")
        if self.problems is not None and self.problems < 1:
            raise ConfigError(f"--final-problems {self.problems}: expected an integer >= 1")
        if self.pass_curve_samples < 0:
            raise ConfigError(f"--pass-curve-samples {self.pass_curve_samples}: expected >= 1")
        if self.pass_curve_samples and self.pass_curve_problems < 1:
            raise ConfigError(f"--pass-curve-problems {self.pass_curve_problems}: expected >= 1")


@dataclass
class GridSpec:
    """What to run. `overrides` (nested dict) apply to every arm; the arm's own overrides win over them."""

    arms: list[Arm]
    seeds: list[int]
    out_dir: Path
    config: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    steps: int | None = None
    init: str = "per_seed"
    final_eval: FinalEvalSettings = field(default_factory=FinalEvalSettings)

    def validate(self) -> None:
        if not self.arms:
            raise ConfigError("the grid has no arms")
        names = [arm.name for arm in self.arms]
        for name in names:
            if not _ARM_NAME.match(name):
                raise ConfigError(
                    f"arm name {name!r}: use letters, digits and _ . + = - only (a folder name)"
                )
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(f"arm names must be unique; repeated: {', '.join(duplicates)}")
        if not self.seeds:
            raise ConfigError("--seeds: the grid needs at least one seed")
        if len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise ConfigError(f"--seeds {self.seeds}: expected distinct integers >= 0")
        if self.steps is not None and self.steps < 1:
            raise ConfigError(f"--steps {self.steps}: expected an integer >= 1")
        if self.init not in INIT_MODES:
            raise ConfigError(f"--init {self.init!r}: choose from {', '.join(INIT_MODES)}")
        for dotted, flag in GRID_FIELDS.items():
            if _get_dotted(self.overrides, dotted) is not None:
                raise ConfigError(
                    f"--{dotted} is set by the grid for every run (same across arms); use {flag} instead"
                )
        self.final_eval.validate()


@dataclass
class RunRecord:
    """Everything a grid keeps about one (arm, seed) run, read from its run folder (logged data only)."""

    arm: str
    seed: int
    run_dir: str
    status: str  # completed | failed (the trainer stopped on non-finite steps)
    steps: int
    eval_k: int
    eval_curve: dict[str, list[float | None]]  # step, avg@1, pass@1, avg@K, pass@K (in-training evals)
    entropy_curve: dict[str, list[float | None]]  # step, mean
    quadrant_shares: dict[str, list[float | None]]  # step, PHR, PLR, NHR, NLR, ZERO
    final: dict[str, Any] | None  # the final held-out evaluation (see `final_evaluations`)
    pass_curve: dict[str, Any] | None
    validation: dict[str, Any] | None
    final_entropy: float | None
    tokens_generated: float
    train_seconds: float  # Σ time/step over the logged training steps (survives resumes)
    wall_seconds: float | None  # the grid's clock around training and final evaluations, summed
    # {step: {"k", "correct_per_problem"}} of the in-training evaluations (`eval_problems.jsonl`); empty
    # for runs made before the trainer wrote it
    eval_counts: dict[int, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------------- configs


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`extra` over `base`, recursively for nested dicts (neither input is modified)."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _get_dotted(values: dict[str, Any], dotted: str) -> Any:
    node: Any = values
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def run_dir_of(spec: GridSpec, arm: Arm, seed: int) -> Path:
    return Path(spec.out_dir) / arm.name / f"seed{seed}"


def run_config(spec: GridSpec, arm: Arm, seed: int) -> Any:
    """The full, validated Config of (arm, seed): user overrides, then the arm's, then the grid's fields."""
    from eapo.train.config import load_config

    values = deep_merge(spec.overrides, arm.overrides)
    grid_values: dict[str, Any] = {
        "run": {"output_dir": str(Path(spec.out_dir) / arm.name), "name": f"seed{seed}", "seed": seed}
    }
    if spec.steps is not None:
        grid_values["train"] = {"steps": spec.steps}
    values = deep_merge(values, grid_values)
    config = load_config(spec.config, values)
    if spec.init == "per_seed" and config.model.name == "tiny":
        # Each seed warms up its own tiny model (cached by its config, so all arms of a seed share it).
        config = load_config(spec.config, deep_merge(values, {"model": {"tiny": {"seed": seed}}}))
    return config


# Fields that change speed and memory, not what a run computes: a finished run made with another value is
# still the same run. (Any chunk size of the log-prob/entropy pass gives bitwise the same log-probs and
# gradients, and entropies equal to ~1e-6 relative: the row dot product's blocking follows the chunk.)
RESULT_NEUTRAL_FIELDS = frozenset({"train.logprob_chunk_size"})


def _config_differences(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(a) | set(b)):
        where = f"{prefix}{key}"
        va, vb = a.get(key), b.get(key)
        if where in RESULT_NEUTRAL_FIELDS:
            continue
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _config_differences(va, vb, where + ".")
        elif va != vb:
            out.append(f"{where}: {va!r} there, {vb!r} now")
    return out


# ---------------------------------------------------------------------------------------- run status


def final_eval_row(rows: list[dict[str, Any]], steps: int) -> dict[str, Any] | None:
    """The trainer's end-of-run evaluation row: the eval row logged at the last step (the periodic
    evaluation never runs at the last step, so an eval row there is the final one)."""
    for row in reversed(rows):
        if row.get("step") == steps and "eval/pass@1" in row:
            return row
    return None


def run_status(run_dir: Path, steps: int) -> str:
    """`finished`, `failed` (stopped on non-finite steps), `resumable` or `fresh` for a run folder."""
    from eapo.train.checkpoint import latest_checkpoint
    from eapo.train.logging import read_metrics

    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        return "fresh"
    record = read_json(run_dir / GRID_RUN) or {}
    if record.get("stopped") == "bad_steps":
        return "failed"
    checkpoint = latest_checkpoint(run_dir, verify=True)
    if checkpoint is None:
        return "fresh"
    done = int(checkpoint.name.split("_")[1]) == steps
    if done and (run_dir / "metrics.jsonl").is_file() and final_eval_row(read_metrics(run_dir), steps):
        return "finished"
    return "resumable"


# ---------------------------------------------------------------------------------------- evaluation


def pass_at_k_curve(counts: Sequence[int], n: int) -> dict[str, float]:
    """Unbiased Pass@k (PAPER.md §6) averaged over problems for k = 1, 2, 4, ..., and n itself.

    `counts`: correct samples per problem, each out of `n`. Keys are the k values as strings (JSON).
    """
    import torch

    from eapo.core import pass_at_k

    ks = sorted({*(2**i for i in range(int(math.log2(n)) + 1)), n})
    c = torch.as_tensor(list(counts), dtype=torch.int64)
    return {str(k): float(torch.as_tensor(pass_at_k(n, c, k)).mean()) for k in ks}


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

    Seed-major order: every arm of seed 0, then of seed 1, ..., so paired comparisons exist early.
    Raises GridInterrupted when a run is stopped by Ctrl-C (it checkpointed; run the grid again to go on)
    and ConfigError when an existing run folder was made with a different config.
    """
    from eapo.train.config import to_dict
    from eapo.train.trainer import train

    spec.validate()
    out = Path(spec.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    configs = {(arm.name, seed): run_config(spec, arm, seed) for seed in spec.seeds for arm in spec.arms}
    for (name, seed), config in configs.items():
        _check_same_config(out / name / f"seed{seed}", to_dict(config))
    records: list[RunRecord] = []
    bar = tqdm(total=len(configs), desc="grid", unit="run", disable=not progress, position=0)
    for seed in spec.seeds:
        for arm in spec.arms:
            config = configs[(arm.name, seed)]
            run_dir = run_dir_of(spec, arm, seed)
            bar.set_postfix_str(f"{arm.name} seed{seed}")
            steps = config.train.steps
            status = run_status(run_dir, steps)
            started = time.perf_counter()
            if status in ("finished", "failed"):
                tqdm.write(f"{arm.name}/seed{seed}: {status} earlier, not rerun")
            else:
                if status == "fresh" and run_dir.exists():
                    shutil.rmtree(run_dir)  # leftovers of a run killed before its first checkpoint
                if status == "resumable":
                    tqdm.write(f"{arm.name}/seed{seed}: resuming from its checkpoint")
                    result = train(resume=run_dir, progress=progress)
                else:
                    result = train(config, progress=progress)
                if result.stopped == "interrupted":
                    _add_wall_time(run_dir, time.perf_counter() - started, None)
                    bar.close()
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
            records.append(collect_run(arm.name, seed, run_dir, spec.final_eval))
            bar.update(1)
    bar.close()
    return records


def _check_same_config(run_dir: Path, wanted: dict[str, Any]) -> None:
    from eapo.train.config import load_config, to_dict

    path = run_dir / "config.yaml"
    if not path.is_file():
        return
    existing = to_dict(load_config(path))
    differences = _config_differences(existing, wanted)
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


def collect_run(arm: str, seed: int, run_dir: Path, settings: FinalEvalSettings | None = None) -> RunRecord:
    """A RunRecord from a run folder's metrics.jsonl, grid_eval.json and grid_run.json."""
    from eapo.train.config import load_config
    from eapo.train.logging import read_eval_counts, read_metrics

    run_dir = Path(run_dir)
    config = load_config(run_dir / "config.yaml")
    rows = read_metrics(run_dir)
    k = config.eval.k
    eval_keys = sorted({"avg@1", "pass@1", f"avg@{k}", f"pass@{k}"})
    eval_rows = [r for r in rows if "eval/pass@1" in r]
    train_rows = [r for r in rows if "entropy/mean" in r]
    eval_curve: dict[str, list[float | None]] = {"step": [float(r["step"]) for r in eval_rows]}
    for key in eval_keys:
        eval_curve[key] = [r.get(f"eval/{key}") for r in eval_rows]
    entropy_curve = {
        "step": [float(r["step"]) for r in train_rows],
        "mean": [r.get("entropy/mean") for r in train_rows],
    }
    shares: dict[str, list[float | None]] = {"step": entropy_curve["step"]}
    for name in (*QUADRANT_NAMES, "ZERO"):
        shares[name] = [r.get(f"quadrant/{name}/share") for r in train_rows]
    tail = [v for v in entropy_curve["mean"][-FINAL_ENTROPY_STEPS:] if v is not None]
    evals = read_json(run_dir / GRID_EVAL) or {}
    grid_run = read_json(run_dir / GRID_RUN) or {}
    status = "failed" if grid_run.get("stopped") == "bad_steps" else "completed"
    if settings is not None and not settings.pass_curve_samples:
        evals.pop("pass_curve", None)
    if settings is not None and not settings.validation:
        evals.pop("validation", None)
    return RunRecord(
        arm=arm,
        seed=seed,
        run_dir=str(run_dir),
        status=status,
        steps=config.train.steps,
        eval_k=k,
        eval_curve=eval_curve,
        entropy_curve=entropy_curve,
        quadrant_shares=shares,
        final=evals.get("final"),
        pass_curve=evals.get("pass_curve"),
        validation=evals.get("validation"),
        final_entropy=sum(tail) / len(tail) if tail else None,
        tokens_generated=float(sum(r.get("tokens/generated") or 0.0 for r in train_rows)),
        train_seconds=float(sum(r.get("time/step") or 0.0 for r in train_rows)),
        wall_seconds=grid_run.get("wall_seconds"),
        eval_counts=read_eval_counts(run_dir),
    )


# ---------------------------------------------------------------------------------------- summaries


def steps_to_target(record: RunRecord, target: float) -> float | None:
    """The first evaluated step whose in-training held-out Avg@K reaches `target` (None if never)."""
    key = f"avg@{record.eval_k}"
    for step, value in zip(record.eval_curve["step"], record.eval_curve[key], strict=True):
        if value is not None and value >= target:
            return step
    return None


def _interval_or_none(values: list[float | None]) -> dict[str, Any] | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return mean_interval(finite).to_dict() if finite else None


def summarize_arm(records: list[RunRecord], target: float | None = None) -> dict[str, Any]:
    """Mean and 95% t-interval over seeds of everything a run records, plus pointwise curve intervals."""
    done = [r for r in records if r.status == "completed" and r.final is not None]
    out: dict[str, Any] = {
        "seeds": [r.seed for r in done],
        "failed_seeds": [r.seed for r in records if r.status != "completed"],
    }
    if not done:
        return out
    n = done[0].final["samples"] if done[0].final else 0
    out["final"] = {f"avg@{n}": _interval_or_none([r.final["avg"] for r in done if r.final])}
    for k in done[0].final["pass_at_k"] if done[0].final else []:
        out["final"][f"pass@{k}"] = _interval_or_none([r.final["pass_at_k"].get(k) for r in done if r.final])
    out["final_samples"] = n
    out["final_problems"] = done[0].final["num_problems"] if done[0].final else 0
    if all(r.pass_curve for r in done):
        curve_n = done[0].pass_curve["samples"]  # type: ignore[index]
        ks = list(done[0].pass_curve["pass_at_k"])  # type: ignore[index]
        out["pass_curve"] = {
            "samples": curve_n,
            "num_problems": done[0].pass_curve["num_problems"],  # type: ignore[index]
            "k": [int(k) for k in ks],
            "pass_at_k": [_interval_or_none([r.pass_curve["pass_at_k"][k] for r in done]) for k in ks],  # type: ignore[index]
        }
    if all(r.validation for r in done):
        out["validation"] = {
            f"avg@{n}": _interval_or_none([r.validation["avg"] for r in done]),  # type: ignore[index]
            "num_problems": done[0].validation["num_problems"],  # type: ignore[index]
        }
    k = done[0].eval_k
    out["eval_k"] = k
    out["eval_curve"] = {
        key: curve_interval([(r.eval_curve["step"], r.eval_curve[key]) for r in done])
        for key in done[0].eval_curve
        if key != "step"
    }
    out["start"] = {
        key: _interval_or_none([r.eval_curve[key][0] if r.eval_curve[key] else None for r in done])
        for key in done[0].eval_curve
        if key != "step"
    }
    out["entropy_curve"] = curve_interval([(r.entropy_curve["step"], r.entropy_curve["mean"]) for r in done])
    out["quadrant_shares"] = {
        name: curve_interval([(r.quadrant_shares["step"], r.quadrant_shares[name]) for r in done])
        for name in (*QUADRANT_NAMES, "ZERO")
    }
    out["final_entropy"] = _interval_or_none([r.final_entropy for r in done])
    out["tokens_generated"] = _interval_or_none([r.tokens_generated for r in done])
    out["train_seconds"] = _interval_or_none([r.train_seconds for r in done])
    out["wall_seconds"] = _interval_or_none([r.wall_seconds for r in done])
    if target is not None:
        reached = {r.seed: steps_to_target(r, target) for r in done}
        hit = [v for v in reached.values() if v is not None]
        out["steps_to_target"] = {
            "target": target,
            "metric": f"in-training held-out avg@{k}",
            "per_seed": {str(s): v for s, v in reached.items()},
            "reached": len(hit),
            "of": len(reached),
            "mean_over_reached": sum(hit) / len(hit) if hit else None,
        }
    return out


def final_metric(records: list[RunRecord], metric: str) -> dict[int, float]:
    """{seed: value} of one final held-out metric (`avg` or `pass@k`) or `validation` (Avg@n there)."""
    out: dict[int, float] = {}
    for r in records:
        if r.status != "completed" or r.final is None:
            continue
        if metric == "avg":
            out[r.seed] = r.final["avg"]
        elif metric == "validation":
            if r.validation is not None:
                out[r.seed] = r.validation["avg"]
        elif metric.startswith("pass@") and metric[5:] in r.final["pass_at_k"]:
            out[r.seed] = r.final["pass_at_k"][metric[5:]]
    return out


def paired_comparisons(
    records: list[RunRecord],
    pairs: list[tuple[str, str]],
    metric: str = "avg",
    label: str | None = None,
    seed: int = 0,
) -> list[PairedDifference]:
    """For each (arm, reference): per-seed final `metric` (see `final_metric`) of arm minus reference,
    with a paired bootstrap 95% interval. `label` names the metric in the results (default `metric`)."""
    by_arm: dict[str, list[RunRecord]] = {}
    for r in records:
        by_arm.setdefault(r.arm, []).append(r)
    out = []
    for arm, reference in pairs:
        a, b = final_metric(by_arm.get(arm, []), metric), final_metric(by_arm.get(reference, []), metric)
        if set(a) & set(b):
            out.append(
                paired_difference(a, b, arm=arm, reference=reference, metric=label or metric, seed=seed)
            )
    return out


def fmt_interval(data: dict[str, Any] | None, digits: int = 3) -> str:
    """Markdown text of an Interval dict: `0.412 [0.380, 0.444]`, `-` when missing."""
    if not data:
        return "-"
    return Interval(**data).format(digits)


def grid_summary(
    records: list[RunRecord], arms: list[Arm], target: float | None = None
) -> dict[str, dict[str, Any]]:
    """{arm name: summarize_arm(...)} plus each arm's overrides and description, in arm order."""
    out = {}
    for arm in arms:
        summary = summarize_arm([r for r in records if r.arm == arm.name], target)
        out[arm.name] = {"description": arm.description, "overrides": arm.overrides, **summary}
    return out


# ---------------------------------------------------------------------------------------- figures
# Every figure is drawn from a grid summary, which is computed from the runs' logged metrics and final
# evaluations only.


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _axes(plt: Any, arms: int) -> tuple[Any, Any]:
    """A figure for one line per arm; more than 10 arms get 20 distinct colours (tab10 would repeat)."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    if arms > 10:
        ax.set_prop_cycle(color=plt.get_cmap("tab20").colors)
    return fig, ax


def _band(ax: Any, curve: dict[str, list[float | None]], label: str, alpha: float = 0.15) -> None:
    x = curve["x"]
    mean = curve["mean"]
    (line,) = ax.plot(x, mean, label=label, linewidth=1.4)
    low = [m if v is None else v for v, m in zip(curve["low"], mean, strict=True)]
    high = [m if v is None else v for v, m in zip(curve["high"], mean, strict=True)]
    ax.fill_between(x, low, high, color=line.get_color(), alpha=alpha, linewidth=0)


def plot_curves(
    summary: dict[str, dict[str, Any]], which: str, path: Path, title: str, ylabel: str
) -> Path | None:
    """One line per arm with its 95% t band over seeds. `which`: `accuracy` (in-training held-out
    Avg@K), `pass` (in-training Pass@K) or `entropy` (mean token entropy of each training batch)."""
    plt = _pyplot()
    fig, ax = _axes(plt, len(summary))
    drawn = 0
    for name, arm in summary.items():
        if "eval_curve" not in arm:
            continue
        k = arm["eval_k"]
        if which == "entropy":
            curve = arm["entropy_curve"]
        else:
            curve = arm["eval_curve"][f"{'avg' if which == 'accuracy' else 'pass'}@{k}"]
        if curve["x"]:
            _band(ax, curve, name, alpha=0.15 if len(summary) <= 4 else 0.05)  # many arms: lighter bands
            drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_pass_curve(summary: dict[str, dict[str, Any]], path: Path, title: str) -> Path | None:
    """Final held-out Pass@k against k (log scale), mean and 95% t interval over seeds, per arm. Uses the
    dedicated Pass@k-curve evaluation where the grid ran one, else the final evaluation's Pass@k."""
    plt = _pyplot()
    fig, ax = _axes(plt, len(summary))
    drawn = 0
    for name, arm in summary.items():
        if "pass_curve" in arm:
            ks, intervals = arm["pass_curve"]["k"], arm["pass_curve"]["pass_at_k"]
        elif "final" in arm:
            items = [(int(key[5:]), v) for key, v in arm["final"].items() if key.startswith("pass@")]
            ks, intervals = [k for k, _ in items], [v for _, v in items]
        else:
            continue
        points = [(k, v) for k, v in zip(ks, intervals, strict=True) if v]
        if not points:
            continue
        x = [k for k, _ in points]
        mean = [v["mean"] for _, v in points]
        low = [v["mean"] - (v["low"] if v["low"] is not None else v["mean"]) for _, v in points]
        high = [(v["high"] if v["high"] is not None else v["mean"]) - v["mean"] for _, v in points]
        ax.errorbar(x, mean, yerr=[low, high], label=name, marker="o", markersize=3, capsize=2, linewidth=1.2)
        drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xscale("log", base=2)
    ax.set_xlabel("k (samples per problem)")
    ax.set_ylabel("held-out Pass@k")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_quadrant_shares(summary: dict[str, dict[str, Any]], path: Path, title: str) -> Path | None:
    """One panel per arm: each quadrant's share of the batch's response tokens over training (mean over
    seeds), as the trainer logs it (quadrants of the algorithm's shaped advantages, PAPER.md §4.1)."""
    plt = _pyplot()
    arms = [(name, arm) for name, arm in summary.items() if "quadrant_shares" in arm]
    if not arms:
        return None
    cols = min(4, len(arms))
    rows = math.ceil(len(arms) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), sharey=True, squeeze=False)
    for ax, (name, arm) in zip(axes.flat, arms, strict=False):
        for quadrant in (*QUADRANT_NAMES, "ZERO"):
            curve = arm["quadrant_shares"][quadrant]
            ax.plot(curve["x"], curve["mean"], label=quadrant, linewidth=1.0)
        ax.set_title(name, fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(arms) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6)
    fig.suptitle(title, fontsize=10)
    fig.supxlabel("training step", fontsize=8)
    fig.supylabel("share of response tokens", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_paired(paired: list[PairedDifference], path: Path, title: str) -> Path | None:
    """Paired differences (mean and bootstrap 95% interval over seeds), one row per comparison."""
    if not paired:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(paired) + 1.4))
    labels = [f"{p.arm} − {p.reference}" for p in paired]
    y = list(range(len(paired)))
    for i, p in enumerate(paired):
        iv = p.interval
        low = iv.mean - (iv.low if iv.low is not None else iv.mean)
        high = (iv.high if iv.high is not None else iv.mean) - iv.mean
        color = "tab:green" if p.beats else "tab:red" if p.worse else "tab:gray"
        ax.errorbar([iv.mean], [i], xerr=[[low], [high]], fmt="o", color=color, capsize=3)
        ax.scatter(p.differences, [i] * len(p.differences), s=8, color=color, alpha=0.5)
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_yticks(y, labels, fontsize=7)
    ax.set_xlabel(f"paired difference in final held-out {paired[0].metric} (dots: seeds)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------- reports


def record_brief(record: RunRecord, target: float | None = None) -> dict[str, Any]:
    """A run's final numbers for the JSON report (its curves are in the arm summaries and run folder)."""
    out: dict[str, Any] = {
        "seed": record.seed,
        "run_dir": record.run_dir,
        "status": record.status,
        "final_avg": record.final["avg"] if record.final else None,
        "final_pass_at_k": record.final["pass_at_k"] if record.final else None,
        "start_avg": record.eval_curve[f"avg@{record.eval_k}"][0] if record.eval_curve["step"] else None,
        "final_entropy": record.final_entropy,
        "tokens_generated": record.tokens_generated,
        "train_seconds": round(record.train_seconds, 2),
        "wall_seconds": record.wall_seconds,
    }
    if record.pass_curve:
        out["pass_curve"] = record.pass_curve["pass_at_k"]
    if record.validation:
        out["validation_avg"] = record.validation["avg"]
    if target is not None:
        out["steps_to_target"] = steps_to_target(record, target)
    return out


def markdown_table(
    summary: dict[str, dict[str, Any]],
    paired: dict[str, PairedDifference],
    paired_header: str,
    target: float | None = None,
    unpaired_label: str = "reference",
) -> str:
    """One row per arm: final held-out Avg@n and Pass@n (mean [95% t] over seeds), the paired difference
    on that row (mean [paired bootstrap 95%], seeds ahead; then the paired t-interval), the claim the
    bootstrap interval supports, start accuracy, final entropy, tokens generated and training seconds."""
    first = next((arm for arm in summary.values() if "final" in arm), None)
    if first is None:
        return "_no finished runs_\n"
    n, k = first["final_samples"], first["eval_k"]
    header = [
        "arm",
        "seeds",
        f"held-out Avg@{n}",
        f"Pass@{n}",
        paired_header,
        "paired t 95%",
        "claim",
        f"start Avg@{k}",
        "final entropy",
        "tokens generated",
        "train s",
    ]
    if target is not None:
        header.insert(7, f"steps to Avg@{k} ≥ {target:g}")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, arm in summary.items():
        if "final" not in arm:
            lines.append(f"| {name} | 0 |" + " - |" * (len(header) - 2))
            continue
        p = paired.get(name)
        diff = tdiff = "-"
        claim = unpaired_label if p is None else ""
        if p is not None:
            diff = f"{p.interval.format(3)} ({p.wins}/{len(p.differences)} seeds ahead)"
            tdiff = p.t_interval.format(3)
            claim = p.verdict()
        cells = [
            name,
            str(len(arm["seeds"])),
            fmt_interval(arm["final"].get(f"avg@{n}")),
            fmt_interval(arm["final"].get(f"pass@{n}")),
            diff,
            tdiff,
            claim,
            fmt_interval(arm["start"].get(f"avg@{k}")),
            fmt_interval(arm.get("final_entropy")),
            f"{arm['tokens_generated']['mean']:.0f}" if arm.get("tokens_generated") else "-",
            f"{arm['train_seconds']['mean']:.0f}" if arm.get("train_seconds") else "-",
        ]
        if target is not None:
            st = arm.get("steps_to_target", {})
            mean = st.get("mean_over_reached")
            cells.insert(
                7,
                f"{mean:.0f} ({st['reached']}/{st['of']})"
                if mean is not None
                else f"never (0/{st.get('of', 0)})",
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def pass_curve_table(summary: dict[str, dict[str, Any]]) -> str:
    """Markdown: final held-out Pass@k for every k (mean [95% t] over seeds), one row per arm."""
    rows = []
    ks: list[int] = []
    for name, arm in summary.items():
        if "pass_curve" in arm:
            pairs = list(zip(arm["pass_curve"]["k"], arm["pass_curve"]["pass_at_k"], strict=True))
        elif "final" in arm:
            pairs = [(int(key[5:]), v) for key, v in arm["final"].items() if key.startswith("pass@")]
        else:
            continue
        ks = ks or [k for k, _ in pairs]
        rows.append((name, dict(pairs)))
    if not rows:
        return ""
    lines = ["| arm | " + " | ".join(f"Pass@{k}" for k in ks) + " |", "|---|" + "---|" * len(ks)]
    for name, values in rows:
        lines.append(f"| {name} | " + " | ".join(fmt_interval(values.get(k)) for k in ks) + " |")
    return "\n".join(lines) + "\n"


def write_figures(
    summary: dict[str, dict[str, Any]], paired: list[PairedDifference], out_dir: Path, prefix: str, title: str
) -> list[Path]:
    """The standard figures of a grid report, as PNG files `<out>/<prefix>_*.png`."""
    out_dir = Path(out_dir)
    figures = [
        plot_curves(
            summary,
            "accuracy",
            out_dir / f"{prefix}_accuracy.png",
            f"{title}: held-out Avg@k during training (mean, 95% t band over seeds)",
            "held-out Avg@k",
        ),
        plot_curves(
            summary,
            "pass",
            out_dir / f"{prefix}_pass_during_training.png",
            f"{title}: held-out Pass@k during training",
            "held-out Pass@k",
        ),
        plot_curves(
            summary,
            "entropy",
            out_dir / f"{prefix}_entropy.png",
            f"{title}: mean token entropy of the rollouts",
            "entropy (nats)",
        ),
        plot_pass_curve(summary, out_dir / f"{prefix}_pass_at_k.png", f"{title}: final held-out Pass@k"),
        plot_quadrant_shares(summary, out_dir / f"{prefix}_quadrant_shares.png", f"{title}: quadrant shares"),
        plot_paired(paired, out_dir / f"{prefix}_paired.png", f"{title}: paired differences"),
    ]
    return [f for f in figures if f is not None]
