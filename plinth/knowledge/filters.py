"""Metadata filters in the Bedrock Knowledge Bases grammar, validated once and compiled per store.

Contract:

- ``parse_filter(raw, schema)`` accepts exactly Bedrock's ``RetrievalFilter`` shape
  (``{"equals": {"key": "year", "value": 1994}}``, ``{"andAll": [f1, f2]}``, ...) and returns a small
  immutable AST, or raises ``FilterError`` whose ``param`` is the JSON path of the offending part
  (``filter.andAll[1].equals.key``) so the HTTP layer can answer a precise 400.
- ``schema`` maps each *declared* metadata field to ``"string" | "number" | "boolean" |
  "string_list"``; filters on undeclared fields are rejected because only declared fields have typed
  columns in the store (that is what makes the filter a pushed-down pre-filter).
- Compilers never interpolate an unescaped user string: Lance SQL literals are quoted with ``''``
  doubling (DataFusion strings have no backslash escapes), identifiers are validated field names, and
  PostgreSQL gets ``%s`` placeholders with the values as parameters.
- A missing (NULL) field never matches a positive operator; ``notEquals``/``notIn`` *do* match it
  ("its value is not X"), as Bedrock's OpenSearch ``must_not`` does.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

FIELD_TYPES = ("string", "number", "boolean", "string_list")
_SCALARS = ("string", "number", "boolean")
# operator -> field types it applies to
OPERATORS: dict[str, tuple[str, ...]] = {
    "equals": _SCALARS,
    "notEquals": _SCALARS,
    "greaterThan": ("number",),
    "greaterThanOrEquals": ("number",),
    "lessThan": ("number",),
    "lessThanOrEquals": ("number",),
    "in": ("string", "number"),
    "notIn": ("string", "number"),
    "startsWith": ("string",),
    "stringContains": ("string", "string_list"),
    "listContains": ("string_list",),
}
LOGICAL = ("andAll", "orAll")
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LIST_SEP = "\x1f"  # joins list elements for stringContains in Lance SQL; rejected inside values


class FilterError(ValueError):
    """A filter the caller must fix; ``param`` is the JSON path of the offending part."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message


@dataclass(frozen=True, slots=True)
class Condition:
    """``key <op> value`` on a declared field; ``value`` is a tuple for ``in``/``notIn``."""

    op: str
    key: str
    value: Any
    field_type: str


@dataclass(frozen=True, slots=True)
class Logical:
    """``andAll`` / ``orAll`` over two or more members."""

    op: str
    members: tuple[Filter, ...]


Filter = Condition | Logical


def column_name(key: str) -> str:
    """The store column of metadata field ``key`` (prefixed so it never clashes with ours)."""
    return f"m_{key}"


def validate_schema(schema: dict[str, str]) -> None:
    """Raise ``ValueError`` unless every field name is an identifier and every type is known."""
    for key, kind in schema.items():
        if not _FIELD_NAME.match(key):
            raise ValueError(f"metadata field name {key!r} must match {_FIELD_NAME.pattern}")
        if kind not in FIELD_TYPES:
            raise ValueError(f"metadata field {key!r}: type {kind!r} is not one of {FIELD_TYPES}")


def parse_filter(raw: Any, schema: dict[str, str], param: str = "filter") -> Filter:
    """Validate ``raw`` (Bedrock grammar) against ``schema`` and return the AST."""
    if not isinstance(raw, dict) or len(raw) != 1:
        raise FilterError(param, "must be an object with exactly one operator")
    op, body = next(iter(raw.items()))
    path = f"{param}.{op}"
    if op in LOGICAL:
        return _parse_logical(op, body, schema, path)
    if op not in OPERATORS:
        valid = ", ".join((*OPERATORS, *LOGICAL))
        raise FilterError(param, f"unknown operator {op!r}; valid operators: {valid}")
    return _parse_condition(op, body, schema, path)


def _parse_logical(op: str, body: Any, schema: dict[str, str], path: str) -> Logical:
    if not isinstance(body, list) or len(body) < 2:
        raise FilterError(path, f"{op} takes a list of at least 2 filters")
    return Logical(op, tuple(parse_filter(m, schema, f"{path}[{i}]") for i, m in enumerate(body)))


def _parse_condition(op: str, body: Any, schema: dict[str, str], path: str) -> Condition:
    if not isinstance(body, dict) or set(body) != {"key", "value"}:
        raise FilterError(path, 'must be an object with exactly "key" and "value"')
    key = body["key"]
    if not isinstance(key, str) or key not in schema:
        declared = ", ".join(sorted(schema)) or "none"
        raise FilterError(f"{path}.key", f"unknown metadata field {key!r}; declared fields: {declared}")
    kind = schema[key]
    if kind not in OPERATORS[op]:
        raise FilterError(path, f"{op} does not apply to {kind} field {key!r} (applies to {OPERATORS[op]})")
    value = body["value"]
    if op in ("in", "notIn"):
        return Condition(op, key, _parse_list(value, kind, f"{path}.value"), kind)
    element = "string" if kind == "string_list" else kind
    return Condition(op, key, _check_value(value, element, f"{path}.value"), kind)


def _parse_list(value: Any, kind: str, path: str) -> tuple[Any, ...]:
    if not isinstance(value, list) or not value:
        raise FilterError(path, "must be a non-empty list")
    return tuple(_check_value(v, kind, f"{path}[{i}]") for i, v in enumerate(value))


def _check_value(value: Any, kind: str, path: str) -> Any:
    if kind == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not math.isfinite(value):
            raise FilterError(path, f"must be a finite number, got {value!r}")
        return value
    if kind == "boolean" and not isinstance(value, bool):
        raise FilterError(path, f"must be a boolean, got {value!r}")
    if kind == "string":
        if not isinstance(value, str):
            raise FilterError(path, f"must be a string, got {value!r}")
        if "\x00" in value or _LIST_SEP in value:
            raise FilterError(path, "must not contain control characters \\x00 or \\x1f")
    return value


# --- LanceDB (DataFusion SQL) -------------------------------------------------------------------------

_CMP = {
    "equals": "=",
    "greaterThan": ">",
    "greaterThanOrEquals": ">=",
    "lessThan": "<",
    "lessThanOrEquals": "<=",
}


def to_lance_sql(f: Filter) -> str:
    """A LanceDB ``where`` clause (DataFusion SQL) equivalent to ``f``."""
    if isinstance(f, Logical):
        joiner = " AND " if f.op == "andAll" else " OR "
        return "(" + joiner.join(to_lance_sql(m) for m in f.members) + ")"
    col = f"`{column_name(f.key)}`"
    if f.op in _CMP:
        return f"{col} {_CMP[f.op]} {_lance_literal(f.value)}"
    if f.op == "notEquals":
        return f"({col} IS NULL OR {col} <> {_lance_literal(f.value)})"
    if f.op in ("in", "notIn"):
        items = ", ".join(_lance_literal(v) for v in f.value)
        return f"{col} IN ({items})" if f.op == "in" else f"({col} IS NULL OR {col} NOT IN ({items}))"
    needle = _lance_literal(f.value)
    if f.op == "startsWith":
        return f"starts_with({col}, {needle})"
    if f.op == "listContains":
        return f"array_has({col}, {needle})"
    if f.field_type == "string_list":  # stringContains on a list: any element contains the needle
        return f"strpos(array_to_string({col}, chr(31)), {needle}) > 0"
    return f"strpos({col}, {needle}) > 0"


def _lance_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


# --- PostgreSQL (typed columns, parameterized) --------------------------------------------------------


def to_postgres_sql(f: Filter) -> tuple[str, list[Any]]:
    """A parameterized PostgreSQL boolean expression (``%s`` placeholders) and its parameters."""
    if isinstance(f, Logical):
        parts = [to_postgres_sql(m) for m in f.members]
        joiner = " AND " if f.op == "andAll" else " OR "
        return "(" + joiner.join(p[0] for p in parts) + ")", [v for p in parts for v in p[1]]
    col = f'"{column_name(f.key)}"'  # safe: field names are validated identifiers
    value = _pg_value(f)
    if f.op in _CMP:
        return f"{col} {_CMP[f.op]} %s", [value]
    sql = {
        "notEquals": f"({col} IS NULL OR {col} <> %s)",
        "in": f"{col} = ANY(%s)",
        "notIn": f"({col} IS NULL OR NOT ({col} = ANY(%s)))",
        "startsWith": f"starts_with({col}, %s)",
        "listContains": f"%s = ANY({col})",
    }.get(f.op)
    if sql is None:  # stringContains
        sql = (
            f"EXISTS (SELECT 1 FROM unnest({col}) AS e(v) WHERE strpos(e.v, %s) > 0)"
            if f.field_type == "string_list"
            else f"strpos({col}, %s) > 0"
        )
    return sql, [value]


def _pg_value(f: Condition) -> Any:
    """Numbers go as float (columns are double precision); lists as Python lists (-> arrays)."""
    if f.field_type == "number":
        return [float(v) for v in f.value] if isinstance(f.value, tuple) else float(f.value)
    return list(f.value) if isinstance(f.value, tuple) else f.value
