"""eapo.analysis: the experiments and analyses built on top of the trainer.

Import the submodule you need; this package imports nothing itself, so `import eapo.analysis.stats` stays
light (no torch, no transformers):

- `grid`: run arms x seeds with identical data, budget, evaluation and initial weights; resumable.
- `stats`: means with intervals over seeds and paired differences between arms.
- `ablate`: the paper's quadrant experiments (PAPER.md §4.2 Fig. 2, §6.4 Table 3), `eapo ablate`.
- `compare`: EAPO against the baselines with paired statistics, and the α/φ sensitivity, `eapo compare`.
- `prestated`: compare's pre-stated analysis: primary metric, Holm-corrected secondaries, hierarchical
  bootstrap, Pass@k against the base model and guessing; `prestated_metrics` the per-run values it tests;
  `power` the minimum detectable effect of a grid (`--power-seeds`, `--pilot`).

The analyses of single runs (`quadrants`, `credit`, `gradients`, `report`, `plots`) are described in their
own module docstrings. Their command lines (argparse) live in `eapo.cli`.
"""
