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

Runs live in `<out>/<arm>/seed<k>/` (an ordinary trainer run folder). The package, by concern:

- `spec`: arms, seeds and evaluation settings (`GridSpec`), each run's config, config differences;
- `run`: each run's status, the resumable run loop (`run_grid`), the final and base-model evaluations;
- `status`: where a grid stands, read from its folders without training (`--status`);
- `summary`: `RunRecord`s read from run folders, summaries over seeds, paired comparisons;
- `tables`: the Markdown tables of a summary. Its figures are in `eapo.analysis.plots`.
"""

from eapo.analysis.grid.run import (
    BASE_MODEL_DIR,
    base_model_evaluations,
    final_eval_row,
    final_evaluations,
    run_grid,
    run_status,
)
from eapo.analysis.grid.spec import (
    GRID_EVAL,
    GRID_FIELDS,
    GRID_RUN,
    INIT_MODES,
    RESULT_NEUTRAL_FIELDS,
    Arm,
    FinalEvalSettings,
    GridBusy,
    GridInterrupted,
    GridSpec,
    config_differences,
    deep_merge,
    run_config,
    run_dir_of,
)
from eapo.analysis.grid.status import RunProgress, format_grid_status, grid_status, run_progress
from eapo.analysis.grid.summary import (
    FINAL_ENTROPY_STEPS,
    RunRecord,
    collect_run,
    final_metric,
    grid_summary,
    paired_comparisons,
    record_brief,
    steps_to_target,
    summarize_arm,
)
from eapo.analysis.grid.tables import (
    fmt_interval,
    markdown_table,
    pass_curve_table,
)

__all__ = [
    "BASE_MODEL_DIR",
    "FINAL_ENTROPY_STEPS",
    "GRID_EVAL",
    "GRID_FIELDS",
    "GRID_RUN",
    "INIT_MODES",
    "RESULT_NEUTRAL_FIELDS",
    "Arm",
    "FinalEvalSettings",
    "GridBusy",
    "GridInterrupted",
    "GridSpec",
    "RunProgress",
    "RunRecord",
    "base_model_evaluations",
    "collect_run",
    "config_differences",
    "deep_merge",
    "final_eval_row",
    "final_evaluations",
    "final_metric",
    "fmt_interval",
    "format_grid_status",
    "grid_status",
    "grid_summary",
    "markdown_table",
    "paired_comparisons",
    "pass_curve_table",
    "record_brief",
    "run_config",
    "run_dir_of",
    "run_grid",
    "run_progress",
    "run_status",
    "steps_to_target",
    "summarize_arm",
]
