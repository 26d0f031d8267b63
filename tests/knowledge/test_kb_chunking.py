"""Chunking with the real all-MiniLM-L6-v2 tokenizer and embedder (bundled, loaded offline)."""

from __future__ import annotations

import re

import pytest

from plinth.knowledge.chunking import ChunkingConfig, chunk
from plinth.knowledge.types import Document
from plinth.llm import SentenceEmbedder

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
WORDS += ["india", "juliet", "kilo", "lima", "mike", "november", "oscar", "papa"]


@pytest.fixture(scope="module")
def embedder() -> SentenceEmbedder:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        embedder = SentenceEmbedder.load()
        embedder.model  # noqa: B018 -- load inside the offline block
    return embedder


@pytest.fixture(scope="module")
def tokenizer(embedder: SentenceEmbedder):
    return embedder.model.tokenizer


def n_tokens(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def document(text: str, **location) -> Document:
    return Document("docs/a.txt", text, {"team": "ml"}, {"type": "FILE", "uri": "/x/a.txt", **location}, "h")


def prose(n_sentences: int) -> str:
    """Sentences of varied length, with accents and capitals that re-decoding would lose."""
    sentences = []
    for i in range(n_sentences):
        words = " ".join(WORDS[(i + j) % len(WORDS)] for j in range(5 + i % 9))
        sentences.append(f"Sentence {i} at Café Müller says {words}.")
    return " ".join(sentences)


def test_fixed_windows_fit_overlap_and_end_on_sentences(tokenizer) -> None:
    doc = document(prose(60))
    config = ChunkingConfig(strategy="fixed", max_tokens=60, overlap_tokens=10)
    chunks = chunk(doc, config, tokenizer)
    assert len(chunks) > 5
    assert [c.chunk_id for c in chunks] == [f"docs/a.txt#{i}" for i in range(len(chunks))]
    cursor = 0
    for previous, current in zip(chunks, chunks[1:], strict=False):
        start = doc.text.index(current.text, cursor)
        prev_end = doc.text.index(previous.text, cursor) + len(previous.text)
        overlap = doc.text[start:prev_end]
        assert 0 < n_tokens(tokenizer, overlap) <= 10  # overlapping, by at most overlap_tokens
        assert previous.text.endswith(".")  # cut at a sentence end
        cursor = start
    for c in chunks:
        assert n_tokens(tokenizer, c.text) <= 60
        assert c.text in doc.text and "Café Müller" in c.text  # verbatim slices
        assert c.metadata == {"team": "ml"} and c.location == doc.location
    assert doc.text.startswith(chunks[0].text) and doc.text.endswith(chunks[-1].text)


def test_fixed_without_sentences_cuts_between_words(tokenizer) -> None:
    text = " ".join(WORDS[i % len(WORDS)] + "ing" for i in range(400))
    chunks = chunk(document(text), ChunkingConfig(max_tokens=50, overlap_tokens=0), tokenizer)
    assert "".join(c.text.replace(" ", "") for c in chunks) == text.replace(" ", "")  # no overlap, full cover
    for c in chunks:
        assert all(word.removesuffix("ing") in WORDS for word in c.text.split())  # whole words only
        assert n_tokens(tokenizer, c.text) <= 50


def test_default_chunks_fit_the_embedder_window(tokenizer, embedder: SentenceEmbedder) -> None:
    config = ChunkingConfig()
    assert (config.max_tokens, config.overlap_tokens) == (200, 20)
    for c in chunk(document(prose(80)), config, tokenizer):
        assert n_tokens(tokenizer, c.text) + 2 <= embedder.model.max_seq_length  # + [CLS] and [SEP]


def test_none_is_one_chunk_and_empty_is_none(tokenizer) -> None:
    doc = document("Short text.")
    assert [c.text for c in chunk(doc, ChunkingConfig(strategy="none"), tokenizer)] == ["Short text."]
    assert chunk(document("  \n "), ChunkingConfig(), tokenizer) == []


def test_pdf_chunks_cite_their_page(tokenizer) -> None:
    page1, page2 = prose(12), prose(12).replace("Sentence", "Line")
    doc = document(page1 + "\n\n" + page2, page_offsets=[0, len(page1) + 2])
    chunks = chunk(doc, ChunkingConfig(max_tokens=40, overlap_tokens=0), tokenizer)
    pages = [c.location["page"] for c in chunks]
    assert pages == sorted(pages) and set(pages) == {1, 2}
    assert all("page_offsets" not in c.location for c in chunks)
    cursor = 0
    for c in chunks:
        cursor = doc.text.index(c.text, cursor)
        assert c.location["page"] == (2 if cursor >= len(page1) + 2 else 1)


def test_hierarchical_children_inside_their_parent(tokenizer) -> None:
    doc = document(prose(80))
    config = ChunkingConfig(
        strategy="hierarchical", parent_max_tokens=150, child_max_tokens=40, overlap_tokens=5
    )
    chunks = chunk(doc, config, tokenizer)
    parents = list(dict.fromkeys(c.parent_text for c in chunks))
    assert len(parents) > 2 and len(chunks) > 2 * len(parents)
    assert "".join(parents).replace(" ", "") == doc.text.replace(" ", "")  # parents tile the text
    for c in chunks:
        assert c.parent_text is not None and c.text in c.parent_text
        assert n_tokens(tokenizer, c.text) <= 40 and n_tokens(tokenizer, c.parent_text) <= 150
    assert [c.position for c in chunks] == list(range(len(chunks)))


def test_semantic_breaks_between_topics(tokenizer, embedder: SentenceEmbedder) -> None:
    cooking = [
        "Boil the pasta in plenty of salted water.",
        "Drain the spaghetti when it is al dente.",
        "Toss the noodles with olive oil, garlic and grated parmesan.",
        "Serve the pasta dish warm with fresh basil.",
    ]
    space = [
        "Jupiter is the largest planet in the solar system.",
        "The gas giant has dozens of moons, including Europa and Ganymede.",
        "Telescopes reveal the great red storm on the planet's surface.",
        "Astronomers study the orbits of Jupiter's moons.",
    ]
    doc = document(" ".join(cooking + space))
    chunks = chunk(doc, ChunkingConfig(strategy="semantic"), tokenizer, embed=embedder.embed)
    assert [c.text for c in chunks] == [" ".join(cooking), " ".join(space)]


def test_semantic_caps_groups_and_needs_embed(tokenizer, embedder: SentenceEmbedder) -> None:
    doc = document(prose(30))
    config = ChunkingConfig(strategy="semantic", max_tokens=40, overlap_tokens=0)
    chunks = chunk(doc, config, tokenizer, embed=embedder.embed)
    assert all(n_tokens(tokenizer, c.text) <= 40 for c in chunks)
    assert re.sub(r"\s", "", "".join(c.text for c in chunks)) == re.sub(r"\s", "", doc.text)
    with pytest.raises(ValueError, match="embed"):
        chunk(doc, config, tokenizer)
