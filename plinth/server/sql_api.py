"""``/v1/sql/*``: ask a dataset in plain language, run vetted SQL, manage datasets -- per tenant.

- ``POST /v1/sql/ask`` ``{"question", "dataset", "model", "engine"?, "grammar"?}`` ->
  ``{"object": "sql.answer", "question", "dataset", "model", "sql", "columns", "types", "rows",
  "truncated", "chart", "answer", "attempts", "history": [{"sql", "error", "rule"}]}``. ``model`` is a
  served base model or adapter, resolved as chat completions resolve it; an adapter whose data card
  names an SQL prompt format (``plinth_task.json``, see :mod:`plinth.sql.adapter_prompt`) is asked in
  that format. ``grammar`` (a boolean; absent: the server's ``sql_grammar`` setting) constrains the
  model's reply to one SELECT over the dataset's own tables and columns (:mod:`plinth.sql.grammar`).

  Guardrails: ``"guardrailConfig": {"guardrailIdentifier", "guardrailVersion"?, "trace"?}`` (as on chat
  completions), else the tenant's default guardrail. Under one, the question is checked at ``input``
  (masked: the masked question is asked), each engine error fed back to the model and the answer built
  from the rows at ``data``, and the prompts are spotlighted (see :mod:`plinth.sql.ask`); the response
  adds ``guardrail: {"action", "stage", "assessments"}``. A block is still a 200, as on chat and
  retrieve-and-generate, so a client renders it like any answer: ``answer`` is the policy's message,
  ``columns``/``types``/``rows`` are empty, ``chart`` is null, and ``guardrail.stage`` says what was
  blocked: ``input`` (the question; ``question`` and ``sql`` are null, nothing ran and the model was
  not called) or ``data`` (the result; ``sql`` is the query that ran).
- ``POST /v1/sql/query`` ``{"sql", "dataset", "dialect"?}`` -> ``{"object": "sql.result", "sql",
  "source_sql", "dialect", "columns", "types", "rows", "truncated", "elapsed_ms", "chart"}``. The SQL
  goes through the same safety layer as generated SQL (``dialect``: the one it is written in, default
  ``duckdb``; ``athena`` queries with ``${table_name}`` work as in the CUR Query Library).
- ``GET /v1/sql/datasets`` -> ``{"object": "list", "data": [dataset]}``; ``GET|DELETE …/{name}``.
- ``POST /v1/sql/datasets`` ``{"name", "path", "kind"?, "description"?}`` -> 201 ``dataset``. The path
  is read on the server's machine, so only admin keys may register one (403), and it must be absolute.
  Registering an existing name replaces it. Table paths are shown to admin keys only.

Errors (OpenAI-shaped; ``code`` is the stable rule name):

- unknown dataset -> 404 ``not_found`` (param ``dataset``); unknown model -> 404 ``model_not_found``;
- a refused question (modify data, read files) -> 400, code ``modification_refused`` /
  ``file_access_refused``, param ``question``;
- SQL the safety layer refuses -> 400, code = its rule (``statement_kind``, ``multiple_statements``,
  ``table_function`` ...), param ``sql``; an engine error on given SQL -> 400 ``engine_error``;
- no working query after every attempt -> 422 ``attempts_exhausted``: the request was understood but
  could not be answered; the error carries ``attempts`` (each SQL tried and why it failed);
- the engine's time limit -> 504 ``query_timeout`` (504, not 408: the client sent its request in time,
  the query behind the server did not finish; 408 also invites clients to resend the same request).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import SkipValidation

from plinth import sql as sql_pkg
from plinth.server.auth import require_tenant
from plinth.server.bodies import JSONBody, text
from plinth.server.errors import APIError, error_body
from plinth.server.guard_hooks import parse_guardrail_config, request_guard
from plinth.server.state import get_state
from plinth.server.tenant_quotas import check_quota
from plinth.sql import (
    DATASET_KINDS,
    AskResult,
    Dataset,
    QueryFailedError,
    QueryTimeoutError,
    RefusedError,
    UnsafeSQLError,
    read_prompt_format,
)

if TYPE_CHECKING:
    from plinth.sql import GuardBlockedError, SQLService

# The asking machinery (sqlglot, duckdb, pyarrow) is reached through the package's lazy exports at
# request time, so importing the server does not load it (peak RSS of a plain `plinth serve`, issue 18).

__all__ = ["router"]

router = APIRouter(prefix="/v1/sql", dependencies=[Depends(require_tenant)])
MAX_QUESTION_CHARS = 2000
MAX_SQL_CHARS = 20000


class AttemptsError(APIError):
    """An APIError whose body also lists the attempts the ask loop made."""

    def __init__(self, status: int, message: str, code: str, attempts: list[dict[str, Any]]) -> None:
        super().__init__(status, message, param="question", code=code)
        self.attempts = attempts

    def response(self) -> JSONResponse:
        body = error_body(self)
        body["error"]["attempts"] = self.attempts
        return JSONResponse(body, status_code=self.status)


class AskBody(JSONBody):
    question: str
    dataset: str
    model: str  # a served base model or adapter
    engine: Literal["duckdb"] = "duckdb"
    guardrailConfig: dict[str, Any] | None = None
    grammar: bool | None = None  # None: the sql_grammar setting

    @classmethod
    def check(cls, body: dict[str, Any]) -> None:
        text(body, "question", MAX_QUESTION_CHARS)
        text(body, "dataset"), text(body, "model")
        if not isinstance(body.get("grammar", False), bool | None):
            raise APIError(400, "grammar must be true or false.", param="grammar")
        if body.get("engine", "duckdb") != "duckdb":
            raise APIError(400, "engine: only 'duckdb' is served over HTTP.", param="engine")
        parse_guardrail_config(body.get("guardrailConfig"))


class QueryBody(JSONBody):
    sql: str
    dataset: str
    dialect: str = "duckdb"  # the dialect the SQL is written in

    @classmethod
    def check(cls, body: dict[str, Any]) -> None:
        text(body, "sql", MAX_SQL_CHARS), text(body, "dataset")
        dialect = body.get("dialect", "duckdb")
        if not isinstance(dialect, str) or not dialect:
            raise APIError(400, "dialect must be a string such as 'duckdb' or 'athena'.", param="dialect")


@router.post("/ask")
async def ask_route(body: AskBody, request: Request) -> dict[str, Any]:
    question, name, model_name = body.question, body.dataset, body.model
    config = parse_guardrail_config(body.guardrailConfig)
    tenant = request.state.tenant
    service = sql_service(request)
    await asyncio.to_thread(service.get, tenant, name)  # 404 for an unknown (or another tenant's) dataset
    chat = get_state(request).chat_model(model_name, tenant)  # 404 model_not_found
    prompt_format = await asyncio.to_thread(_adapter_prompt_format, request, model_name)
    guard = await request_guard(request, config)  # None: no guardrail applies
    try:
        result = await service.ask(
            tenant, name, question, chat, guard=guard, prompt_format=prompt_format, grammar=body.grammar
        )
    except sql_pkg.GuardBlockedError as exc:
        assert guard is not None
        return {**_blocked(exc, name, model_name), "guardrail": guard.field()}
    except RefusedError as exc:
        raise APIError(400, exc.reason, param="question", code=exc.rule) from exc
    except sql_pkg.AskFailedError as exc:
        status = 504 if exc.timed_out else 422
        raise AttemptsError(status, exc.reason, exc.rule, sql_pkg.attempts_json(exc.history)) from exc
    answer = _answer(result, name, model_name)
    return answer if guard is None else {**answer, "guardrail": guard.field()}


def _adapter_prompt_format(request: Request, model_name: str) -> str | None:
    """The SQL prompt format ``model_name`` was trained on, when it names one of the tenant's adapters
    (resolved as :meth:`ServerState.model` resolves it: a base model of that name wins) whose folder
    holds a data card; None for base models and every other adapter. Reads a file: a worker thread."""
    state = get_state(request)
    if model_name in state.models or state.adapters is None:
        return None
    entry = state.adapters.resolve(request.state.tenant, model_name)
    return read_prompt_format(entry.path) if entry is not None else None


@router.post("/query")
async def query_route(body: QueryBody, request: Request) -> dict[str, Any]:
    sql, name, dialect = body.sql, body.dataset, body.dialect
    runner = await asyncio.to_thread(sql_service(request).runner, request.state.tenant, name)
    try:
        vetted, result = await asyncio.to_thread(runner.run, sql, dialect)
    except UnsafeSQLError as exc:
        raise APIError(400, f"The SQL was refused: {exc.reason}", param="sql", code=exc.rule) from exc
    except QueryTimeoutError as exc:
        raise APIError(504, exc.reason, param="sql", code="query_timeout", type="timeout_error") from exc
    except QueryFailedError as exc:
        raise APIError(400, f"The query failed: {exc.reason}", param="sql", code=exc.rule) from exc
    except ValueError as exc:  # an unknown dialect name
        raise APIError(400, str(exc), param="dialect") from exc
    return {
        "object": "sql.result",
        "dataset": name,
        "sql": vetted.sql,
        "source_sql": vetted.source_sql,
        "dialect": vetted.dialect,
        "columns": result.columns,
        "types": result.types,
        "rows": result.rows,
        "truncated": result.truncated,
        "elapsed_ms": result.elapsed_ms,
        "chart": sql_pkg.chart_spec(result.columns, result.types, result.rows),
    }


@router.get("/datasets")
async def list_datasets(request: Request) -> dict[str, Any]:
    datasets = await asyncio.to_thread(sql_service(request).list_datasets, request.state.tenant)
    return {"object": "list", "data": [_card(request, d) for d in datasets]}


class DatasetBody(JSONBody):
    """Values (``name`` and ``path`` are required) are checked by the route after the admin check, so a
    non-admin key sees the 403 whatever it sent."""

    name: SkipValidation[str | None] = None
    path: SkipValidation[str | None] = None  # absolute, on the server's machine
    kind: SkipValidation[str | None] = None  # one of DATASET_KINDS; None: detected
    description: SkipValidation[str] = ""


@router.post("/datasets", status_code=201)
async def register_dataset(dataset_body: DatasetBody, request: Request) -> dict[str, Any]:
    body = dataset_body.raw()
    if not request.state.tenant.is_admin:
        message = "Only admin keys may register datasets: a dataset path is read on the server's machine."
        raise APIError(403, message, param="path")
    name, path = text(body, "name"), text(body, "path")
    if not Path(path).is_absolute():
        raise APIError(
            400, f"path {path!r} must be absolute (it is read on the server's machine)", param="path"
        )
    kind = body.get("kind")
    if kind is not None and kind not in DATASET_KINDS:
        raise APIError(400, f"kind must be one of {', '.join(DATASET_KINDS)}.", param="kind")
    description = body.get("description", "")
    if not isinstance(description, str):
        raise APIError(400, "description must be a string.", param="description")
    service, tenant = sql_service(request), request.state.tenant
    await asyncio.to_thread(check_quota, request, "datasets")
    dataset = await asyncio.to_thread(
        service.register, tenant, name, path, kind=kind, description=description
    )
    return _card(request, dataset)


@router.get("/datasets/{name}")
async def get_dataset(name: str, request: Request) -> dict[str, Any]:
    return _card(request, await asyncio.to_thread(sql_service(request).get, request.state.tenant, name))


@router.delete("/datasets/{name}")
async def delete_dataset(name: str, request: Request) -> dict[str, Any]:
    await asyncio.to_thread(sql_service(request).delete, request.state.tenant, name)
    return {"id": name, "object": "sql.dataset", "deleted": True}


# --- helpers --------------------------------------------------------------------------------------


def sql_service(request: Request) -> SQLService:
    service = request.app.state.sql
    assert service is not None, "create_app always sets the SQL service"
    return service


def _answer(result: AskResult, dataset: str, model: str) -> dict[str, Any]:
    return {
        "object": "sql.answer",
        "question": result.question,
        "dataset": dataset,
        "model": model,
        "sql": result.sql,
        "columns": result.columns,
        "types": result.types,
        "rows": result.rows,
        "truncated": result.truncated,
        "chart": result.chart,
        "answer": result.answer,
        "attempts": result.attempts,
        "history": sql_pkg.attempts_json(result.history),
    }


def _blocked(exc: GuardBlockedError, dataset: str, model: str) -> dict[str, Any]:
    """A blocked ask in the answer's shape (see the module docstring): the message, no result."""
    return {
        "object": "sql.answer",
        "question": exc.question,
        "dataset": dataset,
        "model": model,
        "sql": exc.sql,
        "columns": [],
        "types": [],
        "rows": [],
        "truncated": False,
        "chart": None,
        "answer": exc.reason,
        "attempts": len(exc.history),
        "history": sql_pkg.attempts_json(exc.history),
    }


def _card(request: Request, dataset: Dataset) -> dict[str, Any]:
    admin = request.state.tenant.is_admin
    tables = {
        name: {"format": source.format, **({"path": source.path} if admin else {})}
        for name, source in dataset.tables.items()
    }
    return {
        "id": dataset.name,
        "object": "sql.dataset",
        "name": dataset.name,
        "kind": dataset.kind,
        "description": dataset.description,
        "main_table": dataset.main_table,
        "tables": tables,
    }
