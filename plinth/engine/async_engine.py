"""An asyncio front for :class:`LLMEngine`: many coroutines stream tokens from one batch.

The engine steps in one background thread (torch releases the GIL while it computes, so the event
loop stays responsive). Build it with :meth:`AsyncLLMEngine.from_config` so that thread also loads
the weights: on CPU a model stepped by a thread other than the one that built it ran ~1.5x slower
per decode step (measured with bf16 oneDNN matmuls: 22-31 ms vs 47-50 ms at batch 1).

Coroutines never touch the engine directly: they queue ``add``/``abort``
commands that the thread applies between steps, and receive outputs through per-request asyncio
queues. Leaving a ``generate`` loop early (client gone, task cancelled) aborts the request, which
frees its KV cache blocks.

A step is not preemptible once the model runs, and on a CPU one decode step of a batch costs about what
a short prompt's prefill costs; so an interactive request arriving during a batch-only step would wait
for it (measured with SmolLM2-135M: first token 50 ms idle, up to 100 ms behind a 4-line batch step).
The engine thread is therefore told the class of every request queued while it steps, and a step whose
requests are all of a lower class gives up between two layers (:meth:`LLMEngine.step`).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from plinth.engine.config import EngineConfig
from plinth.engine.llm_engine import LLMEngine
from plinth.engine.outputs import RequestOutput
from plinth.engine.sampling_params import SamplingParams
from plinth.engine.threads import engine_thread, hold_engine_threads, release_idle_workers

log = logging.getLogger(__name__)
_NONE = 1 << 30  # no request waiting to be added


@dataclass(slots=True)
class _Stream:
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[RequestOutput | BaseException]


class AsyncLLMEngine:
    engine: LLMEngine

    def __init__(self, engine: LLMEngine | None) -> None:
        if engine is not None:  # from_config sets it on the stepping thread
            self.engine = engine
        self._commands: queue.SimpleQueue[tuple] = queue.SimpleQueue()
        self._arrived = _NONE  # the highest class among adds queued since the engine last took commands
        self._streams: dict[str, _Stream] = {}
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    @classmethod
    def from_config(cls, config: EngineConfig, name: str | None = None) -> AsyncLLMEngine:
        """Build the engine on its own stepping thread; raises what building raised."""
        self = cls(None)
        built: queue.SimpleQueue[BaseException | None] = queue.SimpleQueue()

        def build_then_loop() -> None:
            with engine_thread():  # the matmuls' threads are this thread's team, the only one (threads.py)
                try:
                    self.engine = LLMEngine(config, name)
                except BaseException as exc:
                    built.put(exc)
                    return
                built.put(None)
                self._run()

        self._thread = threading.Thread(target=build_then_loop, name="plinth-engine", daemon=True)
        self._thread.start()
        error = built.get()
        if error is not None:
            raise error
        release_idle_workers()  # the caller's OpenMP workers, if it had any, beside the engine's (threads.py)
        return self

    @property
    def model_config(self):  # noqa: ANN201 - re-exported for callers above the engine
        return self.engine.model_config

    async def generate(
        self,
        token_ids: list[int],
        params: SamplingParams,
        request_id: str | None = None,
        adapter: str | None = None,
    ) -> AsyncIterator[RequestOutput]:
        """Stream a request's outputs; validation errors raise before anything is queued."""
        self.engine.check_request(token_ids, params, adapter)
        request_id = request_id or uuid.uuid4().hex
        if request_id in self._streams:
            raise ValueError(f"request id {request_id!r} is already in use")
        stream = _Stream(asyncio.get_running_loop(), asyncio.Queue())
        self._streams[request_id] = stream
        self._send(("add", request_id, list(token_ids), params, adapter))
        self._arrived = min(self._arrived, params.priority)  # after the add is queued: never a lost signal
        finished = False
        try:
            while not finished:
                item = await stream.queue.get()
                if isinstance(item, BaseException):
                    raise item
                finished = item.finished
                yield item
        finally:
            self._streams.pop(request_id, None)
            if not finished:
                self._send(("abort", request_id))

    async def abort(self, request_id: str) -> None:
        self._send(("abort", request_id))

    def shutdown(self) -> None:
        self._stopped.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _send(self, command: tuple) -> None:
        self._ensure_thread()
        self._commands.put(command)
        self._wake.set()

    def _ensure_thread(self) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._stepping, name="plinth-engine", daemon=True)
                self._thread.start()

    def _stepping(self) -> None:
        with engine_thread():
            self._run()

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._apply_commands()
            if not self.engine.has_unfinished():
                self._wake.wait(timeout=1.0)
                self._wake.clear()
                continue
            hold_engine_threads()
            try:
                outputs = self.engine.step(self._arrived_class)
            except Exception as exc:  # a scheduler bug must not hang every client: fail them, keep serving
                log.exception("engine step failed")
                self._fail_all(exc)
                continue
            self._deliver_all(outputs)

    def _arrived_class(self) -> int:
        return self._arrived

    def _fail_all(self, exc: Exception) -> None:
        for request_id in list(self._streams):
            self.engine.abort(request_id)
            self._deliver(request_id, exc)

    def _apply_commands(self) -> None:
        self._arrived = _NONE  # before draining: an add queued from here on is taken now or signals again
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            kind, request_id, *args = command
            if kind == "abort":
                self.engine.abort(request_id)
                continue
            try:
                self.engine.add_request(args[0], args[1], request_id=request_id, adapter=args[2])
            except Exception as exc:  # validated already; anything here is the request's own failure
                log.exception("could not add request %s", request_id)
                self._deliver(request_id, exc)

    def _deliver_all(self, outputs: list[RequestOutput]) -> None:
        """One wake-up per event loop per step, not one per token: every wake-up of the loop thread
        competes with this one for the GIL and the CPU while the model runs."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Queue, RequestOutput]]] = {}
        for output in outputs:
            stream = self._streams.get(output.request_id)
            if stream is not None:
                by_loop.setdefault(stream.loop, []).append((stream.queue, output))
        for loop, items in by_loop.items():
            loop.call_soon_threadsafe(_put_all, items)

    def _deliver(self, request_id: str, item: RequestOutput | BaseException) -> None:
        stream = self._streams.get(request_id)
        if stream is not None:
            stream.loop.call_soon_threadsafe(stream.queue.put_nowait, item)


def _put_all(items: list[tuple[asyncio.Queue, RequestOutput]]) -> None:
    for queue_, output in items:
        queue_.put_nowait(output)
