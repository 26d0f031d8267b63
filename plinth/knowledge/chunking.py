"""``Document`` -> ``Chunk``s: none, fixed (token windows with overlap), hierarchical, semantic.

Contract: every chunk's text is a verbatim slice of ``doc.text`` (token offsets map back to the original
characters; nothing is re-decoded, so accents, casing and spacing survive). ``chunk_id`` is
``f"{doc_id}#{position}"`` with positions 0, 1, ... in document order, so ids are stable while the text is.
Each chunk carries the document's metadata and location; for PDFs (``location["page_offsets"]``) the
location gets the 1-based ``page`` where the chunk starts instead of the offsets.

Sizes are counted in the embedder's own tokens (a fast Hugging Face tokenizer, without special tokens).
all-MiniLM-L6-v2 reads at most 256 word pieces *including* [CLS]/[SEP] and silently truncates the rest,
so the defaults are 200-token chunks with 20 tokens of overlap: the margin absorbs the special tokens and
the few extra pieces a hard mid-word cut can cost when the chunk is tokenized on its own. Hierarchical
parents (1500 tokens) are never embedded, only returned, so they may exceed the window.

Windows end at a sentence or paragraph boundary when one lies in the window's second half, else at a word
boundary, else at the token limit (text without spaces).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from plinth.knowledge.parsers import page_of
from plinth.knowledge.types import Chunk, Document

if TYPE_CHECKING:
    from plinth.llm.embedding import Embed

Strategy = Literal["none", "fixed", "hierarchical", "semantic"]
Span = tuple[int, int]  # [start, end) token indices

_SENTENCE_END = re.compile(r"(?<=[.!?\u2026])[\"'\u201d\u2019)\]]*\s+|\n\s*\n")


@dataclass(slots=True)
class ChunkingConfig:
    """How to split documents; token counts are in the embedder's tokenizer's tokens."""

    strategy: Strategy = "fixed"
    max_tokens: int = 200
    overlap_tokens: int = 20
    parent_max_tokens: int = 1500
    child_max_tokens: int = 200
    breakpoint_percentile: float = 95.0

    def __post_init__(self) -> None:
        assert self.strategy in ("none", "fixed", "hierarchical", "semantic"), self.strategy
        assert self.max_tokens > 0 and self.child_max_tokens > 0 and self.parent_max_tokens > 0
        assert 0 <= self.overlap_tokens < min(self.max_tokens, self.child_max_tokens)
        assert self.child_max_tokens <= self.parent_max_tokens
        assert 0 <= self.breakpoint_percentile <= 100


def chunk(doc: Document, config: ChunkingConfig, tokenizer: Any, embed: Embed | None = None) -> list[Chunk]:
    """Split ``doc`` by ``config.strategy``; ``embed`` is required for "semantic" only."""
    if config.strategy == "none":
        return [_make_chunk(doc, 0, 0, len(doc.text))] if doc.text.strip() else []
    text = _TokenizedText(doc.text, tokenizer)
    if not text.offsets:
        return []
    if config.strategy == "fixed":
        spans = text.windows(0, len(text.offsets), config.max_tokens, config.overlap_tokens)
        return [_make_chunk(doc, i, *text.chars(span)) for i, span in enumerate(spans)]
    if config.strategy == "hierarchical":
        return _hierarchical(doc, text, config)
    if embed is None:
        raise ValueError("semantic chunking needs an embed function")
    return _semantic(doc, text, config, embed)


class _TokenizedText:
    """The document's text with token offsets, sentence starts and word starts (for clean cuts)."""

    def __init__(self, text: str, tokenizer: Any) -> None:
        assert getattr(tokenizer, "is_fast", False), "chunking needs a fast tokenizer (offset mapping)"
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        self.text = text
        self.offsets: list[tuple[int, int]] = [tuple(o) for o in encoded["offset_mapping"]]
        self.starts = [start for start, _ in self.offsets]
        self.sentence_chars = {m.end() for m in _SENTENCE_END.finditer(text)}

    def chars(self, span: Span) -> tuple[int, int]:
        """Character range [start, end) of token span ``span``."""
        return self.offsets[span[0]][0], self.offsets[span[1] - 1][1]

    def is_sentence_start(self, i: int) -> bool:
        return i == 0 or self.starts[i] in self.sentence_chars

    def is_word_start(self, i: int) -> bool:
        return i == 0 or self.starts[i] > self.offsets[i - 1][1]

    def windows(self, lo: int, hi: int, size: int, overlap: int) -> list[Span]:
        """Cover tokens [lo, hi) with windows of at most ``size`` tokens overlapping by <= ``overlap``."""
        spans: list[Span] = []
        start = lo
        while start < hi:
            end = hi if start + size >= hi else self._cut(start, start + size)
            spans.append((start, end))
            if end >= hi:
                break
            start = self._next_start(max(end - overlap, start + 1), end)
        return spans

    def _cut(self, start: int, limit: int) -> int:
        """The best end in (start + size/2, limit]: a sentence start, else a word start, else ``limit``."""
        floor = start + max(1, (limit - start) // 2)
        for accept in (self.is_sentence_start, self.is_word_start):
            for end in range(limit, floor, -1):
                if accept(end):
                    return end
        return limit

    def _next_start(self, earliest: int, end: int) -> int:
        """The first word start in [earliest, end] (so an overlap never begins mid-word)."""
        return next((i for i in range(earliest, end) if self.is_word_start(i)), end)

    def sentence_spans(self) -> list[Span]:
        """Token spans of the sentences (and paragraphs) of the text, in order; none empty."""
        bounds = [i for i in range(len(self.offsets)) if self.is_sentence_start(i)]
        return list(zip(bounds, bounds[1:] + [len(self.offsets)], strict=True))


def _hierarchical(doc: Document, text: _TokenizedText, config: ChunkingConfig) -> list[Chunk]:
    """Parents of ``parent_max_tokens`` (no overlap), each split into overlapping children."""
    chunks: list[Chunk] = []
    for parent in text.windows(0, len(text.offsets), config.parent_max_tokens, 0):
        start, end = text.chars(parent)
        parent_text = doc.text[start:end]
        for child in text.windows(*parent, config.child_max_tokens, config.overlap_tokens):
            chunks.append(_make_chunk(doc, len(chunks), *text.chars(child), parent_text=parent_text))
    return chunks


def _semantic(doc: Document, text: _TokenizedText, config: ChunkingConfig, embed: Embed) -> list[Chunk]:
    """Break between adjacent sentences whose cosine distance is above the given percentile."""
    sentences = text.sentence_spans()
    groups = _semantic_groups(text, sentences, config.breakpoint_percentile, embed)
    spans = [w for lo, hi in groups for w in text.windows(lo, hi, config.max_tokens, 0)]
    return [_make_chunk(doc, i, *text.chars(span)) for i, span in enumerate(spans)]


def _semantic_groups(
    text: _TokenizedText, sentences: list[Span], percentile: float, embed: Embed
) -> list[Span]:
    if len(sentences) < 2:
        return sentences
    vectors = embed([text.text[slice(*text.chars(s))] for s in sentences])
    distances = [
        1.0 - sum(a * b for a, b in zip(u, v, strict=True))
        for u, v in zip(vectors, vectors[1:], strict=False)
    ]
    threshold = _percentile(distances, percentile)
    groups: list[Span] = []
    start = sentences[0][0]
    for distance, sentence in zip(distances, sentences[1:], strict=True):
        if distance > threshold:
            groups.append((start, sentence[0]))
            start = sentence[0]
    groups.append((start, sentences[-1][1]))
    return groups


def _percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default method), without importing numpy."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _make_chunk(doc: Document, position: int, start: int, end: int, parent_text: str | None = None) -> Chunk:
    return Chunk(
        chunk_id=f"{doc.doc_id}#{position}",
        doc_id=doc.doc_id,
        text=doc.text[start:end],
        metadata=dict(doc.metadata),
        location=_chunk_location(doc.location, start),
        position=position,
        parent_text=parent_text,
    )


def _chunk_location(location: dict[str, Any], start: int) -> dict[str, Any]:
    """The document's location; PDF page offsets become the page where this chunk starts."""
    result = {k: v for k, v in location.items() if k != "page_offsets"}
    if page_offsets := location.get("page_offsets"):
        result["page"] = page_of(start, page_offsets)
    return result
