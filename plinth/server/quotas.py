"""Per-tenant rate limits and quotas: requests per minute, tokens per minute, concurrent requests.

Limits live in the control plane (:mod:`plinth.control.tenant_limits`) and are read through a cache of a
few seconds. :class:`QuotaGate` keeps, per tenant, a token bucket of requests (``requests_per_minute``
capacity, refilled continuously), a bucket of model tokens charged as generations finish (a request is
admitted while the bucket is not overdrawn), and a count of requests in flight. A request over a limit
is a 429 ``rate_limit_exceeded`` with ``Retry-After`` (seconds) before any work is done, so one noisy
tenant spends only its own share and never delays the others' admission.

The request's :class:`Account` travels in a context variable set by :class:`QuotaMiddleware`:
:func:`admit` (called by :func:`plinth.server.auth.require_tenant`) claims it for the tenant, generation
charges tokens to it (:func:`charge_tokens`), and the middleware releases its concurrency slot when the
response is complete. Admin routes (``/v1/admin/...``) are never limited, so an admin can always lift
a limit. Metrics, labelled by tenant id (``/metrics`` needs no key, so names stay out):
``plinth_tenant_requests_total{tenant_id, outcome}``, ``plinth_tenant_tokens_total{tenant_id}``,
``plinth_tenant_requests_in_flight{tenant_id}``; quotas on what a tenant holds are
:mod:`plinth.server.tenant_quotas` (``plinth_tenant_quota_refusals_total{tenant_id, quota}``).
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge
from starlette.types import ASGIApp, Receive, Scope, Send

from plinth.config import Settings
from plinth.control import ControlPlane, Tenant
from plinth.control.tenant_limits import TenantLimits, get_limits
from plinth.server.errors import APIError
from plinth.server.key_cache import KeyCache, bearer_key

__all__ = ["Account", "QuotaGate", "QuotaMiddleware", "acting_for", "admit", "charge_tokens", "share_group"]

UNLIMITED_PATHS = ("/v1/admin/",)
LIMITED_PREFIXES = ("/v1/", "/invocations")  # the routes that require a key


@dataclass(slots=True)
class _Bucket:
    """A token bucket of ``capacity`` refilled at ``capacity`` per minute; ``level`` may go negative."""

    capacity: int
    level: float
    updated: float

    def refill(self, now: float) -> None:
        rate = self.capacity / 60.0
        self.level = min(self.capacity, self.level + (now - self.updated) * rate)
        self.updated = now

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` is available."""
        return max(0.0, (amount - self.level) * 60.0 / self.capacity)


@dataclass(slots=True)
class _TenantState:
    requests: _Bucket | None = None
    tokens: _Bucket | None = None
    in_flight: int = 0


@dataclass(slots=True)
class Account:
    """One request's claim: the tenant it was admitted for and how to give its slot back."""

    gate: QuotaGate | None = None
    tenant_id: int | None = None
    released: bool = field(default=False)

    def release(self) -> None:
        if self.gate is not None and self.tenant_id is not None and not self.released:
            self.released = True
            self.gate.release(self.tenant_id)


_ACCOUNT: ContextVar[Account | None] = ContextVar("plinth_quota_account", default=None)


class QuotaGate:
    """Admission and accounting for every tenant (thread-safe: ``admit`` may run in a worker thread)."""

    def __init__(
        self,
        cp: ControlPlane,
        registry: CollectorRegistry,
        *,
        cache_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cp, self.cache_s, self.clock = cp, cache_s, clock
        self._lock = threading.Lock()
        self._tenants: dict[int, _TenantState] = {}
        self._limits: dict[int, tuple[float, TenantLimits]] = {}
        self.requests = Counter(
            "plinth_tenant_requests", "Requests per tenant, admitted or rate_limited.",
            ["tenant_id", "outcome"], registry=registry,
        )  # fmt: skip
        self.tokens = Counter(
            "plinth_tenant_tokens",
            "Prompt plus generated tokens per tenant.",
            ["tenant_id"],
            registry=registry,
        )
        self.quota_refusals = Counter(
            "plinth_tenant_quota_refusals",
            "Creates refused per tenant because a quota (adapters, documents, datasets, jobs) was reached.",
            ["tenant_id", "quota"],
            registry=registry,
        )
        self.in_flight = Gauge(
            "plinth_tenant_requests_in_flight",
            "Requests in flight per tenant.",
            ["tenant_id"],
            registry=registry,
        )

    def limits(self, tenant_id: int) -> TenantLimits:
        now = self.clock()
        cached = self._limits.get(tenant_id)
        if cached is None or now - cached[0] > self.cache_s:
            cached = (now, get_limits(self.cp, tenant_id))
            self._limits[tenant_id] = cached
        return cached[1]

    def has_fresh_limits(self, tenant_id: int) -> bool:
        """Whether :meth:`admit` would find the tenant's limits cached (and so run no query)."""
        cached = self._limits.get(tenant_id)
        return cached is not None and self.clock() - cached[0] <= self.cache_s

    def forget(self, tenant_id: int) -> None:
        """Drop the cached limits and buckets (after they were changed)."""
        with self._lock:
            self._limits.pop(tenant_id, None)
            state = self._tenants.get(tenant_id)
            if state is not None:
                state.requests = state.tokens = None

    def admit(self, tenant_id: int) -> None:
        """Count one request in, or raise the 429 saying which limit and when to retry."""
        limits = self.limits(tenant_id)
        label = str(tenant_id)
        with self._lock:
            now = self.clock()
            state = self._tenants.setdefault(tenant_id, _TenantState())
            problem = self._problem(state, limits, now)
            if problem is None:
                if state.requests is not None:
                    state.requests.level -= 1
                state.in_flight += 1
        if problem is not None:
            self.requests.labels(label, "rate_limited").inc()
            message, retry_after = problem
            raise APIError(429, message, type="rate_limit_error", code="rate_limit_exceeded",
                           headers={"Retry-After": str(max(1, math.ceil(retry_after)))})  # fmt: skip
        self.requests.labels(label, "admitted").inc()
        self.in_flight.labels(label).inc()

    def _problem(self, state: _TenantState, limits: TenantLimits, now: float) -> tuple[str, float] | None:
        if limits.concurrent_requests is not None and state.in_flight >= limits.concurrent_requests:
            return f"Too many concurrent requests (limit {limits.concurrent_requests}).", 1.0
        state.requests = _bucket(state.requests, limits.requests_per_minute, now)
        if state.requests is not None and state.requests.level < 1:
            message = f"Rate limit of {limits.requests_per_minute} requests per minute reached."
            return message, state.requests.wait_for(1)
        state.tokens = _bucket(state.tokens, limits.tokens_per_minute, now)
        if state.tokens is not None and state.tokens.level <= 0:
            message = f"Rate limit of {limits.tokens_per_minute} tokens per minute reached."
            return message, state.tokens.wait_for(1)
        return None

    def release(self, tenant_id: int) -> None:
        with self._lock:
            state = self._tenants.get(tenant_id)
            if state is not None and state.in_flight > 0:
                state.in_flight -= 1
        self.in_flight.labels(str(tenant_id)).dec()

    def charge(self, tenant_id: int, tokens: int) -> None:
        """Spend ``tokens`` from the tenant's per-minute budget (it may go negative: the next requests
        wait until it refills)."""
        with self._lock:
            state = self._tenants.get(tenant_id)
            if state is not None and state.tokens is not None:
                state.tokens.refill(self.clock())
                state.tokens.level -= tokens
        self.tokens.labels(str(tenant_id)).inc(tokens)


def _bucket(bucket: _Bucket | None, per_minute: int | None, now: float) -> _Bucket | None:
    """The bucket refilled to ``now``; a new full one when the limit appeared or changed."""
    if per_minute is None:
        return None
    if bucket is None or bucket.capacity != per_minute:
        return _Bucket(per_minute, float(per_minute), now)
    bucket.refill(now)
    return bucket


def admit(gate: QuotaGate | None, tenant: Tenant, path: str) -> None:
    """Admit this request for ``tenant`` (once per request; admin routes are never limited)."""
    account = _ACCOUNT.get()
    if account is None or account.tenant_id is not None:
        return
    account.tenant_id = tenant.id  # the fair-share group of its generations, limited or not
    if gate is None or path.startswith(UNLIMITED_PATHS):
        return
    gate.admit(tenant.id)
    account.gate = gate


def share_group() -> str | None:
    """The engine's fair-share group for generations started now: the current request's tenant."""
    account = _ACCOUNT.get()
    return None if account is None or account.tenant_id is None else str(account.tenant_id)


@contextmanager
def acting_for(tenant_id: int) -> Iterator[None]:
    """Run work for ``tenant_id`` outside an HTTP request (a batch's lines): its generations take the
    tenant's fair share; no rate limit applies (the batch was admitted when it was created)."""
    token = _ACCOUNT.set(Account(tenant_id=tenant_id))
    try:
        yield
    finally:
        _ACCOUNT.reset(token)


def charge_tokens(tokens: int) -> None:
    """Charge ``tokens`` to the tenant the current request was admitted for (if any)."""
    account = _ACCOUNT.get()
    if account is not None and account.gate is not None and account.tenant_id is not None and tokens > 0:
        account.gate.charge(account.tenant_id, tokens)


class QuotaMiddleware:
    """Gives each HTTP request an :class:`Account`, refuses a known key over its tenant's limits before
    anything else runs, and releases the request's slot when it is done.

    A request whose key is in the key cache (it authenticated in the last few seconds) and whose tenant's
    limits are cached is admitted, or refused with the same 429 that :func:`admit` gives, here: before
    its body is read, before routing and dependency solving. A flood's refusals then cost the event loop
    a dict lookup and a small JSON answer, not a thread hop and a query each, so the CPU and the GIL stay
    with the other tenants' generations. Anything not known for sure goes the full way.

    Such a 429 is sent after ``refusal_delay_ms`` (100 ms; its ``Retry-After`` says 1 s or more, so a
    client that honours it loses nothing): a client that retries at once, however many connections it
    loops on, then sends each of them a few requests a second instead of thousands, and the flood
    costs the server (and, on a shared machine, the flooder) little CPU.
    """

    def __init__(self, app: ASGIApp, gate: QuotaGate, keys: KeyCache, settings: Settings) -> None:
        self.app, self.gate, self.keys, self.settings = app, gate, keys, settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        account = Account()
        token = _ACCOUNT.set(account)
        try:
            refusal = self._admit_known_key(scope, account)
            if refusal is not None:
                await asyncio.sleep(self.settings.refusal_delay_ms / 1000)  # a timer: costs no CPU
                await refusal.response()(scope, receive, send)
                return
            await self.app(scope, receive, send)
        finally:
            account.release()
            _ACCOUNT.reset(token)

    def _admit_known_key(self, scope: Scope, account: Account) -> APIError | None:
        """Admit the request into ``account`` by its cached key; the 429 when its tenant is over a limit;
        None, with nothing done, when the key or the limits are not cached or the route is not limited."""
        path: str = scope["path"]
        if not path.startswith(LIMITED_PREFIXES) or path.startswith(UNLIMITED_PATHS):
            return None
        header = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        key = bearer_key(header.decode("latin-1"))
        tenant = self.keys.get(key) if key else None
        if tenant is None or not self.gate.has_fresh_limits(tenant.id):
            return None
        try:
            self.gate.admit(tenant.id)
        except APIError as err:
            return err
        account.tenant_id, account.gate = tenant.id, self.gate
        return None
