"""Run folders: one process per folder, never an old run's folder, never outside `run.output_dir`.

- **Names.** The default is `<algo>-<task>-<YYYYmmdd-HHMMSS>-<6 hex>`: the random suffix keeps runs started in
  the same second (a sweep) apart. `run.name` is one folder name (checked in `config.validate`).
- **Creation.** A new run creates its folder with `mkdir(exist_ok=False)`, so of two processes racing for one
  name exactly one gets it; the other stops with exit code 2 naming the folder. A new run never writes into an
  existing folder: continue that run with `--resume`, or pick another `--run.name`.
- **The lock.** The owning process holds `fcntl.flock(LOCK_EX)` on `<run>/.lock` (the file records its pid,
  host and start time) until it exits. The kernel drops the lock when the process dies, however it dies, so
  a lock is never stale: a leftover `.lock` file of a dead process is simply taken over. A second process
  (a `--resume` of a run that is still training, or an evaluation that writes into it) is refused with the
  holder's pid and host. On a file system without `flock` (some network mounts) eapo warns and runs unlocked.
- **Resume.** `--resume` continues the recorded config (`config.yaml`, never rewritten, plus the changes in
  `config_changes.jsonl`). A change to a field that alters the math is refused unless
  `--allow-config-change`; every accepted change (including a longer `train.steps`) is appended to
  `config_changes.jsonl` as `{"step", "field", "old", "new"}`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import socket
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from eapo.errors import ConfigError, RunFolderTaken, clip_text

LOCK_FILE = ".lock"
CONFIG_FILE = "config.yaml"
CHANGES_FILE = "config_changes.jsonl"

# Fields a resume may change without --allow-config-change: they change how long the run goes, what it
# logs and how it batches the work, never what a step computes (micro-batches and chunks only regroup the
# same sums; the shared prompt forward, the prefill, the decode attention kernel and the fused optimizer only
# reorder them). Every other field alters the math of the steps still to come.
FREE_ON_RESUME = frozenset(
    {
        "train.steps",
        "train.micro_batch_rows",
        "train.logprob_chunk_size",
        "train.shared_prompt_forward",
        "train.fused_optimizer",
        "train.trim_padding",
        "sampling.batch_rows",
        "sampling.shared_prompt_prefill",
        "sampling.attention",
        "eval.every",
        "eval.num_problems",
        "eval.reuse_start",
        "run.checkpoint_every",
        "run.keep_checkpoints",
        "run.tensorboard",
        "run.log_samples",
        "run.entropy_change_every",
        "run.dump_rollouts_every",
        "task.verifier_timeout_s",
        "model.device",
    }
)
# Where the run lives: fixed by the folder being resumed, so a different value is meaningless.
FIXED_ON_RESUME = frozenset({"run.output_dir", "run.name"})


def default_run_name(algo: str, task_source: str) -> str:
    """`<algo>-<task>-<YYYYmmdd-HHMMSS>-<6 hex>`: unique even for runs started in the same second."""
    task = task_source.split(":")[-1].split("/")[-1] or "task"
    task = "".join(c if c.isalnum() or c in "-_." else "_" for c in task).lstrip(".") or "task"
    return f"{algo}-{task}-{datetime.now().strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


def check_output_dir(output_dir: str | Path) -> Path:
    """Check, before anything loads, that run folders can be created under `output_dir`.

    ConfigError naming the path and the fix when it is a file, lies under a file, or is not writable.
    """
    path = Path(output_dir)
    # The nearest existing ancestor decides: it must be a folder we may write into.
    probe = path
    while not probe.exists():
        if probe.is_symlink():  # a dangling symlink
            raise ConfigError(f"run.output_dir {path}: {probe} is a broken symbolic link; fix or remove it")
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        where = "is a file" if probe == path else f"lies under {probe}, which is a file"
        raise ConfigError(f"run.output_dir {path} {where}; choose a folder with --run.output_dir DIR")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(
            f"run.output_dir {path}: {probe} is not writable by this user; choose another folder with "
            "--run.output_dir DIR or fix its permissions"
        )
    return path


def check_new_run_dir(run_dir: Path) -> None:
    """ConfigError if a new run would write into an existing folder (checked before the model loads, and
    again, atomically, by `create_run_dir`)."""
    if run_dir.exists() or run_dir.is_symlink():
        raise RunFolderTaken(_exists_message(run_dir))


def _exists_message(run_dir: Path) -> str:
    return (
        f"run folder {run_dir} already exists; continue that run with `eapo train --resume {run_dir}`, or "
        "start a new one under another --run.name"
    )


def create_run_dir(run_dir: Path) -> Path:
    """Create a new run's folder; exactly one of several processes racing for the same name succeeds."""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        run_dir.mkdir(exist_ok=False)
    except FileExistsError:
        raise RunFolderTaken(_exists_message(run_dir)) from None
    except OSError as err:
        raise ConfigError(
            f"cannot create run folder {run_dir}: {err.strerror or err}; choose another --run.output_dir"
        ) from None
    return run_dir


class RunLock:
    """An exclusive `flock` on `<run>/.lock` (or `<run>/<name>`), held for the life of the process (or until
    `release`)."""

    def __init__(self, run_dir: Path, name: str = LOCK_FILE) -> None:
        self.path = Path(run_dir) / name
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock or raise ConfigError naming the process that holds it."""
        import fcntl

        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as err:
            raise ConfigError(
                f"cannot create the lock file {self.path}: {err.strerror or err}; the run folder must be "
                "writable"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = _read_holder(fd)
            os.close(fd)
            if err.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise RunFolderTaken(
                    f"run folder {self.path.parent} is in use by {holder} (lock {self.path}); wait for that "
                    "process to finish or stop it; two processes must never write one run",
                    holder=holder,
                ) from None
            # ENOLCK / EOPNOTSUPP: no flock on this file system (e.g. some NFS mounts).
            print(
                f"warning: cannot lock {self.path} ({err.strerror or err}); this run folder is not "
                "protected against a second process"
            )
            return self
        os.ftruncate(fd, 0)
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        os.write(fd, (json.dumps(record) + "\n").encode())
        self._fd = fd
        return self

    def release(self) -> None:
        """Drop the lock (the file stays: it is not a lock once no process holds it)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __del__(self) -> None:
        self.release()


def run_holder(run_dir: Path) -> str | None:
    """Who holds `run_dir`'s lock ("pid N on host H"), or None when no process does (or it has no lock
    file). A probe: the lock is taken and dropped at once, so it is never held past this call."""
    if not (Path(run_dir) / LOCK_FILE).is_file():
        return None
    try:
        RunLock(Path(run_dir)).acquire().release()
    except RunFolderTaken as err:
        return err.holder or "another process"
    return None


def _read_holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        record = json.loads(os.read(fd, 4096).decode() or "{}")
        return f"pid {record['pid']} on host {record['host']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


# --- resuming with the recorded config ----------------------------------------------------------------


def read_changes(run_dir: Path) -> list[dict[str, Any]]:
    """The rows of `<run>/config_changes.jsonl` (config changes accepted by earlier resumes), oldest first."""
    path = Path(run_dir) / CHANGES_FILE
    if not path.is_file():
        return []
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise ConfigError(f"{path}, line {number}: not JSON; this file records config changes") from None
        if not isinstance(row, dict) or not isinstance(row.get("field"), str) or "new" not in row:
            raise ConfigError(
                f"{path}, line {number}: expected {{step, field, old, new}}, got {clip_text(line)}"
            )
        rows.append(row)
    return rows


def recorded_config(run_dir: Path) -> Any:
    """The config a run trains with now: its `config.yaml` (as written at the start) with the changes of
    `config_changes.jsonl` applied in order (each replaces the field's whole value)."""
    from eapo.train.config import _build, load_config, to_dict, validate

    path = Path(run_dir) / CONFIG_FILE
    config = load_config(path)
    changes = read_changes(run_dir)
    if not changes:
        return config
    values = to_dict(config)
    for row in changes:
        node = values
        *parents, last = _split(row["field"])
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = row["new"]
    try:
        config = _build(type(config), values, "")
        validate(config)
    except ConfigError as err:
        raise ConfigError(f"{path} + {CHANGES_FILE}: {err}") from None
    return config


def _split(field_name: str) -> list[str]:
    """A dotted field of `flat_fields` into its path (`model.tiny.seed` -> model, tiny, seed)."""
    for nested in NESTED_SECTIONS:
        if field_name.startswith(nested + "."):
            return [*nested.split("."), field_name[len(nested) + 1 :]]
    section, _, rest = field_name.partition(".")
    return [section, rest] if rest else [section]


# Sub-sections whose fields are compared one by one (the free-form mappings, e.g. task.params, are one field).
NESTED_SECTIONS = ("model.lora", "model.tiny")


def flat_fields(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"train": {"lr": 1e-6}}` -> `{"train.lr": 1e-6}`; free-form mappings (params) stay one field."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and (not prefix or name in NESTED_SECTIONS):
            out.update(flat_fields(value, f"{name}."))
        else:
            out[name] = list(value) if isinstance(value, tuple) else value
    return out


def config_changes(old: Any, new: Any) -> list[tuple[str, Any, Any]]:
    """(field, old, new) for every field that differs between two Configs, in field order."""
    from eapo.train.config import to_dict

    a, b = flat_fields(to_dict(old)), flat_fields(to_dict(new))
    return [(name, a.get(name), b[name]) for name in b if a.get(name) != b[name]]


def check_resume_changes(
    run_dir: Path, recorded: Any, requested: Any, *, allow: bool
) -> list[tuple[str, Any, Any]]:
    """The changes a resume makes to the recorded config; ConfigError if one alters the math and `allow`
    is False, or if it moves the run (run.output_dir / run.name)."""
    changes = config_changes(recorded, requested)
    moved = [c for c in changes if c[0] in FIXED_ON_RESUME]
    if moved:
        raise ConfigError(
            f"--resume {run_dir}: {_listed(moved)}: a resumed run stays in its folder; leave these out"
        )
    math_changes = [c for c in changes if c[0] not in FREE_ON_RESUME]
    if math_changes and not allow:
        raise ConfigError(
            f"--resume {run_dir} continues the recorded config, and this would change what the next steps "
            f"compute: {_listed(math_changes)}. Resume without these changes, start a new run, or pass "
            f"--allow-config-change to apply them from the checkpoint's step on (recorded in {CHANGES_FILE})"
        )
    return changes


def _listed(changes: list[tuple[str, Any, Any]]) -> str:
    return "; ".join(
        f"{name}: {clip_text(repr(old), 60)} -> {clip_text(repr(new), 60)}" for name, old, new in changes
    )


def record_changes(run_dir: Path, step: int, changes: list[tuple[str, Any, Any]]) -> None:
    """Append accepted changes to `config_changes.jsonl` (the step from which they apply)."""
    if not changes:
        return
    with (Path(run_dir) / CHANGES_FILE).open("a", encoding="utf-8") as f:
        for name, old, new in changes:
            f.write(json.dumps({"step": step, "field": name, "old": old, "new": new}) + "\n")
        f.flush()
        os.fsync(f.fileno())


def resume_config(
    run_dir: Path, recorded: Any, config: Any = None, overrides: list[str] | dict[str, Any] | None = None
) -> Any:
    """The config a resume asks for: `config` (a Config or a YAML file given beside `--resume`, whose run
    location is replaced by the folder's) or else the recorded one, with `overrides` on top."""
    from eapo.train.config import Config, _build, _merge, load_config, parse_overrides, to_dict, validate

    if isinstance(config, Config):
        base = to_dict(config)
    elif config is not None:
        base = to_dict(load_config(config))
    else:
        base = to_dict(recorded)
    if config is not None and not isinstance(config, Config):
        base["run"]["output_dir"] = recorded.run.output_dir
        base["run"]["name"] = recorded.run.name
    extra = (parse_overrides(overrides) if isinstance(overrides, list) else overrides) if overrides else {}
    source = f"--resume {run_dir}" + (" + command-line overrides" if extra else "")
    try:
        requested = _build(Config, _merge(base, extra), "")
        validate(requested)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
    return requested
