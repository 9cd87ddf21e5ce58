"""`eapo compare`: EAPO against the baselines on identical footing, with paired statistics.

Every algorithm runs with the same model and initial weights, data order, seeds, rollout budget and
evaluation (see `eapo.analysis.grid`). For each seed, the final held-out Avg@n of the focus algorithm
(EAPO by default) minus each baseline's gives a paired difference; the report claims "EAPO beats X" only
where its paired bootstrap 95% interval excludes 0 (PAPER.md §6.1 baselines, Tables 1-2).

Beside it, the pre-stated analysis (`eapo.analysis.prestated`): the primary metric named before the grid
(`primary`, default the area under the held-out Avg@k curve), Holm-corrected secondaries, hierarchical
bootstrap intervals over seeds and problems, Pass@k against the base model and a guessing baseline, and
the minimum detectable effect for `power_seeds` seeds.

Sensitivity mode (`sweeps`): EAPO's α (Eq. 7) and φ (Eq. 6) over the given values (one at a time around
the defaults α = 0.2, φ = 2, as in Table 9; or their full product with `sweep_grid`). The best setting is
chosen on a VALIDATION split (problems outside both the train and the held-out split, drawn by
`eapo.tasks.splits.validation_problems`) and only then reported on held-out; the held-out numbers of the
other settings are listed for completeness but play no part in the choice.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from pathlib import Path
from typing import Any

import yaml

from eapo.analysis.grid import (
    Arm,
    FinalEvalSettings,
    GridSpec,
    base_model_evaluations,
    fmt_interval,
    grid_status,
    grid_summary,
    markdown_table,
    paired_comparisons,
    pass_curve_table,
    record_brief,
    run_grid,
)
from eapo.analysis.plots import write_grid_figures
from eapo.analysis.power import DEFAULT_POWER_SEEDS
from eapo.analysis.prestated import analyse, prestated_markdown, task_guessing_baseline
from eapo.analysis.prestated_metrics import PRIMARY_METRICS, pass_ks
from eapo.analysis.run_io import write_report_json
from eapo.errors import ConfigError, check_choice
from eapo.train.precision import check_same_precision, read_precision

DEFAULT_ALGOS = (
    "grpo",
    "dr_grpo",
    "dapo",
    "w_reinf",
    "entro_reg",
    "forking",
    "entro_adv",
    "kl_cov",
    "clip_cov",
    "gtpo",
    "eapo",
)
SWEEPABLE = {"alpha": 0.2, "phi": 2.0}  # EAPO's defaults (PAPER.md §5)


def parse_algos(text: str) -> list[str]:
    """`"grpo,eapo"` -> ["grpo", "eapo"], each checked against the algorithm presets."""
    from eapo.train.algorithms import ALGORITHMS

    names = [a.strip() for a in text.split(",") if a.strip()]
    if not names:
        raise ConfigError(f"--algos {text!r}: name at least one algorithm ({', '.join(ALGORITHMS)})")
    for name in names:
        check_choice("--algos", name, ALGORITHMS)  # the one message for a name picked from a registry
    if len(set(names)) != len(names):
        raise ConfigError(f"--algos {text!r}: an algorithm is named twice")
    return names


def parse_sweeps(items: list[str]) -> dict[str, list[float]]:
    """`["alpha=0.1,0.2", "phi=1,2"]` -> {"alpha": [0.1, 0.2], "phi": [1.0, 2.0]}."""
    sweeps: dict[str, list[float]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        name = name.strip()
        if not sep or name not in SWEEPABLE:
            raise ConfigError(
                f"--sweep {item!r}: expected NAME=V1,V2,... with NAME one of {', '.join(SWEEPABLE)}"
            )
        try:
            numbers = [float(v) for v in values.split(",") if v.strip()]
        except ValueError:
            raise ConfigError(f"--sweep {item!r}: the values must be numbers") from None
        if not numbers:
            raise ConfigError(f"--sweep {item!r}: give at least one value")
        if name == "alpha" and min(numbers) < 0:
            raise ConfigError(f"--sweep {item!r}: α must be >= 0 (PAPER.md: α in (0, 1])")
        if name == "phi" and min(numbers) <= 0:
            raise ConfigError(f"--sweep {item!r}: φ must be > 0")
        sweeps[name] = sorted(set(sweeps.get(name, []) + numbers))
    return sweeps


def _eapo_arm(alpha: float, phi: float) -> Arm:
    return Arm(
        f"eapo_alpha{alpha:g}_phi{phi:g}",
        {"algo": {"name": "eapo", "alpha": alpha, "phi": phi}},
        f"EAPO with α = {alpha:g}, φ = {phi:g}",
    )


def sweep_arms(sweeps: dict[str, list[float]], grid: bool = False) -> tuple[list[Arm], str]:
    """(arms, name of the default arm). One at a time: each swept parameter varies with the others at
    their defaults (the default setting is always an arm). `grid`: the full product."""
    values = {name: sweeps.get(name, [default]) for name, default in SWEEPABLE.items()}
    points: list[tuple[float, float]] = [(SWEEPABLE["alpha"], SWEEPABLE["phi"])]
    if grid:
        points += list(itertools.product(values["alpha"], values["phi"]))
    else:
        points += [(a, SWEEPABLE["phi"]) for a in values["alpha"]]
        points += [(SWEEPABLE["alpha"], p) for p in values["phi"]]
    unique = list(dict.fromkeys(points))
    arms = [_eapo_arm(a, p) for a, p in unique]
    return arms, arms[0].name


def base_config_file(config: Path | None, task: str | None, model: str | None, out_dir: Path) -> Path | None:
    """The config every arm starts from. `task` / `model` replace the config's task.source (clearing
    task.params, which belong to the old source; set new ones with --task.params.NAME) / model.name, in a
    copy written to `<out>/base_config.yaml`. Without them, the config itself (None: the tiny default)."""
    if task is None and model is None:
        return config
    from eapo.train.config import DEFAULT_CONFIG

    source = Path(config) if config is not None else DEFAULT_CONFIG
    if not source.is_file():
        raise ConfigError(f"--config {source}: file not found")
    values = yaml.safe_load(source.read_text()) or {}
    if not isinstance(values, dict):
        raise ConfigError(f"--config {source}: expected a mapping of sections, got {type(values).__name__}")
    if task is not None:
        section = values.setdefault("task", {})
        if section.get("source") != task:
            section["source"] = task
            section["params"] = {}
    if model is not None:
        values.setdefault("model", {})["name"] = model
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "base_config.yaml"
    path.write_text(
        f"# {source} with --task/--model from eapo compare\n" + yaml.safe_dump(values, sort_keys=False)
    )
    return path


def run_compare(
    algos: list[str] | None = None,
    *,
    seeds: list[int],
    out_dir: Path,
    task: str | None = None,
    model: str | None = None,
    runs_dir: Path | None = None,
    steps: int | None = None,
    config: Path | None = None,
    overrides: dict[str, Any] | None = None,
    target: float | None = None,
    focus: str = "eapo",
    final_eval: FinalEvalSettings | None = None,
    init: str = "per_seed",
    sweeps: dict[str, list[float]] | None = None,
    sweep_grid: bool = False,
    validation_problems: int = 200,
    progress: bool = True,
    command: str | None = None,
    primary: str = "auc",
    power_seeds: list[int] | tuple[int, ...] = DEFAULT_POWER_SEEDS,
    keep_finished: str = "all",
    status_only: bool = False,
) -> dict[str, Any]:
    """Run (or resume) the comparison grid and write `compare.json`, `compare.md` and the figures.
    `status_only`: train and report nothing; return where the grid stands (`grid_status`).

    `primary` (one of `PRIMARY_METRICS`) is the metric the verdict is read from, stated before
    the grid runs; the report's `prestated` section holds it, the secondaries, Pass@k against the base
    model (evaluated once per seed in `<runs>/base_model/`) and the guessing baseline, and the minimum
    detectable effect for each of `power_seeds` seeds.

    With `sweeps`, run EAPO's sensitivity instead (`sensitivity.json`, `sensitivity.md`, figures), the
    setting chosen on the validation split. Run folders go in `runs_dir` (default `out_dir`), shareable
    with other grids of identical settings (see `run_ablation`); `keep_finished` is what a run trained here
    keeps of its checkpoints once evaluated (`GridSpec.keep_finished`). Returns the report dict.
    """
    out_dir = Path(out_dir)
    runs = Path(runs_dir) if runs_dir is not None else out_dir
    final_eval = final_eval or FinalEvalSettings()
    base = base_config_file(config, task, model, out_dir)
    if sweeps:
        return _run_sensitivity(
            sweeps,
            sweep_grid,
            seeds=seeds,
            out_dir=out_dir,
            runs_dir=runs,
            base=base,
            steps=steps,
            overrides=overrides or {},
            final_eval=final_eval,
            init=init,
            validation_count=validation_problems,
            target=target,
            progress=progress,
            command=command,
            keep_finished=keep_finished,
            status_only=status_only,
        )
    names = list(algos or DEFAULT_ALGOS)
    if focus not in names:
        raise ConfigError(f"--focus {focus!r} is not among --algos {','.join(names)}")
    if primary not in PRIMARY_METRICS:
        raise ConfigError(f"--primary {primary!r}: choose from {', '.join(PRIMARY_METRICS)}")
    arms = [Arm(name, {"algo": {"name": name}}, _description(name)) for name in names]
    spec = GridSpec(arms, list(seeds), runs, base, overrides or {}, steps, init, final_eval, keep_finished)
    if status_only:
        return grid_status(spec)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = run_grid(spec, progress=progress)
    _check_one_precision(records)
    summary = grid_summary(records, arms, target)
    # Differences are focus − baseline, shown on the baseline's row.
    pairs = [(focus, name) for name in names if name != focus]
    n = final_eval.samples
    paired_avg = paired_comparisons(records, pairs, "avg", f"avg@{n}")
    paired_pass = paired_comparisons(records, pairs, f"pass@{n}")
    figures = write_grid_figures(summary, paired_avg, out_dir, "compare", "compare")
    prestated = analyse(
        records,
        names,
        focus,
        primary=primary,
        target=target,
        base=base_model_evaluations(spec, progress=False),
        guessing=_guessing(base, overrides or {}, final_eval),
        power_seeds=power_seeds,
    )
    report: dict[str, Any] = {
        "kind": "compare",
        "command": command,
        "created": dt.datetime.now().isoformat(timespec="seconds"),
        "focus": focus,
        "settings": {**_settings(spec, target), "primary": primary},
        "arms": summary,
        "paired": {
            f"avg@{n}": [p.to_dict() for p in paired_avg],
            f"pass@{n}": [p.to_dict() for p in paired_pass],
        },
        "prestated": prestated,
        "runs": {arm.name: [record_brief(r, target) for r in records if r.arm == arm.name] for arm in arms},
        "figures": [f.name for f in figures],
    }
    write_report_json(out_dir / "compare.json", report)
    table = markdown_table(
        summary,
        {p.reference: p for p in paired_avg},
        f"Δ Avg@{n}: {focus} − this arm (paired, bootstrap 95%)",
        target,
        unpaired_label="focus",
    )
    claims = [
        f"- {focus} vs {p.reference}: {p.interval.format(3)}, paired t {p.t_interval.format(3)}, "
        f"{p.wins}/{len(p.differences)} seeds ahead -> {_claim(p, focus)}"
        for p in paired_avg
    ]
    claims = [
        f"Primary (stated before the grid): {prestated['primary']['label']}; see the pre-stated analysis. "
        f"Final Avg@{n} by seed-level bootstrap (the earlier protocol):",
        "",
        *claims,
    ]
    (out_dir / "compare.md").write_text(
        _markdown(
            "eapo compare",
            report,
            table,
            pass_curve_table(summary),
            figures,
            claims,
            prestated_markdown(prestated),
        )
    )
    return report


def _check_one_precision(records: list[Any]) -> None:
    """ConfigError when the grid's runs computed in different precisions (their `precision.json`)."""
    check_same_precision({r.run_dir: read_precision(Path(r.run_dir)) for r in records})


def _guessing(base: Path | None, overrides: dict[str, Any], final_eval: FinalEvalSettings) -> dict[str, Any]:
    """The guessing baseline on the problems the Pass@k comparison uses (the Pass@k curve's where the
    grid runs one, else the final evaluation's)."""
    from eapo.tasks import load_task
    from eapo.train.config import load_config

    config = load_config(base, overrides)
    if final_eval.pass_curve_samples:
        n, problems = final_eval.pass_curve_samples, final_eval.pass_curve_problems
    else:
        n, problems = final_eval.samples, final_eval.problems or config.eval.num_problems
    return task_guessing_baseline(load_task(config.task), problems, pass_ks(n))


def _claim(p: Any, focus: str) -> str:
    if p.beats:
        return f"{focus} beats {p.reference}"
    if p.worse:
        return f"{p.reference} beats {focus}"
    return "no claim (the interval includes 0)"


def _description(name: str) -> str:
    from eapo.train.algorithms import ALGORITHMS

    return ALGORITHMS[name].description


def _run_sensitivity(
    sweeps: dict[str, list[float]],
    grid: bool,
    *,
    seeds: list[int],
    out_dir: Path,
    runs_dir: Path,
    base: Path | None,
    steps: int | None,
    overrides: dict[str, Any],
    final_eval: FinalEvalSettings,
    init: str,
    validation_count: int,
    target: float | None,
    progress: bool,
    command: str | None,
    keep_finished: str,
    status_only: bool = False,
) -> dict[str, Any]:
    from eapo.tasks.splits import validation_problems
    from eapo.train.config import load_config

    arms, default = sweep_arms(sweeps, grid)
    task_config = load_config(base, overrides).task
    validation = validation_problems(task_config, validation_count)
    final_eval = dataclasses.replace(final_eval, validation=validation)
    spec = GridSpec(arms, list(seeds), runs_dir, base, overrides, steps, init, final_eval, keep_finished)
    if status_only:
        return grid_status(spec)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = run_grid(spec, progress=progress)
    _check_one_precision(records)
    summary = grid_summary(records, arms, target)
    n = final_eval.samples
    pairs = [(arm.name, default) for arm in arms if arm.name != default]
    paired_val = paired_comparisons(records, pairs, "validation", f"validation avg@{n}")
    paired_avg = paired_comparisons(records, pairs, "avg", f"avg@{n}")
    # The choice: the best mean validation Avg@n; ties go to the earlier arm (the default comes first).
    scored = [
        (summary[a.name]["validation"][f"avg@{n}"]["mean"], -i, a.name)
        for i, a in enumerate(arms)
        if "validation" in summary[a.name] and summary[a.name]["validation"][f"avg@{n}"]
    ]
    chosen = max(scored)[2] if scored else None
    figures = write_grid_figures(summary, paired_avg, out_dir, "sensitivity", "EAPO sensitivity")
    report: dict[str, Any] = {
        "kind": "sensitivity",
        "command": command,
        "created": dt.datetime.now().isoformat(timespec="seconds"),
        "sweeps": sweeps,
        "sweep_grid": grid,
        "default": default,
        "chosen_on_validation": chosen,
        "validation": {
            "num_problems": len(validation),
            "how": "problems outside the train and eval splits: the task drawn with task.seed + 250000, "
            "train and eval questions removed (eapo.tasks.splits.validation_problems)",
        },
        "held_out_of_chosen": summary[chosen]["final"] if chosen else None,
        "settings": _settings(spec, target),
        "arms": summary,
        "paired": {
            f"validation avg@{n}": [p.to_dict() for p in paired_val],
            f"avg@{n}": [p.to_dict() for p in paired_avg],
        },
        "runs": {arm.name: [record_brief(r, target) for r in records if r.arm == arm.name] for arm in arms},
        "figures": [f.name for f in figures],
    }
    write_report_json(out_dir / "sensitivity.json", report)
    lines = [
        f"| setting | validation Avg@{n} (chooses) | Δ validation vs default | held-out Avg@{n} | Pass@{n} |",
        "|---|---|---|---|---|",
    ]
    by_val = {p.arm: p for p in paired_val}
    for arm in arms:
        s = summary[arm.name]
        if "final" not in s:
            continue
        p = by_val.get(arm.name)
        mark = " **(chosen)**" if arm.name == chosen else ""
        lines.append(
            f"| {arm.name}{mark} | {fmt_interval(s.get('validation', {}).get(f'avg@{n}'))} | "
            f"{p.interval.format(3) if p else 'default'} | {fmt_interval(s['final'].get(f'avg@{n}'))} | "
            f"{fmt_interval(s['final'].get(f'pass@{n}'))} |"
        )
    claims = [
        f"Chosen on validation ({len(validation)} problems outside train and eval): **{chosen}**; "
        f"its held-out Avg@{n}: {fmt_interval(summary[chosen]['final'].get(f'avg@{n}')) if chosen else '-'}. "
        "The held-out column is reported, never used to choose."
    ]
    (out_dir / "sensitivity.md").write_text(
        _markdown(
            "eapo compare --sweep (EAPO sensitivity)",
            report,
            "\n".join(lines) + "\n",
            pass_curve_table(summary),
            figures,
            claims,
        )
    )
    return report


def _settings(spec: GridSpec, target: float | None) -> dict[str, Any]:
    fe = spec.final_eval
    return {
        "seeds": spec.seeds,
        "steps": spec.steps,
        "runs_dir": str(spec.out_dir),
        "config": str(spec.config) if spec.config else "built-in tiny default",
        "overrides": spec.overrides,
        "init": spec.init,
        "target": target,
        "final_eval": {
            "samples": fe.samples,
            "problems": fe.problems,
            "pass_curve_samples": fe.pass_curve_samples,
            "pass_curve_problems": fe.pass_curve_problems if fe.pass_curve_samples else None,
        },
        "intervals": "mean over seeds with a Student-t 95% interval",
        "paired": "per-seed difference, paired bootstrap percentile 95% interval (10,000 resamples of "
        "seeds), paired t-interval beside it; a claim only where the bootstrap interval excludes 0",
    }


def _markdown(
    heading: str,
    report: dict[str, Any],
    table: str,
    pass_table: str,
    figures: list[Path],
    claims: list[str],
    prestated: str = "",
) -> str:
    s = report["settings"]
    fe = s["final_eval"]
    lines = [
        f"# {heading}",
        "",
        f"Command: `{report['command'] or '(library call)'}`  ",
        f"Seeds: {s['seeds']} ({s['init']} initial weights); steps: {s['steps'] or 'from config'}; "
        f"config: {s['config']}; overrides: `{s['overrides']}`.  ",
        f"Final held-out evaluation: {fe['samples']} samples per problem"
        + (f", first {fe['problems']} problems" if fe["problems"] else "")
        + " at the config's eval temperature / top-p.  ",
        f"Intervals: {s['intervals']}. Paired: {s['paired']}.",
        *(
            [f"Primary metric, stated before the grid: **{report['prestated']['primary']['label']}**."]
            if report.get("prestated")
            else []
        ),
        "",
        table,
        *([prestated] if prestated else []),
        "## Claims",
        "",
        *claims,
        "",
        "## Final held-out Pass@k",
        "",
        pass_table,
        "## Figures",
        "",
        *[f"![{f.stem}]({f.name})" for f in figures],
        "",
    ]
    return "\n".join(lines)
