"""What every route reads: the served models, control plane, metrics, and the lazily loaded embedder.

One :class:`ServerState` lives on ``app.state.plinth``; routes fetch it with :func:`get_state`. Keeping
it a plain dataclass means tests build an app from fakes by passing them to ``create_app``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from plinth.adapters import AdapterRegistry
from plinth.config import Settings
from plinth.control import ControlPlane, Tenant
from plinth.jobs import Checker, JobSupervisor
from plinth.llm import AdapterHost, ChatModel, ServedModel
from plinth.server.errors import APIError
from plinth.server.generation import chat_model
from plinth.server.key_cache import KeyCache
from plinth.server.metrics import Metrics
from plinth.server.quotas import QuotaGate

__all__ = ["ServerState", "get_state"]


@dataclass(slots=True)
class ServerState:
    settings: Settings
    models: dict[str, AdapterHost]  # name -> base model (a LocalModel when served for real)
    control_plane: ControlPlane
    metrics: Metrics = field(default_factory=Metrics)
    embedder: Any | None = None  # plinth.llm.embedder.Embedder, loaded on first use
    no_auth_tenant: Tenant | None = None  # set when --no-auth: every request acts as this tenant
    adapters: AdapterRegistry | None = None  # LoRA adapters by tenant (create_app always sets it)
    jobs: JobSupervisor | None = None  # runs fine-tuning (and later batch, evaluation) jobs
    file_checkers: dict[str, Checker] = field(default_factory=dict)  # purpose -> upload checker
    runner: Any | None = None  # plinth.server.batch_runner.BatchRunner: batches and async inference
    quotas: QuotaGate | None = None  # per-tenant rate limits (create_app always sets it)
    keys: KeyCache = field(default_factory=KeyCache)  # recently authenticated keys
    created: int = field(default_factory=lambda: int(time.time()))
    _embedder_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def model(self, name: str, tenant: Tenant | None = None) -> ServedModel:
        """The served model called ``name`` -- a base model, or (given ``tenant``) one of the adapters
        it may see, as an :class:`AdapterModel` -- else OpenAI's 404 ``model_not_found``, the same
        whether the name is unknown or another tenant's adapter."""
        model: ServedModel | None = self.models.get(name)
        if model is None and tenant is not None and self.adapters is not None:
            model = self.adapters.model_for(tenant, name)
        if model is None:
            raise APIError(
                404,
                f"The model '{name}' does not exist. Served models: {', '.join(self.models) or 'none'}.",
                param="model",
                code="model_not_found",
            )
        return model

    def chat_model(self, name: str, tenant: Tenant | None = None) -> ChatModel:
        """:meth:`model` for features: a ChatModel whose generations count like the OpenAI routes'
        (tenant tokens per minute, fair share, model metrics)."""
        return chat_model(self.model(name, tenant), self.metrics)

    def embedding_model_names(self) -> set[str]:
        """Names a client may use for the embedder: the configured id and its short name."""
        configured = self.settings.embedding_model
        names = {configured, configured.rsplit("/", 1)[-1]}
        if self.embedder is not None:
            names.add(self.embedder.name)
        return names

    async def get_embedder(self) -> Any:
        """The embedder, created once on first use (server start stays fast). It is the process-wide
        one knowledge bases also use, so the same model is never held in memory twice."""
        async with self._embedder_lock:
            if self.embedder is None:
                from plinth.llm.embedders import get_embedder

                self.embedder = await run_in_threadpool(get_embedder, self.settings.embedding_model)
        return self.embedder


def get_state(request: Request) -> ServerState:
    return request.app.state.plinth
