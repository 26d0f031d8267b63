"""The prompts of the ask loop: write one query, and repair one that failed.

The first prompt carries only what the question needs (the catalog's selection: a few tables, their
relevant columns with plain-language descriptions, the nearest example question/SQL pairs -- written
in DuckDB SQL, transpiled by sqlglot when the model must write another dialect), the dialect, and the
read-only rule. The safety layer enforces that rule whatever the model replies; the
prompt states it so a cooperative model does not waste attempts.

A repair prompt is the first prompt plus ONE failed exchange (the model's query and why it failed),
never the whole history, so its size stays bounded however many attempts run -- a small model's
context (2k tokens for the random test checkpoints) fits attempt three as well as attempt one::

    messages = sql_messages("Top 5 services by cost last month?", selection, "duckdb")
    messages = repair_messages(messages, "SELECT srvice FROM cur", "Binder Error: ...", "query_failed")

Under a guardrail the ask loop passes a per-request ``marker``: the system prompt gains the spotlight
instruction and the engine's error text in a repair prompt is datamarked with it, because an engine error
can quote values from the data (``Could not convert string '...'``) and a planted value must read as data,
not as an instruction. Without a marker the prompts are unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlglot
import sqlglot.errors

from plinth.guard import datamark, spotlight_instruction
from plinth.llm.base import Message

if TYPE_CHECKING:
    from plinth.sql.catalog import CatalogSelection

__all__ = [
    "MAX_ERROR_CHARS",
    "MAX_FAILED_SQL_CHARS",
    "in_dialect",
    "repair_messages",
    "schema_block",
    "sql_messages",
]

MAX_ERROR_CHARS = 600  # engine errors can list hundreds of candidate columns; the first lines suffice
MAX_FAILED_SQL_CHARS = 2000

DIALECT_NAMES = {"duckdb": "DuckDB", "spark": "Spark SQL", "athena": "Amazon Athena (Trino)",
                 "trino": "Trino", "postgres": "PostgreSQL"}  # fmt: skip

SYSTEM = """\
You are a FinOps analyst who writes SQL. Answer the user's question with ONE {dialect} query over the \
tables described in the user message.

Rules:
- Read only: write a single SELECT statement (a WITH clause is fine). Never write INSERT, UPDATE, \
DELETE, DROP, CREATE, ALTER, COPY, ATTACH, INSTALL, PRAGMA or SET, and never read files.
- Use only the tables and columns listed; quote nothing that is not listed.
- Give every computed column a short snake_case alias (total_cost, month, service).
- For trends over time, group by a truncated date (for example date_trunc('month', ...)) and order by it.
- For rankings, ORDER BY the measure DESC and add a LIMIT.
- Reply with the query in one ```sql code block and nothing else."""

REPAIR = """\
That query failed ({rule}):
{error}

Write a corrected query that answers the same question. Reply with one ```sql code block only."""


def schema_block(selection: CatalogSelection) -> str:
    """The selected tables and columns, one ``- name (TYPE): description`` line per column."""
    parts = []
    for table in selection.tables:
        note = selection.notes.get(table)
        lines = [f"Table {table}" + (f": {note}" if note else "")]
        for col in selection.columns.get(table, []):
            lines.append(f"- {col.name} ({col.type})" + (f": {col.description}" if col.description else ""))
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def sql_messages(
    question: str, selection: CatalogSelection, dialect: str = "duckdb", *, marker: str | None = None
) -> list[Message]:
    """System rules (+ the spotlight instruction for ``marker``) + (schema, examples, question) as one
    user turn."""
    name = DIALECT_NAMES.get(dialect, dialect)
    examples = "\n\n".join(
        f"Question: {ex.question}\n```sql\n{in_dialect(ex.sql, dialect)}\n```" for ex in selection.examples
    )
    user = f"Tables:\n\n{schema_block(selection)}\n\n"
    if examples:
        user += f"Examples of questions and {name} queries over these tables:\n\n{examples}\n\n"
    user += f"Question: {question}"
    system = SYSTEM.format(dialect=name)
    if marker is not None:
        system += "\n\n" + spotlight_instruction(marker)
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def in_dialect(sql: str, dialect: str) -> str:
    """A catalog example (DuckDB SQL) in ``dialect``, so the model sees the dialect it must write;
    the original when sqlglot cannot write it there."""
    if dialect == "duckdb":
        return sql.strip()
    try:
        return sqlglot.transpile(sql, read="duckdb", write=dialect, pretty=True)[0]
    except sqlglot.errors.SqlglotError:
        return sql.strip()


def repair_messages(
    first: list[Message], failed_sql: str, error: str, rule: str, *, marker: str | None = None
) -> list[Message]:
    """``first`` (the :func:`sql_messages` turns) + the failed query + the error, truncated, and
    datamarked with ``marker`` when given (the query is the model's own and stays as written)."""
    shown = failed_sql.strip()[:MAX_FAILED_SQL_CHARS] or "(no query)"
    reason = error.strip()[:MAX_ERROR_CHARS]
    reason = datamark(reason, marker) if marker is not None else reason
    return [
        *first,
        {"role": "assistant", "content": f"```sql\n{shown}\n```"},
        {"role": "user", "content": REPAIR.format(rule=rule, error=reason)},
    ]
