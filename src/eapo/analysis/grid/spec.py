"""What a grid is: its arms, seeds and final-evaluation settings, and the full config of each run.

Every (arm, seed) run's config is the user's overrides, then the arm's, then the fields the grid sets
itself (seed, run name and folder, steps), so arms differ only where their overrides say. A run folder
made with another config is refused (`config_differences`), except for fields that change speed and
memory only (`RESULT_NEUTRAL_FIELDS`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eapo.errors import ConfigError, EapoError

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
# Fields that change speed and memory, not what a run computes: a finished run made with another value is
# still the same run. (Any chunk size of the log-prob/entropy pass gives bitwise the same log-probs and
# gradients, and entropies equal to ~1e-6 relative: the row dot product's blocking follows the chunk.
# A start evaluation reused from the cache is the one the run would have computed: eapo.train.start_eval.)
RESULT_NEUTRAL_FIELDS = frozenset({"train.logprob_chunk_size", "eval.reuse_start"})


class GridInterrupted(EapoError):
    """A run was stopped by Ctrl-C / SIGTERM; it saved a checkpoint and the grid can be resumed."""


class GridBusy(GridInterrupted):
    """This process did every run it could; others are held by other processes running the same grid."""


@dataclass(frozen=True)
class Arm:
    """One condition of a grid: a folder-safe name and the config overrides (nested dict) that define it.

    `runs_of`: another arm of the grid whose runs this one reads instead of training its own, for an arm
    that computes the same run bit for bit (EAPO at α = 0 is GRPO: Eq. 7 adds 0 · sign(Â) · score). Set it
    only where a test trains both and finds them identical; the report lists the arm with those runs.
    """

    name: str
    overrides: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    runs_of: str = ""


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
    # What a run this grid trains to the end keeps once it is evaluated (eapo.train.checkpoint.KEEP_FINISHED):
    # "all", or "weights" / "none" to free the disk of grids with many runs. Runs found finished are left.
    keep_finished: str = "all"

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
        trained = {arm.name for arm in self.arms if not arm.runs_of}
        for arm in self.arms:
            if arm.runs_of and arm.runs_of not in trained:
                raise ConfigError(
                    f"arm {arm.name!r} reads the runs of {arm.runs_of!r}, which is not an arm of this grid "
                    "that trains its own runs"
                )
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
        from eapo.train.checkpoint import KEEP_FINISHED

        if self.keep_finished not in KEEP_FINISHED:
            choices = ", ".join(KEEP_FINISHED)
            raise ConfigError(f"--keep-finished {self.keep_finished!r}: choose from {choices}")
        self.final_eval.validate()


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
    """The run folder of (arm, seed): `<out>/<arm>/seed<k>/`."""
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


def config_differences(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """`field: <a> there, <b> now` for every field (dotted) where two config dicts differ, leaving out
    `RESULT_NEUTRAL_FIELDS`."""
    out = []
    for key in sorted(set(a) | set(b)):
        where = f"{prefix}{key}"
        va, vb = a.get(key), b.get(key)
        if where in RESULT_NEUTRAL_FIELDS:
            continue
        if isinstance(va, dict) and isinstance(vb, dict):
            out += config_differences(va, vb, where + ".")
        elif va != vb:
            out.append(f"{where}: {va!r} there, {vb!r} now")
    return out
