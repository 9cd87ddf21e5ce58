"""`eapo eval`: held-out Avg@k and unbiased Pass@k (PAPER.md §6, evaluation) of a run, checkpoint or model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from eapo.core import avg_at_k, pass_at_k
from eapo.errors import ConfigError
from eapo.rollout import evaluate
from eapo.train.checkpoint import latest_checkpoint, pruned_files
from eapo.train.config import Config, load_config, validate
from eapo.train.run_policy import load_run_policy
from eapo.train.seeding import seed_everything


def _run_of_checkpoint(path: Path) -> Path | None:
    """`runs/<id>` for `runs/<id>/checkpoints/step_N` (or its `model/`), else None."""
    for parent in [path, *path.parents][:4]:
        if (parent / "config.yaml").is_file() and (parent / "checkpoints").is_dir():
            return parent
    return None


def use_checkpoint_weights(config: Config, model_folder: str | Path) -> None:
    """Point `config` at a run's saved weights: the checkpoint's model folder, no LoRA (the checkpoint holds
    its adapters or merged weights) and no format warm-up (the run's weights went through it before step 1;
    warming them up again would fine-tune the trained policy before it is evaluated or probed)."""
    config.model.name = str(model_folder)
    config.model.lora.enabled = False
    config.model.format_warmup.enabled = False


def resolve_eval_target(
    run: Path | None, model: str | None, config: Path | None, overrides: list[str] | None
) -> tuple[Config, str]:
    """The config (task, sampling, eval settings) and the model to evaluate, from whichever was given."""
    model_name: str | None = None
    config_path = config
    checkpoint_of_a_run = run is not None
    if run is not None:
        checkpoint = latest_checkpoint(run, verify=True)
        if checkpoint is None:
            raise ConfigError(f"--run {run}: no valid checkpoint under {run / 'checkpoints'}")
        if any(name.startswith("model/") for name in pruned_files(checkpoint)):
            raise ConfigError(
                f"--run {run}: its weights were deleted after it finished (a grid's --keep-finished none); "
                "its logged metrics and evaluations remain, but nothing can load it"
            )
        model_name = str(checkpoint / "model")
        config_path = config_path or run / "config.yaml"
    if model is not None:
        path = Path(model)
        if (path / "model").is_dir():  # a checkpoint folder
            path = path / "model"
        model_name = str(path) if path.exists() else model
        owner = _run_of_checkpoint(path) if path.exists() else None
        checkpoint_of_a_run = owner is not None
        if config_path is None and owner is not None:
            config_path = owner / "config.yaml"
    if model_name is None:
        raise ConfigError(
            "eapo eval needs --run RUN_DIR or --model (checkpoint folder, tiny, smollm2, Hub id, path)"
        )
    cfg = load_config(config_path, overrides)
    if checkpoint_of_a_run:
        use_checkpoint_weights(cfg, model_name)
    else:  # a base model (name, Hub id or path): the config's format warm-up applies, as at a run's start
        cfg.model.name = model_name
        cfg.model.lora.enabled = False
    return cfg, model_name


def evaluate_cli(
    *,
    run: Path | None,
    model: str | None,
    task: str | None,
    config: Path | None,
    overrides: list[str] | None,
    ks: list[int],
    num_problems: int | None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate with n = max(ks) samples per problem and report Avg@n and Pass@k for every k in `ks`."""
    if not ks or min(ks) < 1:
        raise ConfigError(f"--k {ks}: expected comma-separated integers >= 1, e.g. --k 1,8")
    extra = list(overrides or [])
    if task is not None:
        extra += ["--task.source", task]
    cfg, model_name = resolve_eval_target(run, model, config, extra)
    n = max(ks)
    # The memory estimate of the config check sees this evaluation's size (`--k 1,1000000000` must not
    # start sampling a billion completions per problem).
    cfg.eval.k = n
    if num_problems is not None:
        cfg.eval.num_problems = num_problems
    validate(cfg)
    seed_everything(cfg.run.seed)
    loaded = load_run_policy(cfg, progress=progress)
    problems = loaded.task.eval[: num_problems or cfg.eval.num_problems]
    sampling = loaded.sampling("eval")
    result = evaluate(
        loaded.model,
        loaded.tokenizer,
        loaded.task,
        problems,
        k=n,
        sampling=sampling,
        seed=cfg.run.seed,
        progress=progress,
    )
    counts = torch.tensor(result["correct_per_problem"], dtype=torch.float64)
    report: dict[str, Any] = {
        "model": model_name,
        "task": cfg.task.source,
        "num_problems": len(problems),
        "samples_per_problem": n,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        f"avg@{n}": avg_at_k(counts, n=n),
    }
    for k in sorted(set(ks)):
        report[f"pass@{k}"] = float(torch.as_tensor(pass_at_k(n, counts, k)).mean())
    for key in ("mean_response_tokens", "truncated_fraction", "extracted_fraction"):
        report[key] = result[key]
    return report
