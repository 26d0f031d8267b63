"""Evaluation datasets: JSONL, one item per line.

Each line is an object with ``input`` (required, the question or prompt) and optionally ``id``,
``reference`` (the expected answer), ``contexts`` (passages the answer should be faithful to),
``human_score`` (a person's 1-5 score, for judge agreement), ``relevant`` (ids of the documents a
retriever should find) and ``reference_sql`` / ``ordered`` (the gold query of a SQL question)::

    {"id": "q1", "input": "Who directed Alien (1979)?", "reference": "Ridley Scott", "human_score": 5}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["EvalItem", "check_items_file", "load_items"]

MAX_ITEMS = 10_000
_FIELDS = {"id", "input", "reference", "contexts", "human_score", "relevant", "reference_sql", "ordered"}


@dataclass(frozen=True, slots=True)
class EvalItem:
    id: str
    input: str
    reference: str | None = None
    contexts: list[str] = field(default_factory=list)
    human_score: float | None = None
    relevant: list[str] = field(default_factory=list)
    reference_sql: str | None = None
    ordered: bool = False


def load_items(path: str | Path) -> list[EvalItem]:
    """The file's items; ValueError naming the first bad line (see :func:`check_items_file`)."""
    problems = check_items_file(path)
    if problems:
        raise ValueError("; ".join(problems[:5]))
    return [_item(row, n) for n, row in enumerate(_rows(Path(path)), start=1)]


def check_items_file(path: str | Path) -> list[str]:
    """What is wrong with an evaluation file, one line each (empty: it is valid)."""
    problems: list[str] = []
    count, ids = 0, set()
    try:
        for n, row in enumerate(_rows(Path(path)), start=1):
            count += 1
            problems += [f"line {n}: {p}" for p in _row_problems(row)]
            item_id = str(row.get("id", n)) if isinstance(row, dict) else str(n)
            if item_id in ids:
                problems.append(f"line {n}: duplicate id {item_id!r}")
            ids.add(item_id)
    except ValueError as exc:
        return [str(exc)]
    if count == 0:
        problems.append("the file has no items")
    if count > MAX_ITEMS:
        problems.append(f"the file has {count} items; at most {MAX_ITEMS}")
    return problems


def _row_problems(row: Any) -> list[str]:
    if not isinstance(row, dict):
        return ["each line must be a JSON object"]
    out = []
    if not isinstance(row.get("input"), str) or not row["input"].strip():
        out.append("'input' must be a non-empty string")
    if unknown := sorted(set(row) - _FIELDS):
        out.append(f"unknown field(s) {', '.join(unknown)}")
    for key in ("reference", "reference_sql"):
        if key in row and row[key] is not None and not isinstance(row[key], str):
            out.append(f"'{key}' must be a string")
    for key in ("contexts", "relevant"):
        if key in row and not (isinstance(row[key], list) and all(isinstance(c, str) for c in row[key])):
            out.append(f"'{key}' must be a list of strings")
    score = row.get("human_score")
    if score is not None and (isinstance(score, bool) or not isinstance(score, int | float)):
        out.append("'human_score' must be a number")
    return out


def _item(row: dict[str, Any], n: int) -> EvalItem:
    score = row.get("human_score")
    return EvalItem(
        id=str(row.get("id", n)),
        input=row["input"],
        reference=row.get("reference"),
        contexts=list(row.get("contexts") or []),
        human_score=float(score) if score is not None else None,
        relevant=list(row.get("relevant") or []),
        reference_sql=row.get("reference_sql"),
        ordered=bool(row.get("ordered", False)),
    )


def _rows(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"line {n}: not valid JSON ({exc.msg})") from exc
