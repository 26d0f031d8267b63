"""The seed's three questions over the REAL movie catalog, real embeddings and a real LanceStore.

Retrieval is real (all-MiniLM-L6-v2, offline; HYBRID search); generation is the ScriptedModel, which
reads the grounded prompt it is given and cites the source ids it finds there, as an honest model would.
To keep the test light (embedding is most of its time) the store holds a subset of the catalog: every
movie mentioning Christmas, every rated animated one, a quarter of the unrated animated ones and 600
others spread over the years (~1,050 movies, one chunk each).
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

from plinth.demo.movies import movie_documents
from plinth.knowledge.rag import RagResult, retrieve_and_generate
from plinth.knowledge.retriever import retrieve
from plinth.knowledge.stores.lancedb import LanceStore
from plinth.knowledge.types import Chunk, Document, Hit
from plinth.llm import ScriptedModel, SentenceEmbedder
from plinth.llm.base import Message

pytestmark = pytest.mark.slow

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
SCHEMA = {
    "title": "string", "year": "number", "genres": "string_list", "cast": "string_list",
    "rating": "number", "directors": "string_list",
}  # fmt: skip
OTHERS = 600
ANIMATED_ABOVE_7 = {
    "andAll": [
        {"listContains": {"key": "genres", "value": "Animated"}},
        {"greaterThan": {"key": "rating", "value": 7}},
    ]
}


def subset(docs: list[Document]) -> list[Document]:
    """Christmas and animated movies, plus every n-th other one (deterministic)."""
    animated = [d for d in docs if "Animated" in d.metadata["genres"]]
    rated = [d for d in animated if "rating" in d.metadata]
    unrated = [d for d in animated if "rating" not in d.metadata][::4]
    wanted = list(
        {d.doc_id: d for d in [*rated, *unrated, *(d for d in docs if _christmas(d.text))]}.values()
    )
    ids = {d.doc_id for d in wanted}
    others = [d for d in docs if d.doc_id not in ids]
    return wanted + others[:: max(1, len(others) // OTHERS)][:OTHERS]


def _christmas(text: str) -> bool:
    return "christmas" in text.lower()


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory) -> tuple[LanceStore, SentenceEmbedder]:
    assert (DATA / "movies" / "wikipedia").is_dir(), f"the movie catalog is expected at {DATA}"
    docs = subset(movie_documents(DATA))
    embedder = SentenceEmbedder.load()
    vectors = embedder.embed([d.text for d in docs])
    chunks = [
        Chunk(f"{d.doc_id}#0", d.doc_id, d.text, d.metadata, d.location, vector=v)
        for d, v in zip(docs, vectors, strict=True)
    ]
    store = LanceStore(tmp_path_factory.mktemp("movies-kb"), embedder.dimensions, SCHEMA)
    with store.begin() as writer:
        writer.upsert(chunks, {d.doc_id: d.content_hash for d in docs})
    return store, embedder


def search(
    kb: tuple[LanceStore, SentenceEmbedder], query: str, flt: dict[str, Any] | None = None, k: int = 5
) -> list[Hit]:
    store, embedder = kb
    return retrieve(store, embedder, SCHEMA, query, k, "HYBRID", flt)


def citing_model(title: str, sentence: str) -> ScriptedModel:
    """Answers ``sentence`` citing the source whose block holds ``title``, like an honest model."""

    def reply(messages: list[Message]) -> str:
        blocks = re.findall(r'<source id="(\d+)">(.*?)</source>', messages[-1]["content"], re.DOTALL)
        ids = [n for n, body in blocks if title in body]
        return f"{sentence} [{ids[0]}]." if ids else "I don't know based on the knowledge base."

    return ScriptedModel(reply)


def rag(kb: tuple[LanceStore, SentenceEmbedder], chat: ScriptedModel, query: str, **kwargs: Any) -> RagResult:
    return asyncio.run(
        retrieve_and_generate(
            query=query, hits_fn=lambda q, f: search(kb, q, f), chat=chat, schema=SCHEMA, **kwargs
        )
    )


def test_christmas_themed_movies(kb):
    hits = search(kb, "Recommend me some Christmas themed movies")
    assert len(hits) == 5
    assert all(_christmas(h.content) for h in hits), [h.metadata["title"] for h in hits]


def test_who_directed_the_nightmare_before_christmas(kb):
    query = "who directed The Nightmare Before Christmas?"
    top3 = [h.metadata["title"] for h in search(kb, query, k=3)]
    assert "The Nightmare Before Christmas" in top3
    chat = citing_model("The Nightmare Before Christmas (1993)", "It was directed by Henry Selick")
    result = rag(kb, chat, query)
    assert result.output_text == "It was directed by Henry Selick."
    [citation] = result.citations
    [ref] = citation["retrievedReferences"]
    assert ref["metadata"]["title"] == "The Nightmare Before Christmas"
    assert ref["metadata"]["directors"] == ["Henry Selick"]
    assert ref["location"]["url"].endswith("The_Nightmare_Before_Christmas")


def test_classic_animated_movies_rated_above_7(kb):
    chat = ScriptedModel([json.dumps(ANIMATED_ABOVE_7), "Here are some classics [1][2]."])
    result = rag(kb, chat, "show me classic animated movies rated above 7", implicit_filters=True)
    assert result.filter == ANIMATED_ABOVE_7
    assert len(result.hits) == 5
    for hit in result.hits:
        assert "Animated" in hit.metadata["genres"] and hit.metadata["rating"] > 7, hit.metadata
    cited = [r["metadata"]["title"] for r in result.citations[0]["retrievedReferences"]]
    assert cited == [h.metadata["title"] for h in result.hits[:2]]
