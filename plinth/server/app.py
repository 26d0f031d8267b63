"""The FastAPI app and ``plinth serve``.

:func:`create_app` wires already-loaded models, an open control plane and (optionally) an embedder into an
app, so tests build one from tiny or fake models. :func:`serve` is the process entry point: it checks the
bind address, opens the control plane, loads every ``--model`` (or a random-weight ``small`` llama when
none is given, saying so loudly) and runs uvicorn::

    app = create_app(Settings(no_auth=True), [LocalModel.load(cfg)], open_control_plane(url))
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from plinth.config import Settings, check_bind
from plinth.control import ControlPlane
from plinth.server import (
    adapters_api,
    admin_api,
    guardrails_api,
    invocations,
    knowledge_api,
    openai_api,
    rag_api,
    session_api,
    sql_api,
)
from plinth.server.adapter_registry import AdapterRegistry
from plinth.server.auth import local_tenant
from plinth.server.demo import start_demo_preparation, stop_background_work
from plinth.server.errors import install_error_handlers
from plinth.server.metrics import LoraCollector, Metrics, RequestMetricsMiddleware, engine_stats
from plinth.server.state import ServerState, get_state

__all__ = ["NO_MODEL_HELP", "create_app", "load_models", "random_model_path", "serve"]

log = logging.getLogger(__name__)
WEB_DIR = Path(__file__).resolve().parent.parent / "web"  # the static web app (plinth/web/)

NO_MODEL_HELP = """\
No model given, so Plinth is serving a RANDOM-WEIGHT llama ('small'): its output is gibberish, but
every API works. To serve a real model, point Plinth at a Hugging Face id or a local checkpoint:

    plinth serve --model Qwen/Qwen2.5-0.5B-Instruct
    plinth serve --model ./path/to/checkpoint-dir

(or set `models = [...]` in plinth.toml, or PLINTH_MODELS).
"""


def create_app(
    settings: Settings, models: list[Any], control_plane: ControlPlane, embedder: Any | None = None
) -> FastAPI:
    """An app serving ``models`` (already loaded ``LocalModel`` s, keyed by ``.name``).

    Adapters registered in the control plane, then every subfolder of ``settings.adapters`` (as
    public), are registered on their base models before this returns, so the first request sees them.
    """
    app = FastAPI(title="Plinth", version="0.1.0")
    served = {m.name: m for m in models}
    state = ServerState(
        settings=settings,
        models=served,
        control_plane=control_plane,
        metrics=Metrics(),
        embedder=embedder,
        no_auth_tenant=local_tenant(control_plane) if settings.no_auth else None,
        adapters=AdapterRegistry(served, control_plane, Path(settings.data_dir) / "adapters"),
    )
    app.state.plinth = state
    app.state.knowledge = _knowledge_service(control_plane, settings)
    audit_key = guardrails_api.audit_key(Path(settings.data_dir))  # per installation, kept in the data dir
    app.state.guard = guardrails_api.make_guard(control_plane, audit_key)  # audits into the control plane
    app.state.sql = _sql_service(control_plane, settings)
    state.metrics.registry.register(LoraCollector(lambda: list(state.models.values())))
    _register_adapters(state.adapters, settings)
    install_error_handlers(app)
    app.add_middleware(RequestMetricsMiddleware, metrics=state.metrics)
    app.include_router(openai_api.router)
    app.include_router(adapters_api.router)
    app.include_router(knowledge_api.router)
    app.include_router(rag_api.router)
    app.include_router(sql_api.router)
    app.include_router(guardrails_api.router)
    app.include_router(invocations.router)
    app.include_router(session_api.router)
    app.include_router(admin_api.router)
    app.add_api_route("/", _root, methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")
    app.add_api_route("/health", _health, methods=["GET"])
    app.add_api_route("/metrics", _metrics, methods=["GET"])
    return app


def _knowledge_service(control_plane: ControlPlane, settings: Settings) -> Any:
    from plinth.knowledge.service import KnowledgeService

    return KnowledgeService(control_plane, settings.data_dir, settings, recover=True)


def _sql_service(control_plane: ControlPlane, settings: Settings) -> Any:
    from plinth.sql.service import SQLService

    return SQLService(control_plane, settings.data_dir, settings)


def _register_adapters(registry: AdapterRegistry | None, settings: Settings) -> None:
    assert registry is not None
    registry.restore()
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
                "num_running": getattr(stats, "num_running", None),
                "num_waiting": getattr(stats, "num_waiting", None),
            }
        )
    return {"status": "ok" if models else "no_models", "models": models}


def _metrics(request: Request) -> Response:
    state = get_state(request)
    body = state.metrics.render(state.models.values())
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


def random_model_path(settings: Settings) -> Path:
    """The random-weight ``small`` llama served when no model is configured, created on first use."""
    path = Path(settings.data_dir) / "models" / "random-llama-small"
    if not (path / "config.json").is_file():
        from plinth.engine.checkpoint import init_random

        init_random("llama", "small", path)
    return path


def load_models(settings: Settings) -> list[Any]:
    """A ``LocalModel`` (own engine, own adapter slots and memory budget) per ``--model``; the one
    ``--merge-lora NAME`` fits is loaded with that adapter merged in and served as NAME instead."""
    from plinth.llm.local import LocalModel

    if not settings.models:
        print(NO_MODEL_HELP, flush=True)
        path = random_model_path(settings)
        return [LocalModel.load(settings.engine_config(str(path)), name=path.name)]
    merged, folder = None, None
    if settings.merge_lora is not None:
        from plinth.llm.merge import merge_target

        folder = _adapter_folder(settings, settings.merge_lora)
        merged = merge_target(settings.models, folder, settings.merge_lora)
    models = []
    for name in settings.models:
        if name == merged and folder is not None and settings.merge_lora is not None:
            from plinth.llm.merge import load_merged

            config = settings.engine_config(name, enable_lora=False)
            models.append(load_merged(config, folder, settings.merge_lora))
        else:
            models.append(LocalModel.load(settings.engine_config(name)))
    return models


def _adapter_folder(settings: Settings, name: str) -> Path:
    for directory in settings.adapters:
        if (Path(directory) / name).is_dir():
            return Path(directory) / name
    dirs = ", ".join(str(d) for d in settings.adapters)
    raise ValueError(f"--merge-lora {name}: no folder {name!r} in the --adapters directories ({dirs})")


def serve(settings: Settings) -> None:
    """Run the server until interrupted (``plinth serve``)."""
    import uvicorn

    from plinth.control import open_control_plane

    check_bind(settings)
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    assert settings.database_url is not None  # Settings fills the default
    control_plane = open_control_plane(settings.database_url)
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
        uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level)
    finally:
        for model in models:
            model.shutdown()
        app.state.sql.close()
        control_plane.close()
