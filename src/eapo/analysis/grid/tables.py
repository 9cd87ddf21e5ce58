"""Markdown tables of a grid summary (`summary.grid_summary`): one row per arm, intervals over seeds."""

from __future__ import annotations

from typing import Any

from eapo.analysis.stats import Interval, PairedDifference


def fmt_interval(data: dict[str, Any] | None, digits: int = 3) -> str:
    """Markdown text of an Interval dict: `0.412 [0.380, 0.444]`, `-` when missing."""
    if not data:
        return "-"
    return Interval(**data).format(digits)


def markdown_table(
    summary: dict[str, dict[str, Any]],
    paired: dict[str, PairedDifference],
    paired_header: str,
    target: float | None = None,
    unpaired_label: str = "reference",
) -> str:
    """One row per arm: final held-out Avg@n and Pass@n (mean [95% t] over seeds), the paired difference
    on that row (mean [paired bootstrap 95%], seeds ahead; then the paired t-interval), the claim the
    bootstrap interval supports, start accuracy, final entropy, tokens generated and training seconds."""
    first = next((arm for arm in summary.values() if "final" in arm), None)
    if first is None:
        return "_no finished runs_\n"
    n, k = first["final_samples"], first["eval_k"]
    header = [
        "arm",
        "seeds",
        f"held-out Avg@{n}",
        f"Pass@{n}",
        paired_header,
        "paired t 95%",
        "claim",
        f"start Avg@{k}",
        "final entropy",
        "tokens generated",
        "train s",
    ]
    if target is not None:
        header.insert(7, f"steps to Avg@{k} ≥ {target:g}")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, arm in summary.items():
        if "final" not in arm:
            lines.append(f"| {name} | 0 |" + " - |" * (len(header) - 2))
            continue
        p = paired.get(name)
        diff = tdiff = "-"
        claim = unpaired_label if p is None else ""
        if p is not None:
            diff = f"{p.interval.format(3)} ({p.wins}/{len(p.differences)} seeds ahead)"
            tdiff = p.t_interval.format(3)
            claim = p.verdict()
        cells = [
            f"{name} ({arm['runs_of']}'s runs)" if arm.get("runs_of") else name,
            str(len(arm["seeds"])),
            fmt_interval(arm["final"].get(f"avg@{n}")),
            fmt_interval(arm["final"].get(f"pass@{n}")),
            diff,
            tdiff,
            claim,
            fmt_interval(arm["start"].get(f"avg@{k}")),
            fmt_interval(arm.get("final_entropy")),
            f"{arm['tokens_generated']['mean']:.0f}" if arm.get("tokens_generated") else "-",
            f"{arm['train_seconds']['mean']:.0f}" if arm.get("train_seconds") else "-",
        ]
        if target is not None:
            st = arm.get("steps_to_target", {})
            mean = st.get("mean_over_reached")
            cells.insert(
                7,
                f"{mean:.0f} ({st['reached']}/{st['of']})"
                if mean is not None
                else f"never (0/{st.get('of', 0)})",
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def pass_curve_table(summary: dict[str, dict[str, Any]]) -> str:
    """Markdown: final held-out Pass@k for every k (mean [95% t] over seeds), one row per arm."""
    rows = []
    ks: list[int] = []
    for name, arm in summary.items():
        if "pass_curve" in arm:
            pairs = list(zip(arm["pass_curve"]["k"], arm["pass_curve"]["pass_at_k"], strict=True))
        elif "final" in arm:
            pairs = [(int(key[5:]), v) for key, v in arm["final"].items() if key.startswith("pass@")]
        else:
            continue
        ks = ks or [k for k, _ in pairs]
        rows.append((name, dict(pairs)))
    if not rows:
        return ""
    lines = ["| arm | " + " | ".join(f"Pass@{k}" for k in ks) + " |", "|---|" + "---|" * len(ks)]
    for name, values in rows:
        lines.append(f"| {name} | " + " | ".join(fmt_interval(values.get(k)) for k in ks) + " |")
    return "\n".join(lines) + "\n"
