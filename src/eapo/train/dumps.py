"""Rollout dumps: the token-level record of one training step, one format for every host.

`eapo train`, TRL's `EAPOTrainer` (and its callback for a plain `trl.GRPOTrainer`) and verl's `eapo` trainer
write the same files, and every analysis command (`eapo quadrants`, `gradients`, `report`, ...) reads them
through `load_dump`. A step is two files in `<run>/rollouts/`, readable without pickle:

- `step_NNNNNN.safetensors`: the tensors, rows = responses (groups of `group_size` contiguous rows):
  `response_ids` int64 [B,T], `response_mask` bool [B,T], `prompt_index` int64 [B], `rewards` fp32 [B],
  `entropy`, `logprobs`, `advantages`, `shaped_advantages` fp32 [B,T], `sum_sq_probs` fp64 [B,T] (optional).
- `step_NNNNNN.json`: `schema_version`, `format`, `step`, `host`, `algo`, `group_size`, `temperature`,
  `conventions` (what the mask and the advantages mean), `rank` and `world_size` (a dump holds the whole
  gathered batch of all ranks unless `shard` says otherwise), `prompts`, `completions` and
  `response_tokens` (each valid token decoded on its own).

Conventions (schema version 1): `response_mask` is 1 on the response tokens the loss counts (up to and
including EOS, none of the padding); `advantages` is the GRPO advantage of PAPER.md Eq. 2 broadcast to the
response's tokens (0 outside the mask), the one that decides a token's quadrant; `shaped_advantages` is what
the algorithm's shaper made of it (e.g. Eq. 7), the advantage the loss used; `logprobs`, `entropy` and
`sum_sq_probs` are those of π_old at the sampling temperature, softmax(logits / temperature).

Writes are atomic (temporary file, then rename; the JSON first, so a `.safetensors` file always has its
metadata). `.pt` dumps of eapo before this format are still read, with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from eapo.errors import DataError
from eapo.files import follow_umask

__all__ = [
    "CONVENTIONS",
    "DUMP_FORMAT",
    "DUMP_KEYS",
    "SCHEMA_VERSION",
    "dump_paths",
    "dump_step",
    "load_dump",
    "write_dump",
]

SCHEMA_VERSION = 1
DUMP_FORMAT = "eapo.rollout_dump"
# Keys every dump has (the `.pt` dumps of earlier versions too); `sum_sq_probs` and the strings are optional.
DUMP_KEYS = (
    "step",
    "group_size",
    "response_mask",
    "rewards",
    "entropy",
    "logprobs",
    "advantages",
    "shaped_advantages",
)
CONVENTIONS = {
    "rows": "responses; each prompt's group_size responses are contiguous rows",
    "response_mask": "1 on the response tokens the loss counts (through EOS), 0 on padding",
    "advantages": "GRPO advantage (PAPER.md Eq. 2) broadcast to the response's tokens, before shaping; "
    "its sign is the token's polarity (PAPER.md §4.1)",
    "shaped_advantages": "the advantage after the algorithm's shaper, as the policy loss used it",
    "logprobs": "log π_old(token) at the sampling temperature: log_softmax(logits / temperature)",
    "entropy": "entropy of softmax(logits / temperature) of π_old, nats",
    "sum_sq_probs": "Σ_v π_old(v)² at the sampling temperature (PAPER.md Eq. 5 without the model)",
    "quadrants": "polarity = sign of advantages; high entropy = entropy ≥ the group's mean (Appendix B.1)",
}
_TENSORS = {
    "response_ids": torch.int64,
    "response_mask": torch.bool,
    "prompt_index": torch.int64,
    "rewards": torch.float32,
    "entropy": torch.float32,
    "logprobs": torch.float32,
    "advantages": torch.float32,
    "shaped_advantages": torch.float32,
    "sum_sq_probs": torch.float64,
}
_REQUIRED_TENSORS = ("response_ids", "response_mask", "rewards", "entropy", "logprobs", "advantages")
_TOKEN_TENSORS = (
    "response_ids",
    "response_mask",
    "entropy",
    "logprobs",
    "advantages",
    "shaped_advantages",
    "sum_sq_probs",
)
_STEP_FILE = re.compile(r"^step_(\d+)\.(safetensors|pt)$")


def write_dump(
    folder: Path,
    step: int,
    *,
    host: str,
    algo: str,
    group_size: int,
    temperature: float,
    response_ids: torch.Tensor,
    response_mask: torch.Tensor,
    rewards: torch.Tensor,
    entropy: torch.Tensor,
    logprobs: torch.Tensor,
    advantages: torch.Tensor,
    shaped_advantages: torch.Tensor,
    prompt_index: torch.Tensor | None = None,
    sum_sq_probs: torch.Tensor | None = None,
    prompts: Sequence[str] = (),
    completions: Sequence[str] = (),
    response_tokens: Sequence[Sequence[str]] | None = None,
    rank: int = 0,
    world_size: int = 1,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write step `step`'s dump into `folder` (made if missing); returns the `.safetensors` path.

    Tensors are [B,T] (per token) or [B] (per response) on any device; they are stored on the CPU in the
    dtypes of the module doc. `prompt_index` (default: row // group_size) maps each row to `prompts`.
    `response_tokens`: each row's valid tokens as strings (for the report's token view); `extra`: more JSON
    metadata (e.g. the host's own settings). Raises ValueError naming a tensor whose shape does not fit.
    """
    from safetensors.torch import save_file

    mask = response_mask.detach().cpu().bool()
    if mask.dim() != 2:
        raise ValueError(f"response_mask must be [B,T]; got shape {tuple(mask.shape)}")
    rows = mask.shape[0]
    if group_size < 1 or rows % group_size:
        raise ValueError(f"group_size = {group_size}: the dump's {rows} rows must be whole groups")
    if prompt_index is None:
        prompt_index = torch.arange(rows) // group_size
    given = {
        "response_ids": response_ids,
        "response_mask": mask,
        "prompt_index": prompt_index,
        "rewards": rewards,
        "entropy": entropy,
        "logprobs": logprobs,
        "advantages": advantages,
        "shaped_advantages": shaped_advantages,
        "sum_sq_probs": sum_sq_probs,
    }
    tensors: dict[str, torch.Tensor] = {}
    for name, value in given.items():
        if value is None:
            continue
        value = torch.as_tensor(value).detach().cpu().to(_TENSORS[name]).contiguous()
        expected = tuple(mask.shape) if name in _TOKEN_TENSORS else (rows,)
        if tuple(value.shape) != expected:
            raise ValueError(f"dump tensor {name} has shape {tuple(value.shape)}; expected {expected}")
        tensors[name] = value
    if response_tokens is None:
        response_tokens = []
    metadata: dict[str, Any] = {
        "format": DUMP_FORMAT,
        "schema_version": SCHEMA_VERSION,
        "step": int(step),
        "host": host,
        "algo": algo,
        "group_size": int(group_size),
        "temperature": float(temperature),
        "rank": int(rank),
        "world_size": int(world_size),
        "shard": None,
        "conventions": CONVENTIONS,
        "tensors": {
            name: {"dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape)}
            for name, t in tensors.items()
        },
        "prompts": [str(p) for p in prompts],
        "completions": [str(c) for c in completions],
        "response_tokens": [[str(t) for t in row] for row in response_tokens],
        **(extra or {}),
    }
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"step_{int(step):06d}"
    json_tmp, json_path = folder / f".{stem}.json.tmp", folder / f"{stem}.json"
    json_tmp.write_text(json.dumps(metadata, ensure_ascii=False))
    os.replace(json_tmp, json_path)
    tensor_tmp, tensor_path = folder / f".{stem}.safetensors.tmp", folder / f"{stem}.safetensors"
    save_file(
        tensors, str(tensor_tmp), metadata={"format": DUMP_FORMAT, "schema_version": str(SCHEMA_VERSION)}
    )
    follow_umask(tensor_tmp)  # safetensors writes 0600: a teammate's `eapo quadrants` must read it
    os.replace(tensor_tmp, tensor_path)
    return tensor_path


def dump_step(path: Path) -> int:
    """The training step of a dump file `step_NNNNNN.safetensors` (or `.pt`)."""
    match = _STEP_FILE.match(Path(path).name)
    if match is None:
        raise DataError(f"{path}: not a rollout dump name (expected rollouts/step_NNNNNN.safetensors)")
    return int(match.group(1))


def dump_paths(run_dir: Path) -> list[Path]:
    """`<run>/rollouts/step_*.safetensors` (and old `step_*.pt`) in step order, one per step (may be empty).

    Where a step has both, the `.safetensors` dump is the one returned.
    """
    by_step: dict[int, Path] = {}
    for path in (Path(run_dir) / "rollouts").glob("step_*"):
        match = _STEP_FILE.match(path.name)
        if match is None:
            continue
        step = int(match.group(1))
        if step not in by_step or path.suffix == ".safetensors":
            by_step[step] = path
    return [by_step[step] for step in sorted(by_step)]


def load_dump(path: Path) -> dict[str, Any]:
    """One rollout dump as a dict: the tensors (CPU) and the JSON metadata, checked.

    Keys: every key of DUMP_KEYS, plus `response_ids`, `prompt_index`, `prompts`, `completions`,
    `response_tokens`, `algo`, `host`, `temperature`, `schema_version`, and `sum_sq_probs` when it was
    written. `response_mask` is bool; [B,T] tensors share one shape. Raises DataError naming the file and
    what is wrong (unreadable, unknown schema version, a missing key, a shape that does not fit).
    """
    path = Path(path)
    dump = _load_legacy(path) if path.suffix == ".pt" else _load_safetensors(path)
    missing = [k for k in DUMP_KEYS if k not in dump]
    if missing:
        raise DataError(f"{path}: rollout dump lacks {', '.join(missing)}; re-run the training to write them")
    shape = tuple(dump["response_mask"].shape)
    for key in ("entropy", "logprobs", "advantages", "shaped_advantages", "sum_sq_probs"):
        if key in dump and tuple(dump[key].shape) != shape:
            raise DataError(f"{path}: {key} has shape {tuple(dump[key].shape)}, expected {shape}")
    if len(shape) != 2 or shape[0] % int(dump["group_size"]) != 0:
        raise DataError(
            f"{path}: response_mask {shape} is not [B,T] with B a multiple of {dump['group_size']}"
        )
    dump["response_mask"] = dump["response_mask"].bool()
    return dump


def _load_safetensors(path: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    meta_path = path.with_suffix(".json")
    try:
        tensors = load_file(str(path), device="cpu")
        metadata = json.loads(meta_path.read_text())
    except Exception as err:  # a torn or foreign file: name it, say what was expected
        raise DataError(
            f"{path}: cannot be read as an eapo rollout dump (safetensors + {meta_path.name}: {err})"
        ) from None
    if metadata.get("format") != DUMP_FORMAT or metadata.get("schema_version") != SCHEMA_VERSION:
        raise DataError(
            f"{meta_path}: format {metadata.get('format')!r}, schema_version "
            f"{metadata.get('schema_version')!r}; this eapo reads {DUMP_FORMAT!r} version {SCHEMA_VERSION} "
            "(a newer eapo reads newer dumps)"
        )
    missing = [name for name in _REQUIRED_TENSORS if name not in tensors]
    if missing:
        raise DataError(f"{path}: rollout dump lacks the tensors {', '.join(missing)}")
    dump: dict[str, Any] = {k: v for k, v in metadata.items() if k != "tensors"}
    dump.update(tensors)
    return dump


def _load_legacy(path: Path) -> dict[str, Any]:
    """A `.pt` dump of eapo ≤ 0.x (a dict of tensors and strings), loaded without unpickling code."""
    try:
        dump = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise DataError(f"{path}: cannot be read as a rollout dump of `eapo train` ({err})") from None
    if not isinstance(dump, dict):
        raise DataError(f"{path}: a rollout dump is a dict; got {type(dump).__name__}")
    dump.setdefault("host", "eapo")
    dump.setdefault("schema_version", 0)
    dump.setdefault("temperature", None)
    return dump
