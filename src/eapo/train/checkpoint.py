"""Atomic, verifiable checkpoints: a killed or failed save never damages the previous checkpoint.

Layout of one checkpoint, `<run>/checkpoints/step_000050/`:
  model/          the policy, `save_pretrained` (safetensors) plus its tokenizer: `eapo eval` loads it
  trainer_state.safetensors  the tensors of the optimizer and scheduler state and the RNG states
  trainer_state.json         the rest of that state (plain JSON; tensors referenced by key)
  state.json      step, data position, counters (human-readable)
  manifest.json   sha256 of every file above; written last, so its presence marks a complete write

A finished run may be pruned (`prune_finished_run`, a grid's `--keep-finished`): its older checkpoints go,
and from the final one the optimizer state (then nothing can resume it) or the weights too (then nothing
can evaluate it). The manifest lists what went under `pruned`, so the checkpoint still verifies and the run
still reads as finished. `archive_finished_run` copies a finished run without them, pruned the same way, for a
study that keeps its finished runs in git while its machine may be replaced.

A save writes everything into `.tmp-step_000050/`, fsyncs each file, renames the folder into place and
fsyncs the parent: on POSIX the rename is atomic, so a crash leaves either the old set or the new one.
A failed save (a full disk, a quota, a serialisation error) removes its temporary folder and raises
CheckpointError; the checkpoints already on disk are never touched before the new one is complete.

Loading a checkpoint executes no code from it: weights are safetensors, the trainer state is safetensors plus
JSON. Checkpoints written before this format hold `trainer.pt`, a pickle; it is read with
`torch.load(weights_only=True)` (tensors and plain data only), and a file that needs more (arbitrary pickled
objects, which can run code) is refused unless the user trusts it explicitly: `--trust-checkpoint` or
`EAPO_TRUST_CHECKPOINT=1`. Files are written with the permissions the umask gives (safetensors itself
writes 0600, which would keep a teammate from evaluating a shared run).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from eapo.errors import CheckpointError, ConfigError, DataError, clip_text
from eapo.files import follow_umask
from eapo.train.logging import read_metrics

MANIFEST = "manifest.json"
TMP_PREFIX = ".tmp-"
# A re-saved step's previous folder while the new one is renamed into place (see save_checkpoint).
REPLACED_PREFIX = f"{TMP_PREFIX}old-"
DAMAGED_PREFIX = "damaged-"
TRAINER_TENSORS = "trainer_state.safetensors"
TRAINER_JSON = "trainer_state.json"
LEGACY_TRAINER_STATE = "trainer.pt"  # pickled; written before issue #20
# Files every checkpoint's manifest must list (besides the model): without them a resume is impossible.
REQUIRED_FILES = (TRAINER_TENSORS, TRAINER_JSON, "state.json")
LEGACY_REQUIRED_FILES = (LEGACY_TRAINER_STATE, "state.json")
TRUST_ENV = "EAPO_TRUST_CHECKPOINT"
# What a finished run keeps (`prune_finished_run`): every checkpoint as saved, the final one's weights
# (and records), or only the final one's records.
KEEP_FINISHED = ("all", "weights", "none")


def _flatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Plain JSON for `obj`, its tensors moved into `tensors` (under "t<N>") and referenced by key.

    Dicts keep their key types ({"__dict__": [[key, value], ...]} when a key is not a string: optimizer
    state is keyed by parameter index), tuples stay tuples; other objects are refused.
    """
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = obj.detach().cpu().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _flatten(v, tensors) for k, v in obj.items()}
        return {"__dict__": [[_flatten(k, tensors), _flatten(v, tensors)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_flatten(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return [_flatten(v, tensors) for v in obj]
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise TypeError(f"trainer state holds a {type(obj).__name__}, which has no safe on-disk form")


def _unflatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__tuple__" in obj:
            return tuple(_unflatten(v, tensors) for v in obj["__tuple__"])
        if "__dict__" in obj:
            return {_unflatten(k, tensors): _unflatten(v, tensors) for k, v in obj["__dict__"]}
        return {k: _unflatten(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unflatten(v, tensors) for v in obj]
    return obj


def write_trainer_state(folder: Path, trainer_state: dict[str, Any]) -> None:
    """`trainer_state` (optimizer, scheduler, RNG) as safetensors + JSON: nothing that loads by pickle."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    plain = _flatten(trainer_state, tensors)
    save_file(tensors, str(folder / TRAINER_TENSORS))
    (folder / TRAINER_JSON).write_text(json.dumps(plain))


def read_trainer_state(folder: Path, *, trust: bool | None = None) -> dict[str, Any]:
    """The trainer state of a checkpoint folder, loaded without running code from it.

    A legacy `trainer.pt` loads with `weights_only=True`; one that holds arbitrary objects needs `trust`
    (default: the `EAPO_TRUST_CHECKPOINT` environment variable) and raises CheckpointError otherwise.
    """
    if (folder / TRAINER_JSON).is_file():
        from safetensors.torch import load_file

        try:
            tensors = load_file(str(folder / TRAINER_TENSORS))
            return _unflatten(json.loads((folder / TRAINER_JSON).read_text()), tensors)
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise CheckpointError(f"checkpoint {folder}: unreadable trainer state ({err})") from None
    legacy = folder / LEGACY_TRAINER_STATE
    if trust is None:
        trust = os.environ.get(TRUST_ENV, "") not in ("", "0")
    try:
        return torch.load(legacy, map_location="cpu", weights_only=True)
    except Exception as err:  # an UnpicklingError names the global that weights_only refused
        if not trust:
            raise CheckpointError(
                f"checkpoint {folder}: {LEGACY_TRAINER_STATE} (the pre-safetensors format) holds pickled "
                f"objects beyond tensors and plain data ({clip_text(str(err).splitlines()[0])}); loading it "
                "would run code from the file. If you trust whoever wrote it, pass --trust-checkpoint (or "
                f"set {TRUST_ENV}=1); the next checkpoint is saved in the safe format"
            ) from None
    return torch.load(legacy, map_location="cpu", weights_only=False)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def save_checkpoint(
    run_dir: Path,
    step: int,
    model: Any,
    tokenizer: Any,
    trainer_state: dict[str, Any],
    state: dict[str, Any],
    keep: int = 2,
) -> Path:
    """Write checkpoint `step` atomically and prune all but the newest `keep`. Returns its folder.

    Raises CheckpointError (the previous checkpoints untouched) when the write fails, e.g. a full disk.
    """
    root = checkpoint_dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:06d}"
    tmp = root / f"{TMP_PREFIX}step_{step:06d}"
    replaced = root / f"{REPLACED_PREFIX}{final.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        model.save_pretrained(tmp / "model", safe_serialization=True)
        tokenizer.save_pretrained(tmp / "model")
        write_trainer_state(tmp, trainer_state)
        (tmp / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True))
        follow_umask(tmp)
        files = sorted(p for p in tmp.rglob("*") if p.is_file())
        manifest = {str(p.relative_to(tmp)): _sha256(p) for p in files}
        for p in files:
            _fsync(p)
        (tmp / MANIFEST).write_text(json.dumps({"step": step, "files": manifest}, indent=2))
        _fsync(tmp / MANIFEST)
        # Re-saving a step (an interrupt right after a periodic save): rename the old folder aside rather
        # than deleting it first, so that no moment of a slow delete leaves the step without a checkpoint.
        if final.exists():
            shutil.rmtree(replaced, ignore_errors=True)
            os.replace(final, replaced)
        os.replace(tmp, final)
        _fsync(root)
        shutil.rmtree(replaced, ignore_errors=True)
    except Exception as err:
        # Not only OSError: safetensors reports a full disk as SafetensorError, and a model that cannot be
        # serialised raises whatever its library raises. Either way the previous checkpoint stands.
        _undo(tmp, replaced, final)
        previous = latest_checkpoint(run_dir)
        kept = f"; the previous checkpoint is intact: {previous}" if previous else "; no earlier checkpoint"
        reason = err.strerror if isinstance(err, OSError) and err.strerror else f"{type(err).__name__}: {err}"
        raise CheckpointError(f"could not write checkpoint {final}: {reason}{kept}") from err
    except BaseException:  # KeyboardInterrupt mid-write: leave no half-written folder behind
        _undo(tmp, replaced, final)
        raise
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _undo(tmp: Path, replaced: Path, final: Path) -> None:
    """After a failed save: drop the temporary folder; put back a re-saved step's old folder if moved."""
    shutil.rmtree(tmp, ignore_errors=True)
    if replaced.exists() and not final.exists():
        os.replace(replaced, final)


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete-looking checkpoint folders (a manifest is present), oldest first."""
    root = checkpoint_dir(run_dir)
    if not root.is_dir():
        return []
    found = [
        p
        for p in root.iterdir()
        if p.is_dir()
        and not p.name.startswith(TMP_PREFIX)
        and checkpoint_step(p) is not None
        and (p / MANIFEST).is_file()
    ]
    return sorted(found, key=lambda p: checkpoint_step(p) or 0)


def verify_checkpoint(path: Path) -> str | None:
    """None when every file matches its manifest checksum, else what is wrong."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        return f"unreadable manifest: {err}"
    required = LEGACY_REQUIRED_FILES if LEGACY_TRAINER_STATE in files else REQUIRED_FILES
    pruned = manifest.get("pruned", [])
    missing = [name for name in required if name not in files and name not in pruned]
    if missing:
        return f"manifest lists no {missing[0]}"
    for name, digest in files.items():
        file = path / name
        if not file.is_file():
            return f"missing file {name}"
        if _sha256(file) != digest:
            return f"checksum mismatch in {name}"
    return None


def latest_checkpoint(run_dir: Path, *, verify: bool = False) -> Path | None:
    """The newest checkpoint of a run (verified against its manifest when `verify`), or None."""
    if verify:
        return scan_checkpoints(run_dir).latest
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


@dataclass
class CheckpointScan:
    """What `--resume` finds in a run's checkpoints folder.

    `latest`: the newest checkpoint that verifies (None if none does); in the rare case of a kill between
    the two renames of a re-saved step it is that step's `.tmp-old-step_N` folder (see `recover_replaced`).
    `damaged`: (folder, what is wrong) for every checkpoint folder newer than `latest` that does not
    verify, newest first. `incomplete`: temporary folders of saves that never finished (the process was
    killed while writing).
    """

    latest: Path | None
    damaged: list[tuple[Path, str]] = field(default_factory=list)
    incomplete: list[Path] = field(default_factory=list)


def scan_checkpoints(run_dir: Path) -> CheckpointScan:
    """Find the newest valid checkpoint, and what was skipped on the way to it (see CheckpointScan)."""
    root = checkpoint_dir(run_dir)
    if not root.is_dir():
        return CheckpointScan(None)
    folders = [p for p in root.iterdir() if p.is_dir()]
    # A kill between the two renames of a re-save leaves the step's previous folder as `.tmp-old-step_N`
    # and no `step_N`: that folder is still a complete checkpoint.
    replaced = [
        p
        for p in folders
        if p.name.startswith(REPLACED_PREFIX) and not (root / p.name[len(REPLACED_PREFIX) :]).exists()
    ]
    incomplete = sorted(p for p in folders if p.name.startswith(TMP_PREFIX) and p not in replaced)
    candidates = [p for p in folders if checkpoint_step(p) is not None and not p.name.startswith(TMP_PREFIX)]
    candidates += [p for p in replaced if checkpoint_step(p) is not None]
    damaged: list[tuple[Path, str]] = []
    for path in sorted(candidates, key=lambda p: checkpoint_step(p) or 0, reverse=True):
        problem = verify_checkpoint(path) if (path / MANIFEST).is_file() else "no manifest.json"
        if problem is None:
            return CheckpointScan(path, damaged, incomplete)
        damaged.append((path, problem))
    return CheckpointScan(None, damaged, incomplete)


def recover_replaced(path: Path) -> Path:
    """Rename a re-saved step's previous folder (`.tmp-old-step_N`, see save_checkpoint) back to `step_N`."""
    final = path.with_name(path.name[len(REPLACED_PREFIX) :])
    os.replace(path, final)
    return final


def set_aside(path: Path) -> Path:
    """Rename a damaged checkpoint to `damaged-step_N` (kept for inspection, never loaded or pruned)."""
    target = path.with_name(DAMAGED_PREFIX + path.name)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(path, target)
    return target


def checkpoint_step(path: Path) -> int | None:
    """The step a checkpoint folder holds (`step_N`, or a re-save's `.tmp-old-step_N`), None for another
    name."""
    name = path.name.removeprefix(REPLACED_PREFIX)
    if not name.startswith("step_"):
        return None
    try:
        return int(name.split("_", 1)[1])
    except ValueError:
        return None


def load_trainer_state(path: Path, *, trust: bool | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(trainer state, state.json contents) of a checkpoint folder; see `read_trainer_state` for `trust`."""
    problem = verify_checkpoint(path)
    if problem is not None:
        raise CheckpointError(f"checkpoint {path} is damaged: {problem}")
    if TRAINER_TENSORS in pruned_files(path):
        raise CheckpointError(
            f"checkpoint {path} was pruned after its run finished (its optimizer state was deleted to save "
            "disk, --keep-finished): it cannot be resumed"
        )
    trainer_state = read_trainer_state(path, trust=trust)
    state = json.loads((path / "state.json").read_text())
    return trainer_state, state


# ------------------------------------------------------------------ saving and loading a trainer's state
def training_state(optimizer: torch.optim.Optimizer, scheduler: Any) -> dict[str, Any]:
    """What a resume needs beyond the weights: optimizer moments, scheduler position and torch's RNG state
    (written as trainer_state.*, read back by `restore_checkpoint`)."""
    return {
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "torch_rng": torch.get_rng_state(),
    }


def resume_point(run_dir: Path) -> CheckpointScan:
    """The checkpoints `--resume` would use; CheckpointError (naming what was found) if none is valid."""
    scan = scan_checkpoints(run_dir)
    if scan.latest is None:
        found = "; ".join(f"{p.name}: {why}" for p, why in scan.damaged) or "none was saved"
        raise CheckpointError(
            f"--resume {run_dir}: no valid checkpoint under {checkpoint_dir(run_dir)} ({found}); "
            "start a new run without --resume"
        )
    return scan


def checkpoint_state(path: Path) -> dict[str, Any]:
    """A checkpoint's state.json (step, counters, whether the run had completed), read before any model."""
    try:
        state = json.loads((path / "state.json").read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path}: unreadable state.json ({err})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path}: state.json is not a JSON object")
    for key in ("step", "data_position"):
        value = state.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise CheckpointError(
                f"checkpoint {path}: state.json's {key} = {value!r}, expected an integer >= 0"
            )
    return state


def resume_target(run_dir: Path, steps: int) -> tuple[Path, int, bool]:
    """What `--resume` continues from, read before any model loads: the newest valid checkpoint, its step,
    and whether the run had finished there with nothing left to do for `steps` (= train.steps).

    CheckpointError when no checkpoint is valid; ConfigError when `steps` is below the checkpoint's step.
    """
    path = resume_point(run_dir).latest
    assert path is not None  # resume_point raised otherwise
    state = checkpoint_state(path)
    step = int(state.get("step", 0))
    if steps < step:
        raise ConfigError(
            f"--resume {run_dir}: train.steps = {steps} is below the checkpoint's step {step}; "
            f"give --steps {step} or more"
        )
    return path, step, run_completed(run_dir, state) and step >= steps


def run_completed(run_dir: Path, state: dict[str, Any]) -> bool:
    """Whether the run had finished when `state` (a checkpoint's state.json) was saved.

    A checkpoint written before state.json recorded that counts as finished when metrics.jsonl holds the
    final evaluation of its step (an eval row without a loss: the periodic evaluations share their step's
    training row).
    """
    completed = state.get("completed")
    if completed is not None:
        return bool(completed)
    step = int(state.get("step", 0))
    if step <= 0:
        return False
    try:
        rows = read_metrics(run_dir)
    except (DataError, OSError):
        return False
    return any(r["step"] == step and "loss" not in r and any(k.startswith("eval/") for k in r) for r in rows)


def load_model_weights(model: Any, path: Path) -> None:
    """Load a checkpoint's `model/*.safetensors` into `model`: a LoRA (peft) model its adapters, any other
    model all its weights, strictly (tied embeddings may be absent from the file)."""
    from safetensors.torch import load_file

    weights: dict[str, torch.Tensor] = {}
    for file in sorted((path / "model").glob("*.safetensors")):
        weights.update(load_file(file))
    if hasattr(model, "peft_config"):
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, weights)
        return
    missing, unexpected = model.load_state_dict(weights, strict=False)
    tied = {k for k in missing if "lm_head" in k or "embed" in k}
    if set(missing) - tied or unexpected:
        raise CheckpointError(
            f"checkpoint weights do not fit the model: missing {missing}, unexpected {unexpected}"
        )


def pruned_files(path: Path) -> list[str]:
    """What `prune_finished_run` deleted from a checkpoint folder (its manifest's `pruned`); [] if nothing."""
    try:
        return list(json.loads((path / MANIFEST).read_text()).get("pruned", []))
    except (OSError, ValueError, AttributeError):
        return []


def prune_finished_run(run_dir: Path, keep: str) -> list[str]:
    """Free the disk a finished run's checkpoints hold (a grid of many runs on a small disk): `weights`
    deletes every checkpoint but the final one and, from that one, the optimizer and scheduler state, which
    only a resume needs; `none` deletes its weights too (the run can no longer be evaluated or probed);
    `all` keeps everything. The final checkpoint's manifest lists what went under `pruned`: it still
    verifies, so the run still reads as finished. Returns the paths deleted, relative to the run. The caller
    makes sure the run is finished and evaluated: nothing here can tell a run that will never resume."""
    if keep not in KEEP_FINISHED:
        raise ConfigError(f"keep {keep!r}: choose from {', '.join(KEEP_FINISHED)}")
    if keep == "all":
        return []
    final = latest_checkpoint(run_dir, verify=True)
    if final is None:
        raise CheckpointError(f"{run_dir}: no checkpoint that verifies, so nothing is pruned")
    deleted = []
    for older in list_checkpoints(run_dir):
        if older != final:
            shutil.rmtree(older)
            deleted.append(str(older.relative_to(run_dir)))
    manifest = json.loads((final / MANIFEST).read_text())
    drop = [TRAINER_TENSORS]
    if keep == "none":
        drop += sorted(str(f.relative_to(final)) for f in (final / "model").glob("*.safetensors"))
    drop = [name for name in drop if name in manifest["files"]]
    if drop:
        manifest["files"] = {name: digest for name, digest in manifest["files"].items() if name not in drop}
        manifest["pruned"] = sorted({*manifest.get("pruned", []), *drop})
        # The manifest first: a kill before the files go leaves unlisted files, never a failing checkpoint.
        tmp = final / f"{TMP_PREFIX}{MANIFEST}"
        tmp.write_text(json.dumps(manifest, indent=2))
        _fsync(tmp)
        os.replace(tmp, final / MANIFEST)
        _fsync(final)
        for name in drop:
            (final / name).unlink(missing_ok=True)
            deleted.append(str((final / name).relative_to(run_dir)))
    return deleted


def archive_finished_run(run_dir: Path, dest: Path, *, leave: tuple[str, ...] = ()) -> list[str]:
    """Copy a finished run to `dest` without its weights and optimizer state: a folder of logs, metrics,
    cached evaluations and rollout dumps, small enough to commit, that still reads as finished. A study
    whose machine can be replaced keeps its finished runs this way (git), and a grid given the folder back
    never retrains the run and reports the same numbers from it.

    Only the final checkpoint comes along, pruned as `prune_finished_run(keep="none")` would prune it and
    without the tokenizer's vocabulary file (its manifest lists them under `pruned`, so it still verifies);
    dot files (a run's lock, unfinished writes) stay behind, and so do the files `leave` matches (glob
    patterns relative to the run, e.g. "rollouts/*"). Written to a staging folder beside `dest` and renamed
    into place, so a killed copy leaves no half-archived run. Returns the files copied, relative to the run.
    The caller makes sure the run is finished (with its final evaluation): a resumable run copied here could
    never resume."""
    run_dir, dest = Path(run_dir), Path(dest)
    if dest.exists():
        raise ConfigError(f"{dest} exists already: an archived run is never overwritten")
    final = latest_checkpoint(run_dir, verify=True)
    if final is None:
        raise CheckpointError(f"{run_dir}: no checkpoint that verifies, so no finished run to archive")
    manifest = json.loads((final / MANIFEST).read_text())
    files = set(manifest["files"])
    weights = {n for n in files if n.startswith("model/") and n.endswith(".safetensors")}
    # The tokenizer's vocabulary file goes too (3.4 MB for SmolLM2, the same in every run of a model): the
    # folder loads nothing without its weights, and the run's config names the model it came from.
    vocabulary = {"model/tokenizer.json"} & files
    drop = weights | vocabulary | ({TRAINER_TENSORS} & files)
    staging = dest.parent / f"{TMP_PREFIX}{dest.name}"
    shutil.rmtree(staging, ignore_errors=True)  # an earlier archive killed halfway
    copied = []
    for path in sorted(run_dir.rglob("*")):
        relative = path.relative_to(run_dir)
        if not path.is_file() or any(part.startswith(".") for part in relative.parts):
            continue
        if relative.parts[0] == "checkpoints" and (
            relative.parts[:2] != ("checkpoints", final.name) or "/".join(relative.parts[2:]) in drop
        ):
            continue
        if any(relative.match(pattern) for pattern in leave):
            continue
        (staging / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, staging / relative)
        copied.append(str(relative))
    manifest["files"] = {name: digest for name, digest in manifest["files"].items() if name not in drop}
    manifest["pruned"] = sorted({*manifest.get("pruned", []), *drop})
    (staging / "checkpoints" / final.name / MANIFEST).write_text(json.dumps(manifest, indent=2))
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staging, dest)
    return copied


@dataclass
class RestoredCheckpoint:
    """What `restore_checkpoint` loaded: the folder, the state.json it read, and what it cleaned up on the
    way (one line each, for the user)."""

    path: Path
    state: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def restore_checkpoint(
    run_dir: Path, model: Any, optimizer: torch.optim.Optimizer, scheduler: Any, *, trust: bool | None = None
) -> RestoredCheckpoint:
    """Load the newest checkpoint that verifies into `model`, `optimizer`, `scheduler` and torch's RNG.

    Newer damaged checkpoints are set aside (renamed, not deleted, so the user can inspect them and pruning
    never counts them; the resumed run rewrites those steps anyway), unfinished writes are removed, and a
    re-save killed halfway is recovered. CheckpointError when nothing valid is found or its state does not
    fit the model. `trust`: see `read_trainer_state`.
    """
    scan = resume_point(run_dir)
    notes: list[str] = []
    for damaged, why in scan.damaged:
        aside = set_aside(damaged)
        notes.append(f"Skipped damaged checkpoint {damaged.name} ({why}); moved to {aside}.")
    for unfinished in scan.incomplete:
        shutil.rmtree(unfinished, ignore_errors=True)
        notes.append(
            f"Removed {unfinished.name}: a checkpoint write that never finished (the run was killed "
            "while saving)."
        )
    path = scan.latest
    assert path is not None  # resume_point raised otherwise
    if path.name.startswith(REPLACED_PREFIX):
        path = recover_replaced(path)
        notes.append(f"Recovered {path.name}: a re-save of it was killed halfway.")
    trainer_state, state = load_trainer_state(path, trust=trust)
    load_model_weights(model, path)
    try:
        optimizer.load_state_dict(trainer_state["optimizer"])
        scheduler.load_state_dict(trainer_state["scheduler"])
        torch.set_rng_state(trainer_state["torch_rng"])
    except (KeyError, ValueError, RuntimeError, TypeError) as err:
        raise CheckpointError(
            f"checkpoint {path}: its optimizer state does not fit this model ({err}); resume with the "
            "run's own config.yaml (model and LoRA settings unchanged)"
        ) from None
    return RestoredCheckpoint(path, state, notes)
