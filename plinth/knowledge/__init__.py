"""Knowledge bases: sources -> chunks -> embeddings -> a store, synced incrementally and queried.

The server and CLI call :class:`KnowledgeService` (one per data directory) with a
:class:`KnowledgeBaseConfig`; :func:`retrieve` searches a store, :func:`retrieve_and_generate` answers
from it with citations.

Every name below is exported here; its module is imported on first use, so importing the package (or
one light submodule) stays cheap: some exports pull in torch, lancedb, scikit-learn or Presidio.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plinth.lazy import lazy_exports

if TYPE_CHECKING:
    from plinth.knowledge.chunking import ChunkingConfig
    from plinth.knowledge.citations import build_citations, reference
    from plinth.knowledge.filters import FilterError, parse_filter
    from plinth.knowledge.fusion import hybrid_depth, rrf
    from plinth.knowledge.kb import KnowledgeBaseConfig
    from plinth.knowledge.progress import rate_and_eta, sync_state
    from plinth.knowledge.rag import MIN_SCORES, DroppedSource, RagResult, retrieve_and_generate
    from plinth.knowledge.retriever import MAX_RESULTS, SEARCH_TYPES, RetrievalError, retrieve
    from plinth.knowledge.service import ConflictError, InvalidError, KnowledgeService, NotFoundError
    from plinth.knowledge.sources import content_hash
    from plinth.knowledge.store import Store
    from plinth.knowledge.stores.lancedb import LanceStore
    from plinth.knowledge.types import Chunk, Document, Hit, SearchType

__all__ = [
    "MAX_RESULTS",
    "MIN_SCORES",
    "SEARCH_TYPES",
    "Chunk",
    "ChunkingConfig",
    "ConflictError",
    "Document",
    "DroppedSource",
    "FilterError",
    "Hit",
    "InvalidError",
    "KnowledgeBaseConfig",
    "KnowledgeService",
    "LanceStore",
    "NotFoundError",
    "RagResult",
    "RetrievalError",
    "SearchType",
    "Store",
    "build_citations",
    "content_hash",
    "hybrid_depth",
    "parse_filter",
    "rate_and_eta",
    "reference",
    "retrieve",
    "retrieve_and_generate",
    "rrf",
    "sync_state",
]

_SOURCES = {
    "ChunkingConfig": "chunking",
    "content_hash": "sources",
    "rate_and_eta": "progress",
    "sync_state": "progress",
    "reference": "citations",
    "build_citations": "citations",
    "FilterError": "filters",
    "parse_filter": "filters",
    "hybrid_depth": "fusion",
    "rrf": "fusion",
    "KnowledgeBaseConfig": "kb",
    "MIN_SCORES": "rag",
    "DroppedSource": "rag",
    "RagResult": "rag",
    "retrieve_and_generate": "rag",
    "MAX_RESULTS": "retriever",
    "SEARCH_TYPES": "retriever",
    "RetrievalError": "retriever",
    "retrieve": "retriever",
    "ConflictError": "service",
    "InvalidError": "service",
    "KnowledgeService": "service",
    "NotFoundError": "service",
    "Store": "store",
    "LanceStore": "stores.lancedb",
    "Chunk": "types",
    "Document": "types",
    "Hit": "types",
    "SearchType": "types",
}


__getattr__ = lazy_exports(__name__, _SOURCES)
