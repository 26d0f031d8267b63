"""A Vega-Lite v5 chart for a query result, or ``None`` when a chart would mislead.

The result's shape decides; the question is never consulted (a chart must follow from the data it
draws). Column kinds come from :class:`~plinth.sql.types.QueryResult` ``types`` (``number``,
``string``, ``temporal``, ``boolean``); a string column whose values all look like ISO dates
(``2024-05``, ``2024-05-01``, ``2024-05-01 13:00``) counts as temporal, because FinOps queries often
format months with ``strftime``. The rules, in order:

- **None** for fewer than two rows (one number is an answer, not a chart), for no numeric column,
  or for a numeric column that is entirely null.
- **Line** for one temporal column plus numbers: x = time, y = the first numeric column. One extra
  categorical column becomes ``color`` (a line per value) when it has at most :data:`MAX_SERIES`
  values; more series, or two categorical columns, would be an unreadable tangle -> None. With no
  categorical column and several numeric ones (unblended vs amortised by month), the numbers are
  folded into one line each. Repeated x values within a series mean the rows were not grouped by
  time -> None (Vega-Lite would silently draw a zig-zag through them).
- **Bar** (horizontal, sorted by value, zero baseline so credits show below it) for one categorical
  column plus numbers: y = category, x = the first numeric column. At most :data:`MAX_BARS` bars: the
  largest by absolute value are kept and the title says "top N of M". Repeated categories mean the rows
  were not grouped by that column -> None; more than :data:`MAX_CATEGORIES` categories is a long tail
  a top-N would misrepresent -> None.
- **None** for anything else (two categorical columns without time, only numbers, booleans, ...).

Data goes inline (``data.values``) with only the columns the chart uses::

    chart_spec(["month", "cost"], ["temporal", "number"], [["2024-01-01", 10.0], ["2024-02-01", 12.5]])
    # {"$schema": ".../vega-lite/v5.json", "mark": {"type": "line", "point": True}, ...}
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

__all__ = ["MAX_BARS", "MAX_CATEGORIES", "MAX_SERIES", "VEGA_LITE_SCHEMA", "chart_spec", "column_kinds"]

VEGA_LITE_SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"
MAX_SERIES = 8  # distinct colours a reader can still tell apart
MAX_BARS = 25
MAX_CATEGORIES = 100
MAX_FOLDED = 4  # numeric columns drawn as separate lines when there is no category
_ISO_DATE = re.compile(r"^\d{4}-\d{2}(-\d{2}([ T]\d{2}(:\d{2}(:\d{2}(\.\d+)?)?)?)?)?$")


def chart_spec(
    columns: Sequence[str], types: Sequence[str], rows: Sequence[Sequence[Any]]
) -> dict[str, Any] | None:
    """The Vega-Lite spec for ``rows`` (see the module rules), or ``None``."""
    assert len(columns) == len(types), "one type per column"
    if len(rows) < 2:
        return None
    kinds = column_kinds(types, rows)
    temporal = [i for i, k in enumerate(kinds) if k == "temporal"]
    numeric = [i for i, k in enumerate(kinds) if k == "number" and _has_values(rows, i)]
    category = [i for i, k in enumerate(kinds) if k == "string"]
    if not numeric:
        return None
    if len(temporal) == 1 and len(category) <= 1:
        return _line(columns, rows, temporal[0], numeric, category[0] if category else None)
    if not temporal and len(category) == 1:
        return _bar(columns, rows, category[0], numeric[0])
    return None


def column_kinds(types: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """``types`` with ISO-date-looking string columns promoted to ``temporal``."""
    kinds = list(types)
    for i, kind in enumerate(kinds):
        values = [row[i] for row in rows if row[i] is not None]
        if kind == "string" and values and all(isinstance(v, str) and _ISO_DATE.match(v) for v in values):
            kinds[i] = "temporal"
    return kinds


def _line(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], x: int, numeric: list[int], color: int | None
) -> dict[str, Any] | None:
    series = [row[color] for row in rows] if color is not None else [None] * len(rows)
    if len(set(series)) > MAX_SERIES or len({(s, row[x]) for s, row in zip(series, rows, strict=True)}) < len(
        rows
    ):
        return None
    if len({row[x] for row in rows}) < 2:
        return None
    folded = color is None and len(numeric) > 1
    measures = numeric[:MAX_FOLDED] if folded else numeric[:1]
    spec = _base("line", columns, rows, [x, *measures] + ([color] if color is not None else []))
    spec["mark"] = {"type": "line", "point": True}
    x_enc = {"field": _field(columns[x]), "type": "temporal", "title": columns[x]}
    if folded:
        spec["transform"] = [{"fold": [_field(columns[i]) for i in measures], "as": ["measure", "value"]}]
        y_enc = {"field": "value", "type": "quantitative", "title": "value"}
        spec["encoding"] = {"x": x_enc, "y": y_enc, "color": {"field": "measure", "type": "nominal"}}
        return spec
    y_enc = {"field": _field(columns[measures[0]]), "type": "quantitative", "title": columns[measures[0]]}
    spec["encoding"] = {"x": x_enc, "y": y_enc}
    if color is not None:
        spec["encoding"]["color"] = {
            "field": _field(columns[color]),
            "type": "nominal",
            "title": columns[color],
        }
    return spec


def _bar(columns: Sequence[str], rows: Sequence[Sequence[Any]], cat: int, num: int) -> dict[str, Any] | None:
    labels = [row[cat] for row in rows]
    if len(set(labels)) < len(labels) or len(labels) > MAX_CATEGORIES:
        return None
    kept = sorted(rows, key=lambda row: abs(row[num] or 0), reverse=True)[:MAX_BARS]
    spec = _base("bar", columns, kept, [cat, num])
    if len(kept) < len(rows):
        spec["title"] = f"Top {len(kept)} of {len(rows)} by {columns[num]}"
    spec["mark"] = {"type": "bar"}
    spec["encoding"] = {
        "y": {"field": _field(columns[cat]), "type": "nominal", "sort": "-x", "title": columns[cat]},
        "x": {"field": _field(columns[num]), "type": "quantitative", "title": columns[num]},
    }
    return spec


def _base(
    kind: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], used: list[int]
) -> dict[str, Any]:
    values = [{columns[i]: row[i] for i in used} for row in rows]
    return {"$schema": VEGA_LITE_SCHEMA, "description": f"{kind} chart", "data": {"values": values}}


def _has_values(rows: Sequence[Sequence[Any]], i: int) -> bool:
    return any(row[i] is not None for row in rows)


def _field(name: str) -> str:
    """Vega-Lite reads ``.`` and ``[]`` in a field name as nesting; a SQL alias may contain them."""
    return re.sub(r"([.\[\]\\])", r"\\\1", name)
