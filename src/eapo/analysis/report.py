"""`eapo report`: one self-contained HTML page that puts training runs side by side.

No server, no network, no CDN: plots are inline SVG (matplotlib), styles and scripts are inline, and the
sample responses are embedded as token spans that carry their values. The page shows, per run: curves of
held-out accuracy, reward and entropy; quadrant shares of tokens and of the Eq. 5 gradient norm and each
quadrant's entropy change per update (PAPER.md §4.1, Fig. 6b); results of `eapo quadrants`, `credit` and
`gradients` when the run folder has them; and sample responses whose tokens are coloured by entropy, by
shaped advantage or by the shaping term (PAPER.md Fig. 11, made interactive: hover shows the values).
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eapo.analysis.quadrants import quadrant_series
from eapo.analysis.run_io import read_run_metrics
from eapo.analysis.text import format_number
from eapo.core import QUADRANTS
from eapo.errors import DataError
from eapo.train.dumps import dump_paths, load_dump

__all__ = ["build_report", "sample_responses"]

RUN_COLORS = ["#1f4e9c", "#b2182b", "#2d8a4e", "#8a5a00", "#6a3d9a", "#0f8b8d", "#c51b7d", "#555555"]

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1200px;
 color:#222;padding:0 16px;line-height:1.4}
h1{font-size:22px;margin-bottom:4px} h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:18px 0 6px}
.meta{color:#666;font-size:13px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:right} th{background:#f4f4f4}
td:first-child,th:first-child{text-align:left}
.plots{display:flex;flex-wrap:wrap;gap:8px} .plots svg{max-width:100%;height:auto}
.sample{border:1px solid #ddd;border-radius:6px;padding:8px 10px;margin:8px 0;background:#fff}
.sample .head{font-size:12px;color:#555;margin-bottom:4px}
.prompt{white-space:pre-wrap;font-family:Menlo,Consolas,monospace;font-size:13px;color:#777}
.response{white-space:pre-wrap;font-family:Menlo,Consolas,monospace;font-size:14px;line-height:1.9}
.tok{border-radius:2px;padding:1px 0;cursor:default}
.tok:hover{outline:1px solid #000}
.correct{color:#2d8a4e;font-weight:600} .wrong{color:#b2182b;font-weight:600}
#tooltip{position:fixed;pointer-events:none;background:#222;color:#fff;font-size:12px;padding:4px 7px;
 border-radius:4px;display:none;z-index:10;font-family:Menlo,Consolas,monospace;white-space:pre}
.controls{position:sticky;top:0;background:#fafafa;padding:6px 8px;border:1px solid #ddd;border-radius:6px;
 font-size:13px;z-index:5}
.legend{display:inline-block;width:160px;height:10px;vertical-align:middle;border:1px solid #ccc}
.note{font-size:12px;color:#666}
"""

# The token colouring: runs once on load (and on every toggle) from each span's data attributes, so the
# values and the colours can never disagree. Entropy: white -> orange; advantages: red (<0) / blue (>0).
_JS = """
(function(){
  var spans = document.querySelectorAll('.tok');
  var tip = document.getElementById('tooltip');
  var hMax = parseFloat(document.body.dataset.hmax) || 1;
  var aMax = parseFloat(document.body.dataset.amax) || 1;
  var dMax = parseFloat(document.body.dataset.dmax) || 1;
  function diverging(v, m){
    var x = Math.max(-1, Math.min(1, v / m));
    var c = x >= 0 ? [31, 78, 156] : [178, 24, 43];
    var a = Math.abs(x);
    var r = Math.round(255 + (c[0] - 255) * a), g = Math.round(255 + (c[1] - 255) * a),
        b = Math.round(255 + (c[2] - 255) * a);
    return 'rgb(' + r + ',' + g + ',' + b + ')';
  }
  function sequential(v, m){
    var a = Math.max(0, Math.min(1, v / m));
    return 'rgb(255,' + Math.round(255 - 120 * a) + ',' + Math.round(255 - 235 * a) + ')';
  }
  function paint(mode){
    for (var i = 0; i < spans.length; i++){
      var s = spans[i], d = s.dataset, color;
      if (mode === 'entropy') color = sequential(parseFloat(d.h), hMax);
      else if (mode === 'shaped') color = diverging(parseFloat(d.s), aMax);
      else color = diverging(parseFloat(d.s) - parseFloat(d.a), dMax);
      s.style.backgroundColor = color;
    }
    var legends = document.querySelectorAll('.legend-text');
    for (var j = 0; j < legends.length; j++) legends[j].style.display =
      legends[j].dataset.mode === mode ? 'inline' : 'none';
    document.body.dataset.mode = mode;
  }
  var radios = document.querySelectorAll('input[name=colour]');
  for (var k = 0; k < radios.length; k++)
    radios[k].addEventListener('change', function(e){ paint(e.target.value); });
  for (var i = 0; i < spans.length; i++){
    spans[i].addEventListener('mousemove', function(e){
      var d = e.target.dataset;
      tip.textContent = 'token ' + JSON.stringify(d.t) + '\\nentropy H = ' + parseFloat(d.h).toFixed(4) +
        ' nats\\nGRPO advantage = ' + parseFloat(d.a).toFixed(4) + '\\nshaped advantage = ' +
        parseFloat(d.s).toFixed(4) + '\\nquadrant ' + d.q;
      tip.style.display = 'block';
      tip.style.left = (e.clientX + 14) + 'px'; tip.style.top = (e.clientY + 14) + 'px';
    });
    spans[i].addEventListener('mouseleave', function(){ tip.style.display = 'none'; });
  }
  // report.html?only=samples shows one section (results, quadrants, analyses, samples), e.g. to screenshot.
  var only = new URLSearchParams(window.location.search).get('only');
  if (only) {
    var sections = document.querySelectorAll('body > section, body > h1, body > .meta');
    for (var m = 0; m < sections.length; m++) if (sections[m].id !== only) sections[m].style.display = 'none';
  }
  paint('entropy');
  document.body.dataset.rendered = String(spans.length);
})();
"""


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _fmt(value: Any, digits: int = 3) -> str:
    """`format_number` for HTML: labels and counts escaped."""
    return format_number(value, digits) if value is None or isinstance(value, float) else _esc(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _curve_svg(runs: dict[str, list[dict[str, Any]]], key: str, title: str, ylabel: str, smooth: bool) -> str:
    from eapo.analysis.plots import add_legend, figure_svg, new_figure, plot_series

    fig, ax = new_figure(width=3.8, height=2.7)
    for color, (name, rows) in zip(RUN_COLORS * 4, runs.items(), strict=False):
        logged = [r for r in rows if r.get(key) is not None]
        if not logged:
            continue
        window = max(1, len(logged) // 20) if smooth else 1
        plot_series(
            ax,
            [r["step"] for r in logged],
            {name: [r[key] for r in logged]},
            title=title,
            ylabel=ylabel,
            colors={name: color},
            smooth=window,
        )
    ax.set_title(title)
    if len(runs) > 1:
        add_legend(ax, fontsize=7)
    return figure_svg(fig)


def _quadrant_svg(summaries: dict[str, dict[str, Any]]) -> str:
    from eapo.analysis.plots import QUADRANT_COLORS, add_legend, figure_svg, new_figure

    fig, axes = new_figure(1, 3, width=3.6, height=2.9)
    names = list(summaries)
    x = np.arange(len(names))
    for ax, (key, title) in zip(
        axes.flat,
        [("share", "token share"), ("grad_share", "share of Σ grad norm (Eq. 5)")],
        strict=False,
    ):
        bottom = np.zeros(len(names))
        for q in (*QUADRANTS, "ZERO") if key == "share" else QUADRANTS:
            values = np.array([summaries[n][q][key] or 0.0 for n in names])
            ax.bar(x, values, bottom=bottom, color=QUADRANT_COLORS[q], label=q)
            bottom += values
        ax.set_xticks(x, names, rotation=20, ha="right", fontsize=7)
        ax.set_title(title + " (mean over steps)")
    add_legend(axes.flat[0], fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax = axes.flat[2]
    width = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        changes = [summaries[name][q]["entropy_change"] or 0.0 for q in QUADRANTS]
        ax.bar(
            np.arange(4) + i * width, changes, width=width, color=RUN_COLORS[i % len(RUN_COLORS)], label=name
        )
    ax.axhline(0.0, color="k", linewidth=0.6)
    ax.set_xticks(np.arange(4) + width * (len(names) - 1) / 2, QUADRANTS)
    ax.set_title("entropy change per update (Fig. 6b)")
    ax.set_ylabel("nats")
    if len(names) > 1:
        add_legend(ax, fontsize=7)
    return figure_svg(fig)


def _quadrant_means(rows: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    series = quadrant_series(rows)
    out: dict[str, dict[str, float | None]] = {}
    for q in (*QUADRANTS, "ZERO"):
        entry: dict[str, float | None] = {}
        for key in ("share", "mean_entropy", "mean_abs_advantage", "grad_share"):
            values = [v for v in series[q][key] if v is not None]
            entry[key] = float(np.mean(values)) if values else None
        changes = [r[f"entropy_change/{q}"] for r in rows if r.get(f"entropy_change/{q}") is not None]
        entry["entropy_change"] = float(np.mean(changes)) if changes else None
        out[q] = entry
    return out


def sample_responses(dump: dict[str, Any], count: int = 4) -> list[dict[str, Any]]:
    """Up to `count` responses of one rollout dump, as token lists with entropy and advantages.

    Prefers one group with mixed outcomes (the groups that carry a learning signal), taking correct and
    incorrect responses alternately; falls back to the first rows.
    """
    from eapo.core import quadrant_masks

    mask = dump["response_mask"].bool()
    group = int(dump["group_size"])
    rewards = dump["rewards"].float()
    masks = quadrant_masks(dump["advantages"].float(), dump["entropy"].float(), mask, group)
    tokens_of = dump.get("response_tokens")
    # Groups with mixed outcomes first, longest responses first among them (more steps to look at).
    row_sign = torch.sign(torch.where(mask, dump["advantages"].float(), 0.0).sum(dim=1))
    lengths = mask.sum(dim=1).float()
    groups = sorted(
        range(mask.shape[0] // group),
        key=lambda g: (
            -int((row_sign[g * group : (g + 1) * group] != 0).any()),
            -float(lengths[g * group : (g + 1) * group].mean()),
        ),
    )
    picked: list[int] = []
    for g in groups:
        rows = list(range(g * group, (g + 1) * group))
        good = [r for r in rows if row_sign[r] > 0]
        bad = [r for r in rows if row_sign[r] < 0]
        while (good or bad) and len(picked) < count:
            if good:
                picked.append(good.pop(0))
            if bad and len(picked) < count:
                picked.append(bad.pop(0))
        if len(picked) >= count:
            break
    if not picked:
        picked = list(range(min(count, mask.shape[0])))
    samples = []
    for row in picked:
        valid = mask[row].nonzero().flatten().tolist()
        tokens = (
            list(tokens_of[row])
            if tokens_of is not None
            else [str(int(t)) for t in dump["response_ids"][row][valid]]
        )
        quadrant = ["ZERO"] * len(valid)
        for name, m in masks.items():
            for j, t in enumerate(valid):
                if bool(m[row, t]):
                    quadrant[j] = name
        prompt_index = int(dump["prompt_index"][row]) if "prompt_index" in dump else None
        samples.append(
            {
                "row": row,
                "reward": float(rewards[row]),
                "prompt": dump["prompts"][prompt_index]
                if prompt_index is not None and "prompts" in dump
                else "",
                "tokens": tokens,
                "entropy": dump["entropy"][row][valid].float().tolist(),
                "advantage": dump["advantages"][row][valid].float().tolist(),
                "shaped": dump["shaped_advantages"][row][valid].float().tolist(),
                "quadrant": quadrant,
            }
        )
    return samples


def _token_html(token: str, h: float, a: float, s: float, q: str) -> str:
    shown = token.replace("\n", "↵\n") if token else "∅"
    return (
        f'<span class="tok" data-t="{_esc(token)}" data-h="{h:.5f}" data-a="{a:.5f}" data-s="{s:.5f}" '
        f'data-q="{q}">{_esc(shown)}</span>'
    )


def _samples_html(samples: list[dict[str, Any]], step: int) -> str:
    parts = []
    for sample in samples:
        verdict = (
            '<span class="correct">correct</span>'
            if sample["reward"] > 0.5
            else '<span class="wrong">wrong</span>'
        )
        spans = "".join(
            _token_html(t, h, a, s, q)
            for t, h, a, s, q in zip(
                sample["tokens"],
                sample["entropy"],
                sample["advantage"],
                sample["shaped"],
                sample["quadrant"],
                strict=False,
            )
        )
        parts.append(
            f'<div class="sample"><div class="head">step {step}, row {sample["row"]}: reward '
            f'{sample["reward"]:.2f} {verdict}</div><div class="prompt">{_esc(sample["prompt"])}</div>'
            f'<div class="response">{spans}</div></div>'
        )
    return "".join(parts)


def _analysis_html(run_dir: Path) -> str:
    """Tables from `eapo quadrants`, `credit` and `gradients` summaries, when the run folder has them."""
    parts = []
    base = run_dir / "analysis"
    quadrants = base / "quadrants" / "summary.json"
    if quadrants.is_file():
        s = json.loads(quadrants.read_text())
        info = s.get("entropy_information")
        if info:
            ci = info.get("ci") or [None, None]
            rows = [
                ["Î(H; r), Eq. 14 (nats)", _fmt(info["corrected"], 5), f"{_fmt(ci[0], 5)} – {_fmt(ci[1], 5)}"]
            ]
            for row in s.get("tail_by_polarity", []):
                rci = row["ratio_ci"] or [None, None]
                rows.append(
                    [
                        f"P(H ≥ q{100 * row['quantile']:.0f}) negative / positive",
                        f"{_fmt(row['p_negative'], 4)} / {_fmt(row['p_positive'], 4)} = {_fmt(row['ratio'])}",
                        f"{_fmt(rci[0])} – {_fmt(rci[1])}",
                    ]
                )
            parts.append(
                "<h3>Entropy vs polarity (Eq. 14, Fig. 4)</h3>"
                + _table(["quantity", "value", "95% CI"], rows)
            )
    credit = base / "credit" / "summary.json"
    if credit.is_file():
        s = json.loads(credit.read_text())
        rows = []
        for name, block in [("all", s["all"]), *s["by_quadrant"].items()]:
            if block.get("n"):
                rows.append(
                    [
                        name,
                        str(block["n"]),
                        _fmt(block["mean_entropy"]),
                        _fmt(block["mean_cmi"], 4),
                        _fmt(block["credit_to_entropy"]),
                        _fmt(block["exceed_fraction"]),
                        _fmt(block["spearman"]),
                    ]
                )
        parts.append(
            "<h3>Credit vs entropy (direct CMI estimate)</h3>"
            + _table(["positions", "n", "mean H", "mean Î", "Σ Î / Σ H", "CI above H", "Spearman"], rows)
        )
    gradients = base / "gradients" / "summary.json"
    if gradients.is_file():
        s = json.loads(gradients.read_text())
        table = s["table"]
        labels = list(table["share"])
        rows = [
            [str(b + 1), _fmt(h)] + [f"{100 * table['share'][label][b]:.1f}" for label in labels]
            for b, h in enumerate(table["mean_entropy"])
        ]
        parts.append(
            "<h3>Share (%) of Eq. 5 gradient norm per entropy decile</h3>"
            + _table(["decile", "mean H"] + [_esc(label) for label in labels], rows)
        )
    return "".join(parts)


def build_report(
    runs: Sequence[Path],
    out: Path | None = None,
    *,
    samples_per_run: int = 4,
    progress: bool = True,
) -> Path:
    """Write the HTML report comparing `runs` to `out` (default `report.html`); returns its path."""
    from tqdm.auto import tqdm

    if not runs:
        raise DataError("eapo report needs at least one run folder (--runs a,b,c)")
    out = Path(out) if out else Path("report.html")
    names: dict[str, Path] = {}
    for run in runs:
        name = Path(run).name or str(run)
        while name in names:
            name += "'"
        names[name] = Path(run)
    metrics = {name: read_run_metrics(path) for name, path in names.items()}
    if not any(metrics.values()):
        raise DataError(
            f"nothing to report: the metrics.jsonl of {', '.join(str(p) for p in names.values())} "
            "hold no rows yet; train (or wait for the first step) first"
        )

    summary_rows, quadrants, samples_blocks, analysis_blocks = [], {}, [], []
    all_h, all_a, all_d = [], [], []
    for name, path in tqdm(names.items(), desc="report", unit="run", disable=not progress, leave=False):
        rows = metrics[name]
        evals = [r for r in rows if r.get("eval/pass@1") is not None]
        train = [r for r in rows if "loss" in r]
        tail = train[-max(1, len(train) // 10) :]
        head = train[: max(1, len(train) // 10)]
        avg_keys = sorted(
            k for k in (evals[-1] if evals else {}) if k.startswith("eval/avg@") and k != "eval/avg@1"
        )
        summary_rows.append(
            [
                _esc(name),
                _esc(_run_algorithm(path)),
                str(len(train)),
                _fmt(evals[0]["eval/pass@1"]) if evals else "–",
                _fmt(evals[-1]["eval/pass@1"]) if evals else "–",
                (_fmt(evals[-1][avg_keys[0]]) + f" ({avg_keys[0][5:]})") if avg_keys else "–",
                _fmt(float(np.mean([r["reward/mean"] for r in tail]))) if tail else "–",
                _fmt(float(np.mean([r["entropy/mean"] for r in head]))) if head else "–",
                _fmt(float(np.mean([r["entropy/mean"] for r in tail]))) if tail else "–",
            ]
        )
        if train and "quadrant/PHR/share" in train[0]:
            quadrants[name] = _quadrant_means(rows)
        paths = dump_paths(path)
        if paths and samples_per_run > 0:
            dump = load_dump(paths[-1])
            samples = sample_responses(dump, samples_per_run)
            for s in samples:
                all_h += s["entropy"]
                all_a += [abs(v) for v in s["shaped"]]
                all_d += [abs(b - a) for a, b in zip(s["advantage"], s["shaped"], strict=True)]
            samples_blocks.append(f"<h3>{_esc(name)}</h3>" + _samples_html(samples, int(dump["step"])))
        extra = _analysis_html(path)
        if extra:
            analysis_blocks.append(f"<h2>Analyses of {_esc(name)}</h2>{extra}")

    curves = "".join(
        [
            _curve_svg(metrics, "eval/pass@1", "held-out pass@1 (T = 0.6)", "pass@1", smooth=False),
            _curve_svg(metrics, "reward/mean", "training reward", "mean reward", smooth=True),
            _curve_svg(metrics, "entropy/mean", "mean token entropy (Fig. 6a)", "nats", smooth=True),
        ]
    )
    quadrant_rows = [
        [_esc(name), q]
        + [_fmt(v[q][k]) for k in ("share", "mean_entropy", "mean_abs_advantage", "grad_share")]
        + [_fmt(v[q]["entropy_change"], 5)]
        for name, v in quadrants.items()
        for q in QUADRANTS
    ]
    h_max = float(np.quantile(all_h, 0.98)) if all_h else 1.0
    a_max = float(max(all_a)) if all_a else 1.0
    d_max = float(max(all_d)) if all_d and max(all_d) > 0 else 1.0
    body = [
        "<h1>eapo report</h1>",
        f'<div class="meta">{len(names)} run(s): {", ".join(_esc(str(p)) for p in names.values())}. '
        f"Generated {datetime.now().strftime('%Y-%m-%d %H:%M')} from each run's metrics.jsonl and "
        "rollouts/.</div>",
        '<section id="results"><h2>Results</h2>',
        _table(
            [
                "run",
                "algo",
                "steps",
                "pass@1 start",
                "pass@1 end",
                "avg@k end",
                "reward (last 10%)",
                "entropy (first 10%)",
                "entropy (last 10%)",
            ],
            summary_rows,
        ),
        f'<div class="plots">{curves}</div></section>',
    ]
    if quadrants:
        body += [
            '<section id="quadrants"><h2>Four quadrants (PAPER.md §4.1)</h2>',
            '<div class="note">Polarity = sign of the GRPO advantage; high entropy = H ≥ the group mean. '
            "Means over all training steps.</div>",
            f'<div class="plots">{_quadrant_svg(quadrants)}</div>',
            _table(
                ["run", "quadrant", "token share", "mean H", "mean |Â|", "grad-norm share", "ΔH per update"],
                quadrant_rows,
            ),
            "</section>",
        ]
    if analysis_blocks:
        body += ['<section id="analyses">', *analysis_blocks, "</section>"]
    if samples_blocks:
        body += [
            '<section id="samples"><h2>Sample responses (Fig. 11)</h2>',
            '<div class="controls">colour tokens by: '
            '<label><input type="radio" name="colour" value="entropy" checked> entropy</label> '
            '<label><input type="radio" name="colour" value="shaped"> shaped advantage</label> '
            '<label><input type="radio" name="colour" value="shaping"> shaping term (shaped − GRPO)</label>'
            ' &nbsp; <span class="legend-text" data-mode="entropy">'
            f"white = 0 → orange = {h_max:.2f} nats</span>"
            f'<span class="legend-text" data-mode="shaped" style="display:none">red = −{a_max:.2f} … blue = '
            f"+{a_max:.2f}</span>"
            f'<span class="legend-text" data-mode="shaping" style="display:none">red = −{d_max:.3f} … blue = '
            f"+{d_max:.3f}</span>"
            ' &nbsp; <span class="note">hover a token for its values</span></div>',
            *samples_blocks,
            "</section>",
        ]
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>eapo report</title>'
        f"<style>{_CSS}</style></head>"
        f'<body data-hmax="{h_max:.5f}" data-amax="{a_max:.5f}" data-dmax="{d_max:.5f}">'
        + "\n".join(body)
        + f'<div id="tooltip"></div><script>{_JS}</script></body></html>'
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out


def _run_algorithm(run_dir: Path) -> str:
    """The algorithm named in the run's config.yaml, for the results table ("?" when it is missing)."""
    from eapo.train.config import load_yaml_text

    path = run_dir / "config.yaml"
    data = load_yaml_text(path) if path.is_file() else None
    if not isinstance(data, dict):
        return "?"
    return (data.get("algo") or {}).get("name", "?")
