"""What every engine does with its driver's rows: JSON-safe values, a chart kind per column type, and
the engine error's first line (what the user and the model see)."""

from __future__ import annotations

import datetime as dt
import decimal
import math
import uuid
from typing import Any

from plinth.sql.types import QueryResult

__all__ = ["column_kind", "first_line", "json_value", "result_from_rows"]


def column_kind(type_name: str) -> str:
    """An engine type name as what a chart needs: ``number``, ``temporal``, ``boolean`` or ``string``."""
    name = type_name.upper()
    if name.startswith("BOOL"):
        return "boolean"
    if any(t in name for t in ("DATE", "TIME", "INTERVAL")):
        return "temporal"
    numeric = ("INT", "DECIMAL", "NUMERIC", "DOUBLE", "FLOAT", "REAL", "LONG", "SHORT", "BYTE", "NUMBER")
    if any(t in name for t in numeric) and not name.startswith(("STRUCT", "MAP", "ARRAY", "LIST")):
        return "number"
    return "string"


def json_value(value: Any) -> Any:
    """A value as JSON can carry it: decimals as floats, times as ISO strings, NaN/inf as null."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, decimal.Decimal):
        return json_value(float(value))
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [json_value(v) for v in value]
    if hasattr(value, "asDict"):  # a Spark Row (struct column)
        return json_value(value.asDict(recursive=True))
    return str(value)


def result_from_rows(
    columns: list[str], type_names: list[str], raw: list[Any], limit: int, elapsed_ms: float, engine: str
) -> QueryResult:
    """Rows fetched with the vetted ``LIMIT limit + 1``: more than ``limit`` means the cap cut them."""
    rows = [[json_value(v) for v in row] for row in raw[:limit]]
    kinds = [column_kind(t) for t in type_names]
    return QueryResult(columns, kinds, rows, len(raw) > limit, elapsed_ms, engine)


def first_line(exc: BaseException) -> str:
    """An engine error's message without its stack or context dump (what the user and model see)."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:500]
