"""eapo's own tiny policy: a character-level Llama, warmed up by supervised fine-tuning on the task.

RL needs a policy that is right sometimes and wrong often (a group with all-equal rewards has no
advantage, PAPER.md Eq. 2). So the tiny model is trained from random init on the task's train split
(prompt -> worked solution + answer + eos, loss on the completion only) and stops as soon as its sampled
accuracy at T = 1.0 on the task's validation split (never the held-out eval split, which reports results)
falls in `TinyConfig.target_accuracy` (DESIGN.md §4). The warm-up runs in fp32 on every machine. The result
is cached per (task config, tiny config, format version), so the warm-up runs once; the default config's
warm-up ships inside the package (`SHIPPED_TINY`), so `eapo train` starts from the same weights on every
CPU.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from eapo.errors import ConfigError, DataError
from eapo.files import follow_umask
from eapo.models.char_tokenizer import build_char_tokenizer
from eapo.models.config import TinyConfig
from eapo.models.device import autocast_context, move_model, resolve_device
from eapo.rollout.config import SamplingConfig
from eapo.rollout.generate import generate_rollouts
from eapo.tasks import Problem, Task, build_prompt, reference_completion, score_completions

logger = logging.getLogger(__name__)

# Bump when the model, tokenizer or SFT recipe changes, so stale caches are not reused.
# 2: fp32 on every machine (no bf16 autocast), stop rule on the validation split instead of eval.
FORMAT_VERSION = 2
SFT_RECORD = "eapo_sft.json"
# The default config's warm-up, shipped in the package (issue #17: the same start on every CPU).
SHIPPED_TINY_DIR = Path(__file__).resolve().parent / "assets" / "tiny_default"
SHIPPED_TINY_MANIFEST = "manifest.json"
# Extra new tokens allowed when sampling held-out answers, beyond the longest reference completion.
EVAL_SLACK_TOKENS = 16


def tiny_cache_key(task: Task, tiny_config: TinyConfig) -> str:
    """A short hash of everything the warmed-up weights depend on."""
    payload = {
        "task": dataclasses.asdict(task.config),
        "tiny": dataclasses.asdict(tiny_config),
        "format_version": FORMAT_VERSION,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def build_tiny_model(tiny_config: TinyConfig, tokenizer: PreTrainedTokenizerFast) -> LlamaForCausalLM:
    """A randomly initialised Llama decoder sized by `tiny_config`, over `tokenizer`'s character vocabulary.

    A real `transformers` model, so `generate` with the KV cache, `save_pretrained` and TRL all apply.
    """
    tiny_config.validate()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=tiny_config.n_embd,
        intermediate_size=4 * tiny_config.n_embd,
        num_hidden_layers=tiny_config.n_layer,
        num_attention_heads=tiny_config.n_head,
        num_key_value_heads=tiny_config.n_head,
        max_position_embeddings=tiny_config.max_len,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(tiny_config.seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def ensure_tiny_model(
    task: Task,
    tiny_config: TinyConfig,
    cache_dir: Path,
    progress: bool = True,
    *,
    device: str = "auto",
) -> Path:
    """Folder of the warmed-up tiny model for `task`, from the cache, the package or a fresh warm-up.

    The folder holds the model and tokenizer (`save_pretrained` format) and `eapo_sft.json`, the record of
    the warm-up (steps, validation accuracy per evaluation, seconds). The default config's warm-up ships
    inside the package (`SHIPPED_TINY_DIR`, files pinned by SHA-256 in its manifest) and is copied to the
    cache instead of trained, so every machine starts RL from the same weights. A warm-up or copy that is
    interrupted leaves nothing behind: it writes to a temporary folder that is renamed into place when
    complete.
    """
    key = tiny_cache_key(task, tiny_config)
    target = Path(cache_dir) / "tiny" / f"{_safe_name(task.name)}-{key}"
    if (target / SFT_RECORD).is_file():
        return target
    shipped = shipped_tiny_files(key)
    if shipped is not None:

        def write(staging: Path) -> None:
            for name in shipped:
                shutil.copyfile(SHIPPED_TINY_DIR / name, staging / name)

    else:
        model, tokenizer, record = supervised_warmup(
            task, tiny_config, device=resolve_device(device), progress=progress
        )

        def write(staging: Path) -> None:
            model.save_pretrained(staging, safe_serialization=True)
            tokenizer.save_pretrained(staging)
            (staging / SFT_RECORD).write_text(json.dumps(record, indent=2) + "\n")

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        write(staging)
        follow_umask(staging)  # mkdtemp makes 0700 and safetensors 0600; the cache is shared like any file
        staging.rename(target)
    except BaseException as error:  # also on Ctrl-C: never leave a half-written folder
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(error, OSError) and (target / SFT_RECORD).is_file():
            return target  # another process finished the same warm-up first
        raise
    return target


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def shipped_tiny_files(key: str) -> list[str] | None:
    """The files of the packaged tiny model when its cache key is `key`, after checking each against the
    SHA-256 its manifest pins; None when no packaged model has this key (then the warm-up runs).

    Raises ConfigError when a packaged file is missing or altered (a broken installation: reinstall)."""
    manifest_path = SHIPPED_TINY_DIR / SHIPPED_TINY_MANIFEST
    if not manifest_path.is_file():
        return None
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("cache_key") != key:
        return None
    for name, digest in manifest["sha256"].items():
        path = SHIPPED_TINY_DIR / name
        if not path.is_file() or _sha256(path) != digest:
            raise ConfigError(
                f"the packaged tiny model file {path} is missing or does not match its pinned SHA-256 "
                f"({digest[:12]}...): the installation is damaged; reinstall eapo"
            )
    return sorted(manifest["sha256"])


def ship_tiny_model(folder: Path, key: str, destination: Path | None = None) -> dict[str, Any]:
    """Copy a warmed-up tiny model folder into the package and write its manifest (cache key and each
    file's SHA-256). Used by `python -m eapo.models.ship_tiny`; returns the manifest."""
    destination = Path(destination or SHIPPED_TINY_DIR)
    if destination.exists():
        shutil.rmtree(destination)
    destination.mkdir(parents=True)
    hashes = {}
    for path in sorted(Path(folder).iterdir()):
        if path.is_file():
            shutil.copyfile(path, destination / path.name)
            hashes[path.name] = _sha256(destination / path.name)
    manifest = {"cache_key": key, "format_version": FORMAT_VERSION, "sha256": hashes}
    (destination / SHIPPED_TINY_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def supervised_warmup(
    task: Task,
    tiny_config: TinyConfig,
    *,
    device: torch.device | None = None,
    progress: bool = True,
) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast, dict]:
    """Train a fresh tiny model on `task.train` until its validation accuracy enters the target band.

    Every `sft_eval_every` steps, one response per validation problem (`sft_eval_problems` of them, from
    the task's validation split, outside train and eval) is sampled at T = 1.0, top-p 1.0 and scored with
    the task's verifier; training stops at
    the first accuracy inside `target_accuracy`. If none is, the weights whose accuracy was closest to the
    band are kept and a warning says so. Returns (model on CPU, tokenizer, record).
    """
    device = device or resolve_device("auto")
    low, high = tiny_config.target_accuracy
    started = time.perf_counter()
    problems = task.train
    if not problems:
        raise ConfigError(f"task {task.name!r} has no train problems for the tiny model's warm-up")
    eval_problems, stop_split = _stop_rule_problems(task, tiny_config.sft_eval_problems)

    # The vocabulary covers the base characters plus every character of the prompts and completions.
    completions = [reference_completion(problem, task.config.answer_format) for problem in problems]
    prompts = [build_prompt(problem, None, task.config) for problem in problems]
    eval_prompts = [build_prompt(problem, None, task.config) for problem in eval_problems]
    # The held-out prompts' characters are in the vocabulary too (RL evaluates on them); nothing is
    # selected on their answers.
    held_out_prompts = [build_prompt(problem, None, task.config) for problem in task.eval]
    tokenizer = build_char_tokenizer([*prompts, *completions, *eval_prompts, *held_out_prompts])
    model = build_tiny_model(tiny_config, tokenizer)
    move_model(model, device)

    examples = _tokenize_examples(tokenizer, prompts, completions, tiny_config.max_len)
    longest_completion = max(len(tokenizer(c, add_special_tokens=False)["input_ids"]) for c in completions)
    longest_eval_prompt = max(len(tokenizer(p)["input_ids"]) for p in eval_prompts)
    eval_sampling = SamplingConfig(
        temperature=1.0,
        top_p=1.0,
        max_new_tokens=max(
            1, min(longest_completion + EVAL_SLACK_TOKENS, tiny_config.max_len - longest_eval_prompt)
        ),
        batch_rows=256,
    )

    optimizer = torch.optim.AdamW(
        model.parameters(), lr=tiny_config.sft_lr, betas=(0.9, 0.98), weight_decay=0.0
    )
    warmup_steps = max(1, tiny_config.sft_max_steps // 50)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup_steps))
    batch_rng = torch.Generator().manual_seed(tiny_config.seed)

    history: list[dict[str, float]] = []
    best_distance, best_state, best_step, best_accuracy = math.inf, None, 0, 0.0
    bar = tqdm(total=tiny_config.sft_max_steps, desc="tiny warm-up", unit="step", disable=not progress)
    step = 0
    loss_value = float("nan")
    for step in range(1, tiny_config.sft_max_steps + 1):
        model.train()
        rows = torch.randint(len(examples), (tiny_config.sft_batch_size,), generator=batch_rng).tolist()
        input_ids, attention_mask, labels = collate_sft_batch(
            [examples[i] for i in rows], tokenizer.pad_token_id
        )
        # fp32 everywhere: bf16 autocast on some CPUs would give every machine its own starting weights.
        with autocast_context(device, "float32"):
            output = model(
                input_ids=input_ids.to(device),
                attention_mask=attention_mask.to(device),
                labels=labels.to(device),
            )
        output.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        loss = float(output.loss.detach())
        loss_value = 0.9 * loss_value + 0.1 * loss if step > 1 else loss
        bar.update(1)
        bar.set_postfix(loss=f"{loss_value:.3f}", acc=f"{history[-1]['accuracy']:.2f}" if history else "-")

        if step % tiny_config.sft_eval_every == 0 or step == tiny_config.sft_max_steps:
            accuracy = sampled_accuracy(
                model, tokenizer, task, eval_problems, eval_prompts, eval_sampling, seed=step
            )
            history.append({"step": step, "loss": round(loss_value, 4), "accuracy": accuracy})
            distance = max(low - accuracy, accuracy - high, 0.0)
            if distance < best_distance:
                best_distance, best_step, best_accuracy = distance, step, accuracy
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if distance == 0.0:
                break
    bar.close()

    in_band = best_distance == 0.0
    if not in_band:
        logger.warning(
            "tiny warm-up: held-out accuracy never entered [%.2f, %.2f] in %d steps; keeping step %d "
            "(accuracy %.3f), the closest. Adjust model.tiny (sft_lr, sft_max_steps, size) or the task.",
            low, high, tiny_config.sft_max_steps, best_step, best_accuracy,
        )  # fmt: skip
    if best_state is not None:
        model.load_state_dict(best_state)
    record = {
        "steps": best_step,
        "steps_run": step,
        "accuracy": best_accuracy,
        "in_band": in_band,
        "target_accuracy": [low, high],
        "eval_problems": len(eval_problems),
        "stop_split": stop_split,
        "seconds": round(time.perf_counter() - started, 1),
        "device": str(device),
        "parameters": sum(p.numel() for p in model.parameters()),
        "history": history,
        "task": dataclasses.asdict(task.config),
        "tiny": dataclasses.asdict(tiny_config),
        "format_version": FORMAT_VERSION,
    }
    return model.cpu().eval(), tokenizer, record


def sampled_accuracy(
    model: LlamaForCausalLM,
    tokenizer: PreTrainedTokenizerFast,
    task: Task,
    problems: list[Problem],
    prompts: list[str],
    sampling: SamplingConfig,
    *,
    seed: int,
) -> float:
    """Fraction of `problems` whose one sampled response is right."""
    batch = generate_rollouts(model, tokenizer, prompts, 1, sampling, seed=seed)
    result = score_completions(batch.completions, problems, task, task.config.verifier_timeout_s)
    rewards = torch.as_tensor(result.rewards, dtype=torch.float64)
    return float((rewards > 0).double().mean())


def _stop_rule_problems(task: Task, count: int) -> tuple[list[Problem], str]:
    """The problems whose sampled accuracy stops the warm-up, and the split's name: the task's validation
    split (outside train and eval, `eapo.tasks.splits`), so the held-out results are never selected on. A
    source that cannot give one (a small data file) falls back to the eval split, with a warning."""
    from eapo.tasks.splits import validation_problems

    try:
        return validation_problems(task.config, count), "validation"
    except (ConfigError, DataError) as error:
        problems = task.eval[:count]
        if not problems:
            raise ConfigError(
                f"task {task.name!r} has no validation or held-out problems to measure the tiny model's "
                "warm-up"
            ) from None
        logger.warning(
            "tiny warm-up: no validation split for task %r (%s); the stop rule uses the first %d held-out "
            "problems instead, a mild selection on the starting accuracy.",
            task.name, error, len(problems),
        )  # fmt: skip
        return problems, "eval"


def _tokenize_examples(
    tokenizer: PreTrainedTokenizerFast, prompts: list[str], completions: list[str], max_len: int
) -> list[tuple[list[int], int]]:
    """(prompt + completion + eos token ids, prompt length) per problem, checked against `max_len`."""
    examples = []
    for prompt, completion in zip(prompts, completions, strict=True):
        prompt_ids = tokenizer(prompt)["input_ids"]
        completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"] + [
            tokenizer.eos_token_id
        ]
        ids = prompt_ids + completion_ids
        if len(ids) > max_len:
            raise ConfigError(
                f"model.tiny.max_len = {max_len} is shorter than a prompt + solution of {len(ids)} "
                f"characters ({prompt!r} -> {completion!r}); raise max_len or pick shorter task.params"
            )
        examples.append((ids, len(prompt_ids)))
    return examples


def collate_sft_batch(
    examples: list[tuple[list[int], int]], pad_token_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded input ids, attention mask and labels [batch, longest]; labels are -100 except on the
    completion (so the loss is on the target only)."""
    width = max(len(ids) for ids, _ in examples)
    input_ids = torch.full((len(examples), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    for row, (ids, prompt_length) in enumerate(examples):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention_mask[row, : len(ids)] = 1
        labels[row, prompt_length : len(ids)] = torch.tensor(ids[prompt_length:])
    return input_ids, attention_mask, labels


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:40]
