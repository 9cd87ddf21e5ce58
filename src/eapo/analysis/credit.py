"""`eapo credit`: a direct estimate of token credit I(o_t; r | s_t) against its entropy bound H_t.

PAPER.md "Credit bound" (§3, Proposition 1, Appendix D.1): I(o_t; r | s_t) = H_t − H(o_t | r, s_t) ≤ H_t.
The paper only argues the bound and checks a proxy over binned entropies (Eq. 14); here the CMI itself is
estimated at real positions of real rollouts, by branching.

The probe, at one position t of a sampled response (state s = prompt + o_<t):
  1. π(·|s): the policy's full-vocabulary softmax(logits / T) at the sampling temperature T, the
     distribution the responses are drawn from (whose entropy is H_t, as the trainer computes it).
  2. A set S of distinct candidate tokens: by default the K most probable (`alternatives="top"`), or the
     distinct tokens among K draws from π (`"sample"`). Their probabilities π(v|s) are known exactly.
  3. For each v in S, M completions of prefix + v with the run's sampling settings (temperature, top-p,
     remaining token budget), scored by the task's verifier: counts c[v, r] estimate p(r | s, v).
  4. `eapo.analysis.information.cmi_estimate` gives I with a bias correction, a bootstrap interval, and a
     bracket for the probability mass u = 1 − Σ_{v∈S} π(v|s) that was not explored (the estimator and its
     checks are described there).

Binary verifier rewards bound the CMI twice: I ≤ H_t (Proposition 1) and I ≤ H(r | s) ≤ log 2 = 0.693.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from eapo.analysis.credit_rule import rule_agreement, rule_markdown
from eapo.analysis.information import CMIEstimate, cmi_estimate, discrete_entropy
from eapo.analysis.run_io import write_json
from eapo.analysis.stats import spearman
from eapo.analysis.text import format_number
from eapo.core import QUADRANTS
from eapo.errors import ConfigError

__all__ = [
    "PositionCredit",
    "analyze_credit",
    "choose_positions",
    "credit_summary",
    "load_positions",
    "plot_credit",
    "probe_credit",
    "spearman",
]


# --------------------------------------------------------------------------- the probe (model side)
@dataclass
class PositionCredit:
    """One probed position of one sampled response, with its entropy and credit estimate."""

    row: int  # row of the rollout batch (prompt_index * G + sample)
    problem: int  # index into the probed problem list
    position: int  # response token position t (0 = first response token)
    entropy: float  # H_t (nats), full vocabulary, from the logits
    quadrant: str  # PHR / PLR / NHR / NLR, or ZERO for a group with equal rewards
    reward: float  # the verifier's reward of the original response
    token: str  # the token the response actually has at t
    alternatives: list[str]
    probs: list[float]  # π(v|s) of each alternative
    successes: list[int]  # completions of prefix + v that the verifier accepted
    trials: list[int]  # completions of prefix + v
    remainder_entropy: float
    estimate: CMIEstimate
    entropy_decile: int = -1  # decile of H_t among the batch's valid tokens (0 = lowest)
    above_group_mean: bool | None = None  # EAPO's rule: H_t >= its group's mean entropy (None: not recorded)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        row = dataclasses.asdict(self)
        row.update(row.pop("estimate"))
        return row

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> PositionCredit:
        """The inverse of `to_json` (one line of positions.jsonl)."""
        names = {f.name for f in dataclasses.fields(CMIEstimate)}
        estimate = CMIEstimate(**{k: row[k] for k in names})
        return cls(**{k: v for k, v in row.items() if k not in names}, estimate=estimate)


# The continuations sampled so far by a running `eapo credit` (analyze_credit).
JOURNAL_FILE = "continuations.journal.jsonl"


def choose_positions(
    entropy: torch.Tensor,
    response_mask: torch.Tensor,
    count: int,
    *,
    stratify: bool = True,
    seed: int = 0,
) -> tuple[list[tuple[int, int]], torch.Tensor]:
    """Pick `count` distinct valid positions (row, t), stratified by entropy decile by default.

    Most tokens of a trained policy are near-deterministic, so a uniform draw would spend most of the
    probe's budget where H ≈ 0; stratifying gives every decile of the batch's entropy an equal share
    (the statistics are then over this stratified sample, as the summary says).

    Args: entropy, response_mask: [B,T]. Returns (positions, decile [B,T] long, −1 outside the mask).
    """
    valid = response_mask.bool()
    rows, cols = valid.nonzero(as_tuple=True)
    n_valid = len(rows)
    if n_valid == 0:
        raise ConfigError("credit: the rollouts have no response tokens to probe")
    count = min(count, n_valid)
    values = entropy[rows, cols].double()
    order = torch.argsort(values, stable=True)
    decile_of_rank = (torch.arange(n_valid) * 10) // n_valid  # equal-count deciles by rank
    deciles = torch.full(valid.shape, -1, dtype=torch.long)
    deciles[rows[order], cols[order]] = decile_of_rank
    generator = torch.Generator().manual_seed(seed)
    if not stratify:
        picked = torch.randperm(n_valid, generator=generator)[:count]
    else:
        picked_parts = []
        for d in range(10):
            members = order[decile_of_rank == d]
            share = count // 10 + (1 if d < count % 10 else 0)
            picked_parts.append(members[torch.randperm(len(members), generator=generator)[:share]])
        picked = torch.cat(picked_parts)
    positions = sorted((int(rows[i]), int(cols[i])) for i in picked.tolist())
    return positions, deciles


def probe_credit(
    model: Any,
    tokenizer: Any,
    task: Any,
    problems: Sequence[Any],
    *,
    sampling: Any,
    group_size: int,
    num_positions: int = 200,
    num_alternatives: int = 8,
    num_completions: int = 16,
    alternatives: str = "top",
    stratify: bool = True,
    seed: int = 0,
    n_bootstrap: int = 1000,
    autocast: Any = None,
    chunk_size: int | None = None,
    progress: bool = True,
    journal: Path | None = None,
    journal_context: dict[str, Any] | None = None,
) -> list[PositionCredit]:
    """Sample G responses per problem, pick positions, branch K tokens x M completions, estimate the CMI.

    Rewards are the task verifier's 0/1 correctness (no overlong shaping): r ∈ {0, 1}, R = 2.
    `autocast` is a zero-argument context factory (the trainer's), or None for none.
    `journal`: keeps the continuations, the probe's cost, across a stop (`continue_sequences`).
    """
    import contextlib

    from eapo.core import group_advantages, high_entropy_mask, quadrant_masks, token_advantages
    from eapo.rollout import generate_rollouts, response_logits
    from eapo.rollout.continuation import continue_sequences
    from eapo.rollout.generate import cut_after_stop_string, model_eos_token_ids
    from eapo.tasks import build_prompt, score_completions
    from eapo.train.scoring import score_policy

    if alternatives not in ("top", "sample"):
        raise ConfigError(f"credit --alternatives {alternatives!r}: expected 'top' or 'sample'")
    if num_alternatives < 1 or num_completions < 1 or num_positions < 1:
        raise ConfigError(
            f"credit needs --positions, --k and --m >= 1; got {num_positions}, "
            f"{num_alternatives}, {num_completions}"
        )
    autocast = autocast or contextlib.nullcontext
    prompts = [build_prompt(p, tokenizer, task.config) for p in problems]
    model.eval()
    with autocast():
        batch = generate_rollouts(
            model, tokenizer, prompts, group_size, sampling, seed=seed, progress=progress
        )
    row_problems = [problems[i] for i in batch.prompt_index.tolist()]
    scored = score_completions(batch.completions, row_problems, task)
    rewards = torch.tensor(scored.rewards, dtype=torch.float32)

    # Entropy of every response token, scored as the trainer scores π_old (one chunked pass).
    mask = batch.response_mask.cpu()
    _, entropy, _ = score_policy(
        model, batch, chunk_size, sampling.batch_rows, autocast, temperature=sampling.temperature
    )
    entropy = entropy.cpu()
    advantages = token_advantages(group_advantages(rewards, group_size, "grpo").advantages, mask)
    masks = quadrant_masks(advantages, entropy, mask, group_size)
    above_mean = high_entropy_mask(entropy, mask, group_size)  # Appendix B.1, whatever the rewards
    positions, deciles = choose_positions(entropy, mask, num_positions, stratify=stratify, seed=seed)

    # π(·|s) at the chosen positions, from the logits of the rows that hold them.
    by_row: dict[int, list[int]] = {}
    for row, t in positions:
        by_row.setdefault(row, []).append(t)
    distributions: dict[tuple[int, int], torch.Tensor] = {}
    row_list = sorted(by_row)
    for start in range(0, len(row_list), sampling.batch_rows):
        rows = row_list[start : start + sampling.batch_rows]
        with torch.no_grad(), autocast():
            logits = response_logits(
                model, batch.sequences[rows], batch.attention_mask[rows], batch.prompt_length
            )
        for j, row in enumerate(rows):
            for t in by_row[row]:
                distributions[(row, t)] = torch.softmax(
                    logits[j, t].double() / sampling.temperature, dim=-1
                ).cpu()

    generator = torch.Generator().manual_seed(seed + 1)
    eos_ids = set(model_eos_token_ids(model, tokenizer))
    prompt_ids = [
        batch.sequences[r, : batch.prompt_length][
            batch.attention_mask[r, : batch.prompt_length].bool()
        ].tolist()
        for r in range(batch.sequences.shape[0])
    ]
    response_ids = batch.response_ids.cpu()
    plans: list[tuple[int, int, list[int], torch.Tensor]] = []  # (row, t, tokens, probs)
    for row, t in positions:
        probs = distributions[(row, t)]
        if alternatives == "top":
            tokens = torch.topk(probs, min(num_alternatives, len(probs))).indices.tolist()
        else:
            draws = torch.multinomial(probs.float(), num_alternatives, replacement=True, generator=generator)
            tokens = sorted(set(draws.tolist()), key=lambda v: -float(probs[v]))
        plans.append((row, t, tokens, probs))

    prefixes: list[list[int]] = []
    budgets: list[int] = []
    owners: list[tuple[int, int]] = []  # (plan index, alternative index) per continuation row
    for p_index, (row, t, tokens, _) in enumerate(plans):
        head = response_ids[row, :t].tolist()
        for a_index, v in enumerate(tokens):
            budget = 0 if v in eos_ids else sampling.max_new_tokens - t - 1
            for _ in range(num_completions):
                prefixes.append(prompt_ids[row] + head + [v])
                budgets.append(max(budget, 0))
                owners.append((p_index, a_index))
    with autocast():
        continuations = continue_sequences(
            model,
            tokenizer,
            prefixes,
            budgets,
            sampling,
            seed=seed,
            progress=progress,
            journal=journal,
            journal_context=journal_context,
        )
    texts = []
    for (p_index, _), prefix, new in zip(owners, prefixes, continuations, strict=True):
        row, t = plans[p_index][0], plans[p_index][1]
        ids = prefix[len(prompt_ids[row]) :] + new
        text = tokenizer.decode(ids, skip_special_tokens=True)
        texts.append(cut_after_stop_string(text, list(sampling.stop_strings)))
    owner_problems = [row_problems[plans[p][0]] for p, _ in owners]
    outcome = score_completions(texts, owner_problems, task).rewards

    successes = [[0] * len(plan[2]) for plan in plans]
    trials = [[0] * len(plan[2]) for plan in plans]
    for (p_index, a_index), value in zip(owners, outcome, strict=True):
        trials[p_index][a_index] += 1
        successes[p_index][a_index] += int(value > 0.5)

    results: list[PositionCredit] = []
    rng = np.random.default_rng(seed)
    for p_index, (row, t, tokens, probs) in enumerate(
        tqdm(plans, desc="estimating", unit="pos", disable=not progress, leave=False)
    ):
        token_probs = [float(probs[v]) for v in tokens]
        rest = probs.clone()
        rest[tokens] = 0.0
        rest_mass = float(rest.sum())
        remainder_entropy = float(discrete_entropy((rest / rest_mass).numpy())) if rest_mass > 1e-12 else 0.0
        counts = [[s, n - s] for s, n in zip(successes[p_index], trials[p_index], strict=True)]
        estimate = cmi_estimate(
            token_probs, counts, remainder_entropy=remainder_entropy, n_bootstrap=n_bootstrap, rng=rng
        )
        quadrant = next((name for name, m in masks.items() if bool(m[row, t])), "ZERO")
        results.append(
            PositionCredit(
                row=row,
                problem=int(batch.prompt_index[row]),
                position=t,
                entropy=float(entropy[row, t]),
                quadrant=quadrant,
                reward=float(rewards[row]),
                token=tokenizer.decode([int(response_ids[row, t])]),
                alternatives=[tokenizer.decode([v]) for v in tokens],
                probs=token_probs,
                successes=successes[p_index],
                trials=trials[p_index],
                remainder_entropy=remainder_entropy,
                estimate=estimate,
                entropy_decile=int(deciles[row, t]),
                above_group_mean=bool(above_mean[row, t]),
            )
        )
    return results


# --------------------------------------------------------------------------- summary and the command
def credit_summary(
    results: Sequence[PositionCredit], *, n_bootstrap: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Aggregate statistics of probed positions: the bound test, rank correlation, per quadrant/decile.

    - `exceed_fraction`: positions whose whole interval lies above H_t (ci_low > H_t): a violation of
      Proposition 1 beyond estimation noise. `point_exceed_fraction`: the point estimate alone above H_t.
    - `below_log2`: the same statistics over the positions with H_t < log 2, the only ones where a 0/1
      reward lets the bound fail (elsewhere I ≤ log 2 ≤ H_t); `at_or_above_log2`: how many are not.
    - `spearman` between H_t and the corrected estimate, with a bootstrap interval over positions.
    - `credit_to_entropy`: Σ Î / Σ H, the share of the entropy budget that is realised as credit.
    """
    rng = np.random.default_rng(seed)

    def block(items: Sequence[PositionCredit]) -> dict[str, Any]:
        if not items:
            return {"n": 0}
        h = np.array([p.entropy for p in items])
        cmi = np.array([p.estimate.corrected for p in items])
        low = np.array([p.estimate.ci_low for p in items])
        out: dict[str, Any] = {
            "n": len(items),
            "mean_entropy": float(h.mean()),
            "mean_cmi": float(cmi.mean()),
            "mean_cmi_upper": float(np.mean([p.estimate.upper for p in items])),
            "mean_covered_mass": float(np.mean([p.estimate.covered_mass for p in items])),
            "credit_to_entropy": float(cmi.sum() / h.sum()) if h.sum() > 0 else float("nan"),
            "exceed_fraction": float((low > h).mean()),
            "point_exceed_fraction": float((cmi > h).mean()),
            "spearman": spearman(h, cmi),
        }
        if len(items) >= 5 and n_bootstrap > 0:
            values = []
            for _ in range(n_bootstrap):
                pick = rng.integers(0, len(items), len(items))
                values.append(spearman(h[pick], cmi[pick]))
            finite = np.array([v for v in values if math.isfinite(v)])
            if len(finite):
                out["spearman_ci"] = [float(np.quantile(finite, 0.025)), float(np.quantile(finite, 0.975))]
        return out

    summary: dict[str, Any] = {"all": block(results)}
    # With a 0/1 reward I ≤ H(r | s) ≤ log 2, so where H_t ≥ log 2 the bound holds by construction: only
    # positions below log 2 can test Proposition 1.
    summary["below_log2"] = block([p for p in results if p.entropy < math.log(2)])
    summary["at_or_above_log2"] = {"n": sum(p.entropy >= math.log(2) for p in results)}
    summary["by_quadrant"] = {q: block([p for p in results if p.quadrant == q]) for q in (*QUADRANTS, "ZERO")}
    summary["by_decile"] = {str(d): block([p for p in results if p.entropy_decile == d]) for d in range(10)}
    summary["eapo_rule"] = rule_agreement(results, n_bootstrap=n_bootstrap, seed=seed)
    summary["prop2_max_abs_diff"] = float(
        max((abs(p.estimate.hindsight_kl - p.estimate.plugin) for p in results), default=0.0)
    )
    return summary


def plot_credit(results: Sequence[PositionCredit], summary: dict[str, Any], out_dir: Path) -> list[Path]:
    from eapo.analysis.plots import QUADRANT_COLORS, add_legend, new_figure, save_figure

    figures = []
    fig, axes = new_figure(1, 2, width=5.0, height=4.0)
    top = max([p.entropy for p in results] + [math.log(2)]) * 1.05
    floor = 1e-4  # the log panel's lower edge: estimates at or below it are drawn on it
    for q in (*QUADRANTS, "ZERO"):
        items = [p for p in results if p.quadrant == q]
        if not items:
            continue
        h = np.array([p.entropy for p in items])
        cmi = np.array([p.estimate.corrected for p in items])
        err = np.array(
            [
                [p.estimate.corrected - p.estimate.ci_low, p.estimate.ci_high - p.estimate.corrected]
                for p in items
            ]
        ).T.clip(min=0)
        style = {"fmt": "o", "ms": 3, "alpha": 0.6, "elinewidth": 0.5, "color": QUADRANT_COLORS[q]}
        axes[0, 0].errorbar(h, cmi, yerr=err, label=f"{q} (n={len(items)})", **style)
        axes[0, 1].errorbar(
            np.maximum(h, floor),
            np.maximum(cmi, floor),
            yerr=None,
            fmt="o",
            ms=3,
            alpha=0.6,
            color=QUADRANT_COLORS[q],
        )
    for ax in axes.flat:
        ax.plot([floor, top], [floor, top], "k--", linewidth=1, label="I = H (Prop. 1)")
        ax.axhline(math.log(2), color="gray", linestyle=":", linewidth=1, label="log 2 (binary reward)")
        ax.set_xlabel("token entropy H_t (nats)")
        ax.set_ylabel("estimated I(o_t; r | s_t) (nats)")
    axes[0, 1].set_xscale("log")
    axes[0, 1].set_yscale("log")
    axes[0, 1].set_title(f"log scale (values below {floor:g} drawn at {floor:g})")
    rho = summary["all"].get("spearman", float("nan"))
    axes[0, 0].set_title(f"credit vs entropy: {len(results)} positions, Spearman {rho:.2f}")
    add_legend(axes[0, 0], fontsize=7)
    figures.append(save_figure(fig, out_dir / "credit_vs_entropy.png"))

    fig, ax = new_figure(width=5.6, height=3.4)
    deciles = [d for d in range(10) if summary["by_decile"][str(d)].get("n")]
    decile_entropy = [summary["by_decile"][str(d)]["mean_entropy"] for d in deciles]
    decile_cmi = [summary["by_decile"][str(d)]["mean_cmi"] for d in deciles]
    upper = [summary["by_decile"][str(d)]["mean_cmi_upper"] for d in deciles]
    x = np.arange(len(deciles))
    low = 1e-5  # log axis: a mean at or below it is drawn at it
    ax.bar(x - 0.2, np.maximum(decile_entropy, low), width=0.4, color="#bbbbbb", label="mean H_t (the bound)")
    ax.bar(x + 0.2, np.maximum(decile_cmi, low), width=0.4, color="#1f4e9c", label="mean estimated CMI")
    ax.scatter(x + 0.2, np.maximum(upper, low), marker="_", s=80, color="k", label="mean upper bracket")
    ax.set_xticks(x, [str(d + 1) for d in deciles])
    ax.set_yscale("log")
    ax.set_ylim(bottom=low)
    ax.set_xlabel("entropy decile of the batch's tokens (1 = lowest)")
    ax.set_ylabel("nats (log scale)")
    ax.set_title("credit and its entropy ceiling by entropy decile")
    add_legend(ax, fontsize=7)
    figures.append(save_figure(fig, out_dir / "credit_by_decile.png"))
    return figures


def load_positions(path: Path) -> list[PositionCredit]:
    """The probed positions of a `positions.jsonl` written by `eapo credit`."""
    return [
        PositionCredit.from_json(json.loads(line)) for line in Path(path).read_text().splitlines() if line
    ]


def _markdown(summary: dict[str, Any], settings: dict[str, Any], figures: list[Path]) -> str:
    a = summary["all"]
    ci = a.get("spearman_ci")
    lines = [
        "# Credit vs entropy: a direct test of I(o_t; r | s_t) <= H_t",
        "",
        f"Model: `{settings['model']}`; task `{settings['task']}`; {settings['problems']} problems x "
        f"G = {settings['group_size']} responses; {a['n']} positions "
        f"({'stratified by entropy decile' if settings['stratify'] else 'uniform'}); "
        f"{settings['alternatives']} K = {settings['num_alternatives']} alternatives x "
        f"M = {settings['num_completions']} completions each; rewards 0/1 from the verifier.",
        "Estimator: plug-in over the probed tokens with their exact π(v|s), Miller–Madow/delta-method bias "
        "correction, 95% percentile bootstrap per position; unexplored mass bracketed "
        "(see eapo/analysis/information.py).",
        "",
        f"- positions whose 95% interval lies entirely above H_t: **{a['exceed_fraction']:.3f}** "
        f"(point estimate above H_t: {a['point_exceed_fraction']:.3f})",
        f"- Spearman(H_t, Î): **{format_number(a['spearman'])}**"
        + (f" (95% bootstrap over positions {ci[0]:.3f} to {ci[1]:.3f})" if ci else ""),
        f"- mean H_t {a['mean_entropy']:.3f} nats, mean Î {a['mean_cmi']:.4f} nats, Σ Î / Σ H "
        f"{format_number(a['credit_to_entropy'])}; mean probed mass Σ π(v|s) {a['mean_covered_mass']:.3f}, "
        f"mean upper bracket {a['mean_cmi_upper']:.4f}",
        "- Proposition 2 cross-check: max |E_r KL(π(·|s,r) ‖ π) − Î_plug-in| = "
        f"{summary['prop2_max_abs_diff']:.2e}",
        "",
        "| group | n | mean H | mean Î | mean upper | Σ Î / Σ H | share CI above H | Spearman |",
        "|---|---|---|---|---|---|---|---|",
    ]
    groups = (
        [("all", a)]
        + list(summary["by_quadrant"].items())
        + [(f"decile {int(d) + 1}", v) for d, v in summary["by_decile"].items()]
    )
    for name, g in groups:
        if not g.get("n"):
            continue
        lines.append(
            f"| {name} | {g['n']} | {g['mean_entropy']:.3f} | {g['mean_cmi']:.4f} | "
            f"{g['mean_cmi_upper']:.4f} | {format_number(g['credit_to_entropy'])} | "
            f"{g['exceed_fraction']:.3f} | "
            f"{format_number(g['spearman'])} |"
        )
    lines += [
        "",
        *rule_markdown(summary.get("eapo_rule", {})),
        *[f"![{p.stem}]({p.name})" for p in figures],
        "",
    ]
    return "\n".join(lines)


def analyze_credit(
    *,
    run: Path | None = None,
    model: str | None = None,
    task: str | None = None,
    config: Path | None = None,
    overrides: list[str] | None = None,
    out_dir: Path | None = None,
    num_positions: int = 200,
    num_alternatives: int = 8,
    num_completions: int = 16,
    num_problems: int = 32,
    split: str = "eval",
    alternatives: str = "top",
    stratify: bool = True,
    seed: int = 0,
    n_bootstrap: int = 1000,
    progress: bool = True,
) -> dict[str, Any]:
    """`eapo credit`: probe a run's latest checkpoint (or any --model) and write `credit/` with the results.

    Output folder: `<run>/analysis/credit/` for --run, else `out_dir` (default `credit-<model name>`).
    Files: positions.jsonl (one probed position per line), summary.json, summary.md, two PNG figures.
    While it runs, `continuations.journal.jsonl` keeps every finished chunk of continuations: the same
    command rerun after a stop picks up there, on the same model, settings and machine (it is removed
    once the results are written).
    Returns the summary dict (with `out_dir`).
    """
    import time

    import torch

    from eapo.train.evaluate import resolve_eval_target
    from eapo.train.provenance import cpu_features, cpu_model
    from eapo.train.run_policy import load_run_policy
    from eapo.train.seeding import seed_everything

    if split not in ("eval", "train"):
        raise ConfigError(f"credit --split {split!r}: expected 'eval' or 'train'")
    extra = list(overrides or [])
    if task is not None:
        extra += ["--task.source", task]
    cfg, model_name = resolve_eval_target(Path(run) if run else None, model, config, extra)
    if out_dir is None:
        out_dir = (Path(run) / "analysis" / "credit") if run else Path(f"credit-{Path(model_name).name}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(seed)
    loaded = load_run_policy(cfg, progress=progress)
    policy, tokenizer, the_task = loaded.model, loaded.tokenizer, loaded.task
    problems = (the_task.eval if split == "eval" else the_task.train)[:num_problems]
    sampling = loaded.sampling("train")  # the probe samples as the run's rollouts do
    start = time.perf_counter()
    results = probe_credit(
        policy,
        tokenizer,
        the_task,
        problems,
        sampling=sampling,
        group_size=cfg.train.group_size,
        num_positions=num_positions,
        num_alternatives=num_alternatives,
        num_completions=num_completions,
        alternatives=alternatives,
        stratify=stratify,
        seed=seed,
        n_bootstrap=n_bootstrap,
        autocast=loaded.autocast,
        chunk_size=cfg.train.logprob_chunk_size,
        progress=progress,
        journal=out_dir / JOURNAL_FILE,
        journal_context={
            "model": model_name,
            "config": dataclasses.asdict(cfg),
            "cpu": cpu_model(),
            "cpu_features": cpu_features(),  # the model name alone can hide the machine kind
            "threads": torch.get_num_threads(),
        },
    )
    seconds = time.perf_counter() - start
    summary = credit_summary(results, n_bootstrap=n_bootstrap, seed=seed)
    settings = {
        "model": model_name,
        "task": cfg.task.source,
        "split": split,
        "problems": len(problems),
        "group_size": cfg.train.group_size,
        "num_positions": len(results),
        "num_alternatives": num_alternatives,
        "num_completions": num_completions,
        "alternatives": alternatives,
        "stratify": stratify,
        "seed": seed,
        "temperature": sampling.temperature,
        "top_p": sampling.top_p,
        "seconds": seconds,
    }
    with (out_dir / "positions.jsonl").open("w") as f:
        for item in results:
            f.write(json.dumps(item.to_json()) + "\n")
    figures = plot_credit(results, summary, out_dir)
    payload = {"settings": settings, **summary}
    write_json(out_dir / "summary.json", payload)  # strict JSON: an undefined Spearman is null
    (out_dir / "summary.md").write_text(_markdown(summary, settings, figures))
    (out_dir / JOURNAL_FILE).unlink(missing_ok=True)
    payload["out_dir"] = str(out_dir)
    return payload
