"""The FastAPI app and ``plinth serve``.

:func:`create_app` wires already-loaded models, an open control plane and (optionally) an embedder into an
app, so tests build one from tiny or fake models. :func:`serve` is the process entry point: it checks the
bind address, opens the control plane, loads every ``--model`` (the packaged default model when none is
given; see :mod:`plinth.llm.loading`) and runs uvicorn::

    app = create_app(Settings(no_auth=True), [LocalModel.load(cfg)], open_control_plane(url))
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from plinth.adapters import AdapterRegistry, AdapterRegistryError
from plinth.artifacts import remove_quietly, upload_folder
from plinth.config import Settings, check_bind
from plinth.control import ControlPlane, Tenant
from plinth.control.jobs import JobRow
from plinth.demo import start_demo_preparation, stop_background_work
from plinth.engine import AdapterError
from plinth.guard import audit_key
from plinth.jobs import JobSupervisor, evaluation, fine_tune
from plinth.llm import AdapterHost
from plinth.llm.catalog import packaged_adapters
from plinth.server import (
    adapters_api,
    admin_api,
    agents_api,
    async_inference,
    batches_api,
    evaluations_api,
    files_api,
    fine_tuning_api,
    guardrails_api,
    invocations,
    knowledge_api,
    openai_api,
    rag_api,
    session_api,
    sql_api,
    tenants_api,
)
from plinth.server.auth import local_tenant
from plinth.server.batch_runner import BatchRunner
from plinth.server.errors import install_error_handlers
from plinth.server.fine_tuning_api import KIND
from plinth.server.limits import MB, RequestLimitsMiddleware
from plinth.server.metrics import LoraCollector, Metrics, RequestMetricsMiddleware, engine_stats
from plinth.server.openapi import document_api
from plinth.server.quotas import QuotaGate, QuotaMiddleware
from plinth.server.state import ServerState, get_state

__all__ = ["create_app", "serve"]

log = logging.getLogger(__name__)
WEB_DIR = Path(__file__).resolve().parent.parent / "web"  # the static web app (plinth/web/)


def create_app(
    settings: Settings,
    models: Sequence[AdapterHost],
    control_plane: ControlPlane,
    embedder: Any | None = None,
) -> FastAPI:
    """An app serving ``models`` (already loaded ``LocalModel`` s, or the test double
    :class:`~plinth.llm.ScriptedServedModel`, keyed by ``.name``).

    Adapters registered in the control plane, then every subfolder of ``settings.adapters`` (as
    public), are registered on their base models before this returns, so the first request sees them.
    """
    app = FastAPI(title="Plinth", version="0.1.0", lifespan=_lifespan)
    served = {m.name: m for m in models}
    state = ServerState(
        settings=settings,
        models=served,
        control_plane=control_plane,
        metrics=Metrics(),
        embedder=embedder,
        no_auth_tenant=local_tenant(control_plane) if settings.no_auth else None,
        adapters=_adapter_registry(served, control_plane, settings),
    )
    assert state.adapters is not None
    state.quotas = QuotaGate(control_plane, state.metrics.registry)
    state.jobs = _job_supervisor(
        settings, control_plane, state.adapters, evaluations_api.runtime_builder(app)
    )
    state.file_checkers = {**fine_tune.file_checkers(), **evaluation.file_checkers()}
    app.state.plinth = state
    state.runner = BatchRunner(app)
    app.state.knowledge = _knowledge_service(control_plane, settings)
    key = audit_key(Path(settings.data_dir))  # per installation, kept in the data dir
    app.state.guard = guardrails_api.make_guard(control_plane, key)  # audits into the control plane
    app.state.sql = _sql_service(control_plane, settings)
    state.metrics.registry.register(LoraCollector(lambda: list(state.models.values())))
    _register_adapters(state.adapters, settings)
    install_error_handlers(app)
    app.add_middleware(RequestLimitsMiddleware, settings=settings)  # before any parsing
    # a cached key's 429 before the body is read; releases the tenant's concurrency slot when a request ends
    app.add_middleware(QuotaMiddleware, gate=state.quotas, keys=state.keys, settings=settings)
    app.add_middleware(RequestMetricsMiddleware, metrics=state.metrics)  # outermost: counts every answer
    app.include_router(openai_api.router)
    app.include_router(adapters_api.router)
    app.include_router(knowledge_api.router)
    app.include_router(rag_api.router)
    app.include_router(sql_api.router)
    app.include_router(agents_api.router)
    app.include_router(guardrails_api.router)
    app.include_router(invocations.router)
    app.include_router(session_api.router)
    app.include_router(admin_api.router)
    app.include_router(tenants_api.router)
    app.include_router(files_api.router)
    app.include_router(fine_tuning_api.router)
    app.include_router(batches_api.router)
    app.include_router(async_inference.router)
    app.include_router(evaluations_api.router)
    app.add_api_route("/", _root, methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
    app.add_api_route("/health", _health, methods=["GET"])
    app.add_api_route("/metrics", _metrics, methods=["GET"])
    document_api(app)
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Jobs run while the server runs: started with it, stopped (to resume next start) when it stops --
    fine-tuning in worker processes and evaluations in threads (the supervisor; evaluations run their
    model calls on this loop, the one the models serve on), batches and async inference on the
    served engine (the runner)."""
    app.state.loop = asyncio.get_running_loop()
    jobs, runner = app.state.plinth.jobs, app.state.plinth.runner
    if jobs is not None:
        jobs.start()
    await runner.start()
    try:
        yield
    finally:
        await runner.stop()
        if jobs is not None:
            jobs.stop()


def _adapter_registry(
    served: dict[str, AdapterHost], control_plane: ControlPlane, settings: Settings
) -> AdapterRegistry:
    """The adapters of the served models, kept under the data dir; a URL source is fetched no larger than
    an upload may be."""
    adapters_dir = Path(settings.data_dir) / "adapters"
    return AdapterRegistry(served, control_plane, adapters_dir, max_fetch_bytes=settings.max_upload_mb * MB)


def _job_supervisor(
    settings: Settings, cp: ControlPlane, registry: AdapterRegistry, build_evaluation: Any
) -> JobSupervisor:
    # Workers open the very database this app uses (the app may be given another than the settings name).
    url = cp.engine.url.render_as_string(hide_password=False)
    kinds = {
        KIND: fine_tune.kind(functools.partial(_publish_adapter, registry, settings.artifact_store)),
        evaluation.KIND: evaluation.kind(build_evaluation),
    }
    return JobSupervisor(
        cp, url, Path(settings.data_dir), kinds,
        max_concurrent=settings.max_concurrent_jobs, threads=settings.job_threads,
        lease_s=settings.batch_claim_lease_s,
    )  # fmt: skip


def _publish_adapter(
    registry: AdapterRegistry, store: str | None, job: JobRow, result: dict[str, Any]
) -> dict[str, Any]:
    """Serve a fine-tuning job's adapter for its tenant, at once (all or nothing: the registry's rule).
    With an artifact ``store`` it is uploaded there first and registered from the URL, so every process
    on the control plane fetches it from the store; an upload whose registration fails is removed."""
    tenant = Tenant(job.tenant_id, job.request["tenant"])
    name = job.request["fine_tuned_model"]
    label = f"fine-tune:{job.id}"
    source = result["adapter_path"]
    if store is not None:
        source = upload_folder(Path(source), f"{store.rstrip('/')}/fine_tuned/{job.id}")
        result = {**result, "adapter_url": source}
    try:
        registry.register(tenant, name, source, base_model=job.request["model"], label=label)
    except Exception:
        if store is not None:
            remove_quietly(source)
        raise
    return result


def _knowledge_service(control_plane: ControlPlane, settings: Settings) -> Any:
    from plinth.knowledge import KnowledgeService

    return KnowledgeService(control_plane, settings.data_dir, settings, recover=True)


def _sql_service(control_plane: ControlPlane, settings: Settings) -> Any:
    from plinth.sql import SQLService

    return SQLService(control_plane, settings.data_dir, settings)


def _register_adapters(registry: AdapterRegistry | None, settings: Settings) -> None:
    assert registry is not None
    registry.restore()
    for name, folder, base in packaged_adapters(registry.models):  # on disk until first used
        try:
            registry.register(
                None, name, str(folder), base_model=base, label=f"packaged:{name}", persist=False,
                preload=False,
            )  # fmt: skip
        except (AdapterRegistryError, AdapterError) as exc:  # a name taken by a tenant's own adapter, say
            log.warning("packaged adapter %s skipped: %s", name, exc)
    for directory in settings.adapters:
        entries = registry.register_dir(Path(directory))
        log.info("registered %d public adapters from %s", len(entries), directory)


def _root(request: Request) -> HTMLResponse:
    """The web app's page. No key needed: the page holds no data, it signs in and calls ``/v1``. It is told
    whether the server runs ``--no-auth`` (then it skips sign-in) so it never probes ``/v1`` for a 401."""
    auth = "none" if get_state(request).no_auth_tenant is not None else "key"
    page = (WEB_DIR / "index.html").read_text(encoding="utf-8")
    page = page.replace('<html lang="en">', f'<html lang="en" data-auth="{auth}">', 1)
    return HTMLResponse(page, headers={"Cache-Control": "no-cache"})


def _health(request: Request) -> dict[str, Any]:
    """Liveness plus each model's status (no key needed: load balancers call it)."""
    state = get_state(request)
    models = []
    for model in state.models.values():
        stats = engine_stats(model)
        models.append(
            {
                "id": model.name,
                "status": "ready",
                "random_weights": bool(model.is_random),
                "max_model_len": model.max_model_len,
                "num_running": None if stats is None else stats.num_running,
                "num_waiting": None if stats is None else stats.num_waiting,
            }
        )
    return {"status": "ok" if models else "no_models", "models": models}


def _metrics(request: Request) -> Response:
    state = get_state(request)
    body = state.metrics.render(state.models.values())
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


def serve(settings: Settings) -> None:
    """Run the server until interrupted (``plinth serve``)."""
    import uvicorn

    from plinth.control import open_control_plane

    check_bind(settings)
    # Each torch op the engine thread runs hands the GIL back; beside an event loop kept busy (a flood
    # of requests) taking it again costs up to this interval, a few hundred times per step.
    sys.setswitchinterval(settings.gil_switch_interval_ms / 1000)
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    assert settings.database_url is not None  # Settings fills the default
    control_plane = open_control_plane(settings.database_url)
    from plinth.llm.loading import load_models

    models = load_models(settings)
    app = create_app(settings, models, control_plane)
    demo = None
    if settings.demo_data is not None:  # prepared while the server already answers
        tenant = local_tenant(control_plane)
        demo = start_demo_preparation(
            app.state.knowledge, app.state.sql, tenant, settings.demo_data, Path(settings.data_dir)
        )
    app.router.on_shutdown.append(lambda: stop_background_work(app.state.knowledge, demo))
    try:
        uvicorn.run(
            app, host=settings.host, port=settings.port, log_level=settings.log_level,
            timeout_graceful_shutdown=settings.shutdown_timeout_s,  # then running requests are cancelled
        )  # fmt: skip
    finally:
        for model in models:
            model.shutdown()
        app.state.sql.close()
        control_plane.close()
