"""One engine replica: the models, the whole Plinth app, and the adapters Serve counts as loaded here.

Each replica is a single-process Plinth (``create_app`` over its own engines) that answers
:class:`~plinth.scale.forwarding.Forwarded` requests from the ingress, so its routes and contracts are
the single process's. Every response carries ``x-plinth-replica`` (the Serve replica id), which is how
a client or a test sees where a request ran.

Adapters go through Serve's model multiplexing: before a request for adapter A runs, the replica
calls its multiplexed loader for A, which tells Serve "A lives here" (its router then sends A's
requests here while this replica has room). The engine itself loads the weights on first use into its
host-memory cache of ``max_cpu_loras`` adapters, and Serve keeps the same number per replica, so the
two evict together.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from ray import serve

from plinth.config import Settings
from plinth.control import open_control_plane
from plinth.llm.loading import load_models
from plinth.scale.forwarding import Forwarded, Start, call_app
from plinth.server import create_app

__all__ = ["REPLICA_HEADER", "EngineReplica"]

log = logging.getLogger(__name__)
REPLICA_HEADER = "x-plinth-replica"


class EngineReplica:
    async def __init__(self, settings: dict[str, Any]) -> None:  # type: ignore[misc]  # Serve awaits it
        """``settings``: a :class:`Settings` as JSON data (what the driver resolved, paths absolute)."""
        self.settings = Settings(**settings)
        assert self.settings.database_url is not None
        self.control_plane = open_control_plane(self.settings.database_url)
        self.models = load_models(self.settings)
        self.app = create_app(self.settings, self.models, self.control_plane)
        self.replica_id = serve.get_replica_context().replica_id.unique_id
        self._running = contextlib.AsyncExitStack()
        await self._running.enter_async_context(self.app.router.lifespan_context(self.app))
        self.hold_adapter = serve.multiplexed(max_num_models_per_replica=self.settings.max_cpu_loras)(_hold)

    def base_models(self) -> list[str]:
        """The names this replica serves as base models (the ingress never multiplexes those)."""
        return [model.name for model in self.models]

    async def handle(self, request: Forwarded) -> AsyncIterator[Start | bytes]:
        """Run ``request`` through the app: a :class:`Start` with this replica's header, then the body."""
        adapter = serve.get_multiplexed_model_id()
        if adapter and self._is_adapter(adapter):
            await self.hold_adapter(adapter)
        mark = (REPLICA_HEADER.encode(), self.replica_id.encode())
        async for item in call_app(self.app, request):
            yield Start(item.status, [*item.headers, mark]) if isinstance(item, Start) else item

    def _is_adapter(self, name: str) -> bool:
        """Whether some tenant (or everyone) has an adapter called ``name``: only those take one of
        Serve's slots here, so a mistyped name cannot evict a real adapter from the routing table."""
        registry = self.app.state.plinth.adapters
        return any(entry.name == name for entry in registry.visible_all())

    async def __del__(self) -> None:
        """Serve calls this when it stops the replica: jobs and batches stop to resume elsewhere."""
        await self._running.aclose()
        for model in self.models:
            model.shutdown()
        self.app.state.sql.close()
        self.control_plane.close()


async def _hold(adapter: str) -> str:
    """Serve's loader: nothing to fetch (the engine reads the weights on first use); what matters is
    that Serve now routes ``adapter`` here."""
    log.info("adapter %s now routed to this replica", adapter)
    return adapter
