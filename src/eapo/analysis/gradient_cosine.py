"""`eapo gradients --cosine`: how different is each algorithm's update from GRPO's on the same batch?

EAPO changes a token's advantage by at most ±α/φ of |Â| (PAPER.md Eq. 6-7: ±10% at α = 0.2, φ = 2), and
low-entropy tokens carry little gradient anyway (Eq. 5). If the parameter gradient of EAPO's loss points
where GRPO's does (cosine near 1, norm ratio near 1), no affordable grid can tell the two apart; this
command measures that directly, on one fixed rollout batch:

1. One seeded rollout batch from the checkpoint (`eapo.analysis.cosine_batch`): G responses to each of P
   training prompts (by default P groups with mixed rewards, filled as DAPO's dynamic sampling fills a
   batch), the task's verifier rewards, π_old's log-probs and entropies at the sampling temperature
   (logits / T), and the GRPO advantages (Eq. 2). Quadrants: the sign of the GRPO advantage and the
   group-mean entropy rule (`eapo.core.quadrant_masks`, §4.1); tokens of all-equal groups (Â = 0) form a
   fifth part, ZERO.
2. For each algorithm (`eapo.train.algorithms.resolve_algorithm`): its rewards (DAPO's overlong penalty
   where the preset has one), group advantages and shaped advantages (`eapo.core.shape_advantages`),
   then the flattened parameter gradient of its policy loss (`eapo.core.policy_loss`, the preset's clip,
   entropy bonus, loss and aggregation) on the whole batch at ratio 1 (π_old = π_θ: the first update of a
   step; with several mini-batches per rollout that first update sees one mini-batch of such a batch).
   The gradient of part Q is the gradient that flows through Q's tokens only (the other tokens' log-probs
   and entropies are detached); the five parts sum to the whole gradient exactly.
3. Cosine and norm ratio of each algorithm's gradient to GRPO's, overall and per part; the same for the
   parameter change of one AdamW step from a fresh optimizer state (the run's lr, weight decay and
   gradient clipping). Adam's first step is about lr·sign(g), so its cosine can differ a lot from the
   gradient's.
4. Control: GRPO on a second, independent batch (other prompts, another seed) against GRPO on the first:
   the cosine that sampling noise alone gives, the yardstick for "different".
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from eapo.analysis.cosine_batch import MAX_ROUNDS, PARTS, CosineBatch, sample_batch, shaped_advantages
from eapo.errors import ConfigError
from eapo.journal import append_row, fingerprint, open_journal

__all__ = [
    "adamw_delta",
    "algorithm_gradients",
    "analyze_gradient_cosine",
    "compare",
    "gradient_cosine",
    "markdown_table",
    "parse_algorithm",
]

# The journal row of the sampling-noise control (GRPO on a second batch); every other row is an algorithm.
CONTROL = "control: GRPO, 2nd batch"


def parse_algorithm(label: str) -> Any:
    """An `AlgoConfig` from `name` or `name:field=value:field=value` (e.g. `eapo:alpha=1:phi=1`).

    Fields are those of `eapo.train.algorithms.AlgoConfig`; values are read as YAML scalars.
    """
    import yaml

    from eapo.train.algorithms import AlgoConfig

    name, *assignments = label.split(":")
    fields = {f.name for f in dataclasses.fields(AlgoConfig)} - {"name"}
    values: dict[str, Any] = {}
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        if not sep or key not in fields:
            raise ConfigError(
                f"gradients --algos {label!r}: {assignment!r} is not FIELD=VALUE with FIELD one of "
                f"{', '.join(sorted(fields))}"
            )
        values[key] = yaml.safe_load(raw)
    return AlgoConfig(name=name, **values)


def _update_mask(batch: CosineBatch, drop_zero_variance_groups: bool) -> torch.Tensor:
    """The tokens the trainer's loss averages over (all-equal groups dropped when the config says so)."""
    mask = batch.rollout.response_mask
    if not drop_zero_variance_groups:
        return mask
    informative = batch.correct.view(-1, batch.group_size).std(dim=1) > 0
    return mask & informative.repeat_interleave(batch.group_size)[:, None].to(mask.device)


def _zero_part_is_inert(algorithm: Any, shaped: torch.Tensor, batch: CosineBatch) -> bool:
    """True when no gradient can flow through the ZERO tokens: PPO-clip with Â = 0 there and no entropy or
    KL term (their per-token loss is −0·ρ). Saves one backward pass per micro-batch."""
    return (
        algorithm.loss == "ppo_clip"
        and algorithm.entropy_coef == 0
        and algorithm.kl_coef == 0
        and not bool((shaped[batch.parts["ZERO"]] != 0).any())
    )


def algorithm_gradients(
    model: Any,
    batch: CosineBatch,
    algorithm: Any,
    shaped: torch.Tensor,
    config: Any,
    autocast: Callable[[], Any] = contextlib.nullcontext,
    *,
    split: bool = True,
) -> dict[str, torch.Tensor]:
    """The flattened parameter gradient [N] (fp32, CPU) of `algorithm`'s policy loss: `"all"`, and with
    `split` also each part of PARTS (one backward pass per part instead of one in all).

    Ratio 1 (π_old = π_θ, the first update of a trainer step); the trainer's micro-batching, token count
    and aggregation, so `"all"` is the gradient the trainer accumulates before clipping, and the parts sum
    to it. A part through which no gradient can flow (ZERO, for PPO-clip without entropy or KL terms) is
    left out: read a missing part as a zero vector.
    """
    from eapo.core import policy_loss, token_logprobs_and_entropy
    from eapo.rollout import response_logits

    rollout = batch.rollout
    update_mask = _update_mask(batch, config.train.drop_zero_variance_groups)
    params = [p for p in model.parameters() if p.requires_grad]
    if split:
        parts = [q for q in PARTS if not (q == "ZERO" and _zero_part_is_inert(algorithm, shaped, batch))]
    else:
        parts = ["all"]
    total: dict[str, torch.Tensor] = {}
    rows_total = rollout.sequences.shape[0]
    num_tokens = int(update_mask.sum())
    need_entropy_grad = algorithm.entropy_coef != 0
    model.train()
    for start in range(0, rows_total, config.train.micro_batch_rows):
        rows = slice(start, min(start + config.train.micro_batch_rows, rows_total))
        with autocast():
            logits = response_logits(
                model, rollout.sequences[rows], rollout.attention_mask[rows], rollout.prompt_length
            )
        logprobs, entropy = token_logprobs_and_entropy(
            logits,
            rollout.response_ids[rows],
            update_mask[rows],
            config.train.logprob_chunk_size,
            entropy_grad=need_entropy_grad,
            temperature=config.sampling.temperature,
        )[:2]
        logprobs = logprobs.float()
        rng_state = torch.get_rng_state()
        for i, part in enumerate(parts):
            # Every part sees the same random draws of a loss that makes some (Clip-Cov's token pick), so
            # the parts are pieces of one loss and sum to its gradient.
            torch.set_rng_state(rng_state)
            part_logprobs, part_entropy = logprobs, entropy.float()
            if part != "all":
                # The loss's value is unchanged; only the gradient through `part`'s tokens survives.
                through = batch.parts[part][rows].to(logprobs.device)
                part_logprobs = torch.where(through, logprobs, logprobs.detach())
                part_entropy = torch.where(through, entropy, entropy.detach()).float()
            loss, _, _ = policy_loss(
                part_logprobs,
                logprobs.detach(),
                shaped[rows],
                update_mask[rows],
                loss_type=algorithm.loss,
                clip_low=algorithm.clip_low,
                clip_high=algorithm.clip_high,
                dual_clip=algorithm.dual_clip,
                # The reference is the checkpoint itself here (a KL term's gradient is 0 at ratio 1).
                ref_logprobs=logprobs.detach() if algorithm.kl_coef > 0 else None,
                kl_coef=algorithm.kl_coef,
                entropy=part_entropy if need_entropy_grad else None,
                entropy_coef=algorithm.entropy_coef,
                agg=algorithm.agg,
                num_tokens=num_tokens,
                num_seqs=rows_total,
                max_len=config.sampling.max_new_tokens,
                **algorithm.loss_params,
            )
            if not loss.requires_grad:
                continue
            grads = torch.autograd.grad(loss, params, retain_graph=i < len(parts) - 1, allow_unused=True)
            flat = torch.cat(
                [
                    (g if g is not None else torch.zeros_like(p)).detach().float().reshape(-1).cpu()
                    for g, p in zip(grads, params, strict=True)
                ]
            )
            if part in total:
                total[part] += flat
            else:
                total[part] = flat
            del grads, flat
    model.eval()
    if split:
        whole = torch.zeros(sum(p.numel() for p in params), dtype=torch.float32)
        for vector in total.values():
            whole += vector
        total["all"] = whole
    return total


def adamw_delta(
    params: torch.Tensor, gradient: torch.Tensor, *, lr: float, weight_decay: float, max_grad_norm: float
) -> torch.Tensor:
    """The parameter change [N] of one `torch.optim.AdamW` step (β's any, ε = 1e-8) from a fresh state,
    after the trainer's `clip_grad_norm_` to `max_grad_norm`, in closed form (no optimizer state: SmolLM2's
    would take another 1 GB per call).

    Step 1 of AdamW: θ ← θ(1 − lr·wd), then m̂ = g and v̂ = g² after bias correction, so
    Δθ = −lr·wd·θ − lr·g / (|g| + ε) with g scaled by min(1, max_grad_norm / (‖g‖ + 1e-6)).
    `tests/analysis/test_gradient_cosine.py` checks it against `torch.optim.AdamW` itself.
    """
    scale = min(1.0, max_grad_norm / (float(gradient.double().norm()) + 1e-6))
    g = gradient * scale
    delta = g.div(g.abs().add_(1e-8)).mul_(-lr)
    if weight_decay:
        delta.sub_(params, alpha=lr * weight_decay)
    return delta


def compare(vector: torch.Tensor | None, reference: torch.Tensor | None) -> dict[str, float | None]:
    """Cosine and norm ratio ‖vector‖ / ‖reference‖ (float64), and ‖vector‖; None reads as a zero vector,
    and the cosine (or ratio) is None where a norm is 0."""
    norm_a = float(vector.double().norm()) if vector is not None else 0.0
    norm_b = float(reference.double().norm()) if reference is not None else 0.0
    cosine = None
    if vector is not None and reference is not None and norm_a > 0 and norm_b > 0:
        cosine = float(vector.double() @ reference.double()) / (norm_a * norm_b)
    return {"cosine": cosine, "norm_ratio": norm_a / norm_b if norm_b > 0 else None, "norm": norm_a}


def _comparisons(
    gradients: dict[str, torch.Tensor],
    reference: dict[str, torch.Tensor],
    step: Callable[[torch.Tensor | None], torch.Tensor],
    split: bool,
) -> dict[str, dict[str, Any]]:
    """{"gradient": {part: compare}, "update": {part: compare}} over "all" and, when split, every part;
    a part that was not split is None. Updates are recomputed from the gradients (elementwise, cheap)."""
    out: dict[str, dict[str, Any]] = {"gradient": {}, "update": {}}
    for part in ("all", *PARTS):
        if part != "all" and not split:
            out["gradient"][part] = out["update"][part] = None
            continue
        g, r = gradients.get(part), reference.get(part)
        out["gradient"][part] = compare(g, r)
        out["update"][part] = compare(step(g), step(r))
    return out


def _part_shares(batch: CosineBatch) -> dict[str, float]:
    valid = int(batch.rollout.response_mask.sum())
    return {q: int(batch.parts[q].sum()) / valid if valid else 0.0 for q in PARTS}


def gradient_cosine(
    model: Any,
    tokenizer: Any,
    task: Any,
    config: Any,
    *,
    algorithms: Sequence[str] | None = None,
    split_algorithms: Collection[str] | None = None,
    num_prompts: int = 16,
    informative: bool = True,
    seed: int = 0,
    autocast: Callable[[], Any] = contextlib.nullcontext,
    progress: bool = True,
    journal: Path | None = None,
    journal_context: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Gradient and one-step-update cosines of every algorithm against GRPO, overall and per part.

    `algorithms`: preset labels (`parse_algorithm`; default: every preset of
    `eapo.train.algorithms.ALGORITHMS`); GRPO is always computed as the reference. `split_algorithms`:
    the labels whose gradient is also split per part (default all; GRPO and the control always are):
    each split costs one backward pass per part instead of one in all. Problems come from the task's
    train split in a seeded order, its first half for the batch and its second half for the control batch
    (seeds from seed + MAX_ROUNDS). With `informative` (the default) each batch is `num_prompts` groups
    with mixed rewards, filled as DAPO's dynamic sampling fills a batch (`sample_batch`); otherwise any
    `num_prompts` groups.
    `journal` (`eapo.journal`): each finished algorithm and the control are kept there, so that a rerun on
    the same batch (same model, settings, seed, machine: `journal_context` goes into its fingerprint)
    computes only the rest; GRPO, the reference, is always computed again.
    Returns a JSON-ready dict (settings, batch statistics, results per algorithm, control, seconds).
    """
    from eapo.train.algorithms import ALGORITHMS, resolve_algorithm

    names = list(algorithms) if algorithms else list(ALGORITHMS)
    for label in names:  # every label parses and resolves before any model work
        resolve_algorithm(parse_algorithm(label))
    if num_prompts < 1:
        raise ConfigError(f"gradients --prompts must be >= 1; got {num_prompts}")
    if len(task.train) < 2 * num_prompts:
        raise ConfigError(
            f"gradients --prompts {num_prompts}: the task's train split has {len(task.train)} problems; "
            f"the batch and the control batch need at least {2 * num_prompts}"
        )
    names = ["grpo", *[n for n in names if n != "grpo"]]
    start_time = time.perf_counter()
    order = torch.randperm(len(task.train), generator=torch.Generator().manual_seed(seed)).tolist()
    half = len(order) // 2 if informative else num_prompts
    problems = [task.train[i] for i in order[:half]]
    control_problems = [task.train[i] for i in order[half:]]
    if not informative:
        control_problems = control_problems[:num_prompts]
    wanted_groups = num_prompts if informative else None
    t = config.train

    def algorithm_of(label: str) -> Any:
        algo_config = parse_algorithm(label)
        if label == config.algo.name:  # the run's own algorithm, with the run's overrides
            algo_config = config.algo
        return resolve_algorithm(algo_config)

    batch = sample_batch(
        model,
        tokenizer,
        task,
        config,
        problems,
        seed=seed,
        autocast=autocast,
        informative_groups=wanted_groups,
    )
    params = torch.cat([p.detach().float().reshape(-1).cpu() for p in model.parameters() if p.requires_grad])

    def step(gradient: torch.Tensor | None) -> torch.Tensor:
        return adamw_delta(
            params,
            gradient if gradient is not None else torch.zeros_like(params),
            lr=t.lr,
            weight_decay=t.weight_decay,
            max_grad_norm=t.max_grad_norm,
        )

    def splits(label: str) -> bool:
        return split_algorithms is None or label == "grpo" or label in split_algorithms

    max_new = config.sampling.max_new_tokens
    reference: dict[str, torch.Tensor] = {}
    results: dict[str, Any] = {}
    seen: dict[str, str] = {}
    done: dict[str, dict[str, Any]] = {}
    if journal is not None:
        batch_digest = hashlib.sha256(batch.rollout.sequences.cpu().numpy().tobytes()).hexdigest()
        key = fingerprint(
            {
                "batch": batch_digest,
                "algorithms": names,
                "split": None if split_algorithms is None else sorted(split_algorithms),
                "train": dataclasses.asdict(t),
                "seed": seed,
                "context": dict(journal_context or {}),
            }
        )
        done = {row["name"]: row for row in open_journal(journal, key)}
    for name in tqdm(names, desc="gradients", unit="algo", disable=not progress, leave=False):
        torch.manual_seed(seed)  # shapers and losses that draw at random (Clip-Cov's token pick) repeat
        algorithm = algorithm_of(name)
        shaped = shaped_advantages(algorithm, batch, max_new)
        # Presets with the same loss settings and the same shaped advantages give the same gradient.
        same = hashlib.sha256(repr((
            algorithm.loss, algorithm.clip_low, algorithm.clip_high, algorithm.dual_clip, algorithm.kl_coef,
            algorithm.entropy_coef, algorithm.agg, tuple(sorted(algorithm.loss_params.items())),
            shaped.numpy().tobytes(), splits(name),
        )).encode()).hexdigest()  # fmt: skip
        entry: dict[str, Any] = {
            "description": algorithm.description,
            "shaper": algorithm.shaper,
            "shaper_params": algorithm.shaper_params,
            "loss": algorithm.loss,
            "mean_abs_shaped_advantage": float(shaped.abs().sum() / batch.rollout.response_mask.sum()),
            "split": splits(name),
        }
        if same in seen and name != "grpo":
            entry["same_gradient_as"] = seen[same]
            results[name] = {**results[seen[same]], **entry}
            continue
        seen[same] = name
        if name in done and name != "grpo":  # finished before a stop (the journal)
            results[name] = done[name]["entry"]
            continue
        gradients = algorithm_gradients(model, batch, algorithm, shaped, config, autocast, split=splits(name))
        if name == "grpo":
            reference = gradients
        entry.update(_comparisons(gradients, reference, step, splits(name)))
        results[name] = entry
        if journal is not None:
            append_row(journal, {"name": name, "entry": entry})
        del gradients

    control = done[CONTROL]["entry"] if CONTROL in done else _control(
        model, tokenizer, task, config, control_problems, algorithm_of("grpo"), reference, step, seed,
        autocast, wanted_groups,
    )  # fmt: skip
    if journal is not None and CONTROL not in done:
        append_row(journal, {"name": CONTROL, "entry": control})
    mask = batch.rollout.response_mask
    groups = batch.correct.view(-1, batch.group_size)
    return {
        "kind": "gradient_cosine",
        "settings": {
            "task": config.task.source,
            "prompts": num_prompts,
            "informative_only": informative,
            "group_size": batch.group_size,
            "max_new_tokens": max_new,
            "temperature": config.sampling.temperature,
            "top_p": config.sampling.top_p,
            "lr": t.lr,
            "weight_decay": t.weight_decay,
            "max_grad_norm": t.max_grad_norm,
            "drop_zero_variance_groups": t.drop_zero_variance_groups,
            "seed": seed,
            "parameters": int(params.numel()),
            "micro_batch_rows": t.micro_batch_rows,
            "dtype": str(config.model.dtype),
        },
        "batch": {
            "rows": int(mask.shape[0]),
            "tokens": int(mask.sum()),
            "accuracy": float(batch.correct.mean()),
            "informative_groups": int((groups.std(dim=1) > 0).sum()),
            "groups": int(groups.shape[0]),
            "prompts_sampled": batch.prompts_sampled,
            "sampling_rounds": batch.rounds,
            "part_shares": _part_shares(batch),
            "mean_entropy": float((batch.entropy * mask).sum() / mask.sum().clamp(min=1)),
        },
        "algorithms": results,
        "control": control,
        "seconds": time.perf_counter() - start_time,
    }


def _control(
    model: Any,
    tokenizer: Any,
    task: Any,
    config: Any,
    problems: Sequence[Any],
    grpo: Any,
    reference: dict[str, torch.Tensor],
    step: Callable[[torch.Tensor | None], torch.Tensor],
    seed: int,
    autocast: Callable[[], Any],
    wanted_groups: int | None,
) -> dict[str, Any]:
    """GRPO on a second, independent batch against the first batch's GRPO: the cosine sampling noise alone
    gives."""
    max_new = config.sampling.max_new_tokens
    control_batch = sample_batch(
        model,
        tokenizer,
        task,
        config,
        problems,
        seed=seed + MAX_ROUNDS,
        autocast=autocast,
        informative_groups=wanted_groups,
    )
    control_gradients = algorithm_gradients(
        model, control_batch, grpo, shaped_advantages(grpo, control_batch, max_new), config, autocast
    )
    return {
        **_comparisons(control_gradients, reference, step, True),
        "part_shares": _part_shares(control_batch),
        "accuracy": float(control_batch.correct.mean()),
        "groups": int(control_batch.correct.numel() // control_batch.group_size),
        "prompts_sampled": control_batch.prompts_sampled,
    }


def _cell(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _cosine_cell(entry: dict[str, Any] | None) -> str:
    """A cosine to 5 decimals; `n/s` for a part that was not split, `–` where a vector is zero."""
    if entry is None:
        return "n/s"
    return "–" if entry["cosine"] is None else f"{entry['cosine']:.5f}"


def markdown_table(result: dict[str, Any]) -> list[str]:
    """The result as Markdown lines: one row per algorithm (and the control), gradient and update cosines
    overall and per quadrant, and the overall norm ratios."""
    header = [
        "vs GRPO",
        "grad cos",
        "grad norm ratio",
        *(f"grad cos {q}" for q in PARTS[:4]),
        "update cos",
        "update norm ratio",
        *(f"update cos {q}" for q in PARTS[:4]),
    ]

    def row(label: str, entry: dict[str, Any]) -> str:
        g, u = entry["gradient"], entry["update"]
        cells = [
            label,
            _cosine_cell(g["all"]),
            _cell(g["all"]["norm_ratio"]),
            *(_cosine_cell(g[q]) for q in PARTS[:4]),
            _cosine_cell(u["all"]),
            _cell(u["all"]["norm_ratio"]),
            *(_cosine_cell(u[q]) for q in PARTS[:4]),
        ]
        return "| " + " | ".join(cells) + " |"

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, entry in result["algorithms"].items():
        if label == "grpo":
            continue
        same = entry.get("same_gradient_as")
        lines.append(row(f"{label} (= {same})" if same and same != "grpo" else label, entry))
    lines.append(row("control: GRPO, 2nd batch", result["control"]))
    return lines


def analyze_gradient_cosine(
    *,
    run: Any = None,
    model: str | None = None,
    config: Any = None,
    overrides: Sequence[str] | None = None,
    algorithms: Sequence[str] | None = None,
    split_algorithms: Collection[str] | None = None,
    num_prompts: int = 16,
    informative: bool = True,
    seed: int = 0,
    output: Any = None,
    command: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """`eapo gradients --cosine`: load a run's newest checkpoint (or --model with --config), measure, and
    write the JSON to `output` (default `<run>/analysis/gradients/cosine.json` or `gradient_cosine.json`)
    with a Markdown table beside it (`.md`). `config`: a YAML path or a built-in name (`smoke`); `command`:
    the command line to record. Returns the result with `output`."""
    from eapo.analysis.run_io import write_json
    from eapo.train.evaluate import resolve_eval_target
    from eapo.train.provenance import cpu_features, cpu_model
    from eapo.train.run_policy import load_run_policy
    from eapo.train.seeding import seed_everything

    if run is None and model is None:  # the config's own model (the tiny default's when no config)
        from eapo.train.config import load_config

        model = load_config(config, list(overrides or [])).model.name
    cfg, model_name = resolve_eval_target(Path(run) if run else None, model, config, list(overrides or []))
    if output is None:
        output = Path(run) / "analysis" / "gradients" / "cosine.json" if run else Path("gradient_cosine.json")
    output = Path(output)
    seed_everything(seed)
    loaded = load_run_policy(cfg, progress=progress)
    result = gradient_cosine(
        loaded.model,
        loaded.tokenizer,
        loaded.task,
        cfg,
        algorithms=algorithms,
        split_algorithms=split_algorithms,
        num_prompts=num_prompts,
        informative=informative,
        seed=seed,
        autocast=loaded.autocast,
        progress=progress,
        journal=output.with_suffix(".journal.jsonl"),
        journal_context={
            "model": model_name,
            "config": dataclasses.asdict(cfg),
            "cpu": cpu_model(),
            "cpu_features": cpu_features(),  # the model name alone can hide the machine kind
            "threads": torch.get_num_threads(),
        },
    )
    result["model"] = model_name
    result["command"] = command
    output.parent.mkdir(parents=True, exist_ok=True)
    write_json(output, result)  # strict JSON: a cosine of NaN gradients is written as null
    output.with_suffix(".md").write_text("\n".join(markdown_table(result)) + "\n")
    output.with_suffix(".journal.jsonl").unlink(missing_ok=True)
    result["output"] = str(output)
    return result
