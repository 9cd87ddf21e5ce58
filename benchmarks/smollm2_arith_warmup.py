"""SmolLM2's format warm-up on the study task (issue #17 item 3, issue #19's gate), measured.

Phases, each short enough for one job under the shared lock (run them in order; each merges its numbers
into the same JSON):

    python benchmarks/smollm2_arith_warmup.py --phase before   # the base model on validation
    python benchmarks/smollm2_arith_warmup.py --phase warmup   # the warm-up (cached for the study)
    python benchmarks/smollm2_arith_warmup.py --phase after    # the warmed-up model on validation

`before` and `after` sample the first `--problems` validation problems (`eapo.tasks.splits`) `--samples`
times at the config's training sampling (T, top-p, max_new_tokens, stop strings) and report the strict
format rate, accuracy under strict rewards and under the old last-number fallback, and issue #19's
entropy gate: the mean token entropy (of softmax(logits / T), nats) and the share of tokens whose entropy
is at least their group's mean (PAPER.md Appendix B.1). The warm-up itself runs through
`eapo.models.policy_location`, i.e. into the user's eapo cache, where the study's runs find it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import bench_utils as bu

DEFAULT_CONFIG = bu.REPO_ROOT / "configs" / "smollm2_arith.yaml"
DEFAULT_OUT = bu.RESULTS_DIR / "smollm2_arith_warmup.json"
NOTES = (
    "before/after: the first --problems validation problems (eapo.tasks.splits, outside train, eval and the "
    "warm-up split) x --samples at the config's training sampling (T, top-p, max_new_tokens, stop strings); "
    "accuracy_strict is Avg@samples under strict rewards. The warm-up's own stop rule samples fewer: "
    "model.format_warmup.eval_problems x eval_samples (32 x 4 in configs/smollm2_arith.yaml), to keep the "
    "warm-up inside one CPU job. gate_after_warmup checks issue #19's entropy gate on the warmed-up model, "
    "the policy RL starts from, at the training temperature; base_avg is its accuracy_strict there. One "
    "torch thread; each phase ran under the shared lock (flock /tmp/eapo-heavy.lock)."
)
GATE = {"mean_entropy_nats": [0.2, 1.0], "share_above_group_mean": [0.15, 0.35], "base_avg": [0.2, 0.5]}


def measure_policy(
    model: Any, tokenizer: Any, config: Any, problems: list[Any], samples: int
) -> dict[str, Any]:
    """Sample `samples` responses per problem at the training settings; format, accuracy, entropy."""
    import torch

    from eapo.core import group_entropy_stats, high_entropy_mask, token_logprobs_and_entropy
    from eapo.models import autocast_context
    from eapo.rollout import generate_rollouts, response_logits
    from eapo.tasks import build_prompt, load_task, score_completions

    task = load_task(config.task)
    lenient = dataclasses.replace(task, config=dataclasses.replace(task.config, strict_answer=False))
    prompts = [build_prompt(p, tokenizer, config.task) for p in problems]
    device = next(model.parameters()).device
    model.eval()
    started = time.perf_counter()
    with autocast_context(device, config.model.dtype):
        batch = generate_rollouts(model, tokenizer, prompts, samples, config.sampling, seed=config.run.seed)
    sampling_s = time.perf_counter() - started
    rows = [problems[int(i)] for i in batch.prompt_index]
    strict = score_completions(batch.completions, rows, task)
    old = score_completions(batch.completions, rows, lenient)

    started = time.perf_counter()
    entropies = []
    with torch.no_grad():
        for start in range(0, batch.sequences.shape[0], 16):
            part = slice(start, start + 16)
            with autocast_context(device, config.model.dtype):
                logits = response_logits(
                    model, batch.sequences[part], batch.attention_mask[part], batch.prompt_length
                )
            logits = logits.float() / config.sampling.temperature  # the sampling distribution's entropy
            _, entropy = token_logprobs_and_entropy(
                logits, batch.response_ids[part], batch.response_mask[part]
            )
            entropies.append(entropy.float())
    entropy = torch.cat(entropies)
    mask = batch.response_mask
    high = high_entropy_mask(entropy, mask, samples, "group_mean")
    mean_per_group, _, _, _ = group_entropy_stats(entropy, mask, samples)
    correct = torch.tensor(strict.rewards).reshape(len(problems), samples)
    n = len(batch.completions)
    return {
        "problems": len(problems),
        "samples_per_problem": samples,
        "strict_format_rate": strict.n_well_formed / n,
        "accuracy_strict": float(correct.mean()),
        "accuracy_last_number_fallback": float(torch.tensor(old.rewards).mean()),
        "pass_at_samples": float((correct.sum(dim=1) > 0).double().mean()),
        "mean_entropy_nats": float((entropy * mask).sum() / mask.sum()),
        "share_above_group_mean": float(high.sum() / mask.sum()),
        "group_mean_entropy_median": float(mean_per_group.median()),
        "mean_response_tokens": float(batch.response_lengths.double().mean()),
        "truncated_fraction": float(batch.truncated.double().mean()),
        "sampling_s": round(sampling_s, 1),
        "entropy_pass_s": round(time.perf_counter() - started, 1),
        "examples": batch.completions[:: max(1, n // 6)][:6],
    }


def summarize(phases: dict[str, Any]) -> dict[str, Any]:
    """Before -> after, the warm-up's cost, and issue #19's gate on the warmed-up model (the RL start)."""
    out: dict[str, Any] = {}
    keys = (
        "strict_format_rate",
        "accuracy_strict",
        "accuracy_last_number_fallback",
        "mean_entropy_nats",
        "share_above_group_mean",
        "mean_response_tokens",
    )
    for key in keys:
        out[key] = {phase: phases[phase][key] for phase in ("before", "after") if phase in phases}
    if "warmup" in phases:
        warmup = phases["warmup"]["record"]
        out["warmup"] = {
            k: warmup[k] for k in ("steps", "seconds", "reached_target", "format_rate", "accuracy")
        }
    for phase, key in (("after", "gate_after_warmup"), ("after_train", "gate_after_warmup_train_split")):
        if phase in phases:
            measured = phases[phase]
            values = {
                "mean_entropy_nats": measured["mean_entropy_nats"],
                "share_above_group_mean": measured["share_above_group_mean"],
                "base_avg": measured["accuracy_strict"],
            }
            out[key] = {
                name: {"value": value, "range": GATE[name], "met": GATE[name][0] <= value <= GATE[name][1]}
                for name, value in values.items()
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phase", choices=("before", "warmup", "after"), required=True)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--problems", type=int, default=64, help="validation problems for before/after")
    parser.add_argument(
        "--split",
        choices=("validation", "train"),
        default="validation",
        help="after only: measure on the validation split (default) or on the first train problems, the ones "
        "RL's first steps sample (recorded as phase after_train)",
    )
    parser.add_argument("--samples", type=int, default=8, help="samples per problem for before/after")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    import torch

    from eapo.models import load_pretrained, policy_location, resolve_device, resolve_dtype
    from eapo.models.device import move_model
    from eapo.models.format_warmup import format_warmup_summary, read_format_warmup_record
    from eapo.tasks import load_task
    from eapo.tasks.splits import validation_problems
    from eapo.train.config import load_config

    torch.manual_seed(0)
    config = load_config(args.config)
    record: dict[str, Any] = json.loads(args.out.read_text()) if args.out.is_file() else {}
    record.setdefault("benchmark", "smollm2_arith_warmup")
    record["config"] = str(
        args.config.relative_to(bu.REPO_ROOT) if args.config.is_absolute() else args.config
    )
    record["command"] = "python benchmarks/smollm2_arith_warmup.py --phase before|warmup|after"
    record["gate_issue_19"] = GATE
    record["notes"] = NOTES
    record.setdefault("phases", {})
    started = time.perf_counter()
    task = load_task(config.task)
    device = resolve_device(config.model.device)
    dtype = resolve_dtype(device, config.model.dtype)

    if args.phase == "warmup":
        folder, _ = policy_location(config.model, task)
        warmup = read_format_warmup_record(Path(folder))
        print(format_warmup_summary(warmup))
        result: dict[str, Any] = {
            "record": {k: v for k, v in warmup.items() if k not in ("task", "folder")},
            "wall_s_this_call": round(time.perf_counter() - started, 1),
        }
    else:
        base = dataclasses.replace(
            config.model, format_warmup=dataclasses.replace(config.model.format_warmup, enabled=False)
        )
        folder, _ = policy_location(base if args.phase == "before" else config.model, task)
        model, tokenizer = load_pretrained(folder, dtype=dtype)
        move_model(model, device)
        if args.split == "train":
            if args.phase != "after":
                parser.error("--split train measures the warmed-up model: use it with --phase after")
            problems = task.train
        else:
            problems = validation_problems(config.task, config.model.format_warmup.validation_problems)
        result = measure_policy(model, tokenizer, config, problems[: args.problems], args.samples)
        result["model_folder"] = Path(folder).name
        result["split"] = args.split
        result["sampling"] = dataclasses.asdict(config.sampling)
        result["wall_s"] = round(time.perf_counter() - started, 1)
        print(json.dumps({k: v for k, v in result.items() if k != "examples"}, indent=2))
    result["machine"] = bu.machine_info()
    result["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    record["phases"][args.phase if args.split == "validation" else "after_train"] = result
    record["summary"] = summarize(record["phases"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
