"""`eapo gradients`: where each credit method puts its gradient signal, by token-entropy decile.

PAPER.md §4.3, Eq. 5 (Appendix D.2): for the per-token loss −Â log π_y, the logit gradient has norm
|Â| · sqrt((1 − π_y)² + Σ_{v≠y} π_v²) (`eapo.core.logit_grad_norm`). The factor after |Â| depends only
on the policy, so it is large at high-entropy positions and vanishes at near-deterministic ones; a credit
method changes only |Â|. Applying every registered shaper (`eapo.core.SHAPERS`) to the SAME dumped batch
(raw GRPO advantages + entropy + mask) and summing the norm per entropy decile shows how each method
moves signal between routine and decision tokens.

Σ_v π_v² is needed per token. A dump written with `sum_sq_probs` carries it; otherwise it is recomputed
by re-scoring the dumped sequences with the checkpoint saved one step before the dump (that checkpoint's
weights are exactly the π_old that produced the dump), and the re-scored log-probs are checked against the
dumped ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from eapo.analysis.run_io import spread_evenly, write_json
from eapo.errors import DataError
from eapo.train.dumps import dump_paths, dump_step, load_dump
from eapo.train.precision import read_precision

__all__ = [
    "DECILES",
    "TAIL_BINS",
    "analyze_gradients",
    "decile_shares",
    "gradient_norms",
    "method_specs",
    "rescore_sum_sq",
]

# Largest |Δ log π| accepted between a re-scored and a dumped batch (bf16 autocast and a different
# micro-batch layout move log-probs by ~1e-3; a wrong checkpoint moves them by whole nats).
RESCORE_TOLERANCE = 0.05


def method_specs() -> dict[str, tuple[str, dict[str, Any]]]:
    """Every registered shaper at its default parameters: label -> (shaper name, params).

    The `quadrant` shaper's default is `isolate PHR` (PAPER.md §4.2), labelled as such.
    """
    from eapo.core import SHAPERS, shaper_params

    specs: dict[str, tuple[str, dict[str, Any]]] = {}
    for name in sorted(SHAPERS, key=lambda n: (n != "grpo", n)):
        params = shaper_params(name)
        label = name
        if name == "quadrant":
            quadrants = params.get("quadrants")
            label = f"quadrant ({params.get('mode')} {','.join(quadrants) if quadrants else ''})".strip()
        specs[label] = (name, {})
    return specs


def gradient_norms(
    advantages: torch.Tensor,
    entropy: torch.Tensor,
    response_mask: torch.Tensor,
    logprobs: torch.Tensor,
    sum_sq_probs: torch.Tensor,
    group_size: int,
    methods: dict[str, tuple[str, dict[str, Any]]],
) -> dict[str, torch.Tensor]:
    """Eq. 5 logit-gradient norm [B,T] of each method's shaped advantages on one batch.

    Args: advantages (raw GRPO, [B,T]), entropy, response_mask, logprobs (π_old of the sampled token),
    sum_sq_probs (float64): [B,T]; group_size: G; methods: label -> (shaper, params).
    Returns: label -> [B,T] fp32 norms, 0 outside the mask.
    """
    from eapo.core import logit_grad_norm, shape_advantages

    out = {}
    for label, (shaper, params) in methods.items():
        shaped = shape_advantages(shaper, advantages, entropy, response_mask, group_size, **params)
        out[label] = logit_grad_norm(shaped, logprobs, sum_sq_probs) * response_mask
    return out


DECILES = tuple(b / 10 for b in range(1, 11))
# The top decile holds almost all of the Eq. 5 norm on a confident policy; these bins look inside it.
TAIL_BINS = (0.5, 0.9, 0.95, 0.99, 1.0)


def decile_shares(
    entropy: np.ndarray, norms: dict[str, np.ndarray], bounds: Sequence[float] = DECILES
) -> dict[str, Any]:
    """Share of each method's total gradient norm in each entropy bin (deciles by default).

    Bins are equal-count by rank of the pooled token entropies (ties broken by order): bin b holds the
    tokens whose rank fraction lies in (bounds[b-1], bounds[b]], so deciles hold 10% of the tokens each
    even when many tokens share H ≈ 0. `bounds` are increasing upper rank fractions ending at 1.0.

    Args: entropy [N]; norms: label -> [N] per-token norms. Returns {"bounds", "mean_entropy": [bins],
    "entropy_range": [[low, high]], "share": {label: [bins]}, "mean_norm": {label: [bins]},
    "total_vs_grpo": {label: Σ norm / Σ GRPO norm}}.
    """
    entropy = np.asarray(entropy, dtype=np.float64)
    n = len(entropy)
    if n == 0:
        raise DataError("no valid tokens to bin by entropy")
    bounds = [float(b) for b in bounds]
    if bounds != sorted(bounds) or not math.isclose(bounds[-1], 1.0) or bounds[0] <= 0:
        raise ValueError(f"bounds must increase from > 0 to 1.0; got {bounds}")
    n_bins = len(bounds)
    order = np.argsort(entropy, kind="stable")
    rank_fraction = (np.arange(n) + 1) / n
    bin_of = np.empty(n, dtype=np.int64)
    bin_of[order] = np.searchsorted(np.array(bounds) + 1e-12, rank_fraction, side="left").clip(max=n_bins - 1)
    counts = np.bincount(bin_of, minlength=n_bins)
    result: dict[str, Any] = {
        "tokens": n,
        "bounds": bounds,
        "mean_entropy": (
            np.bincount(bin_of, weights=entropy, minlength=n_bins) / np.maximum(counts, 1)
        ).tolist(),
        "entropy_range": [
            [float(entropy[bin_of == b].min()), float(entropy[bin_of == b].max())]
            if counts[b]
            else [None, None]
            for b in range(n_bins)
        ],
        "share": {},
        "mean_norm": {},
        "total_vs_grpo": {},
    }
    grpo_total = float(np.asarray(norms["grpo"], dtype=np.float64).sum()) if "grpo" in norms else None
    for label, values in norms.items():
        values = np.asarray(values, dtype=np.float64)
        sums = np.bincount(bin_of, weights=values, minlength=n_bins)
        total = float(sums.sum())
        result["share"][label] = (sums / total).tolist() if total > 0 else [0.0] * n_bins
        result["mean_norm"][label] = (sums / np.maximum(counts, 1)).tolist()
        result["total_vs_grpo"][label] = total / grpo_total if grpo_total else None
    return result


def _policy_for(run_dir: Path, step: int, cache: dict[int, Any]) -> Any:
    """(model, tokenizer, config) holding the run's weights after `step` updates, or None if not kept.

    Step 0 is the run's initial policy, rebuilt from its config (for the tiny model: the cached SFT
    warm-up); later steps need the checkpoint `checkpoints/step_<step>/model`.
    """
    if step in cache:
        return cache[step]
    from eapo.train.config import load_config
    from eapo.train.evaluate import use_checkpoint_weights
    from eapo.train.run_policy import load_run_policy

    config = load_config(run_dir / "config.yaml")
    if step > 0:
        folder = run_dir / "checkpoints" / f"step_{step:06d}" / "model"
        if not folder.is_dir():
            cache[step] = None
            return None
        use_checkpoint_weights(config, folder)
    loaded = load_run_policy(config, progress=False)
    cache[step] = (loaded.model, loaded.tokenizer, config)
    return cache[step]


def rescore_sum_sq(
    dump: dict[str, Any], model: Any, tokenizer: Any, config: Any
) -> tuple[torch.Tensor, float]:
    """Σπ² [B,T] (float64) of a dumped batch under `model`, and max |Δ log π| against the dump.

    Rebuilds the rollout layout of `eapo.rollout.generate_rollouts` (left-padded prompts, then the
    responses) and scores it with the trainer's own no-grad pass at the run's sampling temperature.
    """
    from eapo.models import autocast_context
    from eapo.rollout import RolloutBatch
    from eapo.train.scoring import score_policy

    prompts = list(dump["prompts"])
    bos = tokenizer.bos_token
    has_bos = bos is not None and all(p.startswith(bos) for p in prompts)
    encoded = tokenizer(
        prompts, padding=True, padding_side="left", add_special_tokens=not has_bos, return_tensors="pt"
    )
    index = torch.as_tensor(dump["prompt_index"]).long().cpu()
    mask = dump["response_mask"].bool()
    prompt_ids, prompt_mask = encoded["input_ids"][index], encoded["attention_mask"][index]
    device = next(model.parameters()).device
    batch = RolloutBatch(
        sequences=torch.cat([prompt_ids, dump["response_ids"].long()], dim=1).to(device),
        attention_mask=torch.cat([prompt_mask, mask.long()], dim=1).to(device),
        prompt_length=prompt_ids.shape[1],
        response_ids=dump["response_ids"].long().to(device),
        response_mask=mask.to(device),
        truncated=torch.zeros(mask.shape[0], dtype=torch.bool),
        completions=list(dump.get("completions", [])),
        prompt_index=index,
        num_generated_tokens=int(mask.sum()),
    )
    logprobs, _, sum_sq = score_policy(
        model,
        batch,
        config.train.logprob_chunk_size,
        config.train.micro_batch_rows,
        lambda: autocast_context(device, config.model.dtype),
        temperature=config.sampling.temperature,  # the dump's π_old is softmax(logits / T)
    )
    diff = float((logprobs.cpu() - dump["logprobs"].float()).abs()[mask].max()) if mask.any() else 0.0
    return sum_sq.cpu(), diff


def _plot(table: dict[str, Any], tail: dict[str, Any], out_dir: Path) -> Path:
    from eapo.analysis.plots import add_legend, new_figure, save_figure

    fig, axes = new_figure(1, 3, width=4.6, height=3.6)
    x = np.arange(1, len(table["mean_entropy"]) + 1)
    styles = {"grpo": ("k", "-", 2.2), "eapo": ("#1f4e9c", "-", 2.2)}
    floor = 1e-5  # log axes: shares below it are drawn at it
    for label, shares in table["share"].items():
        color, line, width = styles.get(label, (None, "--", 1.2))
        axes[0, 0].plot(
            x, np.maximum(shares, floor), line, color=color, linewidth=width, marker="o", ms=3, label=label
        )
        axes[0, 2].plot(x, table["mean_norm"][label], line, color=color, linewidth=width, marker="o", ms=3)
    axes[0, 0].axhline(0.1, color="gray", linestyle=":", linewidth=1)
    axes[0, 0].set_yscale("log")
    axes[0, 0].set_title("share of total logit-gradient norm (Eq. 5)")
    axes[0, 0].set_xlabel("token entropy decile (1 = lowest)")
    axes[0, 0].set_ylabel("share of Σ ‖∇_z L_t‖ (log scale)")
    add_legend(axes[0, 0], fontsize=7)
    # Inside the top of the entropy range: grouped bars per percentile bin.
    labels = list(tail["share"])
    edges = [0.0, *tail["bounds"]]
    width = 0.8 / len(labels)
    positions = np.arange(len(tail["bounds"]))
    for i, label in enumerate(labels):
        color = styles.get(label, (None,))[0]
        axes[0, 1].bar(positions + i * width, tail["share"][label], width=width, color=color, label=label)
    axes[0, 1].set_xticks(
        positions + width * (len(labels) - 1) / 2,
        [f"{100 * edges[b]:.0f}–{100 * edges[b + 1]:.0f}" for b in range(len(tail["bounds"]))],
    )
    axes[0, 1].set_title("share by entropy percentile bin")
    axes[0, 1].set_xlabel("token entropy percentile")
    axes[0, 1].set_ylabel("share of Σ ‖∇_z L_t‖")
    axes[0, 2].set_yscale("log")
    axes[0, 2].set_title("mean per-token norm")
    axes[0, 2].set_xlabel("token entropy decile (1 = lowest)")
    axes[0, 2].set_ylabel("‖∇_z L_t‖ (log scale)")
    return save_figure(fig, out_dir / "gradient_by_entropy_decile.png")


def _markdown(summary: dict[str, Any]) -> str:
    table = summary["table"]
    labels = list(table["share"])
    lines = [
        f"# Where each method puts its gradient signal: `{summary['run']}`",
        "",
        f"{summary['dumps_used']} dumped steps ({', '.join(str(s) for s in summary['steps'])}), "
        f"{table['tokens']} valid tokens; every registered shaper applied to the same raw GRPO advantages, "
        "entropy and mask; per-token norm = Eq. 5's closed form (|Â| · sqrt((1 − π_y)² + Σ_{v≠y} π_v²)).",
        f"Σπ² source: {summary['sum_sq_source']}.",
        "",
        "Share (%) of each method's total gradient norm per entropy decile (each decile = 10% of tokens):",
        "",
        "| decile | H range (nats) | mean H | " + " | ".join(labels) + " |",
        "|---|---|---|" + "---|" * len(labels),
    ]
    for b, (h, (low, high)) in enumerate(zip(table["mean_entropy"], table["entropy_range"], strict=True)):
        shares = " | ".join(f"{100 * table['share'][label][b]:.1f}" for label in labels)
        lines.append(f"| {b + 1} | {low:.3f}–{high:.3f} | {h:.3f} | {shares} |")
    top = " | ".join(f"{100 * sum(table['share'][label][-2:]):.1f}" for label in labels)
    totals = " | ".join(
        "–" if table["total_vs_grpo"][label] is None else f"{table['total_vs_grpo'][label]:.3f}"
        for label in labels
    )
    tail = summary["tail"]
    lines += [
        f"| top 2 deciles | | | {top} |",
        f"| Σ norm / GRPO's | | | {totals} |",
        "",
        "Inside the top of the entropy range (bins by entropy percentile):",
        "",
        "| percentile | H range (nats) | mean H | " + " | ".join(labels) + " |",
        "|---|---|---|" + "---|" * len(labels),
    ]
    lower = 0.0
    for b, (upper, h, (low, high)) in enumerate(
        zip(tail["bounds"], tail["mean_entropy"], tail["entropy_range"], strict=True)
    ):
        shares = " | ".join(f"{100 * tail['share'][label][b]:.1f}" for label in labels)
        lines.append(f"| {100 * lower:.0f}–{100 * upper:.0f} | {low:.3f}–{high:.3f} | {h:.3f} | {shares} |")
        lower = upper
    lines += [
        "",
        f"![gradient by entropy decile]({summary['figure']})",
        "",
    ]
    return "\n".join(lines)


def analyze_gradients(
    run_dir: Path,
    *,
    out_dir: Path | None = None,
    max_dumps: int | None = 20,
    steps: Sequence[int] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """`eapo gradients`: the per-decile gradient table and plot in `<run>/analysis/gradients/`.

    Uses up to `max_dumps` rollout dumps (or exactly `steps`) that carry Σπ² or can be re-scored.
    """
    run_dir = Path(run_dir)
    paths = dump_paths(run_dir)
    if steps is not None:
        wanted = {int(s) for s in steps}
        paths = [p for p in paths if dump_step(p) in wanted]
    if not paths:
        raise DataError(
            f"{run_dir}: no rollout dumps (rollouts/step_N.safetensors); set run.dump_rollouts_every > 0"
        )
    # Dumps of one run are alike: either all carry Σπ² or none does. Without it, a dump is usable when the
    # policy that produced it (the weights after step − 1 updates) was kept.
    if "sum_sq_probs" in load_dump(paths[0]):
        candidates = paths
    else:
        candidates = [
            p
            for p in paths
            if dump_step(p) == 1
            or (run_dir / "checkpoints" / f"step_{dump_step(p) - 1:06d}" / "model").is_dir()
        ]
    if not candidates:
        raise DataError(
            f"{run_dir}: the dumps carry no sum_sq_probs and no checkpoint was kept one step before a dump "
            "(dump every step with --run.dump_rollouts_every 1 and keep checkpoints with "
            "--run.keep_checkpoints)"
        )
    chosen = spread_evenly(candidates, max_dumps)
    methods = method_specs()
    entropies: list[np.ndarray] = []
    per_method: dict[str, list[np.ndarray]] = {label: [] for label in methods}
    cache: dict[int, Any] = {}
    used_steps, diffs, sources = [], [], set()
    for path in tqdm(chosen, desc="gradient norms", unit="dump", disable=not progress, leave=False):
        dump = load_dump(path)
        step = int(dump["step"])
        if "sum_sq_probs" in dump:
            sum_sq = dump["sum_sq_probs"].double()
            sources.add("dumped by the trainer")
        else:
            policy = _policy_for(run_dir, step - 1, cache)
            if policy is None:
                continue
            sum_sq, diff = rescore_sum_sq(dump, *policy)
            if diff > RESCORE_TOLERANCE:
                continue  # not the policy that produced the dump
            diffs.append(diff)
            sources.add("re-scored with the checkpoint one step before each dump")
        mask = dump["response_mask"]
        norms = gradient_norms(
            dump["advantages"].float(),
            dump["entropy"].float(),
            mask,
            dump["logprobs"].float(),
            sum_sq,
            int(dump["group_size"]),
            methods,
        )
        entropies.append(dump["entropy"].float()[mask].numpy())
        for label, values in norms.items():
            per_method[label].append(values[mask].numpy())
        used_steps.append(step)
    if not used_steps:
        raise DataError(
            f"{run_dir}: no dump could be matched to the policy that produced it (Σπ² unavailable)"
        )
    pooled_entropy = np.concatenate(entropies)
    pooled_norms = {k: np.concatenate(v) for k, v in per_method.items()}
    table = decile_shares(pooled_entropy, pooled_norms)
    tail = decile_shares(pooled_entropy, pooled_norms, TAIL_BINS)
    out_dir = Path(out_dir) if out_dir else run_dir / "analysis" / "gradients"
    out_dir.mkdir(parents=True, exist_ok=True)
    figure = _plot(table, tail, out_dir)
    summary: dict[str, Any] = {
        "run": str(run_dir),
        "run_precision": read_precision(run_dir),  # what the dumps were computed in (None: not recorded)
        "dumps_used": len(used_steps),
        "steps": used_steps,
        "sum_sq_source": "; ".join(sorted(sources))
        + (f" (max |Δ log π| vs the dump {max(diffs):.2e})" if diffs else ""),
        "methods": {label: {"shaper": s, "params": p} for label, (s, p) in methods.items()},
        "table": table,
        "tail": tail,
        "figure": figure.name,
    }
    write_json(out_dir / "summary.json", summary)  # strict JSON: a NaN norm is written as null
    (out_dir / "summary.md").write_text(_markdown(summary))
    summary["out_dir"] = str(out_dir)
    return summary
