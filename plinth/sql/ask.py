"""The ask loop: a question in plain language -> one vetted, read-only query -> rows, chart, answer.

::

    question -> [guard "input"] -> intent check (RefusedError) -> catalog selection -> prompt
      -> model -> extract SQL -> runner (safety + engine) --ok--> chart + answer -> [guard "data"]
                                         \\-- no SQL / unsafe / engine error --> repair prompt, again
                                             (an engine error: [guard "data"], datamarked)

Contract:

- At most ``max_attempts`` model calls. Each is recorded in ``AskResult.history`` (the SQL, or the
  reply when it held none, with the error and rule of a failed attempt). When every attempt fails,
  :class:`AskFailedError` carries that history.
- SQL reaches an engine only through ``runner.run``, which vets it first; the loop never executes
  anything itself, so a model that emits ``DROP``, ``COPY ... TO``, ``read_csv('/etc/passwd')`` or two
  statements only ever produces an :class:`~plinth.sql.types.UnsafeSQLError` that is fed back.
- A timeout is not retried (each retry would cost the full time limit again): it raises
  :class:`AskFailedError` with ``timed_out=True`` at once.
- A prompt too long for the model's context costs no attempt: the catalog selection shrinks and the
  turn is asked again (see :class:`_Prompt`).
- The answer is a deterministic sentence from the rows (:mod:`plinth.sql.answer`); no second model call.
- ``prompt_format`` names the prompt an adapter was trained on (:mod:`plinth.sql.adapter_prompt`; the
  server reads it from the adapter's data card). When it fits the dataset's kind and the dialect is
  DuckDB (what the adapter learnt to write), the first prompt is that fixed format instead of the
  few-shot catalog prompt; ``None`` (every other model) keeps the few-shot prompt.
- ``grammar=True`` constrains every reply, repairs too, to :func:`plinth.sql.grammar.reply_grammar`:
  one ```` ```sql ```` block holding one SELECT over the catalog's own tables and columns -- the shape
  both prompts ask for. A provider that cannot enforce a grammar may ignore it (the local model
  enforces it token by token); the reply is extracted and vetted the same way either way.
- ``guard`` (``None`` = off) is the request's :class:`~plinth.guard.hook.GuardHook`, the same shape
  retrieve-and-generate takes. It sees the question at ``input`` and what is built from the data (the
  rows' text, the answer) at ``data``. Each verdict's ``text`` replaces what was checked; a ``blocked``
  one raises :class:`GuardBlockedError` (a :class:`~plinth.sql.types.RefusedError` with rule
  ``guardrail_blocked``); the hook may also raise.
- Under a guard the model is spotlighted: engine error messages, the one thing from the data that
  reaches a repair prompt (a failed cast quotes the value it could not cast), are checked at ``"data"``
  first (blocked: replaced by :data:`WITHHELD_ERROR`, in the prompt and the history) and datamarked with a
  per-request marker that the system prompt explains (:mod:`plinth.guard.spotlight`). Without a guard
  the prompts are exactly as before.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from plinth.guard import new_marker, spotlight_instruction
from plinth.llm.base import ChatModel, ChatOptions, Message, ProviderError
from plinth.sql.adapter_prompt import FORMAT_KINDS, adapter_messages
from plinth.sql.answer import describe_result
from plinth.sql.catalog import Catalog
from plinth.sql.chart import chart_spec
from plinth.sql.extract import NoSQLError, extract_sql
from plinth.sql.grammar import reply_grammar
from plinth.sql.intent import check_question
from plinth.sql.prompts import repair_messages, sql_messages
from plinth.sql.types import (
    AskAttempt,
    AskResult,
    Dataset,
    QueryFailedError,
    QueryResult,
    QueryTimeoutError,
    RefusedError,
    SQLError,
    UnsafeSQLError,
    VettedQuery,
)

if TYPE_CHECKING:
    from plinth.guard import GuardHook

__all__ = [
    "ASK_OPTIONS",
    "WITHHELD_ERROR",
    "AskFailedError",
    "GuardBlockedError",
    "Runner",
    "ask",
    "attempts_json",
]

# Bounded per attempt: a query fits in a few hundred tokens, and the reply ends with its ```sql block.
ASK_OPTIONS = ChatOptions(max_tokens=320, temperature=0.0, stop=("\n```\n",))
MAX_COLUMNS = 30
GUARD_RULE = "guardrail_blocked"
COMPACT_SIZES = ((1, 12), (0, 8))  # (examples, columns) tried when the prompt overflows the context
WITHHELD_ERROR = "The database's error message quoted data that a guardrail withheld."
WITHHELD_VALUE = "{WITHHELD}"  # a result value a guardrail masked but could not map back cell by cell
_RETRYABLE = (NoSQLError, UnsafeSQLError, QueryFailedError)


class Runner(Protocol):
    """What the loop needs from :class:`plinth.sql.runner.QueryRunner`: vet, then execute."""

    def run(self, sql: str, dialect: str = "duckdb") -> tuple[VettedQuery, QueryResult]: ...


class AskFailedError(SQLError):
    """No attempt produced a result. ``history`` lists every attempt; ``rule`` is ``attempts_exhausted``,
    or ``query_timeout`` when the engine hit its time limit."""

    def __init__(self, reason: str, history: list[AskAttempt], *, timed_out: bool = False) -> None:
        super().__init__(reason, "query_timeout" if timed_out else "attempts_exhausted")
        self.history = history
        self.timed_out = timed_out


class GuardBlockedError(RefusedError):
    """The guard blocked the question (``stage`` "input": nothing ran, ``question`` is None) or the
    answer built from the rows ("data": ``sql`` ran, its result is withheld; ``question`` is the one
    asked, masked if the guard masked it). ``reason`` is the guard's message; ``history`` lists the
    attempts made, so a caller can still say what ran."""

    def __init__(
        self,
        reason: str,
        stage: str,
        history: list[AskAttempt],
        sql: str | None = None,
        question: str | None = None,
    ) -> None:
        super().__init__(reason, GUARD_RULE)
        self.stage, self.history, self.sql, self.question = stage, history, sql, question


async def ask(
    question: str,
    dataset: Dataset,
    chat: ChatModel,
    *,
    runner: Runner,
    catalog: Catalog,
    max_attempts: int = 3,
    guard: GuardHook | None = None,
    dialect: str = "duckdb",
    k_examples: int = 4,
    prompt_format: str | None = None,
    grammar: bool = False,
) -> AskResult:
    """Answer ``question`` over ``dataset`` (see the module contract)."""
    assert max_attempts >= 1
    question = await _screen(guard, "input", question)
    check_question(question)
    marker = new_marker() if guard is not None else None
    prompt = _Prompt(question, catalog, dialect, k_examples, marker)
    if grammar:
        spec = reply_grammar(catalog.schema, dialect)
        prompt.options = dataclasses.replace(ASK_OPTIONS, response_format=spec)
    if prompt_format is not None and FORMAT_KINDS.get(prompt_format) == dataset.kind and dialect == "duckdb":
        prompt.use_adapter_format()
    history: list[AskAttempt] = []
    failed: tuple[str, str, str] | None = None  # the last attempt's (sql, error, rule), for the repair
    for _ in range(max_attempts):
        reply = await prompt.reply(chat, failed)
        sql = ""
        try:
            sql = extract_sql(reply)
            vetted, result = await asyncio.to_thread(runner.run, sql, dialect)
        except _RETRYABLE as exc:
            error = await _screen_error(guard, exc)
            history.append(AskAttempt(sql or reply, error, exc.rule))
            failed = (sql, error, exc.rule)
            continue
        except QueryTimeoutError as exc:
            history.append(AskAttempt(sql, exc.reason, exc.rule))
            raise AskFailedError(f"The query on {dataset.name!r} timed out: {exc.reason}", history,
                                 timed_out=True) from exc  # fmt: skip
        history.append(AskAttempt(vetted.sql))
        return await _result(question, vetted, result, history, guard)
    last = history[-1]
    raise AskFailedError(
        f"No working query after {max_attempts} attempt(s); the last failed with {last.rule}: {last.error}",
        history,
    )


class _Prompt:
    """The first prompt at the largest size the model's context takes, and repairs built on it.

    A context overflow is not the model's mistake, so it costs no attempt: the selection shrinks
    (fewer examples, fewer columns) and the same turn is asked again; past the smallest size the
    error propagates (the server answers 400 ``context_length_exceeded``). Small-context models --
    the 2k-token random checkpoints -- still get a question through this way.
    """

    def __init__(
        self, question: str, catalog: Catalog, dialect: str, k_examples: int, marker: str | None = None
    ) -> None:
        self.question, self.catalog, self.dialect, self.marker = question, catalog, dialect, marker
        self.sizes = [(k_examples, MAX_COLUMNS), *COMPACT_SIZES]
        self.first: list[Message] | None = None
        self.options = ASK_OPTIONS

    def use_adapter_format(self) -> None:
        """Ask in the fixed format an SQL adapter was trained on; it has one size, so an overflow
        propagates. Under a guard its system turn gains the spotlight instruction all the same."""
        self.first = adapter_messages(self.question)
        if self.marker is not None:
            self.first[0]["content"] += "\n\n" + spotlight_instruction(self.marker)
        self.sizes = self.sizes[-1:]

    async def reply(self, chat: ChatModel, failed: tuple[str, str, str] | None) -> str:
        while True:
            if self.first is None:
                k, columns = self.sizes[0]
                selection = await asyncio.to_thread(self.catalog.select, self.question, k, columns)
                self.first = sql_messages(self.question, selection, self.dialect, marker=self.marker)
            messages = repair_messages(self.first, *failed, marker=self.marker) if failed else self.first
            try:
                return (await chat.chat(messages, self.options)).text
            except Exception as exc:
                if not _context_overflow(exc) or len(self.sizes) == 1:
                    raise
                self.sizes, self.first = self.sizes[1:], None


def _context_overflow(exc: Exception) -> bool:
    """The prompt did not fit the model's context: a provider's 400 about the context, or the
    in-process engine's ``PromptTooLongError`` (looked up only if that engine is loaded, so asking a
    remote model never imports torch)."""
    if isinstance(exc, ProviderError):
        return exc.status in (400, 413) and "context" in exc.message.lower()
    engine = sys.modules.get("plinth.engine.llm_engine")
    return engine is not None and isinstance(exc, engine.PromptTooLongError)


async def _result(
    question: str,
    vetted: VettedQuery,
    result: QueryResult,
    history: list[AskAttempt],
    guard: GuardHook | None,
) -> AskResult:
    rows = await _screen_rows(guard, result, history, vetted.sql, question)
    answer = describe_result(result.columns, result.types, rows, result.truncated)
    answer = await _screen(guard, "data", answer, history, vetted.sql, question)
    return AskResult(
        question=question,
        sql=vetted.sql,
        columns=result.columns,
        rows=rows,
        chart=chart_spec(result.columns, result.types, rows),
        answer=answer,
        attempts=len(history),
        history=history,
        truncated=result.truncated,
        types=result.types,
    )


async def _screen(
    guard: GuardHook | None,
    stage: str,
    text: str,
    history: Sequence[AskAttempt] = (),
    sql: str | None = None,
    question: str | None = None,
) -> str:
    """``text`` after the guard hook (see :func:`_verdict`); blocked, the request is refused with the
    verdict's message (:class:`GuardBlockedError`, carrying what ran so far)."""
    out, blocked = await _verdict(guard, stage, text)
    if blocked:
        message = out or "A guardrail blocked this request."
        raise GuardBlockedError(message, stage, list(history), sql, question)
    return out


async def _screen_rows(
    guard: GuardHook | None, result: QueryResult, history: Sequence[AskAttempt], sql: str, question: str
) -> list[list[Any]]:
    """The result's rows with their text screened as untrusted data, like the answer built from them: a
    tag value or description can hold PII or a planted instruction. One check per text column (its
    distinct values, one per line), not per cell, so a 1,000-row result costs a few checks; masked values
    replace the originals, and a block refuses the whole answer (the rows would carry what was found)."""
    if guard is None:
        return result.rows
    rows = [list(row) for row in result.rows]
    for col, kind in enumerate(result.types):
        if kind != "string":
            continue
        values = sorted({row[col] for row in rows if isinstance(row[col], str) and row[col].strip()})
        if not values:
            continue
        lines = [" ".join(value.split()) for value in values]  # one value per line, whatever it held
        screened = await _screen(guard, "data", "\n".join(lines), history, sql, question)
        masked = screened.split("\n")
        if masked == lines:
            continue
        if len(masked) != len(lines):  # a mask that spans lines cannot be mapped back: withhold them all
            masked = [WITHHELD_VALUE] * len(lines)
        replace = dict(zip(values, masked, strict=True))
        for row in rows:
            if isinstance(row[col], str) and row[col] in replace:
                row[col] = replace[row[col]]
    return rows


async def _screen_error(guard: GuardHook | None, exc: SQLError) -> str:
    """The reason to show the model (and the history) for a failed attempt. Only an engine error can
    quote the data, so only it is checked, at ``"data"``; a blocked one is dropped, not fatal: the
    model can still repair its query from the rule alone."""
    if not isinstance(exc, QueryFailedError):
        return exc.reason
    out, blocked = await _verdict(guard, "data", exc.reason)
    return WITHHELD_ERROR if blocked else out


async def _verdict(guard: GuardHook | None, stage: str, text: str) -> tuple[str, bool]:
    """``(text to use, blocked)`` from the guard hook at ``stage`` (``text`` unchanged without one)."""
    if guard is None:
        return text, False
    verdict = await guard.input(text) if stage == "input" else (await guard.data([text]))[0]
    return verdict.text or "", verdict.blocked


def attempts_json(history: Sequence[AskAttempt]) -> list[dict[str, Any]]:
    """The history as the API shows it: ``[{"sql", "error", "rule"}]``."""
    return [{"sql": a.sql, "error": a.error, "rule": a.rule} for a in history]
