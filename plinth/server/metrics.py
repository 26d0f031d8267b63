"""Prometheus metrics, in a registry owned by one app (so tests and several apps never collide).

Three sources feed it: an ASGI middleware counts every request by route template and status; each
generation stream is wrapped by :meth:`Metrics.observe` (tokens, time to first token, end-to-end latency,
time per output token); and engine gauges (queue depth, running batch, KV cache use) and adapter-cache
numbers (:class:`LoraCollector`) are read from each model's engine when ``/metrics`` is scraped, so
nothing polls in the background. Labels name base models only: tenants' adapter names never appear
here (``/metrics`` needs no key).
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from plinth.engine import BATCH_PRIORITY, INTERACTIVE_PRIORITY, EngineStats, LoraStats
from plinth.llm import AdapterHost, ServedModel
from plinth.server.quotas import charge_tokens

__all__ = ["LoraCollector", "Metrics", "RequestMetricsMiddleware", "engine_stats"]

Models = Callable[[], Iterable[AdapterHost]]

_CLASSES = {INTERACTIVE_PRIORITY: "interactive", BATCH_PRIORITY: "batch"}
_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160)
_TPOT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 1, 2.5)


class Metrics:
    """Every metric the server exports; ``render()`` is the ``/metrics`` body."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter(
            "plinth_requests", "HTTP requests.", ["route", "method", "status"], registry=r
        )
        self.prompt_tokens = Counter(
            "plinth_prompt_tokens", "Prompt tokens processed.", ["model"], registry=r
        )
        self.generation_tokens = Counter(
            "plinth_generation_tokens", "Tokens generated.", ["model"], registry=r
        )
        self.waiting = Gauge(
            "plinth_num_requests_waiting", "Requests queued in the engine.", ["model"], registry=r
        )
        self.running = Gauge(
            "plinth_num_requests_running", "Requests in the running batch.", ["model"], registry=r
        )
        self.batch_size = Gauge(
            "plinth_batch_size", "Sequences in the engine's last step.", ["model"], registry=r
        )
        self.kv_usage = Gauge(
            "plinth_kv_cache_usage_ratio", "Fraction of KV cache blocks in use.", ["model"], registry=r
        )
        self.ttft = Histogram(
            "plinth_time_to_first_token_seconds", "Time to first token.", ["model"],
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.e2e = Histogram(
            "plinth_e2e_request_latency_seconds", "Request latency, first byte in to last token out.",
            ["model"], buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.tpot = Histogram(
            "plinth_time_per_output_token_seconds", "Mean time between output tokens of a request.",
            ["model"], buckets=_TPOT_BUCKETS, registry=r,
        )  # fmt: skip
        self.streams = Gauge(
            "plinth_generation_streams", "Generation streams running, by priority class.", ["class"],
            registry=r,
        )  # fmt: skip
        self._interactive = 0
        self._interactive_ended = float("-inf")

    def render(self, models: Iterable[ServedModel] = ()) -> bytes:
        """The Prometheus text exposition, after reading each model's engine gauges."""
        for model in models:
            stats = engine_stats(model)
            if stats is None:
                continue
            self.waiting.labels(model.metrics_label).set(stats.num_waiting)
            self.running.labels(model.metrics_label).set(stats.num_running)
            self.batch_size.labels(model.metrics_label).set(stats.last_batch_size)
            total = stats.kv_blocks_total
            self.kv_usage.labels(model.metrics_label).set(stats.kv_blocks_used / total if total else 0.0)
        return generate_latest(self.registry)

    async def observe(
        self, model: str, stream: AsyncIterator[Any], priority: int = INTERACTIVE_PRIORITY
    ) -> AsyncGenerator[Any, None]:
        """Pass a TextDelta stream through, timing it; closing this closes (aborts) ``stream``. Streams of
        the interactive class are counted while they run (:meth:`interactive_quiet_s`)."""
        start = time.perf_counter()
        first: float | None = None
        interactive = priority == INTERACTIVE_PRIORITY
        self._interactive += interactive
        self.streams.labels(_CLASSES.get(priority, str(priority))).inc()
        try:
            async for delta in stream:
                if first is None and delta.token_ids:
                    first = time.perf_counter()
                    self.ttft.labels(model).observe(first - start)
                if delta.finish_reason is not None:
                    self._finished(model, delta, start, first)
                yield delta
        finally:
            self._interactive -= interactive
            self._interactive_ended = time.monotonic() if interactive else self._interactive_ended
            self.streams.labels(_CLASSES.get(priority, str(priority))).dec()
            await stream.aclose()  # type: ignore[attr-defined]

    def interactive_quiet_s(self) -> float:
        """Seconds since the last interactive stream ended; 0 while one runs. The batch runner keeps
        fewer lines in flight until this passes a moment, so interactive requests find the server's
        event loop and engine steps nearly as free as when idle."""
        if self._interactive:
            return 0.0
        return time.monotonic() - self._interactive_ended

    def _finished(self, model: str, delta: Any, start: float, first: float | None) -> None:
        now = time.perf_counter()
        self.e2e.labels(model).observe(now - start)
        self.prompt_tokens.labels(model).inc(delta.num_prompt_tokens)
        self.generation_tokens.labels(model).inc(delta.num_output_tokens)
        charge_tokens(delta.num_prompt_tokens + delta.num_output_tokens)  # the tenant's tokens per minute
        if first is not None and delta.num_output_tokens > 1:
            self.tpot.labels(model).observe((now - first) / (delta.num_output_tokens - 1))


def engine_stats(model: ServedModel) -> EngineStats | None:
    """``model.stats()``, or None when it fails: a scrape or health check must never fail because of
    one model."""
    try:
        return model.stats()
    except Exception:
        return None


_LORA_GAUGES = {
    "registered": "Adapters registered (usable by requests).",
    "resident": "Adapters resident in compute slots (--max-loras).",
    "in_memory": "Adapters loaded in the host-memory cache (--max-cpu-loras).",
}
_LORA_COUNTERS = {
    "disk_loads": "Adapter loads from disk into host memory.",
    "slot_loads": "Adapter copies into compute slots.",
    "evictions": "Adapters evicted from compute slots to make room.",
}


class LoraCollector:
    """Adapter-cache numbers per base model, read from ``model.lora_stats()`` at scrape time.

    A custom collector rather than Gauges/Counters set on scrape: the engine already keeps the
    cumulative counts, and Prometheus counters cannot be *set*.
    """

    def __init__(self, models: Models) -> None:
        self.models = models

    def collect(self) -> Iterator[Metric]:
        families: list[GaugeMetricFamily | CounterMetricFamily] = []
        for field, doc in _LORA_GAUGES.items():
            families.append(GaugeMetricFamily(f"plinth_lora_adapters_{field}", doc, labels=["model"]))
        for field, doc in _LORA_COUNTERS.items():
            families.append(CounterMetricFamily(f"plinth_lora_{field}", doc, labels=["model"]))
        fields = [*_LORA_GAUGES, *_LORA_COUNTERS]
        for model in self.models():
            stats = _lora_stats(model)
            if stats is not None:
                for family, field in zip(families, fields, strict=True):
                    family.add_metric([model.metrics_label], getattr(stats, field))
        yield from families


def _lora_stats(model: AdapterHost) -> LoraStats | None:
    try:
        return model.lora_stats()
    except Exception:  # a scrape must never fail because of one model
        return None


class RequestMetricsMiddleware:
    """Count requests by route *template* (``/v1/models``, not raw paths: bounded label values).

    Pure ASGI rather than BaseHTTPMiddleware, which would buffer streams and hide client disconnects.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.requests.labels(route, scope["method"], str(status)).inc()
