"""A supervised format warm-up for pretrained models, run once and cached (issue #17, item 3).

SmolLM2's base model rarely writes the answer tags, so early RL with strict rewards would mostly learn the
format, not the task. Before RL, the policy is fine-tuned (prompt -> worked solution + well-formed answer +
eos, loss on the completion only, as the tiny model's SFT in `eapo.models.tiny`) on problems from the
warm-up split, which shares no question with train, eval or validation (`eapo.tasks.splits`). Before the
first step and every `eval_every` steps, the first `eval_problems` validation problems are sampled
`eval_samples` times at the training temperature; the warm-up stops at the first strict format rate
(`eapo.tasks.strict_answer`) >= `target_format_rate`.

The weights (safetensors), the tokenizer and `format_warmup.json` (steps, format rate and accuracy per
evaluation, cache key, seconds) are cached under `<cache>/format_warmup/<model>-<key>/`, the key a hash
of the base model, the task config and the warm-up settings, so every arm and seed of a study starts from
the identical model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from eapo.errors import ConfigError, DataError
from eapo.files import follow_umask
from eapo.models.config import FormatWarmupConfig, ModelConfig
from eapo.models.device import autocast_context, move_model, resolve_device
from eapo.models.pretrained import load_pretrained
from eapo.models.tiny import collate_sft_batch
from eapo.rollout.config import SamplingConfig
from eapo.rollout.evaluation import evaluate
from eapo.tasks import Problem, Task, build_prompt, reference_completion
from eapo.tasks.splits import validation_problems, warmup_problems

logger = logging.getLogger(__name__)

# Bump when the recipe changes (targets, loss, stop rule), so stale caches are not reused.
FORMAT_VERSION = 1
RECORD = "format_warmup.json"
# New tokens allowed when sampling the stop rule's answers, beyond the longest reference completion.
EVAL_SLACK_TOKENS = 16


def format_warmup_key(base: dict[str, Any], task: Task, warmup: FormatWarmupConfig, dtype: str) -> str:
    """A short hash of everything the warmed-up weights depend on (`base`: `base_model_identity`)."""
    settings = {k: v for k, v in dataclasses.asdict(warmup).items() if k != "enabled"}
    payload = {
        "base": base,
        "task": dataclasses.asdict(task.config),
        "warmup": settings,
        "dtype": dtype,
        "format_version": FORMAT_VERSION,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def base_model_identity(name: str, location: str | Path, revision: str | None) -> dict[str, Any]:
    """What identifies the base weights: a cached folder eapo made (tiny, smollm2) by its versioned name,
    another local folder by its path, config.json and weight files (names and sizes), a Hub id by id and
    revision."""
    path = Path(location)
    if not path.is_dir():
        return {"name": name, "hub_id": str(location), "revision": revision}
    if name in ("tiny", "smollm2"):
        return {"name": name, "folder": path.name}
    config_text = (path / "config.json").read_bytes() if (path / "config.json").is_file() else b""
    weights = sorted(
        (f.name, f.stat().st_size) for f in path.iterdir() if f.suffix in (".safetensors", ".bin")
    )
    return {
        "name": name,
        "path": str(path.resolve()),
        "config_sha256": hashlib.sha256(config_text).hexdigest(),
        "weights": weights,
    }


def ensure_format_warmup(
    location: str | Path,
    model_config: ModelConfig,
    task: Task,
    cache_dir: Path,
    *,
    revision: str | None = None,
    progress: bool = True,
) -> Path:
    """Folder of the base model at `location` after the format warm-up for `task`, training it first
    unless it is cached. An interrupted warm-up leaves nothing behind (staging folder, renamed when done).
    """

    warmup = model_config.format_warmup
    warmup.validate()
    identity = base_model_identity(model_config.name, location, revision)
    key = format_warmup_key(identity, task, warmup, model_config.dtype)
    target = Path(cache_dir) / "format_warmup" / f"{_safe_name(model_config.name)}-{key}"
    if (target / RECORD).is_file():
        return target
    device = resolve_device(model_config.device)
    model, tokenizer = load_pretrained(
        location, revision=revision, trust_remote_code=model_config.trust_remote_code, dtype=torch.float32
    )
    move_model(model, device)
    record = format_warmup(model, tokenizer, task, warmup, dtype=model_config.dtype, progress=progress)
    record.update(cache_key=key, base_model=identity, folder=str(target))
    tqdm.write(format_warmup_summary(record))

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model.cpu().save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        (staging / RECORD).write_text(json.dumps(record, indent=2) + "\n")
        follow_umask(staging)  # mkdtemp makes 0700 and safetensors 0600; the cache is shared like any file
        staging.rename(target)
    except BaseException as error:  # also on Ctrl-C: never leave a half-written folder
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(error, OSError) and (target / RECORD).is_file():
            return target  # another process finished the same warm-up first
        raise
    return target


def read_format_warmup_record(folder: Path) -> dict[str, Any]:
    """The record of a cached warm-up folder (from `ensure_format_warmup`)."""
    return json.loads((Path(folder) / RECORD).read_text())


def format_warmup(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    task: Task,
    warmup: FormatWarmupConfig,
    *,
    dtype: str = "auto",
    progress: bool = True,
) -> dict[str, Any]:
    """Fine-tune `model` in place until the stop rule's strict format rate reaches the target.

    Returns the record: `steps` (of the kept weights), `steps_run`, `reached_target`, `format_rate` and
    `accuracy` of the kept weights (`before_*`: of the base model at step 0), `history` (one row per
    evaluation), the split sizes and the seconds taken. Keeps the weights of the best evaluation (the
    last one when the target is reached).
    """
    warmup.validate()
    started = time.perf_counter()
    device = next(model.parameters()).device
    validation = validation_problems(task.config, warmup.validation_problems)
    stop_problems = validation[: warmup.eval_problems]
    problems = warmup_problems(task.config, warmup.num_problems, validation)
    examples = _tokenize_examples(tokenizer, problems, task)
    longest = max(len(ids) - prompt_length for ids, prompt_length in examples)
    stop_sampling = SamplingConfig(
        temperature=warmup.temperature,
        top_p=warmup.top_p,
        max_new_tokens=longest + EVAL_SLACK_TOKENS,
        batch_rows=256,
    )

    def measure(step: int) -> dict[str, Any]:
        model.eval()
        with autocast_context(device, dtype):
            result = evaluate(
                model,
                tokenizer,
                task,
                stop_problems,
                k=warmup.eval_samples,
                sampling=stop_sampling,
                seed=warmup.seed,
            )
        return {
            "step": step,
            "format_rate": result["format_rate"],
            "accuracy": result[f"avg@{warmup.eval_samples}"],
            "mean_response_tokens": result["mean_response_tokens"],
        }

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=warmup.lr, weight_decay=0.0)
    ramp = max(1, warmup.max_steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / ramp))
    order = torch.Generator().manual_seed(warmup.seed)

    history = [measure(0)]
    best = history[0]
    # The weights of the best evaluation so far, unless they are the current ones (None).
    best_state = None if best["format_rate"] >= warmup.target_format_rate else _copy_state(model)
    pad_token_id = tokenizer.pad_token_id
    bar = tqdm(total=warmup.max_steps, desc="format warm-up", unit="step", disable=not progress)
    bar.set_postfix(fmt=f"{best['format_rate']:.2f}", acc=f"{best['accuracy']:.2f}")
    step, loss_value = 0, float("nan")
    while best["format_rate"] < warmup.target_format_rate and step < warmup.max_steps:
        step += 1
        model.train()
        rows = torch.randint(len(examples), (warmup.batch_size,), generator=order).tolist()
        input_ids, attention_mask, labels = collate_sft_batch([examples[i] for i in rows], pad_token_id)
        with autocast_context(device, dtype):
            output = model(
                input_ids=input_ids.to(device),
                attention_mask=attention_mask.to(device),
                labels=labels.to(device),
            )
        output.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        loss = float(output.loss.detach())
        loss_value = loss if step == 1 else 0.9 * loss_value + 0.1 * loss
        bar.update(1)
        bar.set_postfix(loss=f"{loss_value:.3f}", fmt=f"{history[-1]['format_rate']:.2f}")
        if step % warmup.eval_every == 0 or step == warmup.max_steps:
            row = {**measure(step), "loss": round(loss_value, 4)}
            history.append(row)
            bar.set_postfix(
                loss=f"{loss_value:.3f}", fmt=f"{row['format_rate']:.2f}", acc=f"{row['accuracy']:.2f}"
            )
            if row["format_rate"] >= best["format_rate"]:  # ties go to the later, more trained weights
                best = row
                final = row["format_rate"] >= warmup.target_format_rate or step == warmup.max_steps
                best_state = None if final else _copy_state(model)
    bar.close()

    reached = best["format_rate"] >= warmup.target_format_rate
    if best["step"] != step:
        assert best_state is not None  # copied when that evaluation became the best
        model.load_state_dict(best_state)
    if not reached:
        message = (
            f"FORMAT WARM-UP DID NOT REACH ITS TARGET: strict format rate {best['format_rate']:.3f} < "
            f"{warmup.target_format_rate} after {step} steps (model.format_warmup.max_steps); keeping "
            f"step {best['step']}. Raise max_steps or lr, or check the prompt and answer format."
        )
        logger.warning(message)
    return {
        "steps": best["step"],
        "steps_run": step,
        "reached_target": reached,
        "target_format_rate": warmup.target_format_rate,
        "format_rate": best["format_rate"],
        "accuracy": best["accuracy"],
        "before_format_rate": history[0]["format_rate"],
        "before_accuracy": history[0]["accuracy"],
        "stop_rule": {
            "split": "validation",
            "problems": len(stop_problems),
            "samples_per_problem": warmup.eval_samples,
            "temperature": warmup.temperature,
            "top_p": warmup.top_p,
            "max_new_tokens": stop_sampling.max_new_tokens,
            "seed": warmup.seed,
        },
        "warmup_problems": len(problems),
        "validation_problems_excluded": len(validation),
        "seconds": round(time.perf_counter() - started, 1),
        "device": str(device),
        "history": history,
        "settings": dataclasses.asdict(warmup),
        "task": dataclasses.asdict(task.config),
        "format_version": FORMAT_VERSION,
    }


def format_warmup_summary(record: dict[str, Any]) -> str:
    """One line: steps, format rate and accuracy before -> after, the stop rule's sample, the cache key."""
    rule = record["stop_rule"]
    state = "reached" if record["reached_target"] else "NOT reached"
    return (
        f"format warm-up: {record['steps']} steps ({record['seconds']:.0f} s), strict format rate "
        f"{record['before_format_rate']:.3f} -> {record['format_rate']:.3f} (target "
        f"{record['target_format_rate']} {state}), accuracy {record['before_accuracy']:.3f} -> "
        f"{record['accuracy']:.3f} on {rule['problems']} validation problems x {rule['samples_per_problem']} "
        f"at T = {rule['temperature']:g}; cache key {record.get('cache_key', '-')}"
    )


def _tokenize_examples(
    tokenizer: PreTrainedTokenizerBase, problems: list[Problem], task: Task
) -> list[tuple[list[int], int]]:
    """(prompt + target + eos token ids, prompt length) per problem; the prompt is tokenized exactly as
    `generate_rollouts` tokenizes it (no second bos after a chat template's)."""
    if tokenizer.eos_token_id is None:
        raise ConfigError(f"tokenizer {tokenizer.name_or_path!r} has no eos token to end the warm-up targets")
    examples = []
    for problem in problems:
        prompt = build_prompt(problem, tokenizer, task.config)
        bos = tokenizer.bos_token
        add_special = not (bos is not None and prompt.startswith(bos))
        prompt_ids = tokenizer(prompt, add_special_tokens=add_special)["input_ids"]
        target = reference_completion(problem, task.config.answer_format)
        target_ids = tokenizer(target, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        examples.append((prompt_ids + target_ids, len(prompt_ids)))
    if not examples:
        raise DataError(f"task {task.name!r}: no problems for the format warm-up")
    return examples


def _copy_state(model: PreTrainedModel) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(name).name)[:40]
