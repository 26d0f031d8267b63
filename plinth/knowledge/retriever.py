"""Query a knowledge base's store: validate the request, embed the query, search.

Every invalid input raises a ``ValueError`` carrying ``param`` (the request field to blame), so the
HTTP layer answers a precise 400: :class:`RetrievalError` for ``query``/``numberOfResults``/
``searchType``, :class:`~plinth.knowledge.filters.FilterError` for the filter (``filter.andAll[1]…``)::

    hits = retrieve(store, embedder, schema, "refund policy", 5, "HYBRID", {"equals": {"key": "lang",
                    "value": "en"}}, hybrid_weight=0.5)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, get_args

from plinth.knowledge.filters import parse_filter
from plinth.knowledge.rerank import CANDIDATES_PER_RESULT, Reranker
from plinth.knowledge.store import Store
from plinth.knowledge.types import Hit, SearchType

if TYPE_CHECKING:
    from plinth.llm.embedding import Embedder

__all__ = ["MAX_RESULTS", "SEARCH_TYPES", "RetrievalError", "retrieve"]

MAX_RESULTS = 100
SEARCH_TYPES: tuple[str, ...] = get_args(SearchType)


class RetrievalError(ValueError):
    """A retrieval request the caller must fix; ``param`` names the offending field."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message


def retrieve(
    store: Store,
    embedder: Embedder,
    schema: dict[str, str],
    query: Any,
    k: Any = 5,
    search_type: Any = "HYBRID",
    raw_filter: Any = None,
    hybrid_weight: float = 0.5,
    reranker: Reranker | None = None,
) -> list[Hit]:
    """At most ``k`` hits for ``query``, best first, with ``raw_filter`` (Bedrock grammar) applied.

    With a ``reranker``, ``CANDIDATES_PER_RESULT * k`` candidates are fetched and rescored.
    """
    _check(query, k, search_type)
    flt = parse_filter(raw_filter, schema) if raw_filter is not None else None
    vector = embedder.embed([query])[0] if search_type != "LEXICAL" else None
    if reranker is None:
        return store.search(query, vector, k, search_type, flt, hybrid_weight)
    depth = min(MAX_RESULTS, CANDIDATES_PER_RESULT * k)
    return reranker.rerank(query, store.search(query, vector, depth, search_type, flt, hybrid_weight), k)


def _check(query: Any, k: Any, search_type: Any) -> None:
    if not isinstance(query, str) or not query.strip():
        raise RetrievalError("query", "must be a non-empty string")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_RESULTS:
        raise RetrievalError("numberOfResults", f"must be an integer from 1 to {MAX_RESULTS}")
    if search_type not in SEARCH_TYPES:
        raise RetrievalError("searchType", f"must be one of {', '.join(SEARCH_TYPES)}, not {search_type!r}")
