"""Knowledge bases per tenant: the one object the HTTP API and the CLI call.

``KnowledgeService`` ties the control-plane rows (config, jobs) to the stores and embedders. Stores: a
LanceDB directory ``<data_dir>/knowledge/<tenant>/<kb>/``, or a pgvector table ``kb_<id>`` in the
database at ``settings.pgvector_dsn``. Syncs run on a background thread, one per KB at a time; their
progress and report are written to the job row, so any process can read them. A KB's syncs are
atomic once one has succeeded; until then (a first build, or resuming one) each sync commits in
batches, so retrieval answers from what has landed. :meth:`KnowledgeService.close` stops running
syncs between batches (a first build keeps what it committed; syncing again resumes it)::

    service = KnowledgeService(cp, settings.data_dir, settings)
    service.create(tenant, KnowledgeBaseConfig("docs"))
    service.add_source(tenant, "docs", {"type": "files", "path": "/srv/docs"})
    job = service.start_sync(tenant, "docs")        # poll service.job(tenant, job.id)
    hits = service.retrieve(tenant, "docs", "refunds?", k=5)
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

from plinth.control import ControlPlane, Tenant, utcnow
from plinth.control import knowledge as rows
from plinth.knowledge.filters import validate_schema
from plinth.knowledge.kb import KnowledgeBaseConfig
from plinth.knowledge.rerank import CrossEncoderReranker, Reranker
from plinth.knowledge.retriever import retrieve
from plinth.knowledge.sources import infer_schema
from plinth.knowledge.store import Store
from plinth.knowledge.stores import open_store
from plinth.knowledge.sync import SyncReport, load_documents, sync
from plinth.knowledge.types import Hit
from plinth.llm.embedders import get_embedder
from plinth.llm.embedding import Embedder

__all__ = ["ConflictError", "InvalidError", "KnowledgeService", "NotFoundError"]

Progress = Callable[[int, int], None]


class NotFoundError(LookupError):
    """No such KB or job for this tenant (another tenant's counts as none)."""


class ConflictError(RuntimeError):
    """The name is taken, or a sync of the KB is already running."""


class InvalidError(ValueError):
    """A request the caller must fix; ``param`` names the field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class KnowledgeService:
    """Create, configure, sync and query a tenant's knowledge bases."""

    def __init__(
        self,
        control_plane: ControlPlane,
        data_dir: Path | str,
        settings: Any = None,
        *,
        recover: bool = False,
    ) -> None:
        """``recover``: mark jobs left queued/running as failed -- only the server, at start, may do
        that (a CLI run next to a live server must not fail the server's running syncs)."""
        self.cp = control_plane
        self.data_dir = Path(data_dir)
        self.pgvector_dsn: str | None = getattr(settings, "pgvector_dsn", None)
        self._threads: dict[str, threading.Thread] = {}
        self._rerankers: dict[str, CrossEncoderReranker] = {}
        self._stopping = threading.Event()
        if recover:  # a previous process died mid-sync; its writer never committed
            rows.fail_unfinished_jobs(self.cp)

    # --- lifecycle -----------------------------------------------------------------------------------

    def create(self, tenant: Tenant, config: KnowledgeBaseConfig) -> rows.KnowledgeBaseRow:
        if config.store == "pgvector" and not self.pgvector_dsn:
            raise InvalidError(
                "store 'pgvector' needs a PostgreSQL database: set PLINTH_PGVECTOR_DSN (or pgvector_dsn "
                "in plinth.toml) on the server, or use store 'lancedb'",
                param="store",
            )
        if config.metadata_schema is not None:
            try:
                validate_schema(config.metadata_schema)
            except ValueError as exc:
                raise InvalidError(str(exc), param="metadata_schema") from exc
        try:
            return rows.create_kb(self.cp, tenant_id=tenant.id, name=config.name, config=config.to_json())
        except rows.KnowledgeBaseExistsError as exc:
            raise ConflictError(str(exc)) from exc

    def list_kbs(self, tenant: Tenant) -> list[rows.KnowledgeBaseRow]:
        return rows.list_kbs(self.cp, tenant.id)

    def get(self, tenant: Tenant, name: str) -> rows.KnowledgeBaseRow:
        row = rows.get_kb(self.cp, tenant.id, name)
        if row is None:
            raise NotFoundError(f"The knowledge base '{name}' does not exist.")
        return row

    def config(self, row: rows.KnowledgeBaseRow) -> KnowledgeBaseConfig:
        return KnowledgeBaseConfig.from_json(row.config)

    def delete(self, tenant: Tenant, name: str) -> None:
        """Remove the KB's rows and drop its store (409 while a sync runs: it would write it back)."""
        row = self.get(tenant, name)
        if rows.active_job(self.cp, row.id) is not None:
            raise ConflictError(f"a sync of knowledge base '{name}' is running; delete it when it ends")
        config = self.config(row)
        rows.delete_kb(self.cp, row)
        if config.store == "lancedb":
            shutil.rmtree(self.lance_path(tenant, name), ignore_errors=True)
        elif config.metadata_schema is not None and self.pgvector_dsn:
            self._open(tenant, row, config).drop()

    def add_source(self, tenant: Tenant, name: str, spec: dict[str, Any]) -> rows.KnowledgeBaseRow:
        row = self.get(tenant, name)
        try:
            config = self.config(row).with_source(spec)
        except ValueError as exc:
            raise InvalidError(str(exc), param="source") from exc
        rows.update_kb_config(self.cp, row.id, config.to_json())
        return self.get(tenant, name)

    # --- sync ----------------------------------------------------------------------------------------

    def start_sync(self, tenant: Tenant, name: str) -> rows.JobRow:
        """Queue a sync and run it on a background thread; ConflictError if one is already running."""
        row = self.get(tenant, name)
        try:
            job = rows.create_job(self.cp, row)
        except rows.SyncRunningError as exc:
            raise ConflictError(str(exc)) from exc
        thread = threading.Thread(
            target=self.run_job, args=(tenant, row, job.id), name=f"kb-sync-{job.id}", daemon=True
        )
        self._threads[job.id] = thread
        thread.start()
        return job

    def sync_now(self, tenant: Tenant, name: str, progress: Progress | None = None) -> rows.JobRow:
        """Run a sync in this thread (the CLI); the job row records it as for a background one."""
        row = self.get(tenant, name)
        try:
            job = rows.create_job(self.cp, row)
        except rows.SyncRunningError as exc:
            raise ConflictError(str(exc)) from exc
        self.run_job(tenant, row, job.id, progress)
        return self.job(tenant, job.id)

    def run_job(
        self, tenant: Tenant, row: rows.KnowledgeBaseRow, job_id: str, progress: Progress | None = None
    ) -> None:
        """Run job ``job_id``; whatever happens the job ends succeeded or failed, never running."""
        rows.update_job(self.cp, job_id, status="running", started_at=utcnow())
        try:
            report = self._sync(tenant, row, job_id, progress)
        except Exception as exc:  # e.g. the store could not be opened: nothing was written
            report = SyncReport(status="failed", error=f"{type(exc).__name__}: {exc}")
        finally:
            self._threads.pop(job_id, None)
        rows.update_job(
            self.cp, job_id, status=report.status, report=report.to_json(), error=report.error,
            finished_at=utcnow(),
        )  # fmt: skip

    def _sync(
        self, tenant: Tenant, row: rows.KnowledgeBaseRow, job_id: str, progress: Progress | None
    ) -> SyncReport:
        config = self.config(row)
        loaded = load_documents(config, self.data_dir)
        if config.metadata_schema is None:  # fixed at the first sync: the store's columns follow it
            config.metadata_schema = _filterable(infer_schema(loaded[0]))
            rows.update_kb_config(self.cp, row.id, config.to_json())

        def report_progress(done: int, total: int) -> None:
            rows.update_job(self.cp, job_id, done=done, total=total)
            if progress is not None:
                progress(done, total)

        store = self._open(tenant, row, config)
        first_build = not rows.has_succeeded_job(self.cp, row.id)
        return sync(
            config, store, self.embedder(config), self.data_dir, report_progress, loaded,
            first_build=first_build, should_stop=self._stopping.is_set,
        )  # fmt: skip

    def job(self, tenant: Tenant, job_id: str) -> rows.JobRow:
        job = rows.get_job(self.cp, tenant.id, job_id)
        if job is None:
            raise NotFoundError(f"The sync job '{job_id}' does not exist.")
        return job

    def wait(self, job_id: str, timeout: float | None = None) -> None:
        """Block until a background job started here ends (tests and shutdown)."""
        thread = self._threads.get(job_id)
        if thread is not None:
            thread.join(timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Stop the running syncs at their next batch and wait for them (server shutdown).

        Each ends ``failed`` with a ``SyncStopped`` error; a batch already embedding finishes first."""
        self._stopping.set()
        deadline = time.monotonic() + timeout
        for thread in list(self._threads.values()):
            thread.join(max(0.0, deadline - time.monotonic()))

    # --- queries -------------------------------------------------------------------------------------

    def retrieve(
        self,
        tenant: Tenant,
        name: str,
        query: Any,
        k: Any = 5,
        search_type: Any = "HYBRID",
        raw_filter: Any = None,
    ) -> list[Hit]:
        """Hits from the last committed sync (``[]`` before the first one); ValueErrors carry ``param``."""
        row = self.get(tenant, name)
        config = self.config(row)
        schema = config.metadata_schema
        if schema is None:  # never synced: validate the request anyway, then nothing to find
            retrieve(cast(Store, _EmptyStore()), _NoEmbedder(), {}, query, k, search_type, raw_filter)
            return []
        store = self._open(tenant, row, config)
        reranker = self.reranker(config.reranker) if config.reranker else None
        embedder, weight = self.embedder(config), config.hybrid_weight
        return retrieve(store, embedder, schema, query, k, search_type, raw_filter, weight, reranker)

    def reranker(self, name: str) -> Reranker:
        """One cross-encoder per model name per process (loading one is slow)."""
        return self._rerankers.setdefault(name, CrossEncoderReranker(name))

    # --- stores and embedders ------------------------------------------------------------------------

    def embedder(self, config: KnowledgeBaseConfig) -> Embedder:
        return get_embedder(config.embedder, config.embedder_url)

    def lance_path(self, tenant: Tenant, name: str) -> Path:
        return self.data_dir / "knowledge" / tenant.name / name

    def _open(self, tenant: Tenant, row: rows.KnowledgeBaseRow, config: KnowledgeBaseConfig) -> Store:
        assert config.metadata_schema is not None, "a store is opened only once the schema is known"
        dim = self.embedder(config).dimensions
        if config.store == "pgvector":
            if not self.pgvector_dsn:
                raise InvalidError("store 'pgvector' needs PLINTH_PGVECTOR_DSN on the server", param="store")
            return open_store(
                "pgvector",
                dim=dim,
                schema=config.metadata_schema,
                dsn=self.pgvector_dsn,
                table=f"kb_{row.id}",
            )
        return open_store(
            "lancedb", dim=dim, schema=config.metadata_schema, path=self.lance_path(tenant, config.name)
        )


def _filterable(schema: Mapping[str, str]) -> dict[str, str]:
    """The inferred fields that can be store columns (a field name must be an identifier)."""
    kept = {}
    for key, kind in schema.items():
        try:
            validate_schema({key: kind})
        except ValueError:
            continue
        kept[key] = kind
    return kept


class _EmptyStore:
    """Stands in for a store that does not exist yet, so validation runs the same code path."""

    def search(self, *args: Any, **kwargs: Any) -> list[Hit]:
        return []


class _NoEmbedder(Embedder):
    name = "none"

    def embed_batch(self, texts: list[str]) -> list[list[float]]:
        return [[] for _ in texts]
