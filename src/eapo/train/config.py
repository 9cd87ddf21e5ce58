"""Typed run configuration: dataclasses loaded from YAML, overridden from the command line, validated once.

A run config has one section per concern (task, model, sampling, eval, algo, train, run). Each section is a
dataclass owned by the module that uses it; this module only assembles, loads and validates them, so that
every error names the file, the dotted field, the value and what was expected.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from eapo.errors import ConfigError, clip_text
from eapo.models.config import ModelConfig
from eapo.rollout.config import ATTENTION_CHOICES, SamplingConfig
from eapo.tasks.config import TaskConfig
from eapo.train.algorithms import AlgoConfig, validate_algo_config


@dataclass
class EvalConfig:
    """Held-out evaluation (PAPER.md §6: T = 0.6, top-p 0.95, Avg@k and unbiased Pass@k)."""

    every: int = 25  # steps between evaluations; 0 evaluates only at the start and the end
    num_problems: int = 100  # held-out problems used (the first N of the eval split)
    k: int = 4  # samples per problem: reports Avg@k, Pass@1 and Pass@k
    temperature: float = 0.6
    top_p: float = 0.95
    max_new_tokens: int | None = None  # None: the same as sampling.max_new_tokens
    # Reuse the start evaluation (step 0) of an earlier run with the same weights, problems, sampling, seed,
    # precision and device, from the eapo cache (eapo.train.start_eval): every arm of a grid's seed starts
    # from the same model, so only the first computes it. The numbers are the same either way.
    reuse_start: bool = False


@dataclass
class TrainConfig:
    """The RL loop (DESIGN.md section 3)."""

    steps: int = 100
    prompts_per_step: int = 16
    group_size: int = 8  # G responses per prompt
    lr: float = 1e-6
    weight_decay: float = 0.0
    warmup_steps: int = 0
    ppo_epochs: int = 1
    mini_batches: int = 1  # optimizer steps per PPO epoch
    micro_batch_rows: int = 64  # rows per forward/backward; gradients accumulate across micro-batches
    max_grad_norm: float = 1.0
    # positions per chunk of the log-prob/entropy pass; None: sized by vocabulary and device
    # (eapo.core.default_chunk_size)
    logprob_chunk_size: int | None = None
    # DAPO's dynamic-sampling filter: groups whose rewards are all equal carry no GRPO signal and are
    # left out of the update (no re-sampling, so every algorithm spends the same rollout budget).
    drop_zero_variance_groups: bool = True
    # π_old and the entropy from the decode loop instead of a separate no-grad forward, whenever they are
    # exactly π_old's: sampling weights = training weights, all fp32, no autocast (else the forward runs).
    rollout_logprobs: bool = True
    # Each distinct prompt's forward made once per micro-batch and shared by its group's rows through the
    # key/value cache (eapo.rollout.shared_prompt): the same log-probs up to float rounding, fewer FLOPs.
    shared_prompt_forward: bool = True
    # AdamW's fused kernel (one pass over each tensor for the moments and the weight) where torch has it
    # for the weights' device and dtype, else its per-tensor loop: the same update up to float rounding,
    # several times faster on CPU (benchmarks/step_bound.py, the optimizer phase).
    fused_optimizer: bool = True
    # Each micro-batch of the update cut to its own longest response instead of the rollout's: the same loss
    # and gradients up to float rounding (causal attention; the cut columns are padding), far less work when
    # one response ran to the length limit (it widens the whole rollout: a 4x slower SmolLM2 step, see
    # docs/reliability.md). Off by default so that runs made before it resume unchanged.
    trim_padding: bool = False
    max_bad_steps: int = 5  # consecutive non-finite steps before the run stops with a checkpoint


@dataclass
class RunConfig:
    """Where the run writes and how often."""

    output_dir: str = "runs"
    name: str | None = None  # None: <algo>-<task>-<timestamp>
    seed: int = 0
    checkpoint_every: int = 50
    keep_checkpoints: int = 2
    tensorboard: bool = True
    log_samples: int = 4  # completions per step written to samples.jsonl (for `eapo report`)
    # Every N steps (0 = never): re-score the step's batch after the update and log each quadrant's mean
    # entropy change (PAPER.md Fig. 6b); costs one extra no-grad forward on those steps.
    entropy_change_every: int = 5
    # Every N steps (0 = never): save the step's token-level tensors (entropy, advantages, shaped
    # advantages, masks, rewards, texts) to rollouts/step_N.safetensors + .json (`eapo.train.dumps`), the
    # input of `eapo quadrants`/`gradients`/`report`.
    dump_rollouts_every: int = 10
    # Every N steps (0 = never): log how far the update moved the weights (drift/update_norm,
    # drift/update_relative); costs one copy of the trainable weights on those steps.
    update_size_every: int = 1


@dataclass
class Config:
    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    run: RunConfig = field(default_factory=RunConfig)


# Command-line shortcuts for the fields people change most.
SHORTCUTS = {"algo": "algo.name", "steps": "train.steps", "seed": "run.seed", "model": "model.name"}


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check `value` against the annotation `tp`, converting only where it is lossless (int -> float)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as err:
                errors.append(err)
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {clip_text(repr(value))}")
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(
                f"{where}: expected a mapping of {tp.__name__} fields, got {clip_text(repr(value))}"
            )
        return _build(tp, value, where)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {clip_text(repr(value))}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {clip_text(repr(value))}")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {clip_text(repr(value))}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {clip_text(repr(value))}")
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {clip_text(repr(value))}")
        return [_coerce(item, args[0], f"{where}[{i}]") for i, item in enumerate(value)]
    if origin is tuple:
        if not isinstance(value, list | tuple) or len(value) != len(args):
            raise ConfigError(f"{where}: expected a list of {len(args)} values, got {clip_text(repr(value))}")
        return tuple(
            _coerce(item, arg, f"{where}[{i}]") for i, (item, arg) in enumerate(zip(value, args, strict=True))
        )
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {clip_text(repr(value))}")
        return {str(k): _coerce(v, args[1], f"{where}.{k}") for k, v in value.items()}
    raise ConfigError(f"{where}: unsupported field type {tp}")  # a bug in eapo, not in the config


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in values:
        if key not in names:
            prefix = f"{where}." if where else ""
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else f"; valid fields: {', '.join(names)}"
            raise ConfigError(f"unknown field '{prefix}{key}'{hint}")
    kwargs = {}
    for name in names:
        if name in values:
            kwargs[name] = _coerce(values[name], hints[name], f"{where}.{name}" if where else name)
    return cls(**kwargs)


def _merge(base: dict[str, Any], extra: dict[str, Any], where: str = "") -> dict[str, Any]:
    """`extra` over `base`, mapping by mapping. A mapping laid over a value that is not one is an error
    (`train: [1, 2]` in a file and `--train.lr 0.1` on the command line must not hide the broken section)."""
    out = dict(base)
    for key, value in extra.items():
        name = f"{where}.{key}" if where else str(key)
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value, name)
        elif isinstance(value, dict) and key in out:  # also `train:` left empty (None) in the file
            raise ConfigError(f"{name}: expected a mapping of fields, got {clip_text(repr(out[key]))}")
        else:
            out[key] = value
    return out


def parse_overrides(args: list[str]) -> dict[str, Any]:
    """Turn `--train.lr 1e-6 --algo eapo --task.params.max_terms=3` into a nested dict.

    Values are parsed as YAML scalars (`1e-6` -> float, `true` -> bool, `[a, b]` -> list).
    """
    nested: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise ConfigError(f"unexpected argument {arg!r}: overrides look like --section.field VALUE")
        key = arg[2:]
        if "=" in key:
            key, raw = key.split("=", 1)
            i += 1
        else:
            if i + 1 >= len(args):
                raise ConfigError(f"override --{key} needs a value")
            raw = args[i + 1]
            i += 2
        key = SHORTCUTS.get(key, key).replace("-", "_")
        # Scientific notation without a dot ("1e-6") is a string to YAML 1.1; read it as a number.
        try:
            value: Any = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = float(value) if any(c in value for c in "eE.") else value
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return nested


BUILTIN_CONFIGS = Path(__file__).resolve().parents[1] / "configs"
DEFAULT_CONFIG = BUILTIN_CONFIGS / "tiny.yaml"


def builtin_config_names() -> list[str]:
    """Names accepted wherever a config path is: `tiny` (the default) and `smoke` (seconds, for tests)."""
    return sorted(p.stem for p in BUILTIN_CONFIGS.glob("*.yaml"))


def resolve_config_path(path: str | Path | None) -> Path:
    """A config file: None is the default, an existing file is itself, a built-in name its YAML."""
    if path is None:
        return DEFAULT_CONFIG
    path = Path(path)
    if path.is_file():
        return path
    if path.suffix == "" and (BUILTIN_CONFIGS / f"{path.name}.yaml").is_file():
        return BUILTIN_CONFIGS / f"{path.name}.yaml"
    raise ConfigError(
        f"config file not found: {path} (built-in configs: {', '.join(builtin_config_names())})"
    )


class _UniqueKeyLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses a key given twice in one mapping (PyYAML keeps the last silently,
    so a second `train:` block would drop the first without a word)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise ConfigError(
                        f"duplicate key {clip_text(repr(key))} at line {line} (first at line {seen[key]}); "
                        "merge the two into one"
                    )
                seen[key] = line
            except TypeError:  # an unhashable key: the base class reports it
                continue
        return super().construct_mapping(node, deep=deep)


def load_yaml_text(path: Path) -> Any:
    """Parse a YAML file strictly: UTF-8, no duplicate keys. ConfigError names the file and the fault."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset {err.start}); "
            "save the file as UTF-8"
        ) from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the file: {err.strerror or err}") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: malformed YAML{at}: {getattr(err, 'problem', err)}") from None


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A config file's sections, with `extends: <built-in name or path>` merged underneath."""
    values = load_yaml_text(path)
    if values is None:
        raise ConfigError(
            f"{path}: the file is empty; give at least one section (task, model, ...) or "
            "`extends: tiny` to start from the built-in default"
        )
    if not isinstance(values, dict):
        raise ConfigError(
            f"{path}: expected a mapping of sections (task, model, ...), got {clip_text(repr(values))}"
        )
    parent = values.pop("extends", None)
    if parent is None:
        return values
    parent_path = Path(str(parent))
    if not parent_path.is_absolute() and (path.parent / parent_path).is_file():
        parent_path = path.parent / parent_path
    parent_path = resolve_config_path(parent_path).resolve()
    if parent_path in seen or parent_path == path.resolve():
        raise ConfigError(f"{path}: `extends: {parent}` makes a cycle")
    return _merge(_read_yaml(parent_path, (*seen, path.resolve())), values)


def load_config(
    path: str | Path | None = None, overrides: list[str] | dict[str, Any] | None = None
) -> Config:
    """Load a YAML config (None: the embedded default, `eapo/configs/tiny.yaml`; a built-in name such as
    `smoke`; or a path), apply overrides, validate. A file may start from another with `extends:`.

    Raises ConfigError naming the file, the field and the value on any unknown field, wrong type or
    out-of-range value.
    """
    path = resolve_config_path(path)
    source = str(path)
    values = _read_yaml(path)
    extra = (parse_overrides(overrides) if isinstance(overrides, list) else overrides) if overrides else {}
    if extra:
        source += " + command-line overrides"
    try:
        values = _merge(values, extra)
        config = _build(Config, values, "")
        validate(config)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
    return config


def _require(ok: bool, field_name: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{field_name} = {clip_text(repr(value))} is out of range: expected {expected}")


# String fields where "" means something ("" system prompt: no instruction); every other string field and
# every item of a list of strings must be non-empty (an empty stop string would end every completion at
# its first token).
EMPTY_STRING_ALLOWED = {"task.system_prompt"}
# Seeds go to torch.manual_seed, which takes 0 <= seed < 2^64; eapo's step seeds need < 2^63.
MAX_SEED = (1 << 63) - 1


def _check_values(obj: Any, where: str) -> None:
    """Type-independent checks over every field of the config tree: every number finite (YAML reads
    `1e400` and `.inf` as inf), no empty string where emptiness has no meaning. Free-form parameter
    mappings (`task.params`, `algo.shaper_params`, ...) are checked by their owners."""
    for f in dataclasses.fields(obj):
        name = f"{where}.{f.name}" if where else f.name
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            _check_values(value, name)
            continue
        items = list(enumerate(value)) if isinstance(value, list | tuple) else [(None, value)]
        for i, item in items:
            label = name if i is None else f"{name}[{i}]"
            if isinstance(item, float) and not math.isfinite(item):
                raise ConfigError(f"{label} = {item!r} is not a finite number")
            # A list item may be whitespace ("\n\n" is a fine stop string), but not empty.
            empty = isinstance(item, str) and (item == "" if i is not None else not item.strip())
            if empty and label not in EMPTY_STRING_ALLOWED:
                raise ConfigError(f"{label} = {item!r}: expected a non-empty string")
        if isinstance(value, dict) and f.name == "fields":  # task.fields: column names
            for key, column in value.items():
                if isinstance(column, str) and not column.strip():
                    raise ConfigError(f"{name}.{key} = {column!r}: expected a non-empty column name")


def _check_run_name(name: str | None) -> None:
    """`run.name` is one path component under `run.output_dir`: a run can never write outside it."""
    if name is None:
        return
    bad = (
        name in (".", "..")
        or "/" in name
        or "\\" in name
        or "\0" in name
        or Path(name).is_absolute()
        or name.startswith(".")
    )
    if bad or len(name.encode()) > 255:
        raise ConfigError(
            f"run.name = {clip_text(repr(name))}: expected one folder name of at most 255 bytes (no '/', "
            "'..', absolute path or leading '.'); the run folder is run.output_dir/run.name"
        )


# Memory one training step needs at least, in bytes, per [B, T] element kept for the step (token ids,
# masks, log-probs, entropy, Σπ² in float64, advantages, shaped advantages, the loss): a lower bound.
_BYTES_PER_TOKEN_SLOT = 64
# Vocabulary and parameter count of the built-in models (for the estimate; other models: read from a
# local config.json when there is one, else only the vocabulary-independent part is counted).
_KNOWN_MODELS = {"smollm2": (49_152, 134_515_008)}


def _model_size(config: Config) -> tuple[int, int]:
    """(vocabulary, parameters) of `model.name` as far as can be told without loading it; 0 = unknown."""
    m = config.model
    if m.name == "tiny":
        t = m.tiny
        vocab = 64  # a character vocabulary: at least the digits, letters and punctuation of a task
        return vocab, t.n_layer * 12 * t.n_embd * t.n_embd + 2 * vocab * t.n_embd
    if m.name in _KNOWN_MODELS:
        return _KNOWN_MODELS[m.name]
    with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
        import json

        hf = json.loads((Path(m.name) / "config.json").read_text())
        vocab = int(hf.get("vocab_size", 0))
        hidden = int(hf.get("hidden_size", 0))
        layers = int(hf.get("num_hidden_layers", 0))
        return vocab, layers * 12 * hidden * hidden + vocab * hidden
    return 0, 0


def memory_limit_bytes() -> int:
    """This machine's physical memory (the estimate's ceiling); 0 if the OS does not say."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0


def step_memory_estimate(config: Config) -> int:
    """A lower bound, in bytes, of the memory one training step holds at once (and of one evaluation):

    - the step's rollout tensors: prompts x G rows x (prompt + max_new_tokens) positions x the per-token
      tensors it keeps (`_BYTES_PER_TOKEN_SLOT`);
    - one micro-batch's logits, their log-softmax and gradient: micro_batch_rows x max_new_tokens x
      vocabulary x 4 bytes x 3 (the entropy pass itself is chunked);
    - the weights with their gradient and AdamW moments: parameters x 16 bytes;
    - a reasoning-gym task's generated problems: (task.num_train + task.num_eval) x 256 bytes.

    Used only to refuse absurd sizes before anything loads, so it counts the smallest plausible prompt
    (16 tokens) and leaves out activations.
    """
    t, s, e = config.train, config.sampling, config.eval
    vocab, params = _model_size(config)
    positions = 16 + s.max_new_tokens
    rows = t.prompts_per_step * t.group_size
    rollout = rows * positions * _BYTES_PER_TOKEN_SLOT
    logits = min(t.micro_batch_rows, rows) * s.max_new_tokens * vocab * 4 * 3
    eval_positions = 16 + (e.max_new_tokens or s.max_new_tokens)
    evaluation = e.num_problems * e.k * eval_positions * 8
    # A reasoning-gym task generates its problems up front (a data set holds at most its rows).
    task = config.task
    generated = 0 if task.source.startswith(("jsonl:", "hf:")) else (task.num_train + task.num_eval) * 256
    return max(rollout + logits, evaluation) + params * 16 + generated


def _check_memory(config: Config) -> None:
    limit = memory_limit_bytes()
    need = step_memory_estimate(config)
    if limit and need > limit:
        t, s = config.train, config.sampling
        raise ConfigError(
            f"one training step or evaluation needs at least {need / 2**30:,.1f} GiB (train.prompts_per_step "
            f"{t.prompts_per_step} x train.group_size {t.group_size} rows x sampling.max_new_tokens "
            f"{s.max_new_tokens}, train.micro_batch_rows {t.micro_batch_rows}, eval.num_problems x eval.k "
            f"{config.eval.num_problems} x {config.eval.k}, task.num_train {config.task.num_train}); this "
            f"machine has {limit / 2**30:,.1f} GiB: lower these sizes"
        )


def validate(config: Config) -> None:
    """Range checks that types alone cannot express. Names (algorithms, shapers) are checked here too."""
    t, s, e, a, r, m = config.train, config.sampling, config.eval, config.algo, config.run, config.model
    _check_values(config, "")
    _check_run_name(r.name)
    for name, seed in (
        ("run.seed", r.seed),
        ("task.seed", config.task.seed),
        ("model.tiny.seed", m.tiny.seed),
        ("model.format_warmup.seed", m.format_warmup.seed),
    ):
        _require(0 <= seed <= MAX_SEED, name, seed, f"an integer in [0, {MAX_SEED}]")
    _require(t.steps >= 0, "train.steps", t.steps, ">= 0")
    _require(t.group_size >= 2, "train.group_size", t.group_size, ">= 2 (group advantages need G >= 2)")
    _require(t.prompts_per_step >= 1, "train.prompts_per_step", t.prompts_per_step, ">= 1")
    _require(t.lr > 0, "train.lr", t.lr, "> 0")
    _require(t.weight_decay >= 0, "train.weight_decay", t.weight_decay, ">= 0")
    _require(t.warmup_steps >= 0, "train.warmup_steps", t.warmup_steps, ">= 0")
    _require(t.ppo_epochs >= 1, "train.ppo_epochs", t.ppo_epochs, ">= 1")
    _require(t.mini_batches >= 1, "train.mini_batches", t.mini_batches, ">= 1")
    rows = t.prompts_per_step * t.group_size
    _require(
        rows % t.mini_batches == 0 and (rows // t.mini_batches) % t.group_size == 0,
        "train.mini_batches",
        t.mini_batches,
        f"a divisor of prompts_per_step ({t.prompts_per_step}) so that mini-batches hold whole groups",
    )
    _require(t.micro_batch_rows >= 1, "train.micro_batch_rows", t.micro_batch_rows, ">= 1")
    _require(t.max_grad_norm > 0, "train.max_grad_norm", t.max_grad_norm, "> 0")
    _require(
        t.logprob_chunk_size is None or t.logprob_chunk_size >= 1,
        "train.logprob_chunk_size",
        t.logprob_chunk_size,
        ">= 1, or null for the default",
    )
    _require(t.max_bad_steps >= 1, "train.max_bad_steps", t.max_bad_steps, ">= 1")
    _require(
        s.temperature > 0,
        "sampling.temperature",
        s.temperature,
        "> 0 (training samples G different responses per prompt; greedy, 0, is for eval only)",
    )
    _require(0 < s.top_p <= 1, "sampling.top_p", s.top_p, "in (0, 1]")
    _require(s.top_p_candidates >= 0, "sampling.top_p_candidates", s.top_p_candidates, ">= 0")
    _require(
        s.attention in ATTENTION_CHOICES, "sampling.attention", s.attention, f"one of {ATTENTION_CHOICES}"
    )
    _require(s.max_new_tokens >= 1, "sampling.max_new_tokens", s.max_new_tokens, ">= 1")
    _require(s.batch_rows >= 1, "sampling.batch_rows", s.batch_rows, ">= 1")
    _require(s.phase_tokens >= 0, "sampling.phase_tokens", s.phase_tokens, ">= 0 (0: one generate call)")
    _require(e.every >= 0, "eval.every", e.every, ">= 0")
    _require(e.num_problems >= 1, "eval.num_problems", e.num_problems, ">= 1")
    _require(e.k >= 1, "eval.k", e.k, ">= 1")
    _require(e.temperature >= 0, "eval.temperature", e.temperature, ">= 0 (0 = greedy)")
    _require(0 < e.top_p <= 1, "eval.top_p", e.top_p, "in (0, 1]")
    if e.max_new_tokens is not None:
        _require(
            e.max_new_tokens >= 1, "eval.max_new_tokens", e.max_new_tokens, ">= 1, or null for sampling's"
        )
    _validate_model(config)
    config.task.validate()
    _require(
        r.checkpoint_every >= 0, "run.checkpoint_every", r.checkpoint_every, ">= 0 (0 = only at the end)"
    )
    _require(r.keep_checkpoints >= 1, "run.keep_checkpoints", r.keep_checkpoints, ">= 1")
    _require(r.entropy_change_every >= 0, "run.entropy_change_every", r.entropy_change_every, ">= 0")
    _require(r.dump_rollouts_every >= 0, "run.dump_rollouts_every", r.dump_rollouts_every, ">= 0")
    _require(r.update_size_every >= 0, "run.update_size_every", r.update_size_every, ">= 0")
    validate_algo_config(a)
    _check_memory(config)


def _validate_model(config: Config) -> None:
    """Ranges of the model section (names are checked when the model loads)."""
    m = config.model
    _require(m.dtype in ("auto", "float32", "bfloat16"), "model.dtype", m.dtype, "auto, float32 or bfloat16")
    _require(
        m.rollout_dtype in ("auto", "float32", "bfloat16"),
        "model.rollout_dtype",
        m.rollout_dtype,
        "auto, float32 or bfloat16",
    )
    if m.lora.enabled:
        _require(m.lora.r >= 1, "model.lora.r", m.lora.r, ">= 1")
        _require(m.lora.alpha > 0, "model.lora.alpha", m.lora.alpha, "> 0")
        _require(0 <= m.lora.dropout < 1, "model.lora.dropout", m.lora.dropout, "in [0, 1)")
        _require(bool(m.lora.target_modules), "model.lora.target_modules", m.lora.target_modules, "non-empty")
    if m.name == "tiny":
        m.tiny.validate()
    m.format_warmup.validate(training_temperature=config.sampling.temperature)


def to_dict(config: Config) -> dict[str, Any]:
    """The config as plain data (for YAML/JSON dumps into the run folder and checkpoints)."""
    return dataclasses.asdict(config)


def dump_yaml(config: Config) -> str:
    def plain(obj: Any) -> Any:
        if isinstance(obj, tuple):
            return [plain(x) for x in obj]
        if isinstance(obj, dict):
            return {k: plain(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [plain(x) for x in obj]
        return obj

    return yaml.safe_dump(plain(to_dict(config)), sort_keys=False)
