"""Where a knowledge base's chunks live: ``open_store("lancedb", ...)`` or ``open_store("pgvector", ...)``.

Both implement ``plinth.knowledge.store.Store`` and pass the same retrieval suite
(``tests/test_kb_stores.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from plinth.knowledge.store import Store

StoreKind = Literal["lancedb", "pgvector"]


def open_store(
    kind: StoreKind,
    *,
    dim: int,
    schema: dict[str, str],
    path: Path | None = None,
    dsn: str | None = None,
    table: str | None = None,
) -> Store:
    """Open (creating if needed) a store: ``lancedb`` needs ``path``; ``pgvector`` needs ``dsn`` and
    ``table``. Backends are imported lazily so that psycopg is only needed when pgvector is used."""
    if kind == "lancedb":
        if path is None:
            raise ValueError("the lancedb store needs a path")
        from plinth.knowledge.stores.lancedb import LanceStore

        return LanceStore(path, dim, schema)
    if kind == "pgvector":
        if dsn is None or table is None:
            raise ValueError("the pgvector store needs a dsn and a table")
        from plinth.knowledge.stores.pgvector import PgVectorStore

        return PgVectorStore(dsn, table, dim, schema)
    raise ValueError(f"unknown store kind {kind!r}; expected 'lancedb' or 'pgvector'")


__all__ = ["StoreKind", "open_store"]
