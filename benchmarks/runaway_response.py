"""Benchmark 8: what one response at the length limit costs the update, padded and with `train.trim_padding`.

A rollout is as wide as its longest response, and the update pads every row to that width. In the SmolLM2
study (configs/smollm2_study.yaml: 8 prompts x 8 samples, up to 96 new tokens, 4 mini-batches of 16 rows)
the longest response of a batch is ~25 tokens, but now and then one runs to the limit, and that step took
~4x as long (docs/reliability.md). This benchmark takes one real rollout of the model, in a fresh process,
and times `eapo.train.update.policy_update` on it three ways, interleaved over rounds (a fresh copy of the
weights and optimizer for each call, outside the timing):

- clean: the rollout as sampled;
- runaway, padded: the same rollout with its first response continued to `sampling.max_new_tokens`
  (its own tokens repeated: the cost depends on the width, not the text), every row padded to it;
- runaway, trimmed: the same with `train.trim_padding`, each micro-batch cut to its own longest response.

Generation, the rollout half of a slow step, is timed on the same step's prompts, also interleaved:

- generate, clean: `generate_rollouts` as the trainer calls it, one `generate` call per chunk;
- generate, runaway: the same with the chunk's first row forced to write on to `sampling.max_new_tokens`
  (a logits processor bans its eos and every token whose text holds "<", so it can close neither the
  answer tag nor the turn): `generate` decodes all rows that far;
- generate, runaway, phased: the same with `sampling.phase_tokens` (`sample_in_phases`): the rows that have
  ended leave after each phase, and the runaway row writes on nearly alone;
- generate, clean, phased: what the phases cost a rollout without a runaway (between phases the rows
  left keep their key/value cache, so a phase adds no prefill).

The forced row is row 0 of every `generate` call in both modes (it never ends, and the phases keep the
rows' order), so both decode the same runaway.
"""

from __future__ import annotations

import copy
import dataclasses
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import bench_utils as bu

NAME = "runaway_response"
SCRIPT = Path(__file__).resolve()
SETTINGS: dict[str, dict[str, Any]] = {
    "full": {"model": "smollm2-study", "rounds": 3, "phase_tokens": 16},
    "quick": {"model": "smollm2-study", "rounds": 1, "phase_tokens": 16},
    "smoke": {
        "model": "tiny-smoke",
        "rounds": 1,
        "phase_tokens": 8,
        "overrides": {"sampling": {"max_new_tokens": 48}},
    },
}
VARIANTS = ("clean", "runaway_padded", "runaway_trimmed")
GENERATE_VARIANTS = ("generate_clean", "generate_runaway", "generate_runaway_phased", "generate_clean_phased")


def generation_variants(trainer: Any, prompts: list[str], phase_tokens: int) -> dict[str, Any]:
    """The four timed `generate_rollouts` calls of the module doc, each returning its seconds; the batch
    each made last is kept in the returned dict's "batches" entry."""
    import torch
    from transformers import LogitsProcessor

    from eapo.rollout import generate as generate_module
    from eapo.rollout import generate_rollouts
    from eapo.rollout.generate import model_eos_token_ids

    tokenizer, config = trainer.tokenizer, trainer.config
    vocabulary = len(tokenizer)
    banned = sorted(
        {i for i in range(vocabulary) if "<" in tokenizer.decode([i])}
        | set(model_eos_token_ids(trainer.model, tokenizer))
    )

    class FirstRowWritesOn(LogitsProcessor):
        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
            scores[0, banned] = float("-inf")
            return scores

    original = generate_module.sampling_processors
    batches: dict[str, Any] = {}

    def run(name: str, runaway: bool, phases: int) -> float:
        sampling = dataclasses.replace(config.sampling, phase_tokens=phases)

        def with_runaway(s: Any) -> list[Any]:
            return [FirstRowWritesOn(), *original(s)]

        processors: Any = with_runaway if runaway else original  # a patch: FirstRowWritesOn is no nucleus
        generate_module.sampling_processors = processors
        try:
            start = time.perf_counter()
            batches[name] = generate_rollouts(
                trainer.rollout_model(),
                tokenizer,
                prompts,
                config.train.group_size,
                sampling,
                seed=1234,
                with_logprobs=trainer.rollout_logprobs,
                logprob_chunk_size=config.train.logprob_chunk_size,
            )
            return time.perf_counter() - start
        finally:
            generate_module.sampling_processors = original

    settings = {
        "generate_clean": (False, 0),
        "generate_runaway": (True, 0),
        "generate_runaway_phased": (True, phase_tokens),
        "generate_clean_phased": (False, phase_tokens),
    }
    variants = {
        name: (lambda name=name, runaway=runaway, phases=phases: run(name, runaway, phases))
        for name, (runaway, phases) in settings.items()
    }
    return {"variants": variants, "batches": batches}


def runaway_batch(batch: Any, width: int, pad_token_id: int) -> Any:
    """`batch` widened to `width` response columns, its first response continued to fill them (its own
    tokens repeated), every other row's new columns padding."""
    import torch

    extra = width - batch.response_ids.shape[1]
    rows = batch.response_ids.shape[0]
    length = max(1, int(batch.response_mask[0].sum()))
    continued = batch.response_ids[0, :length].repeat(width // length + 1)[:width]
    response_ids = torch.cat([batch.response_ids, torch.full((rows, extra), pad_token_id)], dim=1)
    response_ids[0] = continued
    response_mask = torch.cat([batch.response_mask, torch.zeros(rows, extra, dtype=torch.bool)], dim=1)
    response_mask[0] = True
    prompt = batch.sequences[:, : batch.prompt_length]
    prompt_mask = batch.attention_mask[:, : batch.prompt_length]
    return dataclasses.replace(
        batch,
        sequences=torch.cat([prompt, response_ids], dim=1),
        attention_mask=torch.cat([prompt_mask, response_mask.long()], dim=1),
        response_ids=response_ids,
        response_mask=response_mask,
        truncated=torch.tensor([True] + [bool(t) for t in batch.truncated[1:]]),
        num_generated_tokens=int(response_mask.sum()),
        # The decode loop's scores cover the clean width only: π_old is scored by a forward instead.
        logprobs=None,
        entropy=None,
        sum_sq_probs=None,
    )


def worker(payload: dict[str, Any]) -> dict[str, Any]:
    """The three updates on one rollout of the model, in this (fresh) process."""
    import torch

    from eapo.tasks import build_prompt
    from eapo.train.trainer import Trainer
    from eapo.train.update import build_optimizer, policy_update

    with tempfile.TemporaryDirectory() as tmp:
        quiet = {"output_dir": tmp, "tensorboard": False, "checkpoint_every": 0, "dump_rollouts_every": 0}
        overrides = {**copy.deepcopy(payload.get("overrides", {})), "run": quiet}
        config = bu.model_config(payload["model"], overrides)
        trainer = Trainer(config, progress=False)
        problems = trainer._next_problems()
        rollout = trainer._sample_and_score(problems)
        clean = rollout.batch
        runaway = runaway_batch(clean, config.sampling.max_new_tokens, trainer.tokenizer.pad_token_id)
        batches = {"clean": clean, "runaway_padded": runaway, "runaway_trimmed": runaway}
        inputs = {}
        for name, batch in batches.items():
            old_logprobs, _, _ = trainer._old_scores(batch)
            # A fixed advantage per row (its group's ±1 pattern): the work does not depend on the values.
            signs = torch.tensor([1.0, -1.0]).repeat(batch.response_ids.shape[0] // 2 + 1)
            advantages = torch.where(batch.response_mask, signs[: batch.response_ids.shape[0], None], 0.0)
            inputs[name] = (batch, old_logprobs, advantages)
        start_state = copy.deepcopy(trainer.model.state_dict())

        def update(name: str) -> float:
            batch, old_logprobs, advantages = inputs[name]
            schedule = dataclasses.replace(config.train, trim_padding=name == "runaway_trimmed")
            trainer.model.load_state_dict(start_state)
            optimizer, _ = build_optimizer(trainer.model, schedule)
            return bu.timed(
                lambda: policy_update(
                    trainer.model,
                    optimizer,
                    batch,
                    old_logprobs,
                    None,
                    advantages,
                    batch.response_mask,
                    algorithm=trainer.algorithm,
                    schedule=schedule,
                    temperature=config.sampling.temperature,
                    autocast=trainer.autocast,
                    max_len=config.sampling.max_new_tokens,
                )
            )

        variants = {name: partial(update, name) for name in VARIANTS}
        times = bu.interleave(variants, payload["rounds"])
        prompts = [build_prompt(problem, trainer.tokenizer, config.task) for problem in problems]
        generation = generation_variants(trainer, prompts, payload["phase_tokens"])
        # No warm-up round: the trainer's own rollout above has run the decode kernels.
        times.update(bu.interleave(generation["variants"], payload["rounds"], warmup=0))
        lengths = clean.response_mask.sum(dim=1)
        generated = {
            name: {
                "longest": int(batch.response_lengths.max()),
                "mean_length": round(float(batch.response_lengths.float().mean()), 2),
                "truncated": int(batch.truncated.sum()),
            }
            for name, batch in generation["batches"].items()
        }
        return {
            "phase_tokens": payload["phase_tokens"],
            "generated": generated,
            "model": payload["model"],
            "rows": int(clean.response_ids.shape[0]),
            "mini_batches": config.train.mini_batches,
            "micro_batch_rows": config.train.micro_batch_rows,
            "max_new_tokens": config.sampling.max_new_tokens,
            "clean_width": int(clean.response_ids.shape[1]),
            "clean_mean_length": round(float(lengths.float().mean()), 2),
            "rollout_s": round(rollout.sampling_time, 2),
            "times_s": {name: [round(t, 3) for t in values] for name, values in times.items()},
        }


def summarise(record: dict[str, Any]) -> None:
    times = record["times_s"]
    pairs = (
        ("runaway_padded", "clean"),
        ("runaway_trimmed", "clean"),
        ("runaway_trimmed", "runaway_padded"),
        ("generate_runaway", "generate_clean"),
        ("generate_runaway_phased", "generate_clean"),
        ("generate_runaway_phased", "generate_runaway"),
        ("generate_clean_phased", "generate_clean"),
    )
    record["summary"] = {
        "median_s": {name: round(bu.median(times[name]), 3) for name in (*VARIANTS, *GENERATE_VARIANTS)},
        "ratios": {f"{a} / {b}": bu.paired_ratio(times[a], times[b]) for a, b in pairs},
    }
    ratios = record["summary"]["ratios"]
    saved = ratios["runaway_trimmed / runaway_padded"]["median"]
    phased = ratios["generate_runaway_phased / generate_runaway"]["median"]
    record["targets"] = [
        bu.target(
            "trim_padding on a rollout with one runaway response",
            "the trimmed update takes less time than the padded one",
            round(saved, 3),
            saved < 1.0,
            f"{record['rows']} rows, {record['mini_batches']} mini-batches: one of them holds the runaway "
            f"row at width {record['max_new_tokens']}, the others keep the clean width "
            f"{record['clean_width']}",
        ),
        bu.target(
            "sampling.phase_tokens on a rollout with one runaway response",
            "the phased rollout takes less time than one generate call",
            round(phased, 3),
            phased < 1.0,
            f"{record['rows']} rows, one forced to write {record['max_new_tokens']} tokens, phases of "
            f"{record['phase_tokens']} tokens",
        ),
    ]


def measure(record: dict[str, Any], settings: dict[str, Any]) -> None:
    record.update(bu.run_worker(SCRIPT, settings))
    summarise(record)


def report(record: dict[str, Any]) -> None:
    print(
        f"{record['model']}: {record['rows']} rows, clean width {record['clean_width']} (mean length "
        f"{record['clean_mean_length']}), runaway width {record['max_new_tokens']}; "
        f"rollout {record['rollout_s']} s"
    )
    rows = [[name, record["summary"]["median_s"][name]] for name in VARIANTS]
    print(bu.format_table(["update", "median s"], rows))
    rows = [
        [
            name,
            record["summary"]["median_s"][name],
            record["generated"][name]["longest"],
            record["generated"][name]["mean_length"],
        ]
        for name in GENERATE_VARIANTS
    ]
    print(bu.format_table(["rollout", "median s", "longest", "mean length"], rows))
    for name, ratio in record["summary"]["ratios"].items():
        print(f"{name}: {bu.ratio_text(ratio)}")


def main() -> None:
    bu.benchmark_main(__doc__ or "", NAME, SCRIPT, SETTINGS, worker, report, measure)


if __name__ == "__main__":
    main()
