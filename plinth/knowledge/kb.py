"""A knowledge base's configuration: embedder, chunking, store, sources and metadata schema.

The config is what the control plane stores (as JSON) and what a sync reads; it never holds vectors or
documents. Sources are kept as plain JSON specs (``{"type": "files"|"records", "path", ...}``) and
turned into :mod:`plinth.knowledge.sources` specs only when read, so a stored config never depends on
the source classes' internals::

    config = KnowledgeBaseConfig("docs", chunking=ChunkingConfig(strategy="fixed"))
    config = config.with_source({"type": "files", "path": "/srv/docs"})
    KnowledgeBaseConfig.from_json(config.to_json()) == config     # True
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from plinth.knowledge.chunking import ChunkingConfig
from plinth.knowledge.sources import FileSource, RecordSource
from plinth.llm.embedder import DEFAULT_EMBEDDING_MODEL

__all__ = ["STORES", "KnowledgeBaseConfig", "to_source", "validate_kb_name", "validate_source"]

STORES = ("lancedb", "pgvector")
SOURCE_TYPES = ("files", "records")
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")  # appears in paths, URLs and pgvector table names
_SOURCE_KEYS = {"type", "path", "text_fields", "metadata_fields", "id_field", "title_field", "include"}


def validate_kb_name(name: Any) -> str:
    """Return ``name`` if valid, else raise ``ValueError`` (names appear in paths and URLs)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"invalid knowledge base name {name!r}: use 1-63 characters, lowercase letters, digits, "
            "'-' or '_', starting with a letter or digit"
        )
    return name


@dataclass(slots=True)
class KnowledgeBaseConfig:
    """Everything a sync and a query need to know about one KB.

    ``metadata_schema`` maps field -> ``string|number|boolean|string_list``; when None it is inferred
    from the documents at the first sync and then kept, because the store's typed columns (what
    filters run on) are fixed when the store is created.
    """

    name: str
    embedder: str = DEFAULT_EMBEDDING_MODEL
    embedder_url: str | None = None  # an OpenAI-compatible server's base URL (…/v1); None: local model
    chunking: ChunkingConfig = field(default_factory=ChunkingConfig)
    store: str = "lancedb"
    sources: list[dict[str, Any]] = field(default_factory=list)
    metadata_schema: dict[str, str] | None = None
    hybrid_weight: float = 0.5
    reranker: str | None = None  # a sentence-transformers cross-encoder id or path; None: no reranking

    def __post_init__(self) -> None:
        validate_kb_name(self.name)
        if self.store not in STORES:
            raise ValueError(f"store must be one of {', '.join(STORES)}, not {self.store!r}")
        if not 0.0 <= float(self.hybrid_weight) <= 1.0:
            raise ValueError(f"hybrid_weight must be between 0 and 1, not {self.hybrid_weight!r}")
        if not isinstance(self.embedder, str) or not self.embedder:
            raise ValueError("embedder must be a model name")
        self.sources = [validate_source(s) for s in self.sources]

    def with_source(self, spec: dict[str, Any]) -> KnowledgeBaseConfig:
        """A copy with ``spec`` appended (validated)."""
        return dataclasses.replace(self, sources=[*self.sources, validate_source(spec)])

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["chunking"] = _chunking_json(self.chunking)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KnowledgeBaseConfig:
        """Build from JSON; unknown keys and bad values raise ``ValueError`` naming them."""
        if not isinstance(data, dict):
            raise ValueError("a knowledge base config must be a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        if unknown := sorted(set(data) - known):
            raise ValueError(f"unknown knowledge base field(s): {', '.join(unknown)}")
        values = dict(data)
        if "chunking" in values:
            values["chunking"] = chunking_from_json(values["chunking"])
        try:
            return cls(**values)
        except (TypeError, AssertionError) as exc:
            raise ValueError(str(exc)) from exc


MAX_CHUNK_TOKENS = 8192  # no embedder reads more tokens than this at once
_CHUNK_TOKEN_FIELDS = {"max_tokens", "overlap_tokens", "parent_max_tokens", "child_max_tokens"}


def chunking_from_json(data: Any) -> ChunkingConfig:
    """``"fixed"`` or ``{"strategy": "fixed", ...}`` -> a ChunkingConfig (``ValueError`` if invalid)."""
    if isinstance(data, ChunkingConfig):
        return data
    if isinstance(data, str):
        data = {"strategy": data}
    if not isinstance(data, dict):
        raise ValueError("chunking must be a strategy name or an object with 'strategy'")
    for key in _CHUNK_TOKEN_FIELDS & set(data):
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_CHUNK_TOKENS:
            bound = f"an integer from 0 to {MAX_CHUNK_TOKENS}"
            raise ValueError(f"chunking: {key} must be {bound}, not {value!r}")
    try:
        return ChunkingConfig(**data)
    except (TypeError, AssertionError) as exc:  # ChunkingConfig asserts its invariants
        raise ValueError(f"chunking: {exc}") from exc


def _chunking_json(chunking: ChunkingConfig) -> dict[str, Any]:
    if hasattr(chunking, "model_dump"):
        return dict(chunking.model_dump())
    return dataclasses.asdict(chunking)  # type: ignore[call-overload]


def validate_source(spec: Any) -> dict[str, Any]:
    """Check a JSON source spec's shape (not whether its path exists) and return it normalised."""
    if not isinstance(spec, dict):
        raise ValueError("a source must be a JSON object")
    if unknown := sorted(set(spec) - _SOURCE_KEYS):
        raise ValueError(f"unknown source field(s): {', '.join(unknown)}")
    kind = spec.get("type", "files")
    if kind not in SOURCE_TYPES:
        raise ValueError(f"source type must be 'files' or 'records', not {kind!r}")
    if not isinstance(spec.get("path"), str) or not spec["path"]:
        raise ValueError("source path must be a non-empty string")
    for key in ("text_fields", "metadata_fields", "include"):
        value = spec.get(key)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise ValueError(f"source {key} must be a list of strings")
    if kind == "records" and not spec.get("text_fields"):
        raise ValueError("a records source needs text_fields (the fields that make up the text)")
    if kind == "files" and (spec.get("text_fields") or spec.get("metadata_fields")):
        raise ValueError("text_fields and metadata_fields apply to records sources only")
    return {"type": kind, **{k: v for k, v in spec.items() if k != "type" and v is not None}}


def to_source(spec: dict[str, Any]) -> FileSource | RecordSource:
    """The reader spec for a stored JSON spec."""
    if spec["type"] == "files":
        return FileSource(spec["path"], **({"include": spec["include"]} if "include" in spec else {}))
    return RecordSource(
        spec["path"],
        text_fields=list(spec["text_fields"]),
        metadata_fields=list(spec.get("metadata_fields", [])),
        id_field=spec.get("id_field"),
        title_field=spec.get("title_field"),
    )
