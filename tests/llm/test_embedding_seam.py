"""The embedding seam: one abstract ``embed_batch``, batching on top, and every embedder behind it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from plinth.llm import Embedder, OpenAIEmbedder, SentenceEmbedder, get_embedder


class Lengths(Embedder):
    """Vectors that say which text they came from: ``[len(text), batch number]``."""

    name = "lengths"

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def embed_batch(self, texts: list[str]) -> list[list[float]]:
        self.batches.append(list(texts))
        return [[float(len(t)), float(len(self.batches))] for t in texts]


def test_embed_calls_embed_batch_per_batch_and_keeps_the_order() -> None:
    embedder = Lengths()
    vectors = embedder.embed(["a", "bb", "ccc", "dddd", "eeeee"], batch_size=2)
    assert embedder.batches == [["a", "bb"], ["ccc", "dddd"], ["eeeee"]]
    assert vectors == [[1, 1], [2, 1], [3, 2], [4, 2], [5, 3]]
    assert embedder.embed([]) == [] and len(embedder.batches) == 3  # nothing to embed: no call


def test_default_batch_size_and_dimensions_probe() -> None:
    embedder = Lengths()
    embedder.embed([str(i) for i in range(33)])
    assert [len(b) for b in embedder.batches] == [32, 1]
    assert embedder.dimensions == 2 and embedder.dimensions == 2
    assert len(embedder.batches) == 3  # probed once, then kept


def test_an_embedder_must_implement_embed_batch() -> None:
    class Nothing(Embedder):
        name = "nothing"

    with pytest.raises(TypeError, match="embed_batch"):
        Nothing()  # type: ignore[abstract]


def test_openai_embedder_takes_a_batch_size_like_every_embedder(monkeypatch: pytest.MonkeyPatch) -> None:
    requests: list[list[str]] = []

    def post(url: str, json: dict[str, Any], **kwargs: Any) -> httpx.Response:
        requests.append(json["input"])
        pairs = reversed(list(enumerate(json["input"])))  # out of order: ``index`` says which is which
        data = [{"index": i, "embedding": [float(len(t))]} for i, t in pairs]
        return httpx.Response(200, json={"data": data}, request=httpx.Request("POST", url))

    monkeypatch.setattr(httpx, "post", post)
    embedder = OpenAIEmbedder("http://emb/v1", "e5")
    assert embedder.embed(["a", "bb", "ccc"], batch_size=2) == [[1.0], [2.0], [3.0]]
    assert requests == [["a", "bb"], ["ccc"]]
    assert isinstance(embedder, Embedder) and embedder.dimensions == 1


def test_get_embedder_makes_one_per_name_and_url() -> None:
    local = get_embedder("some/local-model")
    assert isinstance(local, SentenceEmbedder) and get_embedder("some/local-model") is local  # not loaded
    remote = get_embedder("e5", url="http://emb/v1")
    assert isinstance(remote, OpenAIEmbedder) and get_embedder("e5", url="http://emb/v1") is remote
    assert get_embedder("e5") is not remote
