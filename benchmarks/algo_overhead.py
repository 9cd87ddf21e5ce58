"""Benchmark 2: the cost of each registered algorithm against GRPO, one training step on one fixed batch.

One trainer (`eapo.train.trainer.Trainer`) per model, in a fresh subprocess. Its rollout is sampled once
and then replayed: `generate_rollouts` is swapped for a function that returns the first batch, and the
data position is reset before each step, so every step scores the same completions of the same problems
and does the same work apart from the algorithm. Before each step the model, optimizer and scheduler
state are restored (outside the timing). Per algorithm, interleaved over rounds in a rotating order:

- whole step: `Trainer.train_step()` (scoring, old log-probs + entropy, advantages, shaper, PPO-clip
  update, quadrant metrics), wall time, and its own `time/forward_backward` (loss + backward);
- shaping: `group_advantages` + `shape_advantages` as the trainer calls them, on the fixed batch;
- peak memory: torch allocator peak of one `train_step` (torch.profiler memory timeline, tensors created
  during the step; the weights and optimizer state existed before and are not counted).

Ratios are algorithm / GRPO, median over rounds of the per-round ratio.
"""

from __future__ import annotations

import copy
import sys
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

import bench_utils as bu

NAME = "algo_overhead"
SCRIPT = Path(__file__).resolve()
SHAPING_CALLS = 20  # shaping is fast: time this many calls per round and report the mean

# Per model: rounds, algorithms (None = every registered one) and config overrides. SmolLM2 runs the pair
# the target is about, on half the packaged batch (2 prompts x 8): a step takes minutes on busy cores.
SMOLLM2 = {"rounds": 3, "algos": ["grpo", "eapo"], "overrides": {"train": {"prompts_per_step": 2}}}
SETTINGS: dict[str, dict[str, Any]] = {
    "full": {"models": {"tiny": {"rounds": 10, "algos": None}, "smollm2": SMOLLM2}},
    "quick": {"models": {"tiny": {"rounds": 5, "algos": None}}},
    "smoke": {"models": {"tiny-smoke": {"rounds": 1, "algos": ["grpo", "eapo"]}}},
}


def _config(model: str, run_dir: str, overrides: dict[str, Any] | None = None) -> Any:
    quiet = {
        "output_dir": run_dir,
        "tensorboard": False,
        "checkpoint_every": 0,
        "entropy_change_every": 0,
        "dump_rollouts_every": 0,
        "log_samples": 0,
    }
    return bu.model_config(model, {**copy.deepcopy(overrides or {}), "run": quiet})


def worker(payload: dict[str, Any]) -> dict[str, Any]:
    """All algorithms on one model, in this (fresh) process."""
    import torch

    import eapo.train.trainer as trainer_module
    from eapo.core import group_advantages, shape_advantages
    from eapo.train.algorithms import ALGORITHMS, AlgoConfig, resolve_algorithm
    from eapo.train.scoring import score_policy
    from eapo.train.trainer import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        config = _config(payload["model"], tmp, payload.get("overrides"))
        trainer = Trainer(config, progress=False)

        # Replay the first rollout: every step then works on the same completions.
        real_generate = trainer_module.generate_rollouts
        cache: dict[str, Any] = {}

        def replay(*args: Any, **kwargs: Any) -> Any:
            if "batch" not in cache:
                cache["batch"] = real_generate(*args, **kwargs)
            return cache["batch"]

        trainer_module.generate_rollouts = replay
        names = payload["algos"] or list(ALGORITHMS)
        algorithms = {name: resolve_algorithm(AlgoConfig(name=name)) for name in names}
        # One step first, so the optimizer state exists (AdamW creates it lazily) before the snapshot.
        trainer.algorithm = algorithms["grpo"]
        trainer.train_step()
        model_state = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
        optimizer_state = copy.deepcopy(trainer.optimizer.state_dict())
        scheduler_state = copy.deepcopy(trainer.scheduler.state_dict())

        def restore(name: str) -> None:
            trainer.model.load_state_dict(model_state)
            trainer.optimizer.load_state_dict(copy.deepcopy(optimizer_state))
            trainer.scheduler.load_state_dict(scheduler_state)
            trainer.data_position = 0
            trainer.algorithm = algorithms[name]

        parts: dict[str, list[dict[str, float]]] = {name: [] for name in algorithms}

        def step(name: str) -> float:
            restore(name)
            elapsed = bu.timed(lambda: parts[name].append(trainer.train_step().metrics))
            return elapsed

        times = bu.interleave({name: partial(step, name) for name in algorithms}, payload["rounds"], warmup=1)
        for name in algorithms:  # drop the warm-up step's metrics
            parts[name] = parts[name][-payload["rounds"] :]

        # Shaping alone, on the batch's own rewards and entropy, as train_step computes them.
        batch = cache["batch"]
        G = config.train.group_size
        row_rewards = torch.tensor([m["reward/mean"] for m in parts["grpo"]])  # only to check stability
        restore("grpo")
        _, entropy, _ = score_policy(
            trainer.model,
            batch,
            config.train.logprob_chunk_size,
            config.train.micro_batch_rows,
            trainer.autocast,
        )
        from eapo.tasks import score_completions

        problems = trainer._next_problems()
        row_problems = [problems[i] for i in batch.prompt_index.tolist()]
        rewards = torch.tensor(
            score_completions(batch.completions, row_problems, trainer.task).rewards, dtype=torch.float32
        )
        mask = batch.response_mask

        def shaping(name: str) -> float:
            algo = algorithms[name]

            def run() -> None:
                for _ in range(SHAPING_CALLS):
                    seq_adv, _ = group_advantages(rewards, G, algo.advantage)
                    advantages = seq_adv[:, None] * mask
                    shape_advantages(algo.shaper, advantages, entropy, mask, G, **algo.shaper_params)

            return bu.timed(run) / SHAPING_CALLS

        shaping_times = bu.interleave(
            {name: partial(shaping, name) for name in algorithms}, payload["rounds"], warmup=1
        )

        peaks: dict[str, int] = {}
        for name in algorithms:
            restore(name)
            peaks[name] = bu.allocator_peak_bytes(trainer.train_step)

        trainer_module.generate_rollouts = real_generate
        trainer.logger.close()
        n_params = sum(p.numel() for p in trainer.model.parameters())
        return {
            "model": payload["model"],
            "parameters": n_params,
            "batch_rows": int(batch.sequences.shape[0]),
            "response_tokens": int(mask.sum()),
            "response_width": int(mask.shape[1]),
            "reward_mean_stable": bool(row_rewards.std() == 0) if len(row_rewards) > 1 else True,
            "accuracy": float(rewards.mean()),
            "step_s": times,
            "forward_backward_s": {n: [p["time/forward_backward"] for p in parts[n]] for n in algorithms},
            "old_logprobs_s": {n: [p["time/old_logprobs"] for p in parts[n]] for n in algorithms},
            "shaping_s": shaping_times,
            "allocator_peak_bytes": peaks,
            "torch_threads": torch.get_num_threads(),
        }


def summarise(runs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows: list[dict[str, Any]] = []
    for run in runs:
        base = "grpo"
        for name in run["step_s"]:
            differing = [
                s + f for s, f in zip(run["shaping_s"][name], run["forward_backward_s"][name], strict=True)
            ]
            differing_base = [
                s + f for s, f in zip(run["shaping_s"][base], run["forward_backward_s"][base], strict=True)
            ]
            rows.append(
                {
                    "model": run["model"],
                    "algo": name,
                    "step_s": round(bu.median(run["step_s"][name]), 4),
                    "step_ratio": round(
                        bu.paired_ratio(run["step_s"][name], run["step_s"][base])["median"], 3
                    ),
                    "shaping_ms": round(1000 * bu.median(run["shaping_s"][name]), 3),
                    "forward_backward_s": round(bu.median(run["forward_backward_s"][name]), 4),
                    "shaping_plus_loss_backward_ratio": round(
                        bu.paired_ratio(differing, differing_base)["median"], 3
                    ),
                    "peak_mib": bu.mib(run["allocator_peak_bytes"][name]),
                    "memory_ratio": round(
                        run["allocator_peak_bytes"][name] / run["allocator_peak_bytes"][base], 4
                    ),
                }
            )
    targets = []
    for run in runs:
        eapo = next(r for r in rows if r["model"] == run["model"] and r["algo"] == "eapo")
        worst = max(eapo["step_ratio"], eapo["memory_ratio"])
        targets.append(
            bu.target(
                f"algorithm overhead ({run['model']}): EAPO / GRPO",
                "EAPO / GRPO <= 1.02 in step time and peak memory",
                worst,
                eapo["step_ratio"] <= 1.02 and eapo["memory_ratio"] <= 1.02,
                f"step time x{eapo['step_ratio']}, shaping + loss + backward x"
                f"{eapo['shaping_plus_loss_backward_ratio']}, peak memory x{eapo['memory_ratio']}; "
                f"shaping {eapo['shaping_ms']} ms of a {eapo['step_s']} s step",
            )
        )
    return rows, targets


def render_table(summary: list[dict[str, Any]]) -> str:
    headers = [
        "model",
        "algo",
        "step s",
        "step ratio",
        "shaping ms",
        "shape+loss+bwd",
        "peak MiB",
        "mem ratio",
    ]
    rows = [
        [
            r["model"],
            r["algo"],
            r["step_s"],
            r["step_ratio"],
            r["shaping_ms"],
            r["shaping_plus_loss_backward_ratio"],
            r["peak_mib"],
            r["memory_ratio"],
        ]
        for r in summary
    ]
    return bu.format_table(headers, rows)


def measure(record: dict[str, Any], settings: dict[str, Any]) -> None:
    record["memory_method"] = (
        "torch allocator peak of one train_step (torch.profiler profile_memory=True memory timeline), "
        "tensors created during the step"
    )
    runs = []
    for model, spec in settings["models"].items():
        runs.append(bu.run_worker(SCRIPT, {"model": model, **spec}, timeout_s=4 * 3600))
        print(f"  done {model} (load {bu.load_average()[0]})", file=sys.stderr)
    record["runs"] = runs
    record["summary"], record["targets"] = summarise(runs)


def main() -> None:
    bu.benchmark_main(
        __doc__, NAME, SCRIPT, SETTINGS, worker, lambda r: print(render_table(r["summary"])), measure
    )


if __name__ == "__main__":
    main()
