"""Incremental sync: bring a store in line with a knowledge base's sources.

Contract:

- Documents are compared by ``content_hash`` with ``store.doc_hashes()``: new ids are *added*, changed
  hashes *changed*, ids no longer in any source *deleted*; only added and changed documents are chunked
  and embedded (in batches), so re-syncing unchanged data costs one read of the sources.
- A re-sync is atomic: every write goes through ONE store writer committed at the very end. Any
  exception (or ``should_stop``) aborts it, so a failed or interrupted sync leaves the previous version
  queryable exactly as it was; the report then says ``failed`` with the error instead of raising.
- A first build (``first_build=True``: the caller knows no earlier good version exists) has nothing to
  protect, so it commits as it goes -- its first batch at once, then at most every
  :data:`COMMIT_SECONDS` -- and retrieval answers from what has landed while the rest is embedded,
  in source order. A failed or stopped first build keeps what it committed; syncing again resumes
  (the landed documents are unchanged, so only the rest is embedded).
- The report lists every skipped file or record with its reason. ``progress(done, total)`` is called
  with ``(0, total)`` first (``total`` = documents to embed), then after each batch of a re-sync, or
  after each commit of a first build, where ``done`` counts documents already searchable.

::

    docs, skipped = load_documents(config, base_dir)
    report = sync(config, store, embedder, base_dir, progress=print, loaded=(docs, skipped))
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from plinth.knowledge.chunking import chunk
from plinth.knowledge.kb import KnowledgeBaseConfig, to_source
from plinth.knowledge.sources import Skipped, read_source
from plinth.knowledge.store import Store
from plinth.knowledge.types import Chunk, Document
from plinth.llm.embedder import DEFAULT_EMBEDDING_MODEL, SentenceEmbedder
from plinth.llm.embedders import get_embedder
from plinth.llm.embedding import Embedder

__all__ = [
    "COMMIT_SECONDS",
    "DOC_BATCH",
    "EMBED_BATCH",
    "SyncPlan",
    "SyncReport",
    "SyncStopped",
    "load_documents",
    "plan",
    "sync",
]

DOC_BATCH = 64  # documents chunked and written per step: 64 texts embed ~1.5x faster per text than 16
EMBED_BATCH = 64  # chunk texts per embedder call
COMMIT_SECONDS = 5.0  # a first build commits at most this often: each commit costs a store version

Progress = Callable[[int, int], None]
T = TypeVar("T")


@dataclass(slots=True)
class SyncReport:
    """What a sync did; ``status`` is ``succeeded`` or ``failed`` (a re-sync then wrote nothing)."""

    added: int = 0
    changed: int = 0
    deleted: int = 0
    unchanged: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    chunks: int = 0  # chunks committed by this sync (a failed first build keeps those it committed)
    status: str = "succeeded"
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "added": self.added,
            "changed": self.changed,
            "deleted": self.deleted,
            "unchanged": self.unchanged,
            "chunks": self.chunks,
            "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped],
            "error": self.error,
        }


@dataclass(slots=True)
class SyncPlan:
    """Which documents to (re)index and which ids to remove."""

    added: list[Document]
    changed: list[Document]
    deleted: list[str]
    unchanged: int


def load_documents(
    config: KnowledgeBaseConfig, base_dir: Path | None
) -> tuple[list[Document], list[Skipped]]:
    """Every document of every source, and every skip. A doc id seen in two sources is a skip."""
    documents: dict[str, Document] = {}
    skipped: list[Skipped] = []
    for spec in config.sources:
        docs, skips = read_source(to_source(spec), base_dir)
        skipped.extend(skips)
        for doc in docs:
            if doc.doc_id in documents:
                skipped.append(
                    Skipped(doc.doc_id, f"duplicate document id (also in an earlier source); {spec['path']}")
                )
            else:
                documents[doc.doc_id] = doc
    return list(documents.values()), skipped


def plan(documents: Sequence[Document], stored: dict[str, str]) -> SyncPlan:
    """Compare document hashes with the store's committed ones."""
    added = [d for d in documents if d.doc_id not in stored]
    changed = [d for d in documents if d.doc_id in stored and stored[d.doc_id] != d.content_hash]
    current = {d.doc_id for d in documents}
    deleted = sorted(doc_id for doc_id in stored if doc_id not in current)
    return SyncPlan(added, changed, deleted, len(documents) - len(added) - len(changed))


def sync(
    config: KnowledgeBaseConfig,
    store: Store,
    embedder: Embedder,
    base_dir: Path | None,
    progress: Progress | None = None,
    loaded: tuple[list[Document], list[Skipped]] | None = None,
    *,
    first_build: bool = False,
    should_stop: Callable[[], bool] | None = None,
) -> SyncReport:
    """Sync ``store`` with ``config``'s sources (see the module docstring); never raises for data errors.

    ``should_stop`` is polled between batches; once it returns True the sync ends ``failed`` with a
    :class:`SyncStopped` error (a re-sync is aborted, a first build keeps what it committed)."""
    progress = progress or (lambda done, total: None)
    report = SyncReport()
    try:
        documents, report.skipped = loaded if loaded is not None else load_documents(config, base_dir)
        todo = plan(documents, store.doc_hashes())
        report.added, report.changed = len(todo.added), len(todo.changed)
        report.deleted, report.unchanged = len(todo.deleted), todo.unchanged
        steps = _embedded(config, embedder, [*todo.added, *todo.changed], should_stop or (lambda: False))
        write = _write_in_steps if first_build else _write_atomically
        write(store, todo, steps, progress, report)
    except Exception as exc:  # a re-sync's writer was aborted: the previous version is intact
        report.status, report.error = "failed", f"{type(exc).__name__}: {exc}"
    return report


class SyncStopped(RuntimeError):
    """``should_stop`` asked the sync to end (the server is shutting down)."""


@dataclass(slots=True)
class _Step:
    """One embedded batch, ready to upsert; ``done`` documents are embedded once it is written."""

    done: int
    total: int
    chunks: list[Chunk]
    doc_hashes: dict[str, str]


def _write_atomically(
    store: Store, todo: SyncPlan, steps: Iterator[_Step], progress: Progress, report: SyncReport
) -> None:
    """All of the plan's writes in one writer, committed only if every batch succeeded."""
    progress(0, len(todo.added) + len(todo.changed))
    if not (todo.added or todo.changed or todo.deleted):
        return  # nothing to do: do not create a new store version
    written = 0
    writer = store.begin()
    try:
        if todo.deleted:
            writer.delete_docs(todo.deleted)
        for step in steps:
            writer.upsert(step.chunks, step.doc_hashes)
            written += len(step.chunks)
            progress(step.done, step.total)
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    report.chunks = written


def _write_in_steps(
    store: Store, todo: SyncPlan, steps: Iterator[_Step], progress: Progress, report: SyncReport
) -> None:
    """A first build: one writer per commit group (see :func:`_commit_groups`), each committed at once."""
    progress(0, len(todo.added) + len(todo.changed))
    deleted = todo.deleted
    for group in _commit_groups(steps):
        with store.begin() as writer:
            if deleted:
                writer.delete_docs(deleted)
                deleted = []
            for step in group:
                writer.upsert(step.chunks, step.doc_hashes)
        report.chunks += sum(len(step.chunks) for step in group)
        progress(group[-1].done, group[-1].total)
    if deleted:  # nothing to embed, only documents to remove
        with store.begin() as writer:
            writer.delete_docs(deleted)


def _commit_groups(steps: Iterator[_Step]) -> Iterator[list[_Step]]:
    """The first step alone (the first documents are searchable within seconds), then what was
    embedded in each COMMIT_SECONDS, then the rest: a commit per group bounds the store's versions."""
    group: list[_Step] = []
    last_commit = -math.inf
    for step in steps:
        group.append(step)
        if step.done == step.total or time.monotonic() - last_commit >= COMMIT_SECONDS:
            yield group
            group, last_commit = [], time.monotonic()


def _embedded(
    config: KnowledgeBaseConfig,
    embedder: Embedder,
    documents: list[Document],
    should_stop: Callable[[], bool],
) -> Iterator[_Step]:
    """The documents chunked and embedded, DOC_BATCH at a time, in order (lazily: one batch in memory)."""
    tokenizer = tokenizer_of(embedder) if documents else None
    for done, docs in _batches_done(documents, DOC_BATCH):
        if should_stop():
            raise SyncStopped(f"stopped after {done - len(docs)} of {len(documents)} documents")
        chunks: list[Chunk] = []
        for doc in docs:
            chunks.extend(chunk(doc, config.chunking, tokenizer, embedder.embed))
        for batch in _batches(chunks, EMBED_BATCH):
            for piece, vector in zip(batch, embedder.embed([c.text for c in batch]), strict=True):
                piece.vector = vector
        yield _Step(done, len(documents), chunks, {doc.doc_id: doc.content_hash for doc in docs})


def _batches(items: Sequence[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _batches_done(items: Sequence[T], size: int) -> Iterator[tuple[int, list[T]]]:
    """Batches with how many items are done once each is processed."""
    for start in range(0, len(items), size):
        batch = list(items[start : start + size])
        yield start + len(batch), batch


def tokenizer_of(embedder: Embedder) -> Any:
    """The tokenizer chunk sizes are counted in: the embedder's own, else (a remote embedder, whose
    tokenizer we cannot see) the bundled default model's -- an approximation, but offline and fast."""
    if isinstance(embedder, SentenceEmbedder):
        return embedder.model.tokenizer
    if (own := getattr(embedder, "tokenizer", None)) is not None:
        return own
    default = get_embedder(DEFAULT_EMBEDDING_MODEL)
    assert isinstance(default, SentenceEmbedder)
    return default.model.tokenizer
