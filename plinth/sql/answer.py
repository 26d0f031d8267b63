"""A short answer sentence built from the result itself -- no second model call, so it cannot invent.

It says only what the rows show, chosen by the result's shape:

- no rows: "The query returned no rows."
- one row: each column and its value ("total_cost: 1,234.57.");
- a time series (a temporal column and a number): the first and last points, and the peak;
- otherwise with a number: the row count and the largest value with its label (the first text
  column), and the smallest when there are several rows -- never a total, because summing a
  column of averages or rates would be wrong, and the rows do not say which it is;
- with no number: the row count and the first row.

A result cut at the row limit says so, so "the largest" is never read as "the largest overall"::

    describe_result(["service", "cost"], ["string", "number"], [["EC2", 10.0], ["S3", 2.5]])
    # '2 rows. Highest cost: EC2 (10.00); lowest: S3 (2.50).'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from plinth.sql.chart import column_kinds

__all__ = ["describe_result", "format_value"]


def describe_result(
    columns: Sequence[str], types: Sequence[str], rows: Sequence[Sequence[Any]], truncated: bool = False
) -> str:
    """The answer sentence for a result (see the module rules)."""
    if not rows:
        return "The query returned no rows."
    kinds = column_kinds(types, rows)
    if len(rows) == 1:
        return "; ".join(f"{c}: {format_value(v)}" for c, v in zip(columns, rows[0], strict=True)) + "."
    numbers = [i for i, k in enumerate(kinds) if k == "number" and any(r[i] is not None for r in rows)]
    times = [i for i, k in enumerate(kinds) if k == "temporal"]
    labels = [i for i, k in enumerate(kinds) if k in ("string", "boolean")]
    count = f"{len(rows)} rows" + (" (cut at the row limit)" if truncated else "")
    if numbers and times and not labels:
        return f"{count}. {_series(columns, rows, times[0], numbers[0])}"
    if numbers:
        label = labels[0] if labels else (times[0] if times else None)
        return f"{count}. {_extremes(columns, rows, numbers[0], label)}"
    first = ", ".join(f"{c}: {format_value(v)}" for c, v in zip(columns, rows[0], strict=True))
    return f"{count}. First: {first}."


def format_value(value: Any) -> str:
    """Numbers with thousands separators and sensible decimals; ``None`` as "null"."""
    if value is None:
        return "null"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return str(value)
    if value == 0 or abs(value) >= 0.01:
        return f"{value:,.2f}"
    return f"{value:.3g}"


def _series(columns: Sequence[str], rows: Sequence[Sequence[Any]], t: int, n: int) -> str:
    points = sorted((r for r in rows if r[t] is not None and r[n] is not None), key=lambda r: str(r[t]))
    if len(points) < 2:
        return f"{columns[n]} has too few non-null points to describe a trend."
    first, last = points[0], points[-1]
    peak = max(points, key=lambda r: r[n])
    return (
        f"{columns[n]} went from {format_value(first[n])} ({first[t]}) to {format_value(last[n])} "
        f"({last[t]}); the peak was {format_value(peak[n])} ({peak[t]})."
    )


def _extremes(columns: Sequence[str], rows: Sequence[Sequence[Any]], n: int, label: int | None) -> str:
    valued = [r for r in rows if r[n] is not None]
    if not valued:
        return f"{columns[n]} is null in every row."
    high, low = max(valued, key=lambda r: r[n]), min(valued, key=lambda r: r[n])

    def named(row: Sequence[Any]) -> str:
        return f"{row[label]} ({format_value(row[n])})" if label is not None else format_value(row[n])

    return f"Highest {columns[n]}: {named(high)}; lowest: {named(low)}."
