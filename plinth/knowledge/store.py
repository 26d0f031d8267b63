"""The seam between a knowledge base and where its chunks live (LanceDB embedded, PostgreSQL + pgvector).

Contract (both implementations pass the same test suite):

- ``search`` runs SEMANTIC (vector), LEXICAL (BM25 full text) or HYBRID (reciprocal-rank fusion of
  both, ``hybrid_weight`` = weight of the semantic list) with the metadata ``filter`` applied *before*
  ranking (pre-filter, pushed down to the store), returning at most ``k`` hits, best first.
- Writes are atomic: ``begin()`` returns a writer; nothing it does is visible to ``search`` or
  ``doc_hashes`` until ``commit()``; ``abort()`` (or an exception inside ``with``) leaves the
  previous version exactly as it was.
"""

from __future__ import annotations

from typing import Protocol

from plinth.knowledge.filters import Filter
from plinth.knowledge.types import Chunk, Hit, SearchType


class StoreWriter(Protocol):
    def upsert(self, chunks: list[Chunk], doc_hashes: dict[str, str]) -> None:
        """Replace every chunk of the documents in ``doc_hashes`` by ``chunks`` (vectors set)."""

    def delete_docs(self, doc_ids: list[str]) -> None: ...

    def commit(self) -> None: ...

    def abort(self) -> None: ...

    def __enter__(self) -> StoreWriter: ...

    def __exit__(self, *exc: object) -> None:
        """Commit on success, abort on an exception."""


class Store(Protocol):
    def begin(self) -> StoreWriter: ...

    def search(
        self,
        query: str,
        vector: list[float] | None,
        k: int,
        search_type: SearchType = "HYBRID",
        filter: Filter | None = None,
        hybrid_weight: float = 0.5,
    ) -> list[Hit]: ...

    def doc_hashes(self) -> dict[str, str]:
        """doc_id -> content hash of the committed version (what incremental sync compares)."""

    def count(self) -> int:
        """Chunks in the committed version."""

    def drop(self) -> None: ...
