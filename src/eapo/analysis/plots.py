"""Every figure of eapo's analyses: the per-run helpers and the experiment grids' figures. No display.

matplotlib runs on the Agg backend (no window, no display server), so every command works on a headless
machine and in tests. Figures are written as PNG files next to the Markdown summaries, or returned as
inline SVG text for the self-contained HTML report.

The per-run analyses (quadrants, credit, gradients, report) share one look (`plt.rcParams` below). The
grids' figures (`write_grid_figures`: `eapo ablate`, `eapo compare`) are drawn in matplotlib's default
style, as the committed result figures were.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: headless, deterministic rendering

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from eapo.analysis.stats import PairedDifference
from eapo.core import QUADRANTS

__all__ = [
    "POLARITY_COLORS",
    "QUADRANT_COLORS",
    "add_legend",
    "figure_svg",
    "new_figure",
    "plot_arm_curves",
    "plot_arm_pass_at_k",
    "plot_arm_quadrant_shares",
    "plot_paired_differences",
    "plot_series",
    "save_figure",
    "write_grid_figures",
]

# One colour per quadrant in every figure and in the HTML report: positive = blues, negative = reds,
# high entropy = the darker shade (PAPER.md §4.1).
QUADRANT_COLORS = {"PHR": "#1f4e9c", "PLR": "#7fa7e0", "NHR": "#b2182b", "NLR": "#f08a7e", "ZERO": "#9a9a9a"}
POLARITY_COLORS = {"positive": "#1f4e9c", "negative": "#b2182b"}

plt.rcParams.update(
    {
        "figure.dpi": 110,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "legend.frameon": False,
        "font.size": 9,
        "svg.fonttype": "none",  # text stays text in inline SVG: small files, selectable labels
    }
)


def new_figure(
    rows: int = 1, cols: int = 1, *, width: float = 5.0, height: float = 3.2
) -> tuple[Figure, Any]:
    """A figure of `rows x cols` panels, each about `width x height` inches; returns (figure, axes)."""
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    return fig, axes if rows * cols > 1 else axes[0, 0]


def save_figure(fig: Figure, path: Path) -> Path:
    """Write `fig` as a PNG at `path` (parent folders created) and free it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=120)
    plt.close(fig)
    return path


def figure_svg(fig: Figure) -> str:
    """`fig` as an inline `<svg>` element (XML prolog and DOCTYPE stripped) and free it."""
    buffer = io.StringIO()
    fig.tight_layout()
    fig.savefig(buffer, format="svg")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def plot_series(
    ax: Any,
    steps: Sequence[float],
    series: Mapping[str, Sequence[float | None]],
    *,
    title: str,
    ylabel: str,
    colors: Mapping[str, str] | None = None,
    smooth: int = 1,
) -> None:
    """One line per named series over `steps`; None values are gaps; `smooth` > 1 adds a running mean.

    With smoothing, the raw values stay visible as a faint line under the running mean, so a reader can
    see the noise the mean hides.
    """
    x = np.asarray(steps, dtype=float)
    for name, values in series.items():
        y = np.array([np.nan if v is None else float(v) for v in values], dtype=float)
        color = (colors or {}).get(name)
        if smooth > 1 and np.isfinite(y).sum() > smooth:
            ax.plot(x, y, color=color, alpha=0.2, linewidth=0.8)
            ax.plot(x, _running_mean(y, smooth), color=color, label=name, linewidth=1.6)
        else:
            ax.plot(x, y, color=color, label=name, linewidth=1.4, marker="." if len(x) < 30 else None)
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    if len(series) > 1:
        add_legend(ax, fontsize=8)


def add_legend(ax: Any, **kwargs: Any) -> None:
    """A legend for the labelled artists of `ax`, or none when nothing is labelled (an empty panel)."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, **kwargs)


def _running_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing running mean over the finite values of a 1-D array (NaN where a window has none)."""
    finite = np.isfinite(values)
    sums = np.convolve(np.where(finite, values, 0.0), np.ones(window), mode="full")[: len(values)]
    counts = np.convolve(finite.astype(float), np.ones(window), mode="full")[: len(values)]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


# ---------------------------------------------------------------------------------------- grid figures
# Every figure of a grid is drawn from a grid summary (`eapo.analysis.grid.grid_summary`), which is
# computed from the runs' logged metrics and final evaluations only.


def _default_style(draw: Callable[..., Path | None]) -> Callable[..., Path | None]:
    """Draw in matplotlib's default style, not the per-run look set above (the grids' figures in
    benchmarks/results were drawn so; keeping it keeps them reproducible byte for byte)."""

    @functools.wraps(draw)
    def drawn_in_default_style(*args: Any, **kwargs: Any) -> Path | None:
        with plt.style.context("default"):
            return draw(*args, **kwargs)

    return drawn_in_default_style


def _arm_axes(arms: int) -> tuple[Any, Any]:
    """A figure for one line per arm; more than 10 arms get 20 distinct colours (tab10 would repeat)."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    if arms > 10:
        ax.set_prop_cycle(color=[plt.get_cmap("tab20")(i) for i in range(20)])
    return fig, ax


def _interval_band(ax: Any, curve: dict[str, list[float | None]], label: str, alpha: float = 0.15) -> None:
    x = curve["x"]
    mean = curve["mean"]
    (line,) = ax.plot(x, mean, label=label, linewidth=1.4)
    low = [m if v is None else v for v, m in zip(curve["low"], mean, strict=True)]
    high = [m if v is None else v for v, m in zip(curve["high"], mean, strict=True)]
    ax.fill_between(x, low, high, color=line.get_color(), alpha=alpha, linewidth=0)


def _save_arm_figure(fig: Any, ax: Any, path: Path, title: str) -> Path:
    """Title, grid and legend of a per-arm figure, then written to `path` as a PNG and closed."""
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


@_default_style
def plot_arm_curves(
    summary: dict[str, dict[str, Any]], which: str, path: Path, title: str, ylabel: str
) -> Path | None:
    """One line per arm with its 95% t band over seeds. `which`: `accuracy` (in-training held-out
    Avg@K), `pass` (in-training Pass@K) or `entropy` (mean token entropy of each training batch)."""
    fig, ax = _arm_axes(len(summary))
    drawn = 0
    for name, arm in summary.items():
        if "eval_curve" not in arm:
            continue
        k = arm["eval_k"]
        if which == "entropy":
            curve = arm["entropy_curve"]
        else:
            curve = arm["eval_curve"][f"{'avg' if which == 'accuracy' else 'pass'}@{k}"]
        if curve["x"]:
            alpha = 0.15 if len(summary) <= 4 else 0.05  # many arms: lighter bands
            _interval_band(ax, curve, name, alpha=alpha)
            drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    return _save_arm_figure(fig, ax, path, title)


@_default_style
def plot_arm_pass_at_k(summary: dict[str, dict[str, Any]], path: Path, title: str) -> Path | None:
    """Final held-out Pass@k against k (log scale), mean and 95% t interval over seeds, per arm. Uses the
    dedicated Pass@k-curve evaluation where the grid ran one, else the final evaluation's Pass@k."""
    fig, ax = _arm_axes(len(summary))
    drawn = 0
    for name, arm in summary.items():
        if "pass_curve" in arm:
            ks, intervals = arm["pass_curve"]["k"], arm["pass_curve"]["pass_at_k"]
        elif "final" in arm:
            items = [(int(key[5:]), v) for key, v in arm["final"].items() if key.startswith("pass@")]
            ks, intervals = [k for k, _ in items], [v for _, v in items]
        else:
            continue
        points = [(k, v) for k, v in zip(ks, intervals, strict=True) if v]
        if not points:
            continue
        x = [k for k, _ in points]
        mean = [v["mean"] for _, v in points]
        low = [v["mean"] - (v["low"] if v["low"] is not None else v["mean"]) for _, v in points]
        high = [(v["high"] if v["high"] is not None else v["mean"]) - v["mean"] for _, v in points]
        ax.errorbar(x, mean, yerr=[low, high], label=name, marker="o", markersize=3, capsize=2, linewidth=1.2)
        drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xscale("log", base=2)
    ax.set_xlabel("k (samples per problem)")
    ax.set_ylabel("held-out Pass@k")
    return _save_arm_figure(fig, ax, path, title)


@_default_style
def plot_arm_quadrant_shares(summary: dict[str, dict[str, Any]], path: Path, title: str) -> Path | None:
    """One panel per arm: each quadrant's share of the batch's response tokens over training (mean over
    seeds), as the trainer logs it (quadrants by the sign of the GRPO advantage, PAPER.md §4.1)."""
    arms = [(name, arm) for name, arm in summary.items() if "quadrant_shares" in arm]
    if not arms:
        return None
    cols = min(4, len(arms))
    rows = math.ceil(len(arms) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), sharey=True, squeeze=False)
    for ax, (name, arm) in zip(axes.flat, arms, strict=False):
        for quadrant in (*QUADRANTS, "ZERO"):
            curve = arm["quadrant_shares"][quadrant]
            ax.plot(curve["x"], curve["mean"], label=quadrant, linewidth=1.0)
        ax.set_title(name, fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(arms) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6)
    fig.suptitle(title, fontsize=10)
    fig.supxlabel("training step", fontsize=8)
    fig.supylabel("share of response tokens", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


@_default_style
def plot_paired_differences(paired: list[PairedDifference], path: Path, title: str) -> Path | None:
    """Paired differences (mean and bootstrap 95% interval over seeds), one row per comparison."""
    if not paired:
        return None
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(paired) + 1.4))
    labels = [f"{p.arm} − {p.reference}" for p in paired]
    y = list(range(len(paired)))
    for i, p in enumerate(paired):
        iv = p.interval
        low = iv.mean - (iv.low if iv.low is not None else iv.mean)
        high = (iv.high if iv.high is not None else iv.mean) - iv.mean
        color = "tab:green" if p.beats else "tab:red" if p.worse else "tab:gray"
        ax.errorbar([iv.mean], [i], xerr=[[low], [high]], fmt="o", color=color, capsize=3)
        ax.scatter(p.differences, [i] * len(p.differences), s=8, color=color, alpha=0.5)
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_yticks(y, labels, fontsize=7)
    ax.set_xlabel(f"paired difference in final held-out {paired[0].metric} (dots: seeds)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_grid_figures(
    summary: dict[str, dict[str, Any]], paired: list[PairedDifference], out_dir: Path, prefix: str, title: str
) -> list[Path]:
    """The standard figures of a grid report, as PNG files `<out>/<prefix>_*.png`."""
    out_dir = Path(out_dir)
    figures = [
        plot_arm_curves(
            summary,
            "accuracy",
            out_dir / f"{prefix}_accuracy.png",
            f"{title}: held-out Avg@k during training (mean, 95% t band over seeds)",
            "held-out Avg@k",
        ),
        plot_arm_curves(
            summary,
            "pass",
            out_dir / f"{prefix}_pass_during_training.png",
            f"{title}: held-out Pass@k during training",
            "held-out Pass@k",
        ),
        plot_arm_curves(
            summary,
            "entropy",
            out_dir / f"{prefix}_entropy.png",
            f"{title}: mean token entropy of the rollouts",
            "entropy (nats)",
        ),
        plot_arm_pass_at_k(summary, out_dir / f"{prefix}_pass_at_k.png", f"{title}: final held-out Pass@k"),
        plot_arm_quadrant_shares(
            summary, out_dir / f"{prefix}_quadrant_shares.png", f"{title}: quadrant shares"
        ),
        plot_paired_differences(paired, out_dir / f"{prefix}_paired.png", f"{title}: paired differences"),
    ]
    return [f for f in figures if f is not None]
