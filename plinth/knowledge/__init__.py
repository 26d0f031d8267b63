"""Knowledge bases: sources -> chunks -> embeddings -> a store, synced incrementally and queried.

The public entry points are :class:`~plinth.knowledge.service.KnowledgeService` (what the server and
CLI call), :class:`~plinth.knowledge.kb.KnowledgeBaseConfig`, :func:`~plinth.knowledge.sync.sync` and
:func:`~plinth.knowledge.retriever.retrieve`. Public names are imported on first use (``from
plinth.knowledge import KnowledgeService`` loads the service then) so that importing the package, or
one light submodule, stays cheap: the embedder pulls in torch.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plinth.knowledge.citations import reference
    from plinth.knowledge.filters import FilterError, parse_filter
    from plinth.knowledge.kb import KnowledgeBaseConfig
    from plinth.knowledge.rag import MIN_SCORES, DroppedSource, RagResult, retrieve_and_generate
    from plinth.knowledge.retriever import MAX_RESULTS, SEARCH_TYPES, RetrievalError
    from plinth.knowledge.service import ConflictError, InvalidError, KnowledgeService, NotFoundError
    from plinth.knowledge.types import Hit

__all__ = [
    "MAX_RESULTS",
    "MIN_SCORES",
    "SEARCH_TYPES",
    "ConflictError",
    "DroppedSource",
    "FilterError",
    "Hit",
    "InvalidError",
    "KnowledgeBaseConfig",
    "KnowledgeService",
    "NotFoundError",
    "RagResult",
    "RetrievalError",
    "parse_filter",
    "reference",
    "retrieve_and_generate",
]

_MODULES = {
    "reference": "citations",
    "FilterError": "filters",
    "parse_filter": "filters",
    "KnowledgeBaseConfig": "kb",
    "MIN_SCORES": "rag",
    "DroppedSource": "rag",
    "RagResult": "rag",
    "retrieve_and_generate": "rag",
    "MAX_RESULTS": "retriever",
    "SEARCH_TYPES": "retriever",
    "RetrievalError": "retriever",
    "ConflictError": "service",
    "InvalidError": "service",
    "KnowledgeService": "service",
    "NotFoundError": "service",
    "Hit": "types",
}


def __getattr__(name: str) -> Any:
    """A public name, imported from its submodule on first use (PEP 562)."""
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_MODULES[name]}"), name)
