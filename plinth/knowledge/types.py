"""The data that flows through a knowledge base: documents in, chunks stored, hits out.

sources -> parsers -> ``Document`` -> chunkers -> ``Chunk`` -> embedder -> store -> ``Hit``
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Metadata = dict[str, Any]  # values: str, int, float, bool, or list[str]
SearchType = Literal["HYBRID", "SEMANTIC", "LEXICAL"]


@dataclass(slots=True)
class Document:
    """One source document (a file, or one record of a record file) as plain text + metadata.

    ``doc_id`` is stable across syncs (the file path relative to the source root, or the record's key)
    and ``content_hash`` changes when the text or metadata changes: that is what incremental sync
    compares. ``location`` says where it came from (Bedrock-style: ``{"type": "FILE", "uri": ...}``).
    """

    doc_id: str
    text: str
    metadata: Metadata
    location: dict[str, Any]
    content_hash: str
    title: str | None = None


@dataclass(slots=True)
class Chunk:
    """A piece of a document that is embedded and indexed.

    For hierarchical chunking, ``parent_text`` is the larger parent chunk returned instead of the
    (smaller, searched) child. ``position`` orders chunks within their document.
    """

    chunk_id: str
    doc_id: str
    text: str
    metadata: Metadata
    location: dict[str, Any]
    position: int = 0
    parent_text: str | None = None
    vector: list[float] | None = None


@dataclass(slots=True)
class Hit:
    """One retrieval result; ``content`` is the parent text when hierarchical chunking is used."""

    chunk_id: str
    doc_id: str
    content: str
    score: float
    metadata: Metadata
    location: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)
