"""Refuse questions that ask to change data or read files, before any model call.

This is a courtesy, not the security boundary: the safety layer refuses every non-SELECT (and every
file-reading function) whatever the question was. Refusing up front gives the user a clear answer
instead of three failed attempts, so the check aims at *requests*, not at words:

- a SQL statement written into the question (``DELETE FROM``, ``DROP TABLE``, ``UPDATE cur SET``,
  ``INSERT INTO``, ``ALTER TABLE``, ``TRUNCATE``, ``GRANT ... ON``, ``COPY ... TO``, ``ATTACH``, ...);
- an imperative at the start of a sentence (after "please", "can you", "I want to", ...) of a verb
  that changes data -- delete, drop, truncate, update, insert, alter, grant, revoke, erase, wipe, purge,
  overwrite, modify, rename, set, remove -- whose object, within a few words, is data: the table, rows,
  records, columns, the dataset, the costs, the tags ...;
- a file path or a file-reading function (``/etc/passwd``, ``read_csv(``, "contents of the file").

Questions *about* such things stay answerable: "What was deleted last month?", "Cost of DeleteObject
requests", "Which resources were removed?", "How much did the update to m7g save?" start with a
question word, use a past tense, or name an operation, so none is an imperative to modify::

    check_question("Delete all rows from cur")        # RefusedError(rule="modification_refused")
    check_question("How much did deleted EBS snapshots cost?")  # passes
"""

from __future__ import annotations

import re

from plinth.sql.types import RefusedError

__all__ = ["FILE_RULE", "MODIFY_RULE", "check_question"]

MODIFY_RULE = "modification_refused"
FILE_RULE = "file_access_refused"

_STATEMENT = re.compile(
    r"\b(delete\s+from|drop\s+(table|view|schema|database|index|macro)|truncate\s+table|"
    r"update\s+\w+\s+set\b|insert\s+(into|or\s+replace)|alter\s+table|"
    r"create\s+(or\s+replace\s+)?(temp\w*\s+)?(table|view|schema|database|index|macro|secret)|"
    r"grant\s+[\w\s,]+?\s+on\b|revoke\s+[\w\s,]+?\s+(on|from)\b|copy\s+[\w.()*\s]+?\s+to\s+'|"
    r"attach\s+(database\s+)?'|install\s+\w+|load\s+\w+\s*;|pragma\s+\w+|export\s+database)",
    re.IGNORECASE,
)
_POLITE = r"(?:(?:please|kindly|now|then|just|also|and|so|ok|okay|go\s+ahead\s+and|can\s+you|could\s+you|" \
    r"would\s+you|will\s+you|i\s+want\s+(?:you\s+)?to|i'?d\s+like\s+(?:you\s+)?to|i\s+need\s+(?:you\s+)?to|" \
    r"we\s+need\s+to|let'?s|help\s+me)\s+)*"  # fmt: skip
_VERBS = r"(?:delete|drop|truncate|update|insert|alter|grant|revoke|erase|wipe|purge|overwrite|modify|" \
    r"rename|set|remove)"  # fmt: skip
_DATA = r"(?:tables?|rows?|records?|entries|entry|columns?|data|dataset|database|schema|views?|" \
    r"line\s+items?|costs?|values?|tags?|cur2?|focus|everything|permissions?|access|privileges?|" \
    r"admin)"  # fmt: skip
_IMPERATIVE = re.compile(
    rf"(?:^|[.!?;:\n]\s*){_POLITE}(?P<verb>{_VERBS})\b(?:\s+[\w'-]+){{0,4}}?\s+{_DATA}\b", re.IGNORECASE
)
_FILE = re.compile(
    r"(?:^|[\s'\"(=])/(?:etc|proc|sys|root|home|var|tmp|dev|usr)/|\b[a-z]:\\|\bfile://|"
    r"\b(read_(csv|csv_auto|parquet|json\w*|text|blob|ndjson)|glob|parquet_scan)\s*\(|"
    r"\b(contents?\s+of|read|open|cat|dump)\s+(the\s+|a\s+|this\s+)?(local\s+|system\s+)?files?\b",
    re.IGNORECASE,
)

REFUSE_MODIFY = (
    "This question asks to change data ({what}); I can only read it, one SELECT at a time. "
    "If you meant to leave something out of a result, ask for it 'excluding ...' instead."
)
REFUSE_FILE = "This question asks to read files on the server; I can only query the dataset's tables."


def check_question(question: str) -> None:
    """Raise :class:`RefusedError` when ``question`` asks to modify data or read files."""
    if match := _STATEMENT.search(question):
        raise RefusedError(REFUSE_MODIFY.format(what=" ".join(match.group(0).split()).upper()), MODIFY_RULE)
    if match := _IMPERATIVE.search(question):
        raise RefusedError(REFUSE_MODIFY.format(what=f"'{match.group('verb').lower()}'"), MODIFY_RULE)
    if _FILE.search(question):
        raise RefusedError(REFUSE_FILE, FILE_RULE)
