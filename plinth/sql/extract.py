"""The SQL in a model's reply: the first ```sql fenced block, else the first fenced block that reads as a
query, else the text from the first ``SELECT``/``WITH`` to the end of that paragraph.

Extraction only *finds* text; it never judges it. Whatever it returns goes to the safety layer whole,
so a reply such as ``SELECT 1; DROP TABLE cur`` is refused there as two statements rather than quietly
trimmed to its harmless half here. A reply with no query raises :class:`NoSQLError` (rule ``no_sql``),
which the ask loop feeds back to the model like any other failure::

    extract_sql("Here you go:\\n```sql\\nSELECT 1\\n```")  # 'SELECT 1'
    extract_sql("I cannot help with that.")            # NoSQLError
"""

from __future__ import annotations

import re

from plinth.sql.types import SQLError

__all__ = ["NoSQLError", "extract_sql"]

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_-]*)[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)
# A query starts a line (any case), or is an upper-case SELECT inside prose ("Try: SELECT ...");
# a lower-case "select"/"with" mid-sentence is English, not SQL.
_LINE_START = re.compile(r"^[ \t]*(?:select\b|with\s+\w+\s+as\s*\()", re.IGNORECASE | re.MULTILINE)
_INLINE = re.compile(r"\bSELECT\b")
_SQL_LANGS = {"sql", "duckdb", "sparksql", "postgresql", "postgres", "trino", "presto", "athena", "sqlite"}


class NoSQLError(SQLError):
    """The model's reply held no SQL query."""

    def __init__(self, reason: str = "The reply contained no SQL query in a ```sql block.") -> None:
        super().__init__(reason, "no_sql")


def extract_sql(reply: str) -> str:
    """The query text in ``reply`` (stripped, trailing ``;`` kept off), or :class:`NoSQLError`."""
    blocks = [(lang.lower(), body.strip()) for lang, body in _FENCE.findall(reply)]
    for lang, body in blocks:
        if lang in _SQL_LANGS and body:
            return _tidy(body)
    for lang, body in blocks:
        if not lang and _LINE_START.match(body):
            return _tidy(body)
    match = _LINE_START.search(reply) or _INLINE.search(reply)
    if match is None:
        raise NoSQLError()
    paragraph = re.split(r"\n\s*\n|```", reply[match.start() :].lstrip(), maxsplit=1)[0]
    return _tidy(paragraph)


def _tidy(sql: str) -> str:
    """Drop trailing semicolons and whitespace (one trailing ``;`` is not a second statement)."""
    sql = sql.strip()
    while sql.endswith(";"):
        sql = sql[:-1].rstrip()
    if not sql:
        raise NoSQLError()
    return sql
