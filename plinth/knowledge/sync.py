"""Incremental, atomic sync: bring a store in line with a knowledge base's sources.

Contract:

- Documents are compared by ``content_hash`` with ``store.doc_hashes()``: new ids are *added*, changed
  hashes *changed*, ids no longer in any source *deleted*; only added and changed documents are chunked
  and embedded (in batches), so re-syncing unchanged data costs one read of the sources.
- Every write goes through ONE store writer committed at the very end. Any exception aborts it, so a
  failed or interrupted sync leaves the previous version queryable exactly as it was; the report then
  says ``failed`` with the error instead of raising.
- The report lists every skipped file or record with its reason, and ``progress(done, total)`` is
  called after each batch of documents (``total`` = documents to embed).

::

    docs, skipped = load_documents(config, base_dir)
    report = sync(config, store, embedder, base_dir, progress=print, loaded=(docs, skipped))
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from plinth.knowledge.chunking import chunk
from plinth.knowledge.kb import KnowledgeBaseConfig, to_source
from plinth.knowledge.sources import Skipped, read_source
from plinth.knowledge.store import Store, StoreWriter
from plinth.knowledge.types import Chunk, Document
from plinth.llm.embedder import DEFAULT_EMBEDDING_MODEL, SentenceEmbedder
from plinth.llm.embedders import get_embedder
from plinth.llm.embedding import Embedder

__all__ = ["DOC_BATCH", "EMBED_BATCH", "SyncPlan", "SyncReport", "load_documents", "plan", "sync"]

DOC_BATCH = 16  # documents chunked and written per step (one progress tick each)
EMBED_BATCH = 64  # chunk texts per embedder call

Progress = Callable[[int, int], None]
T = TypeVar("T")


@dataclass(slots=True)
class SyncReport:
    """What a sync did; ``status`` is ``succeeded`` or ``failed`` (then nothing was written)."""

    added: int = 0
    changed: int = 0
    deleted: int = 0
    unchanged: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    chunks: int = 0  # chunks written this sync
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
) -> SyncReport:
    """Sync ``store`` with ``config``'s sources (see the module docstring); never raises for data errors."""
    progress = progress or (lambda done, total: None)
    report = SyncReport()
    try:
        documents, report.skipped = loaded if loaded is not None else load_documents(config, base_dir)
        todo = plan(documents, store.doc_hashes())
        report.added, report.changed = len(todo.added), len(todo.changed)
        report.deleted, report.unchanged = len(todo.deleted), todo.unchanged
        report.chunks = _write(config, store, embedder, todo, progress)
    except Exception as exc:  # the writer was aborted: the previous version is intact
        report.status, report.error = "failed", f"{type(exc).__name__}: {exc}"
    return report


def _write(
    config: KnowledgeBaseConfig, store: Store, embedder: Embedder, todo: SyncPlan, progress: Progress
) -> int:
    """All of the plan's writes in one writer, committed only if every batch succeeded."""
    documents = [*todo.added, *todo.changed]
    progress(0, len(documents))
    if not documents and not todo.deleted:
        return 0  # nothing to do: do not create a new store version
    tokenizer = tokenizer_of(embedder) if documents else None
    written = 0
    writer = store.begin()
    try:
        if todo.deleted:
            writer.delete_docs(todo.deleted)
        for done, batch in _batches_done(documents, DOC_BATCH):
            written += _write_batch(writer, config, embedder, tokenizer, batch)
            progress(done, len(documents))
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return written


def _write_batch(
    writer: StoreWriter, config: KnowledgeBaseConfig, embedder: Embedder, tokenizer: Any, docs: list[Document]
) -> int:
    """Chunk and embed ``docs`` and upsert them (a document's old chunks are replaced)."""
    chunks: list[Chunk] = []
    for doc in docs:
        chunks.extend(chunk(doc, config.chunking, tokenizer, embedder.embed))
    for batch in _batches(chunks, EMBED_BATCH):
        for piece, vector in zip(batch, embedder.embed([c.text for c in batch]), strict=True):
            piece.vector = vector
    writer.upsert(chunks, {doc.doc_id: doc.content_hash for doc in docs})
    return len(chunks)


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
