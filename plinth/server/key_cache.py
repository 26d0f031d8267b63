"""API keys authenticated in the last few seconds, so that a key's next requests need no database lookup.

Under a flood every request of the flooding key used to cost a worker-thread hop and a SQL query before
it could even be refused; with the key cached, its 429 is answered on the event loop in microseconds
(:class:`plinth.server.quotas.QuotaMiddleware`), which leaves the CPU and the GIL to the other tenants'
generations. Keys are held by their hash (the form the control plane keeps), never in plaintext.

Safety: an entry lives ``ttl_s`` seconds (5 by default, the same as cached tenant limits). A key revoked
through this server (``DELETE /v1/admin/keys/{prefix}``) empties the cache at once; one revoked elsewhere
(``plinth keys revoke``, another replica) still works here for at most ``ttl_s``. Used from the event
loop thread only (``cachetools`` caches are not thread-safe), so there is no lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from cachetools import TTLCache

from plinth.control import Tenant, hash_key

__all__ = ["KeyCache"]


class KeyCache:
    """Key -> the :class:`Tenant` it authenticated as, for ``ttl_s`` seconds, at most ``maxsize`` keys."""

    def __init__(
        self, ttl_s: float = 5.0, maxsize: int = 10_000, timer: Callable[[], float] = time.monotonic
    ) -> None:
        self._tenants: TTLCache[str, Tenant] = TTLCache(maxsize=maxsize, ttl=ttl_s, timer=timer)

    def get(self, key: str) -> Tenant | None:
        return self._tenants.get(hash_key(key))

    def put(self, key: str, tenant: Tenant) -> None:
        self._tenants[hash_key(key)] = tenant

    def clear(self) -> None:
        """Forget every key (a key was revoked: which one is known only by its prefix)."""
        self._tenants.clear()


def bearer_key(header: str) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header value, else None."""
    scheme, _, key = header.partition(" ")
    key = key.strip()
    return key if scheme.lower() == "bearer" and key else None
