"""Vectors from any OpenAI-compatible ``/v1/embeddings`` server (vLLM, TEI, OpenAI itself)."""

from __future__ import annotations

import httpx

from plinth.llm.embedding import Embedder

__all__ = ["OpenAIEmbedder"]


class OpenAIEmbedder(Embedder):
    """``POST {base_url}/embeddings`` for each batch; the dimensions are learned from one probe text
    (the API has no metadata call)."""

    batch_size = 2048  # inputs per request: OpenAI's limit

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout: float = 60.0) -> None:
        self.name = model
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = timeout

    def embed_batch(self, texts: list[str]) -> list[list[float]]:
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
