"""Execution accuracy of the ask loop: does the model's query return what the gold query returns?

Each case is a question and a gold query. The question goes through the real ask path
(:func:`plinth.sql.ask.ask`: prompt, model, extraction, safety, engine, repairs) with the given
:class:`~plinth.llm.base.ChatModel`; the gold query runs through the same runner. A prediction is right
when its rows equal the gold rows, compared as:

- column names ignored, and column *order* too (a column matches a gold column with the same values);
- rows as a multiset, unless the case is ``ordered`` (the question asks for an order);
- numbers rounded to 2 decimals (ints and floats alike), midnight timestamps read as their date.

A question the loop cannot answer (every attempt failed, refused, timed out) is wrong, with its rule::

    report = await evaluate_sql(load_cases(), chat, runner=runner, catalog=catalog)
    report.accuracy, report.outcomes[0].correct, report.outcomes[0].error

The held-out set (``data/cost_sql_heldout.yaml``) is never trained on; its gold queries run on the
dataset :data:`EVAL_DATA` describes (generated CUR, another seed than the training data's).
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from plinth.llm.base import ChatModel
from plinth.sql import AskFailedError, Catalog, DataSpec, QueryRunner, SQLError
from plinth.sql.ask import ask

__all__ = [
    "EVAL_DATA",
    "AccuracyReport",
    "CaseOutcome",
    "SQLCase",
    "evaluate_sql",
    "load_cases",
    "normalize_value",
    "same_result",
]

EVAL_DATA = DataSpec(seed=13)
_MIDNIGHT = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ]00:00:00(?:\.0+)?$")
MAX_PERMUTED_COLUMNS = 6


@dataclass(frozen=True, slots=True)
class SQLCase:
    id: str
    question: str
    sql: str
    ordered: bool = False


@dataclass(slots=True)
class CaseOutcome:
    """One question's result: ``sql`` is the query that ran (None when none did), ``error``/``rule``
    why the loop gave up, ``attempts`` the model calls it made, ``failed`` the rule of each attempt
    that failed (``no_sql``, ``parse_error``, ``query_failed`` ...), in order."""

    id: str
    question: str
    correct: bool
    sql: str | None = None
    error: str | None = None
    rule: str | None = None
    attempts: int = 0
    failed: list[str] = field(default_factory=list)


@dataclass(slots=True)
class AccuracyReport:
    model: str
    prompt_format: str | None
    outcomes: list[CaseOutcome] = field(default_factory=list)
    grammar: bool = False

    @property
    def accuracy(self) -> float:
        return sum(o.correct for o in self.outcomes) / len(self.outcomes) if self.outcomes else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "prompt_format": self.prompt_format, "grammar": self.grammar,
                "accuracy": self.accuracy, "correct": sum(o.correct for o in self.outcomes),
                "total": len(self.outcomes), "failed_attempts": self.failed_attempts(),
                "outcomes": [asdict(o) for o in self.outcomes]}  # fmt: skip

    def failed_attempts(self) -> dict[str, int]:
        """How many attempts failed, by rule, over every question."""
        return dict(Counter(rule for o in self.outcomes for rule in o.failed).most_common())


def load_cases(path: str | Path | None = None) -> list[SQLCase]:
    """The cases of a YAML file (default: the packaged held-out set)."""
    if path is None:
        text = resources.files("plinth.evals").joinpath("data", "cost_sql_heldout.yaml").read_text("utf-8")
    else:
        text = Path(path).read_text("utf-8")
    return [
        SQLCase(c["id"], c["question"].strip(), c["sql"].strip(), bool(c.get("ordered", False)))
        for c in yaml.safe_load(text)["cases"]
    ]


async def evaluate_sql(
    cases: Sequence[SQLCase],
    chat: ChatModel,
    *,
    runner: QueryRunner,
    catalog: Catalog,
    prompt_format: str | None = None,
    max_attempts: int = 3,
    concurrency: int = 1,
    grammar: bool = False,
) -> AccuracyReport:
    """Ask every case with ``chat`` and score it against its gold query (see the module doc).

    ``concurrency`` questions are asked at once (a batching engine answers several for little more than
    one); outcomes keep the cases' order either way. ``grammar`` asks under the SQL grammar
    (:func:`plinth.sql.grammar.reply_grammar`)."""
    report = AccuracyReport(chat.name, prompt_format, grammar=grammar)
    slots = asyncio.Semaphore(max(1, concurrency))

    async def one(case: SQLCase) -> CaseOutcome:
        async with slots:
            return await _score(case, chat, runner, catalog, prompt_format, max_attempts, grammar)

    report.outcomes.extend(await asyncio.gather(*(one(case) for case in cases)))
    return report


async def _score(
    case: SQLCase,
    chat: ChatModel,
    runner: QueryRunner,
    catalog: Catalog,
    prompt_format: str | None,
    max_attempts: int,
    grammar: bool,
) -> CaseOutcome:
    gold = runner.run(case.sql)[1].rows
    try:
        result = await ask(
            case.question, runner.dataset, chat, runner=runner, catalog=catalog,
            max_attempts=max_attempts, prompt_format=prompt_format, grammar=grammar,
        )  # fmt: skip
    except AskFailedError as exc:
        last = exc.history[-1] if exc.history else None
        sql = last.sql if last else None
        failed = [a.rule for a in exc.history if a.rule]
        return CaseOutcome(case.id, case.question, False, sql, exc.reason, exc.rule, len(exc.history), failed)
    except SQLError as exc:  # refused before any model call
        return CaseOutcome(case.id, case.question, False, None, exc.reason, exc.rule)
    correct = same_result(gold, result.rows, ordered=case.ordered)
    failed = [a.rule for a in result.history if a.rule]
    return CaseOutcome(case.id, case.question, correct, result.sql, None, None, result.attempts, failed)


def same_result(
    gold: Sequence[Sequence[Any]], predicted: Sequence[Sequence[Any]], *, ordered: bool = False
) -> bool:
    """Whether ``predicted`` rows equal ``gold`` rows under some matching of columns (see the module)."""
    g = [tuple(normalize_value(v) for v in row) for row in gold]
    p = [tuple(normalize_value(v) for v in row) for row in predicted]
    if len(g) != len(p):
        return False
    if not g:
        return True
    width = len(g[0])
    if len(p[0]) != width:
        return False
    for order in _column_matchings(g, p, width):
        moved = [tuple(row[j] for j in order) for row in p]
        if (moved == g) if ordered else (Counter(moved) == Counter(g)):
            return True
    return False


def normalize_value(value: Any) -> Any:
    """A value as compared: numbers rounded to cents (bools stay bools), midnight timestamps as dates."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return round(round(float(value), 6), 2) + 0.0  # + 0.0: -0.0 equals 0.0 and hashes alike
    if isinstance(value, str) and (match := _MIDNIGHT.match(value)):
        return match.group(1)
    return value


def _column_matchings(g: list[tuple[Any, ...]], p: list[tuple[Any, ...]], width: int) -> Any:
    """Orders of the predicted columns under which each one holds the same values as its gold column."""
    gold_cols = [Counter(row[i] for row in g) for i in range(width)]
    pred_cols = [Counter(row[j] for row in p) for j in range(width)]
    if width > MAX_PERMUTED_COLUMNS:
        return [tuple(range(width))] if gold_cols == pred_cols else []
    options = [[j for j in range(width) if pred_cols[j] == gold_cols[i]] for i in range(width)]
    return (order for order in itertools.product(*options) if len(set(order)) == width)
