"""Plot helpers shared by the per-run analysis commands: one look, files or inline images, no display.

matplotlib runs on the Agg backend (no window, no display server), so every command works on a headless
machine and in tests. Figures are written as PNG files next to the Markdown summaries, or returned as
inline SVG / base64 PNG text for the self-contained HTML report.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: headless, deterministic rendering

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

__all__ = [
    "POLARITY_COLORS",
    "QUADRANT_COLORS",
    "add_legend",
    "figure_png_base64",
    "figure_svg",
    "new_figure",
    "plot_series",
    "save_figure",
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


def figure_png_base64(fig: Figure) -> str:
    """`fig` as a `data:image/png;base64,...` URI and free it."""
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


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
