"""The process-wide embedders: :func:`get_embedder` creates one instance per (name, url), so a model
loads once per process however many knowledge bases, guardrails and SQL catalogs use it::

    embedder = get_embedder()                                        # the bundled all-MiniLM-L6-v2
    remote = get_embedder("text-embedding-3-small", url="http://vllm:8000/v1", api_key="...")
"""

from __future__ import annotations

import threading

from plinth.llm.embedder import DEFAULT_EMBEDDING_MODEL, SentenceEmbedder
from plinth.llm.embedding import Embedder
from plinth.llm.openai_embedder import OpenAIEmbedder

__all__ = ["get_embedder"]

_CACHE: dict[tuple[str, str | None], Embedder] = {}
_CACHE_LOCK = threading.Lock()


def get_embedder(
    name: str = DEFAULT_EMBEDDING_MODEL, url: str | None = None, api_key: str | None = None
) -> Embedder:
    """The process-wide embedder for ``name`` (served at ``url`` when given), created once."""
    key = (name, url)
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = OpenAIEmbedder(url, name, api_key) if url else SentenceEmbedder.load(name)
        return _CACHE[key]
