"""Evaluations, per tenant: ``POST|GET /v1/evaluations``, ``GET /v1/evaluations/{id}``,
``GET .../results`` (JSON per item), ``GET .../report`` (the HTML report), ``POST .../cancel``.

The body is an :class:`~plinth.evals.EvalSpec` whose ``dataset`` is the id of an uploaded file with
purpose ``evals``; targets and judge name served models or the tenant's adapters, knowledge bases and
SQL datasets (checked before the job is created: an unknown one is a 400 naming the field). The job is an
``evaluation`` job in the one job system (queued, cancelled and resumed like fine-tuning), run in the
server process on the server's loaded models (see :mod:`plinth.jobs.evaluation`)::

    POST /v1/evaluations {"dataset": "file-…", "targets": [{"model": "smollm2-135m-instruct"}],
                          "judge": {"model": "smollm2-135m-instruct", "criteria": ["correctness"]}}
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from plinth.control import Tenant
from plinth.control.jobs import JobRow, create_job, get_job, list_jobs, request_cancel
from plinth.evals import (
    EvalSpec,
    EvaluationStopped,
    Judge,
    TargetSpec,
    model_target,
    rag_target,
    render_report,
    sql_target,
)
from plinth.evals import summarize as summarize_records
from plinth.jobs.evaluation import KIND, EvalRuntime, read_records, records_path
from plinth.knowledge import MIN_SCORES, NotFoundError
from plinth.server.auth import require_tenant
from plinth.server.bodies import model_body
from plinth.server.errors import APIError
from plinth.server.files_api import tenant_file
from plinth.server.generation import chat_model
from plinth.server.quotas import acting_for
from plinth.server.state import ServerState, get_state
from plinth.server.tenant_quotas import check_quota
from plinth.sql import DatasetNotFoundError, read_prompt_format

__all__ = ["evaluation_object", "router", "runtime_builder"]

router = APIRouter(prefix="/v1/evaluations", dependencies=[Depends(require_tenant)])


@router.post("", openapi_extra=model_body(EvalSpec))
async def create_evaluation(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise APIError(400, "The request body is not valid JSON.", code="invalid_json") from exc
    spec = _spec(body)
    state, tenant = get_state(request), request.state.tenant
    file = tenant_file(request, spec.dataset, "dataset")
    if file.purpose != "evals":
        message = f"File {spec.dataset} has purpose {file.purpose!r}; upload it with purpose 'evals'."
        raise APIError(400, message, param="dataset")
    await asyncio.to_thread(_check_names, request, spec)
    job_id = f"eval-{secrets.token_hex(12)}"
    items = min(await asyncio.to_thread(_count_lines, Path(file.path)), spec.limit or 1 << 30)
    record = {
        "spec": spec.model_dump(mode="json"), "dataset_path": file.path, "tenant": tenant.name,
        "total": items * len(spec.targets),
    }  # fmt: skip
    await asyncio.to_thread(check_quota, request, "concurrent_jobs")
    job = create_job(state.control_plane, job_id=job_id, tenant_id=tenant.id, kind=KIND, request=record)
    if state.jobs is not None:
        state.jobs.wake()
    return evaluation_object(job, Path(state.settings.data_dir))


@router.get("")
def list_evaluations(
    request: Request, after: str | None = None, limit: int = Query(20, ge=1, le=100)
) -> dict[str, Any]:
    state = get_state(request)
    rows, more = list_jobs(state.control_plane, request.state.tenant.id, KIND, after=after, limit=limit)
    data_dir = Path(state.settings.data_dir)
    return {"object": "list", "data": [evaluation_object(r, data_dir) for r in rows], "has_more": more}


@router.get("/{evaluation_id}")
def retrieve_evaluation(evaluation_id: str, request: Request) -> dict[str, Any]:
    return evaluation_object(_job(request, evaluation_id), _data_dir(request))


@router.get("/{evaluation_id}/results")
def evaluation_results(evaluation_id: str, request: Request) -> dict[str, Any]:
    """Every record (one per target and item) so far, with the summary of those records."""
    job = _job(request, evaluation_id)
    spec, records = EvalSpec.model_validate(job.request["spec"]), _records(job, _data_dir(request))
    return {"object": "evaluation.results", "id": job.id, **summarize_records(spec, records), "data": records}


@router.get("/{evaluation_id}/report", response_class=HTMLResponse)
def evaluation_report(evaluation_id: str, request: Request) -> HTMLResponse:
    """The self-contained HTML report (drawn from the results so far while the job runs)."""
    job = _job(request, evaluation_id)
    path = (job.result or {}).get("report_path")
    if path and Path(path).exists():
        return HTMLResponse(Path(path).read_text(encoding="utf-8"))
    spec, records = EvalSpec.model_validate(job.request["spec"]), _records(job, _data_dir(request))
    title = f"{spec.name or job.id} ({job.status})"
    return HTMLResponse(render_report(summarize_records(spec, records), records, title))


@router.post("/{evaluation_id}/cancel")
def cancel_evaluation(evaluation_id: str, request: Request) -> dict[str, Any]:
    state, tenant = get_state(request), request.state.tenant
    _job(request, evaluation_id)
    job = request_cancel(state.control_plane, tenant.id, evaluation_id)
    assert job is not None
    if job.status in ("succeeded", "failed"):
        raise APIError(400, f"Evaluation {evaluation_id} has already {job.status}.", param="evaluation_id")
    if state.jobs is not None:
        state.jobs.wake()
    return evaluation_object(job, Path(state.settings.data_dir))


def evaluation_object(job: JobRow, data_dir: Path) -> dict[str, Any]:
    spec, result = job.request["spec"], job.result or {}
    return {
        "id": job.id,
        "object": "evaluation",
        "name": spec.get("name"),
        "status": job.status,
        "created_at": _ts(job.created_at),
        "finished_at": _ts(job.finished_at),
        "dataset": spec["dataset"],
        "targets": [TargetSpec.model_validate(t).label for t in spec["targets"]],
        "judge": spec.get("judge"),
        "progress": {"done": _count_records(job, data_dir), "total": job.request.get("total")},
        "summary": result.get("summary"),
        "agreement": result.get("agreement"),
        "comparison": result.get("comparison"),
        "error": job.error,
        "spec": spec,
    }


def runtime_builder(app: FastAPI) -> Any:
    """The evaluation kind's ``build``: targets and judge from this app's served models and services,
    run on the app's event loop (set by the lifespan; without one, a private loop)."""
    return functools.partial(_runtime, app)


def _runtime(app: FastAPI, job: JobRow, spec: EvalSpec) -> EvalRuntime:
    state: ServerState = app.state.plinth
    tenant = Tenant(job.tenant_id, job.request["tenant"])
    targets = {t.label: _target(app, state, tenant, t) for t in spec.targets}
    judge = None
    if spec.judge is not None:
        chat = state.chat_model(spec.judge.model, tenant)
        master = state.chat_model(spec.judge.master, tenant) if spec.judge.master else None
        judge = Judge(chat, spec.judge.config(), master)
    loop = getattr(app.state, "loop", None)

    def run_coroutine(coroutine: Any, should_stop: Callable[[], bool]) -> Any:
        coroutine = _for_tenant(tenant.id, coroutine)  # its generations take the tenant's fair share
        if loop is None or loop.is_closed():
            return asyncio.run(coroutine)
        future = asyncio.run_coroutine_threadsafe(coroutine, loop)
        while True:  # a stopping server must not wait on its own (blocked) loop: look up twice a second
            try:
                return future.result(timeout=0.5)
            except concurrent.futures.TimeoutError:
                if should_stop():
                    future.cancel()
                    raise EvaluationStopped from None

    return EvalRuntime(targets, judge, run_coroutine)


async def _for_tenant(tenant_id: int, coroutine: Any) -> Any:
    with acting_for(tenant_id):
        return await coroutine


def _target(app: FastAPI, state: ServerState, tenant: Tenant, spec: TargetSpec) -> Any:
    served = _served(state, tenant, spec)
    assert served is not None, "checked when the evaluation was created"
    chat = chat_model(served, state.metrics)
    if spec.type == "knowledge_base":
        assert spec.knowledge_base is not None  # the spec's validator requires it
        service = app.state.knowledge
        retrieve = functools.partial(
            _retrieve, service, tenant, spec.knowledge_base, k=spec.k, search_type=spec.search_type
        )
        return rag_target(chat, retrieve, min_score=MIN_SCORES.get(spec.search_type, 0.0))
    if spec.type == "sql":
        sql, name = app.state.sql, spec.sql_dataset
        prompt_format = _prompt_format(state, tenant, spec.adapter or spec.model)

        def ask(question: str, model: Any) -> Any:
            return sql.ask(tenant, name, question, model, prompt_format=prompt_format)

        def gold(query: str) -> list[list[Any]]:
            return [list(row) for row in sql.runner(tenant, name).run(query)[1].rows]

        return sql_target(chat, ask, gold)
    return model_target(chat, system=spec.system, max_tokens=spec.max_tokens, temperature=spec.temperature)


def _served(state: ServerState, tenant: Tenant, spec: TargetSpec) -> Any:
    """What the target runs: ``model``, or its ``adapter`` (None when that is not one of the tenant's
    adapters of ``model``)."""
    if spec.adapter is None:
        return state.model(spec.model, tenant)
    try:
        served = state.model(spec.adapter, tenant)
    except APIError:
        return None
    base = getattr(served, "base", None)  # a base model named as the adapter is not an adapter
    ok = base is not None and (base is state.models.get(spec.model) or base.name == spec.model)
    return served if ok else None


def _prompt_format(state: ServerState, tenant: Tenant, model: str) -> str | None:
    """The SQL prompt format an adapter was trained on (its data card), as ``/v1/sql/ask`` uses it."""
    if model in state.models or state.adapters is None:
        return None
    entry = state.adapters.resolve(tenant, model)
    return read_prompt_format(entry.path) if entry is not None else None


def _retrieve(service: Any, tenant: Tenant, kb: str, query: str, *, k: int, search_type: str) -> Any:
    return service.retrieve(tenant, kb, query, k, search_type)


def _spec(body: Any) -> EvalSpec:
    if not isinstance(body, dict):
        raise APIError(400, "The body must be a JSON object (an evaluation spec).")
    try:
        return EvalSpec.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        message = first["msg"].removeprefix("Value error, ")
        raise APIError(400, f"{param}: {message}" if param else message, param=param) from exc


def _check_names(request: Request, spec: EvalSpec) -> None:
    """Every model, knowledge base and SQL dataset the spec names exists for this tenant (else a 400)."""
    state, tenant = get_state(request), request.state.tenant
    models = [(f"targets.{i}.model", t.model) for i, t in enumerate(spec.targets)]
    if spec.judge is not None:
        models.append(("judge.model", spec.judge.model))
        if spec.judge.master:
            models.append(("judge.master", spec.judge.master))
    for param, name in models:
        try:
            state.model(name, tenant)
        except APIError as exc:
            raise APIError(400, exc.message, param=param, code="model_not_found") from exc
    for i, target in enumerate(spec.targets):
        if target.adapter is not None and _served(state, tenant, target) is None:
            message = f"'{target.adapter}' is not one of your adapters of the model '{target.model}'."
            raise APIError(400, message, param=f"targets.{i}.adapter", code="model_not_found")
    for i, target in enumerate(spec.targets):
        try:
            if target.type == "knowledge_base":
                request.app.state.knowledge.get(tenant, target.knowledge_base)
            elif target.type == "sql":
                request.app.state.sql.get(tenant, target.sql_dataset)
        except (NotFoundError, DatasetNotFoundError) as exc:
            field = "knowledge_base" if target.type == "knowledge_base" else "sql_dataset"
            raise APIError(400, str(exc), param=f"targets.{i}.{field}", code="not_found") from exc


def _job(request: Request, evaluation_id: str) -> JobRow:
    job = get_job(get_state(request).control_plane, evaluation_id, request.state.tenant.id)
    if job is None or job.kind != KIND:
        raise APIError(
            404, f"No such evaluation: {evaluation_id}", param="evaluation_id", code="evaluation_not_found"
        )
    return job


def _data_dir(request: Request) -> Path:
    return Path(get_state(request).settings.data_dir)


def _records(job: JobRow, data_dir: Path) -> list[dict[str, Any]]:
    return read_records(records_path(data_dir, job.id))


def _count_records(job: JobRow, data_dir: Path) -> int:
    path = records_path(data_dir, job.id)
    return _count_lines(path) if path.exists() else 0


def _count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for line in f if line.strip())


def _ts(value: Any) -> int | None:
    return None if value is None else int(value.timestamp())
