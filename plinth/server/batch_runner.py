"""The in-process job runner: batches and asynchronous inferences, run on the server's own engine.

Fine-tuning jobs run in worker processes (:class:`~plinth.jobs.JobSupervisor`), but a batch line needs the
served model, which lives in this process; so batch and async-inference jobs -- rows of the same jobs
table, over the same files -- run here as asyncio tasks, beside the supervisor. Each line goes through the
very route function the interactive API uses (same validation, same response body), with
:data:`~plinth.server.generation.PRIORITY` set to the batch class, so the engine schedules it behind every
interactive request. At most ``batch_max_lines_in_flight`` lines (all batches together) generate at once,
and only ``batch_lines_in_flight_when_busy`` while interactive requests run
(:mod:`~plinth.server.batch_slots`).

Cancel is OpenAI's: the batch moves to ``cancelling``, the lines generating then finish and are recorded,
no other line starts, and the batch becomes ``cancelled`` with what finished published.

One server runs a job: several servers may share a data dir and control plane, so a runner first claims
the job row (:func:`~plinth.control.jobs.claim`, an owner and a lease it renews every second) and runs only
what it holds. It lets its claims go when it stops; a server that died leaves its lease to lapse
(``batch_claim_lease_s``), and every runner looks for unclaimed active jobs every few seconds, so another
server (or this one, restarted) resumes the job then. The heartbeat also carries a cancel that another
server wrote on the row.

Persistence: every finished line is appended to the batch's output or error log
(:class:`~plinth.jobs.batch.ResultLog`) before it counts as done; on start the runner resumes every
unfinished batch with the lines not in its logs, so after a restart no line is lost or run twice (a line
cut off mid-generation by the restart is run again; its first run left no record). Request counts are
written to the job row at most once a second and at every status change::

    runner = BatchRunner(app)     # in create_app
    await runner.start()          # in the lifespan: resumes unfinished jobs
    runner.submit(job_id)         # a new batch or async inference
    await runner.stop()           # in the lifespan: unfinished jobs stay and resume later
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from plinth.control import Tenant
from plinth.control.jobs import (
    JobRow,
    claim,
    claim_owner,
    get_job,
    jobs_with_status,
    release_claim,
    transition,
)
from plinth.engine import BATCH_PRIORITY
from plinth.jobs.batch import ACTIVE
from plinth.server import invocations, openai_api
from plinth.server.batch_run import BatchRun, now
from plinth.server.batch_slots import LineSlots
from plinth.server.errors import APIError, as_api_error, error_body, invalid_body
from plinth.server.generation import PRIORITY
from plinth.server.quotas import acting_for
from plinth.server.schemas import ChatRequest, CompletionRequest, EmbeddingRequest

__all__ = ["ASYNC_KIND", "BATCH_KIND", "BatchRunner"]

log = logging.getLogger(__name__)
BATCH_KIND, ASYNC_KIND = "batch", "async_inference"
_ROUTES: dict[str, tuple[type[BaseModel], Any]] = {
    "/v1/chat/completions": (ChatRequest, openai_api.chat_completions),
    "/v1/completions": (CompletionRequest, openai_api.completions),
    "/v1/embeddings": (EmbeddingRequest, openai_api.embeddings),
    "/invocations": (invocations.LMIRequest, invocations.invocations),
}


class BatchRunner:
    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.state = app.state.plinth
        self.cp = self.state.control_plane
        self.data_dir = Path(self.state.settings.data_dir)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._runs: dict[str, BatchRun] = {}
        self._cancelled: set[str] = set()
        self._slots: LineSlots | None = None
        self._background: list[asyncio.Task[None]] = []
        self.owner = claim_owner()
        self.lease_s = self.state.settings.batch_claim_lease_s

    async def start(self) -> None:
        """Resume every unfinished batch and async inference no other server holds (oldest first), keep
        looking for such jobs, and start the result sweeper."""
        settings = self.state.settings
        self._slots = LineSlots(settings.batch_max_lines_in_flight, settings.batch_lines_in_flight_when_busy,
                                self.state.metrics.interactive_quiet_s)  # fmt: skip
        self._background = [
            asyncio.create_task(self._adopt_unclaimed()),
            asyncio.create_task(self._sweep_expired_results()),
        ]

    async def stop(self) -> None:
        """Stop every task and let go of their claims; their jobs stay as they are and resume at the next
        start, here or on another server."""
        tasks = [*self._tasks.values(), *self._background]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    @property
    def running(self) -> bool:
        return self._slots is not None

    def submit(self, job_id: str) -> None:
        """Run (or resume) the job now; a no-op before :meth:`start` (it resumes the job then)."""
        if self._slots is None or job_id in self._tasks:
            return
        task = asyncio.create_task(self._run(job_id), name=f"plinth-job-{job_id}")
        self._tasks[job_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(job_id, None))

    async def cancel(self, job: JobRow) -> None:
        """Move the batch to ``cancelling``: the lines generating finish and are recorded, the rest never
        start; its task then publishes what is done and moves it to ``cancelled``. A batch another server
        runs learns of the cancel from its row (that server's heartbeat)."""
        self._cancelled.add(job.id)
        run = self._runs.get(job.id)
        if run is not None:
            run.state["cancelling_at"] = now()
            await run.move(("validating", "in_progress"), "cancelling")
        else:  # not started here (yet): the row alone; the task that resumes it finishes the cancel
            result = {**(job.result or {}), "cancelling_at": now()}
            await run_in_threadpool(transition, self.cp, job.id, ("validating", "in_progress"), "cancelling",
                                    result=result)  # fmt: skip
            self.submit(job.id)

    async def _adopt_unclaimed(self) -> None:
        """Submit every active job of these kinds not running here, now and every few seconds: those
        another server holds fail their claim and wait for the next round."""
        while True:
            for job in await run_in_threadpool(jobs_with_status, self.cp, ACTIVE):
                if job.kind in (BATCH_KIND, ASYNC_KIND) and (job.claim_expires_at or 0) < time.time():
                    self.submit(job.id)
            await asyncio.sleep(min(5.0, self.lease_s / 3))

    async def _heartbeat(self, job_id: str, task: asyncio.Task[None]) -> None:
        """Renew the claim every second (stop the job's task if it was lost) and pick up a cancel
        written on the row by another server."""
        while True:
            await asyncio.sleep(min(1.0, self.lease_s / 3))
            if not await run_in_threadpool(claim, self.cp, job_id, self.owner, self.lease_s):
                log.warning("lost the claim on job %s; another server runs it now", job_id)
                task.cancel()
                return
            job = await run_in_threadpool(get_job, self.cp, job_id)
            if job is not None and job.status == "cancelling":
                self._cancelled.add(job_id)

    async def _run(self, job_id: str) -> None:
        if not await run_in_threadpool(claim, self.cp, job_id, self.owner, self.lease_s):
            return  # another server runs it
        this = asyncio.current_task()
        assert this is not None
        heartbeat = asyncio.create_task(self._heartbeat(job_id, this))
        try:
            job = await run_in_threadpool(get_job, self.cp, job_id)
            if job is None:
                return
            if job.kind == ASYNC_KIND:
                await self._run_async(job)
            else:
                self._runs[job_id] = BatchRun(self, job)
                await self._runs[job_id].run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("job %s failed in the runner", job_id)
            error = {"code": "internal_error", "message": "The server had an error running this job."}
            await run_in_threadpool(transition, self.cp, job_id, ACTIVE, "failed", error=error)
        finally:
            heartbeat.cancel()
            self._runs.pop(job_id, None)
            self._cancelled.discard(job_id)
            release_claim(self.cp, job_id, self.owner)  # no await: this also runs as the server stops

    # -- one request, as the interactive route runs it -----------------------------------------------

    async def execute(
        self, tenant: Tenant, endpoint: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any]]:
        """``body`` through the route for ``endpoint`` at batch priority: (status code, response body)."""
        model, route = _ROUTES[endpoint]
        try:
            parsed = model.model_validate(body)
            if getattr(parsed, "stream", False) or body.get("parameters", {}).get("stream"):
                raise APIError(400, "stream is not supported here; send the request without it.",
                               param="stream")  # fmt: skip
            token = PRIORITY.set(BATCH_PRIORITY)
            try:
                with acting_for(tenant.id):
                    response = await route(parsed, self._request(tenant, endpoint, headers or {}))
            finally:
                PRIORITY.reset(token)
        except ValidationError as exc:
            return 400, error_body(invalid_body(exc.errors()))
        except Exception as exc:
            err = as_api_error(exc)
            return err.status, error_body(err)
        assert isinstance(response, dict | list), "a non-streaming route answers JSON"
        return 200, response  # type: ignore[return-value]

    def _request(self, tenant: Tenant, path: str, headers: dict[str, str]) -> Request:
        scope = {
            "type": "http", "app": self.app, "method": "POST", "path": path, "root_path": "",
            "query_string": b"", "scheme": "http", "server": None, "client": None,
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
            "state": {"tenant": tenant},
        }  # fmt: skip
        return Request(scope)

    @property
    def slots(self) -> LineSlots:
        assert self._slots is not None
        return self._slots

    def is_cancelled(self, job_id: str) -> bool:
        return job_id in self._cancelled

    # -- asynchronous inference ---------------------------------------------------------------------

    def async_result_path(self, job_id: str) -> Path:
        return self.data_dir / "async-results" / f"{job_id}.json"

    async def _run_async(self, job: JobRow) -> None:
        tenant = Tenant(job.tenant_id, job.request["tenant"])
        async with self.slots.hold():
            status, body = await self.execute(tenant, "/invocations", job.request["body"],
                                              job.request.get("headers"))  # fmt: skip
        path = self.async_result_path(job.id)
        await run_in_threadpool(_write_atomically, path, {"status_code": status, "body": body})
        expires_at = time.time() + self.state.settings.async_result_ttl_s
        result = {"path": str(path), "status_code": status, "expires_at": expires_at}
        await run_in_threadpool(transition, self.cp, job.id, ("in_progress",), "completed", result=result)

    async def _sweep_expired_results(self) -> None:
        """Delete async-inference results past ``async_result_ttl_s``; their jobs become ``expired``."""
        period = min(60.0, self.state.settings.async_result_ttl_s / 2)
        while True:
            for job in await run_in_threadpool(jobs_with_status, self.cp, ("completed",)):
                if job.kind == ASYNC_KIND and (job.result or {}).get("expires_at", 0) <= time.time():
                    self.async_result_path(job.id).unlink(missing_ok=True)
                    await run_in_threadpool(transition, self.cp, job.id, ("completed",), "expired")
            await asyncio.sleep(period)


def _write_atomically(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload), encoding="utf-8")
    os.replace(tmp, path)
