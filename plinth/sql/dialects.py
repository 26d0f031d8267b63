"""From the SQL people already have to SQL an engine runs: Athena placeholders, then sqlglot transpilation.

The CUR Query Library (and most CUR SQL in the wild) is Athena (Presto/Trino) SQL with two
placeholders, spelled inconsistently upstream. :func:`fill_placeholders` accepts every spelling::

    ${table_name} ${tableName} ${table_Name} {$table_name} $(table_name)   -> the dataset's main table
    ${date_filter} {$date_filter} ${date_filter}}                          -> the default date filter

The default date filter is the library's "previous 3 months" recipe (Query Help, "Filtering by Date"),
anchored to whole months so no month is cut in half: the current month so far and the three whole months
before it (a CUR export's newest month is the current, unfinished one). Where the
table has the Athena partition columns ``year``/``month`` it filters on them (the library's files mark
the spot ``automation_timerange_year_month``, and some apply it in an outer query that only passes
``year``/``month`` through), comparing them as integers because ``month`` is ``'7'`` in some exports and
``'07'`` in others (the docs warn about it). Without them it filters on the usage timestamp
(``line_item_usage_start_date``; FOCUS ``ChargePeriodStart``); a custom dataset's filter is ``TRUE``.

:func:`transpile` parses in the read dialect and writes the engine's, with AST fixes for Athena-isms
sqlglot leaves as they are (see :func:`_athena_fixes`). The safety layer does its own parse/write; this
module is only about meaning, never about what is allowed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from datetime import date

import sqlglot
from sqlglot import exp

from plinth.sql.types import Dataset

__all__ = [
    "DATE_COLUMNS",
    "date_filter",
    "fill_placeholders",
    "normalize_dialect",
    "rewrite_for",
    "transpile",
]

_TABLE = re.compile(r"\$\{table_?name\}|\{\$table_?name\}|\$\(table_?name\)", re.IGNORECASE)
_DATE = re.compile(r"\$\{date_filter\}\}?|\{\$date_filter\}", re.IGNORECASE)

# The usage-time column a date filter applies to, per dataset kind.
DATE_COLUMNS: dict[str, str] = {
    "cur": "line_item_usage_start_date",
    "cur2": "line_item_usage_start_date",
    "focus": "ChargePeriodStart",
}

# Names people use for dialects that sqlglot spells otherwise.
_ALIASES = {
    "presto": "presto",
    "athena": "athena",
    "trino": "trino",
    "postgresql": "postgres",
    "pg": "postgres",
}


def normalize_dialect(name: str) -> str:
    """A sqlglot dialect name for ``name`` (case-insensitive; ``postgresql`` -> ``postgres``)."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    try:
        sqlglot.Dialect.get_or_raise(key)
    except ValueError as exc:
        raise ValueError(f"unknown SQL dialect {name!r}") from exc
    return key


def date_filter(
    dataset: Dataset, *, columns: Collection[str] = (), months: int = 3, today: date | None = None
) -> str:
    """Athena SQL for the default ``${date_filter}``: the current month and the ``months`` before it.

    ``columns`` are the main table's columns when known (they decide partitions vs. timestamp);
    ``today`` pins the window (tests, reproducible reports), else the engine's ``current_date`` does.
    """
    assert months >= 1
    anchor = f"DATE '{today.isoformat()}'" if today else "current_date"
    lower = {c.lower() for c in columns}
    if {"year", "month"} <= lower:
        first = f"year({anchor}) * 12 + month({anchor}) - {months}"
        return f"CAST(year AS INTEGER) * 12 + CAST(month AS INTEGER) >= {first}"
    column = DATE_COLUMNS.get(dataset.kind)
    if column is None:
        return "TRUE"
    return f"{column} >= date_trunc('month', {anchor}) - INTERVAL '{months}' MONTH"


def fill_placeholders(sql: str, dataset: Dataset, *, date_sql: str | None = None) -> str:
    """Replace every spelling of ``${table_name}`` and ``${date_filter}`` (see module docstring)."""
    sql = _TABLE.sub(dataset.main_table, sql)
    filter_sql = date_sql if date_sql is not None else date_filter(dataset)
    return _DATE.sub(f"({filter_sql})", sql)


def rewrite_for(read: str) -> Callable[[exp.Expr], exp.Expr] | None:
    """The AST fixes SQL written in ``read`` needs before another engine runs it (None: none)."""
    return _athena_fixes if read in ("athena", "presto", "trino") else None


def transpile(sql: str, *, read: str, write: str) -> str:
    """``sql`` from dialect ``read`` to ``write``, with the Athena fixes when reading Athena/Presto."""
    tree = sqlglot.parse_one(sql, read=read)
    fixes = rewrite_for(read)
    return (fixes(tree) if fixes else tree).sql(dialect=write)


def _athena_fixes(tree: exp.Expr) -> exp.Expr:
    """AST rewrites for Athena behaviour other engines do not share.

    - Athena compares a ``varchar`` partition column with an integer (``CAST(month AS INT) = 7`` is
      spelled as such upstream, fine) but also lets ``year = 2024`` coerce; engines like DuckDB refuse
      string/int comparisons on columns, so integer literals compared with ``year``/``month`` become
      strings.
    """
    return tree.transform(_partition_literals)


def _partition_literals(node: exp.Expr) -> exp.Expr:
    left, right = node.args.get("this"), node.args.get("expression")
    if (
        isinstance(node, exp.EQ | exp.NEQ)
        and isinstance(left, exp.Column)
        and left.name.lower() in ("year", "month")
        and isinstance(right, exp.Literal)
        and not right.is_string
    ):
        node.set("expression", exp.Literal.string(right.this))
    return node
