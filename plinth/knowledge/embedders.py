"""Embedders a knowledge base can use: the local sentence-transformers model, or any OpenAI-compatible
``/v1/embeddings`` server.

Both expose ``embed(texts) -> list[list[float]]`` and ``dimensions``; :func:`get_embedder` caches one
instance per (name, url) so a model loads once per process however many KBs use it::

    embedder = get_embedder("sentence-transformers/all-MiniLM-L6-v2")
    remote = get_embedder("text-embedding-3-small", url="http://vllm:8000/v1", api_key="...")
"""

from __future__ import annotations

import threading
from typing import Any

import httpx

from plinth.llm.embedder import DEFAULT_EMBEDDING_MODEL, Embedder

__all__ = ["OpenAIEmbedder", "get_embedder", "tokenizer_of"]

_CACHE: dict[tuple[str, str | None], Any] = {}
_CACHE_LOCK = threading.Lock()


class OpenAIEmbedder:
    """Vectors from an OpenAI-compatible server: ``POST {base_url}/embeddings``."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout: float = 60.0) -> None:
        self.name = model
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = timeout
        self._dimensions: int | None = None

    def embed(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, in order (the response's ``index`` says which is which)."""
        if not texts:
            return []
        body = {"model": self.name, "input": list(texts)}
        response = httpx.post(
            f"{self.base_url}/embeddings", json=body, headers=self._headers, timeout=self._timeout
        )
        response.raise_for_status()
        data = sorted(response.json()["data"], key=lambda item: item["index"])
        return [[float(x) for x in item["embedding"]] for item in data]

    @property
    def dimensions(self) -> int:
        """Learned by embedding one probe text (the API has no metadata call)."""
        if self._dimensions is None:
            self._dimensions = len(self.embed(["dimension probe"])[0])
        return self._dimensions


def get_embedder(name: str, url: str | None = None, api_key: str | None = None) -> Any:
    """The process-wide embedder for ``name`` (served at ``url`` when given), created once."""
    key = (name, url)
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = OpenAIEmbedder(url, name, api_key) if url else Embedder.load(name)
        return _CACHE[key]


def tokenizer_of(embedder: Any) -> Any:
    """The tokenizer chunk sizes are counted in: the embedder's own, else (a remote embedder, whose
    tokenizer we cannot see) the bundled default model's -- an approximation, but offline and fast."""
    if isinstance(embedder, Embedder):
        return embedder.model.tokenizer
    if (own := getattr(embedder, "tokenizer", None)) is not None:
        return own
    return get_embedder(DEFAULT_EMBEDDING_MODEL).model.tokenizer
