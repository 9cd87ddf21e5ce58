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

Generation is not timed here: `generate` computes every row until the longest stops, which trimming the
update does not change (the rollout part of the slow steps).
"""

from __future__ import annotations

import copy
import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import bench_utils as bu

NAME = "runaway_response"
SCRIPT = Path(__file__).resolve()
SETTINGS: dict[str, dict[str, Any]] = {
    "full": {"model": "smollm2-study", "rounds": 3},
    "quick": {"model": "smollm2-study", "rounds": 1},
    "smoke": {"model": "tiny-smoke", "rounds": 1, "overrides": {"sampling": {"max_new_tokens": 48}}},
}
VARIANTS = ("clean", "runaway_padded", "runaway_trimmed")


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

    from eapo.train.trainer import Trainer
    from eapo.train.update import build_optimizer, policy_update

    with tempfile.TemporaryDirectory() as tmp:
        quiet = {"output_dir": tmp, "tensorboard": False, "checkpoint_every": 0, "dump_rollouts_every": 0}
        overrides = {**copy.deepcopy(payload.get("overrides", {})), "run": quiet}
        config = bu.model_config(payload["model"], overrides)
        trainer = Trainer(config, progress=False)
        rollout = trainer._sample_and_score(trainer._next_problems())
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

        variants = {name: (lambda name=name: update(name)) for name in VARIANTS}
        times = bu.interleave(variants, payload["rounds"])
        lengths = clean.response_mask.sum(dim=1)
        return {
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
    pairs = (("runaway_padded", "clean"), ("runaway_trimmed", "clean"), ("runaway_trimmed", "runaway_padded"))
    record["summary"] = {
        "median_s": {name: round(bu.median(times[name]), 3) for name in VARIANTS},
        "ratios": {f"{a} / {b}": bu.paired_ratio(times[a], times[b]) for a, b in pairs},
    }
    saved = record["summary"]["ratios"]["runaway_trimmed / runaway_padded"]["median"]
    record["targets"] = [
        bu.target(
            "trim_padding on a rollout with one runaway response",
            "the trimmed update takes less time than the padded one",
            round(saved, 3),
            saved < 1.0,
            f"{record['rows']} rows, {record['mini_batches']} mini-batches: one of them holds the runaway "
            f"row at width {record['max_new_tokens']}, the others keep the clean width "
            f"{record['clean_width']}",
        )
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
    for name, ratio in record["summary"]["ratios"].items():
        print(f"{name}: {bu.ratio_text(ratio)}")


def main() -> None:
    bu.benchmark_main(__doc__ or "", NAME, SCRIPT, SETTINGS, worker, report, measure)


if __name__ == "__main__":
    main()
