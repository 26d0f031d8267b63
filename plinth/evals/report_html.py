"""The evaluation report as one self-contained HTML file: inline CSS and SVG, no scripts, no fetches.

Contract: :func:`render_report` takes the job's result (``spec``, ``summary``, ``agreement``,
``comparison``) and its records and returns the page: per-metric bars (one bar per target), score
distributions (judge scores 1-5, other metrics in ten bins over [0, 1]), the comparison as a forest plot
of the differences with their bootstrap intervals, judge-human agreement, and a table of items. Every
string from the data is escaped, so a model's output cannot inject markup.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from plinth.evals.run import LOWER_IS_BETTER, Record, scores_of

__all__ = ["render_report"]

COLORS = ("#3b6ea8", "#d08a2e")
MAX_ITEMS_SHOWN = 200
_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f4f4f4}.num{text-align:right;font-variant-numeric:tabular-nums}
.charts{display:flex;flex-wrap:wrap;gap:1rem}.chart{border:1px solid #e4e4e4;padding:.5rem}
.legend span{display:inline-block;margin-right:1rem}.sw{display:inline-block;width:.8rem;height:.8rem;
margin-right:.3rem;vertical-align:middle}pre{white-space:pre-wrap;margin:0;max-height:10rem;overflow:auto}
.err{color:#a00}.muted{color:#666}
"""


def render_report(result: dict[str, Any], records: Sequence[Record], title: str = "Evaluation") -> str:
    """The whole page (UTF-8 text) for ``result`` and its ``records``."""
    summary: dict[str, dict[str, Any]] = result.get("summary", {})
    labels = list(summary)
    metrics = sorted({m for s in summary.values() for m in s if _is_metric(m)})
    body = [
        f"<h1>{_e(title)}</h1>",
        _legend(labels),
        "<h2>Summary</h2>",
        _summary_table(summary, labels),
        "<h2>Metrics</h2>",
        '<div class="charts">' + "".join(_bars(m, summary, labels) for m in metrics if _unit(m)) + "</div>",
        "<h2>Score distributions</h2>",
        '<div class="charts">'
        + "".join(_histogram(m, records, labels) for m in metrics if _unit(m))
        + "</div>",
    ]
    if result.get("comparison"):
        body += ["<h2>Comparison (B − A, paired bootstrap)</h2>", _comparison(result["comparison"], labels)]
    if any(result.get("agreement", {}).values()):
        body += ["<h2>Agreement with human scores</h2>", _agreement(result["agreement"])]
    body += ["<h2>Items</h2>", _items(records)]
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>"
    )


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _is_metric(name: str) -> bool:
    return name not in ("items", "errors", "judged", "judge_errors", "latency_p50_s")


def _unit(name: str) -> bool:
    """Metrics drawn on a shared [0, 1] axis (judge scores 1..5 are scaled)."""
    return name not in LOWER_IS_BETTER


def _scaled(name: str, value: float) -> float:
    return (value - 1) / 4 if name.startswith("judge.") else value


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return _e(value if value is not None else "–")


def _legend(labels: Sequence[str]) -> str:
    parts = [
        f'<span><i class="sw" style="background:{COLORS[i % 2]}"></i>{"AB"[i]}: {_e(label)}</span>'
        for i, label in enumerate(labels[:2])
    ]
    return f'<p class="legend">{"".join(parts)}</p>'


def _summary_table(summary: dict[str, dict[str, Any]], labels: Sequence[str]) -> str:
    names = sorted({m for s in summary.values() for m in s})
    head = "".join(f"<th>{_e(label)}</th>" for label in labels)
    rows = "".join(
        f"<tr><td>{_e(n)}</td>" + "".join(f'<td class="num">{_fmt(summary[t].get(n))}</td>' for t in labels)
        for n in names
    )
    return f"<table><tr><th>metric</th>{head}</tr>{rows}</table>"


def _bars(metric: str, summary: dict[str, dict[str, Any]], labels: Sequence[str]) -> str:
    width, height, bar = 220, 140, 40
    parts = []
    for i, label in enumerate(labels):
        value = summary[label].get(metric)
        if value is None:
            continue
        h = max(0.0, min(1.0, _scaled(metric, value))) * (height - 30)
        x = 30 + i * (bar + 20)
        parts.append(
            f'<rect x="{x}" y="{height - 15 - h:.1f}" width="{bar}" height="{h:.1f}" fill="{COLORS[i % 2]}">'
            f"<title>{_e(label)}: {value:.3f}</title></rect>"
            f'<text x="{x + bar / 2}" y="{height - 18 - h:.1f}" font-size="11" text-anchor="middle">'
            f"{value:.2f}</text>"
        )
    return _svg(metric, width, height, "".join(parts))


def _histogram(metric: str, records: Sequence[Record], labels: Sequence[str]) -> str:
    judge = metric.startswith("judge.")
    bins = 5 if judge else 10
    width, height = 260, 140
    slot = (width - 40) / bins
    parts = []
    for i, label in enumerate(labels):
        values = [scores_of(r).get(metric) for r in records if r["target"] == label]
        counts = [0] * bins
        for v in values:
            if v is not None:
                counts[min(bins - 1, int(v) - 1) if judge else min(bins - 1, int(v * bins))] += 1
        top = max(counts) or 1
        for b, count in enumerate(counts):
            h = count / top * (height - 35)
            x = 30 + b * slot + i * slot / 2
            parts.append(
                f'<rect x="{x:.1f}" y="{height - 20 - h:.1f}" width="{slot / 2 - 1:.1f}" height="{h:.1f}" '
                f'fill="{COLORS[i % 2]}"><title>{_e(label)}: {count}</title></rect>'
            )
    ticks = ["1", "5"] if judge else ["0", "1"]
    axis = (
        f'<text x="30" y="{height - 5}" font-size="10">{ticks[0]}</text>'
        f'<text x="{width - 15}" y="{height - 5}" font-size="10">{ticks[1]}</text>'
    )
    return _svg(metric, width, height, "".join(parts) + axis)


def _svg(title: str, width: int, height: int, inner: str) -> str:
    return (
        f'<figure class="chart"><svg role="img" aria-label="{_e(title)}" width="{width}" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg"><line x1="25" y1="{height - 15}" x2="{width}" '
        f'y2="{height - 15}" stroke="#999"/>{inner}</svg><figcaption>{_e(title)}</figcaption></figure>'
    )


def _comparison(rows: Sequence[dict[str, Any]], labels: Sequence[str]) -> str:
    table = "".join(
        f"<tr><td>{_e(r['metric'])}</td><td class=num>{_fmt(r['a'])}</td><td class=num>{_fmt(r['b'])}</td>"
        f"<td class=num>{_fmt(r['diff'])}</td><td class=num>[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]</td>"
        f"<td class=num>{r['n']}</td><td>{'lower is better' if r['lower_is_better'] else ''}</td></tr>"
        for r in rows
    )
    head = "<tr><th>metric</th><th>A</th><th>B</th><th>B − A</th><th>95% CI</th><th>n</th><th></th></tr>"
    return f"{_forest(rows)}<table>{head}{table}</table>"


def _forest(rows: Sequence[dict[str, Any]]) -> str:
    shown = [r for r in rows if not r["lower_is_better"]]
    if not shown:
        return ""
    span = max(max(abs(r["ci_low"]), abs(r["ci_high"]), abs(r["diff"])) for r in shown) or 1.0
    width, row_h, left = 560, 24, 150
    height = row_h * len(shown) + 20
    mid = left + (width - left) / 2

    def x(v: float) -> float:
        return mid + v / span * (width - left - 20) / 2

    parts = [f'<line x1="{mid}" y1="0" x2="{mid}" y2="{height}" stroke="#999" stroke-dasharray="3"/>']
    for i, r in enumerate(shown):
        y = 14 + i * row_h
        parts.append(
            f'<text x="4" y="{y + 4}" font-size="11">{_e(r["metric"])}</text>'
            f'<line x1="{x(r["ci_low"]):.1f}" y1="{y}" x2="{x(r["ci_high"]):.1f}" y2="{y}" stroke="#333"/>'
            f'<circle cx="{x(r["diff"]):.1f}" cy="{y}" r="4" fill="{COLORS[1]}"/>'
        )
    return (
        f'<figure class="chart"><svg role="img" aria-label="comparison" width="{width}" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg">{"".join(parts)}</svg><figcaption>B − A with 95% bootstrap '
        f"interval (scale ±{span:.2f})</figcaption></figure>"
    )


def _agreement(agreement: dict[str, dict[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td>{_e(target)}</td><td>{_e(criterion)}</td><td class=num>{a['n']}</td>"
        f"<td class=num>{_fmt(a['cohen_kappa'])}</td><td class=num>{_fmt(a['weighted_kappa'])}</td>"
        f"<td class=num>{_fmt(a['spearman'])}</td></tr>"
        for target, per in agreement.items()
        for criterion, a in per.items()
    )
    head = (
        "<tr><th>target</th><th>criterion</th><th>n</th><th>Cohen's κ</th><th>weighted κ</th>"
        "<th>Spearman ρ</th></tr>"
    )
    return f"<table>{head}{rows}</table>"


def _items(records: Sequence[Record]) -> str:
    rows = []
    for r in records[:MAX_ITEMS_SHOWN]:
        scores = ", ".join(f"{k}={v:.2f}" for k, v in scores_of(r).items())
        judge = "<br>".join(
            f"<b>{_e(name)}</b> {_fmt(v.get('score'))}: {_e(v.get('reasoning', ''))[:300]}"
            for name, v in (r.get("judge") or {}).items()
        ) or (f'<span class="err">{_e(r["judge_error"])}</span>' if r.get("judge_error") else "")
        output = (
            f'<span class="err">{_e(r["error"])}</span>'
            if r.get("error")
            else f"<pre>{_e(r['output'])}</pre>"
        )
        rows.append(
            f"<tr><td>{_e(r['id'])}<br><span class=muted>{_e(r['target'])}</span></td>"
            f"<td><pre>{_e(r['input'])}</pre></td><td><pre>{_e(r.get('reference') or '')}</pre></td>"
            f"<td>{output}</td><td class=muted>{_e(scores)}</td><td>{judge}</td></tr>"
        )
    more = len(records) - MAX_ITEMS_SHOWN
    note = f"<p class=muted>{more} more items in the JSON results.</p>" if more > 0 else ""
    head = (
        "<tr><th>item</th><th>input</th><th>reference</th><th>output</th><th>scores</th><th>judge</th></tr>"
    )
    return f"<table>{head}{''.join(rows)}</table>{note}"
