"""The start evaluation, computed once and reused by the runs that share it (`eval.reuse_start`).

Every arm of one seed of a grid starts from the same weights and evaluates them at step 0 on the same
problems, with the same samples, sampling settings and sampling seed, so its start evaluation is the same
numbers every time. On SmolLM2 (200 held-out problems x 8 samples) it costs ~6.5 minutes of a ~3 hour run,
and a study of ~90 runs over a handful of seeds repeats it ~85 times. With `eval.reuse_start` the first run
computes it and stores it under `<cache>/start_eval/<key>.json` (`<cache>`: `eapo.models.default_cache_dir`),
and a later run with the same key reads it instead.

The key hashes everything the evaluation's result depends on: the weights themselves (their bytes), the
model's config, the tokenizer's vocabulary and the tokenized prompts, the problems with their answers, the
task config (the verifier's settings), k, the sampling settings and the sampling seed, the precision the
evaluation runs in, the device (the CPU's model, instruction sets and torch threads, or the GPU's name) and
the torch, transformers and eapo versions. Evaluation samples in a forked RNG
(`eapo.rollout.generate.seeded_sampling`), so reusing it leaves the training RNG untouched: a run that reads
its start evaluation trains exactly like the run that would have computed it (tests/train/test_start_eval.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from eapo.files import current_umask
from eapo.rollout.config import SamplingConfig
from eapo.tasks import Problem, Task, build_prompt

__all__ = ["START_EVAL_DIR", "read_start_eval", "reuse_or_compute", "start_eval_key", "store_start_eval"]

START_EVAL_DIR = "start_eval"
# Bump when what an evaluation returns or how it scores changes in a way the key cannot see.
START_EVAL_VERSION = 1


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 of every tensor of the model's state dict: names, dtypes, shapes and bytes."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        flat = tensor.detach().reshape(-1).contiguous().cpu()
        digest.update(f"{name}|{flat.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def device_identity(device: torch.device) -> dict[str, Any]:
    """What decides an evaluation's floating-point results beyond the inputs: the device and its kernels."""
    from eapo.train.provenance import cpu_features, cpu_model

    if device.type == "cuda":
        return {"type": "cuda", "name": torch.cuda.get_device_name(device), "cuda": torch.version.cuda}
    if device.type == "cpu":
        return {
            "type": "cpu",
            "cpu": cpu_model(),
            "cpu_features": cpu_features(),
            "torch_threads": torch.get_num_threads(),
        }
    return {"type": device.type}


def start_eval_key(
    model: Any,
    tokenizer: Any,
    task: Task,
    problems: list[Problem],
    *,
    k: int,
    sampling: SamplingConfig,
    seed: int | None,
    precision: dict[str, Any],
) -> str:
    """The cache key of an evaluation of `model` (see the module docstring for what it covers);
    `precision` is the run's `eapo.models.effective_precision`."""
    import transformers

    import eapo

    prompts = [build_prompt(problem, tokenizer, task.config) for problem in problems]
    prompt_ids = [tokenizer(prompt, add_special_tokens=False)["input_ids"] for prompt in prompts]
    vocabulary = json.dumps(sorted(tokenizer.get_vocab().items()))
    sampling_fields = dataclasses.asdict(sampling)
    if not sampling.phase_tokens:
        # One generate call per chunk, as sampled before the field existed: records stored then stay valid.
        del sampling_fields["phase_tokens"]
    payload = {
        "version": START_EVAL_VERSION,
        "weights": weights_digest(model),
        "model_config": model.config.to_json_string(use_diff=False),
        "vocabulary": hashlib.sha256(vocabulary.encode()).hexdigest(),
        "special_tokens": [tokenizer.eos_token_id, tokenizer.pad_token_id],
        "prompt_ids": hashlib.sha256(json.dumps(prompt_ids).encode()).hexdigest(),
        "problems": [dataclasses.asdict(problem) for problem in problems],
        "task": dataclasses.asdict(task.config),
        "k": k,
        "sampling": sampling_fields,
        "seed": seed,
        "precision": precision,
        "device": device_identity(next(model.parameters()).device),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "eapo": eapo.__version__,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _path(cache_dir: Path, key: str) -> Path:
    return Path(cache_dir) / START_EVAL_DIR / f"{key}.json"


def read_start_eval(cache_dir: Path, key: str) -> dict[str, Any] | None:
    """The stored record for `key` (`result`: what `eapo.rollout.evaluate` returned, `seconds`, `run`,
    `created_at`), or None when there is none or it cannot be read (then the run evaluates)."""
    try:
        record = json.loads(_path(cache_dir, key).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("key") != key or not isinstance(record.get("result"), dict):
        return None
    return record


def store_start_eval(
    cache_dir: Path, key: str, result: dict[str, Any], *, seconds: float, run_dir: Path
) -> Path | None:
    """Store an evaluation under `key`, written to a temporary file and renamed, so a reader never sees half
    a record. Returns its path, or None when the cache cannot be written (the run goes on without it)."""
    path = _path(cache_dir, key)
    record = {
        "key": key,
        "result": result,
        "seconds": round(seconds, 2),
        "run": str(run_dir),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, staging = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(record, indent=1) + "\n")
        os.chmod(staging, 0o666 & ~current_umask())  # mkstemp makes 0600; the cache is shared
        os.replace(staging, path)
    except OSError:
        return None
    return path


def reuse_or_compute(
    key: str, compute: Callable[[], dict[str, Any]], *, run_dir: Path, cache_dir: Path | None = None
) -> tuple[dict[str, Any], bool]:
    """(the result stored under `key`, True), or else (`compute()`, False) after storing it under `key`
    in `cache_dir` (default: `eapo.models.default_cache_dir`)."""
    from eapo.models import default_cache_dir

    cache = default_cache_dir(cache_dir)
    stored = read_start_eval(cache, key)
    if stored is not None:
        return stored["result"], True
    start = time.perf_counter()
    result = compute()
    store_start_eval(cache, key, result, seconds=time.perf_counter() - start, run_dir=run_dir)
    return result, False
