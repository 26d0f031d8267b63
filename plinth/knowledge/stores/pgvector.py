"""A knowledge base in one PostgreSQL table with pgvector: the scale-out twin of ``LanceStore``.

Layout: ``vector vector(dim)``; ``tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', text))
STORED`` with a GIN index; ``location``/``metadata`` as JSONB (returned as-is); and one *typed*
column ``m_<field>`` per declared metadata field (``text``, ``double precision``, ``boolean``,
``text[]``). Typed columns rather than one JSONB blob: filters compile to plain comparisons the planner
has statistics for and can index (btree, GIN on arrays), types are enforced on write, and the filter
compiler is the same shape as LanceDB's.

Lexical score: ``ts_rank_cd`` (cover density) over an OR of the query's lexemes. It is NOT BM25 (no
IDF, different length normalisation); only its *order* feeds hybrid search, through RRF.

Vector search is exact (``ORDER BY vector <=> q``, cosine). No HNSW index by default: pgvector 0.6
applies a WHERE clause *after* the approximate index scan, so a selective filter could return fewer
than k hits, breaking the pre-filter contract; the exact scan is tens of ms at ~36k x 384.

Atomicity: a writer holds its own connection and one transaction (``LOCK ... SHARE ROW EXCLUSIVE`` so
concurrent syncs serialise, readers are never blocked). Readers use another connection and see the
old rows until ``COMMIT``; ``abort()`` is a ``ROLLBACK``.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg.types.json import Jsonb

from plinth.knowledge.filters import Filter, column_name, to_postgres_sql, validate_schema
from plinth.knowledge.fusion import run_search
from plinth.knowledge.types import Chunk, Hit, SearchType

_PG_TYPES = {"string": "text", "number": "double precision", "boolean": "boolean", "string_list": "text[]"}
_RETURNED = "chunk_id, doc_id, content, metadata, location"
_TSQUERY = "replace(plainto_tsquery('english', %s)::text, ' & ', ' | ')::tsquery"  # any term matches


def _ident(name: str) -> str:
    """Quote an identifier we control (table names are checked, field names are validated)."""
    if not name.replace("_", "").isalnum():
        raise ValueError(f"bad identifier {name!r}")
    return f'"{name}"'


class PgVectorStore:
    """One knowledge base = one table ``table`` in the database at ``dsn``."""

    def __init__(self, dsn: str, table: str, dim: int, schema: dict[str, str]) -> None:
        validate_schema(schema)
        self.dsn, self.dim, self.schema = dsn, dim, dict(schema)
        self._table = _ident(table)
        self._lock = threading.Lock()
        self._conn = self._connect(autocommit=True)
        self._create()

    def _connect(self, autocommit: bool) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self.dsn, autocommit=autocommit)
        register_vector(conn)
        return conn

    def _create(self) -> None:
        t = self._table
        meta = "".join(f", {_ident(column_name(k))} {_PG_TYPES[v]}" for k, v in self.schema.items())
        with self._lock:
            self._conn.execute(
                f"CREATE TABLE IF NOT EXISTS {t} (chunk_id text PRIMARY KEY, doc_id text NOT NULL,"
                f" text text NOT NULL, content text NOT NULL, vector vector({self.dim}) NOT NULL,"
                " location jsonb NOT NULL, metadata jsonb NOT NULL, position integer NOT NULL,"
                " content_hash text NOT NULL,"
                f" tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED{meta})"
            )
            name = t.strip('"')
            self._conn.execute(f'CREATE INDEX IF NOT EXISTS "{name}_tsv" ON {t} USING gin (tsv)')
            self._conn.execute(f'CREATE INDEX IF NOT EXISTS "{name}_doc" ON {t} (doc_id)')

    # --- reads ---------------------------------------------------------------------------------------

    def search(
        self,
        query: str,
        vector: list[float] | None,
        k: int,
        search_type: SearchType = "HYBRID",
        filter: Filter | None = None,
        hybrid_weight: float = 0.5,
    ) -> list[Hit]:
        """See ``plinth.knowledge.store.Store.search``; the filter is part of the WHERE clause."""
        where, params = to_postgres_sql(filter) if filter is not None else ("TRUE", [])
        t = self._table

        def semantic(n: int) -> list[Hit]:
            assert vector is not None and len(vector) == self.dim, "query vector has the wrong size"
            q = np.asarray(vector, dtype=np.float32)
            sql = (
                f"SELECT {_RETURNED}, 1 - (vector <=> %s) AS score FROM {t} WHERE {where}"
                " ORDER BY vector <=> %s, chunk_id LIMIT %s"
            )
            return self._hits(sql, [q, *params, q, n])

        def lexical(n: int) -> list[Hit]:
            if not query.strip():
                return []
            sql = (
                f"SELECT {_RETURNED}, ts_rank_cd(tsv, qq.q) AS score FROM {t}, (SELECT {_TSQUERY} AS q) qq"
                f" WHERE tsv @@ qq.q AND {where} ORDER BY score DESC, chunk_id LIMIT %s"
            )
            return self._hits(sql, [query, *params, n])

        return run_search(semantic if vector is not None else None, lexical, k, search_type, hybrid_weight)

    def _hits(self, sql: str, params: list[Any]) -> list[Hit]:
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        return [Hit(r[0], r[1], r[2], float(r[5]), r[3], r[4]) for r in rows]

    def doc_hashes(self) -> dict[str, str]:
        """doc_id -> content hash of the committed version."""
        with self._lock:
            rows = self._conn.execute(f"SELECT DISTINCT doc_id, content_hash FROM {self._table}").fetchall()
        return dict(rows)

    def count(self) -> int:
        with self._lock:
            row = self._conn.execute(f"SELECT count(*) FROM {self._table}").fetchone()
        return int(row[0]) if row else 0

    # --- writes --------------------------------------------------------------------------------------

    def begin(self) -> PgWriter:
        return PgWriter(self, self._connect(autocommit=False))

    def drop(self) -> None:
        with self._lock:
            self._conn.execute(f"DROP TABLE IF EXISTS {self._table}")
        self._create()

    def close(self) -> None:
        self._conn.close()

    def _insert_sql(self) -> str:
        cols = ["chunk_id", "doc_id", "text", "content", "vector", "location", "metadata", "position"]
        cols += ["content_hash", *(column_name(k) for k in self.schema)]
        names = ", ".join(_ident(c) for c in cols)
        return f"INSERT INTO {self._table} ({names}) VALUES ({', '.join(['%s'] * len(cols))})"

    def _row(self, chunk: Chunk, content_hash: str) -> tuple[Any, ...]:
        assert chunk.vector is not None and len(chunk.vector) == self.dim, f"{chunk.chunk_id}: bad vector"
        meta = tuple(chunk.metadata.get(k) for k in self.schema)
        vec = np.asarray(chunk.vector, dtype=np.float32)
        content = chunk.parent_text or chunk.text
        return (chunk.chunk_id, chunk.doc_id, chunk.text, content, vec, Jsonb(chunk.location),
                Jsonb(chunk.metadata), chunk.position, content_hash, *meta)  # fmt: skip


class PgWriter:
    """One sync = one transaction on its own connection."""

    def __init__(self, store: PgVectorStore, conn: psycopg.Connection[Any]) -> None:
        self._store, self._conn = store, conn
        self._conn.execute(f"LOCK TABLE {store._table} IN SHARE ROW EXCLUSIVE MODE")

    def upsert(self, chunks: list[Chunk], doc_hashes: dict[str, str]) -> None:
        """Replace every chunk of the documents in ``doc_hashes`` by ``chunks`` (vectors set)."""
        rows = []
        for chunk in chunks:
            if chunk.doc_id not in doc_hashes:
                raise ValueError(f"chunk {chunk.chunk_id}: doc {chunk.doc_id!r} is not in doc_hashes")
            rows.append(self._store._row(chunk, doc_hashes[chunk.doc_id]))
        self.delete_docs(list(doc_hashes))
        with self._conn.cursor() as cur:
            cur.executemany(self._store._insert_sql(), rows)

    def delete_docs(self, doc_ids: list[str]) -> None:
        self._conn.execute(f"DELETE FROM {self._store._table} WHERE doc_id = ANY(%s)", [doc_ids])

    def commit(self) -> None:
        try:
            self._conn.commit()
        finally:
            self._conn.close()

    def abort(self) -> None:
        try:
            self._conn.rollback()
        finally:
            self._conn.close()

    def __enter__(self) -> PgWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.commit()
        else:
            self.abort()
