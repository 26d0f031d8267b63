"""One batch from where it stands to a final status, run by :class:`~plinth.server.batch_runner.BatchRunner`.

``validating`` (the file's shape) -> ``in_progress`` (its lines, ``batch_max_lines_in_flight`` workers
sharing one iterator of the lines not yet in the output or error log, each line in a slot of the
runner's :class:`~plinth.server.batch_slots.LineSlots`) -> ``finalizing`` or ``cancelling`` (the logs
published as ``batch_output`` files) -> ``completed``, ``expired`` or ``cancelled``. Every finished line
is appended to its log before it counts, so a restart resumes with the lines not done.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool

from plinth.control import Tenant
from plinth.control.files import create_file, new_file_id
from plinth.control.jobs import JobRow, get_job, transition, update_job
from plinth.jobs.batch import InputLine, ResultLog, read_input

if TYPE_CHECKING:
    from plinth.server.batch_runner import BatchRunner

__all__ = ["BatchRun", "now"]

_FLUSH_S = 1.0


class BatchRun:
    """One batch from where it stands to a final status (see the module docstring)."""

    def __init__(self, runner: BatchRunner, job: JobRow) -> None:
        self.runner, self.job, self.cp = runner, job, runner.cp
        self.tenant = Tenant(job.tenant_id, job.request["tenant"])
        self.work_dir = runner.data_dir / "jobs" / job.id
        self.state: dict[str, Any] = dict(job.result or {})
        self.status = job.status
        self.expired = False

    async def run(self) -> None:
        if self.status == "validating":
            await self._validate()
        if self.status == "in_progress":
            await self._process()
        if self.status in ("finalizing", "cancelling"):
            await self._finalize()

    async def _validate(self) -> None:
        source = Path(self.job.request["input_path"])
        copy = self.work_dir / "input.jsonl"
        try:
            lines, errors = await run_in_threadpool(
                _copy_and_read, source, copy, self.job.request["endpoint"]
            )
        except OSError as exc:
            lines, errors = (
                [],
                [{"code": "file_unreadable", "message": str(exc), "param": None, "line": None}],
            )
        if errors:
            self.state.update(errors={"object": "list", "data": errors}, failed_at=now())
            await self.move(("validating",), "failed")
            return
        self.state.update(request_counts={"total": len(lines), "completed": 0, "failed": 0},
                          in_progress_at=now())  # fmt: skip
        await self.move(("validating",), "in_progress")

    async def _process(self) -> None:
        lines, _ = await run_in_threadpool(
            read_input, self.work_dir / "input.jsonl", self.job.request["endpoint"]
        )
        self.output, self.errors = (
            ResultLog(self.work_dir / "output.jsonl"),
            ResultLog(self.work_dir / "errors.jsonl"),
        )
        done = self.output.done | self.errors.done
        todo = iter([line for line in lines if line.custom_id not in done])
        workers = [asyncio.create_task(self._work(todo))
                   for _ in range(self.runner.state.settings.batch_max_lines_in_flight)]  # fmt: skip
        flusher = asyncio.create_task(self._flush_counts())
        try:
            await asyncio.gather(*workers)
            if self.expired:
                self._expire_the_rest(lines)
            self._count()
        finally:  # also when the server stops: the logs hold every finished line
            for task in (*workers, flusher):
                task.cancel()
            self.output.close()
            self.errors.close()
        if self.status == "in_progress":
            self.state["finalizing_at"] = now()
            await self.move(("in_progress",), "finalizing")

    def _expire_the_rest(self, lines: list[InputLine]) -> None:
        self.state["expired_at"] = now()
        done = self.output.done | self.errors.done
        message = "This request could not be executed before the completion window expired."
        for line in lines:
            if line.custom_id not in done:
                self.errors.append(_record(line, None, {"code": "batch_expired", "message": message}))

    async def _work(self, todo: Iterator[InputLine]) -> None:
        """Run lines from ``todo`` (shared by the batch's workers) one at a time, each in a slot, until
        none is left or the batch stops taking new ones (cancelled, expired); a line started finishes."""
        for line in todo:
            async with self.runner.slots.hold():
                if self._stopped():
                    return
                status, body = await self.runner.execute(self.tenant, self.job.request["endpoint"],
                                                         line.body)  # fmt: skip
            response = {"status_code": status, "request_id": f"req_{uuid.uuid4().hex}", "body": body}
            (self.output if status == 200 else self.errors).append(_record(line, response, None))

    def _stopped(self) -> bool:
        if time.time() > self.job.request["expires_at"]:
            self.expired = True
        return self.expired or self.runner.is_cancelled(self.job.id)

    async def _finalize(self) -> None:
        for name in ("output", "error"):
            key, path = (
                f"{name}_file_id",
                self.work_dir / ("output.jsonl" if name == "output" else "errors.jsonl"),
            )
            if self.state.get(key) is None and path.exists() and path.stat().st_size:
                self.state[key] = await run_in_threadpool(self._publish, path, name)
        if self.status == "cancelling":
            self.state["cancelled_at"] = now()
            await self.move(("cancelling",), "cancelled")
        elif "expired_at" in self.state:
            await self.move(("finalizing",), "expired")
        else:
            self.state["completed_at"] = now()
            await self.move(("finalizing",), "completed")

    def _publish(self, path: Path, name: str) -> str:
        """The log as a ``batch_output`` file of the tenant (OpenAI's purpose for both result files)."""
        file_id = new_file_id()
        dest = self.runner.data_dir / "files" / str(self.tenant.id) / file_id
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(path.read_bytes())
        filename, size = f"{self.job.id}_{name}.jsonl", dest.stat().st_size
        create_file(self.cp, file_id=file_id, tenant_id=self.tenant.id, purpose="batch_output",
                    filename=filename, size=size, path=str(dest))  # fmt: skip
        return file_id

    def _count(self) -> None:
        counts = self.state.setdefault("request_counts", {"total": 0, "completed": 0, "failed": 0})
        counts.update(completed=len(self.output), failed=len(self.errors))

    async def _flush_counts(self) -> None:
        while True:
            await asyncio.sleep(_FLUSH_S)
            self._count()
            await run_in_threadpool(update_job, self.cp, self.job.id, result=dict(self.state))

    async def move(self, from_statuses: tuple[str, ...], to: str) -> None:
        """Compare-and-set the row's status (with the batch's state as its result); when the row had moved
        on (cancelled meanwhile), follow it."""
        result = dict(self.state)
        moved = await run_in_threadpool(transition, self.cp, self.job.id, from_statuses, to, result=result)
        if moved:
            self.status = to
            return
        job = await run_in_threadpool(get_job, self.cp, self.job.id)
        assert job is not None
        self.state, self.status = {**(job.result or {}), **self.state}, job.status


def _copy_and_read(source: Path, copy: Path, endpoint: str) -> tuple[list[InputLine], list[dict[str, Any]]]:
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_bytes(source.read_bytes())
    return read_input(copy, endpoint)


def _record(line: InputLine, response: dict[str, Any] | None, error: dict[str, Any] | None) -> dict[str, Any]:
    return {"id": f"batch_req_{uuid.uuid4().hex}", "custom_id": line.custom_id, "response": response,
            "error": error}  # fmt: skip


def now() -> int:
    return int(time.time())
