"""A knowledge base in one LanceDB table (embedded, local files): vector, native BM25 FTS, hybrid.

Layout: columns ``chunk_id, doc_id, text`` (searched), ``content`` (returned: parent text or text),
``vector`` (fixed-size float32 list), ``location`` and ``metadata`` (JSON strings, returned as-is),
``position``, ``content_hash``, plus one typed column ``m_<field>`` per declared metadata field so
that filters compile to a LanceDB ``where`` and run as a pre-filter inside the scan.

Atomicity: a writer only *buffers* upserts and deletes in memory. ``commit()`` applies them as ONE
Lance transaction — a ``merge_insert`` on ``chunk_id`` that inserts/updates the staged chunks and, in
the same commit, deletes every other row of the touched documents (``when_not_matched_by_source_
delete``). Lance commits a new manifest atomically, so a reader sees either the old version or the new
one, never a half-applied sync; ``abort()`` (or an exception inside ``with``) simply drops the buffer
and the table is untouched. The BM25 index is refreshed after the data commit: until then LanceDB
searches the not-yet-indexed rows exhaustively, so results are complete in between.

Vector search is exact (brute force, cosine): at ~36k x 384 it is a few milliseconds, needs no
training, and keeps pre-filter semantics exact (k results whenever k rows pass the filter).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import lancedb
import pyarrow as pa
from lancedb.index import FTS, IvfFlat

from plinth.knowledge.filters import Filter, column_name, to_lance_sql, validate_schema
from plinth.knowledge.fusion import run_search
from plinth.knowledge.types import Chunk, Hit, SearchType

TABLE = "chunks"
_ARROW_TYPES = {
    "string": pa.string(),
    "number": pa.float64(),
    "boolean": pa.bool_(),
    "string_list": pa.list_(pa.string()),
}
NPROBES = 20  # IVF partitions probed (of ~sqrt(rows)); only used once the vector index exists
_RETURNED = ["chunk_id", "doc_id", "content", "metadata", "location"]


def arrow_schema(dim: int, schema: dict[str, str]) -> pa.Schema:
    """The table schema for vectors of ``dim`` and the declared metadata ``schema``."""
    fields = [
        ("chunk_id", pa.string()),
        ("doc_id", pa.string()),
        ("text", pa.string()),
        ("content", pa.string()),
        ("vector", pa.list_(pa.float32(), dim)),
        ("location", pa.string()),
        ("metadata", pa.string()),
        ("position", pa.int32()),
        ("content_hash", pa.string()),
    ]
    fields += [(column_name(key), _ARROW_TYPES[kind]) for key, kind in schema.items()]
    return pa.schema(fields)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class LanceStore:
    """One knowledge base = one LanceDB database directory ``path`` holding table ``chunks``."""

    def __init__(
        self, path: Path, dim: int, schema: dict[str, str], vector_index_min_rows: int = 10_000
    ) -> None:
        validate_schema(schema)
        self.path, self.dim, self.schema = Path(path), dim, dict(schema)
        self.vector_index_min_rows = vector_index_min_rows
        self._arrow_schema = arrow_schema(dim, self.schema)
        self._db = lancedb.connect(str(self.path))
        self._table = self._db.create_table(TABLE, schema=self._arrow_schema, exist_ok=True)

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
        """See ``plinth.knowledge.store.Store.search``; the filter is a Lance pre-filter."""
        where = to_lance_sql(filter) if filter is not None else None

        def semantic(n: int) -> list[Hit]:
            assert vector is not None and len(vector) == self.dim, "query vector has the wrong size"
            return [_hit(r, 1.0 - r["_distance"]) for r in self._nearest(vector, where, n)]

        def lexical(n: int) -> list[Hit]:
            if not query.strip():
                return []
            q = self._table.search(query, query_type="fts", fts_columns="text")
            return [_hit(r, r["_score"]) for r in self._run(q, where, n, "_score")]

        return run_search(semantic if vector is not None else None, lexical, k, search_type, hybrid_weight)

    def _nearest(self, vector: list[float], where: str | None, n: int) -> list[dict[str, Any]]:
        """Top ``n`` by cosine. With an IVF index a selective pre-filter can leave fewer than ``n``
        matches in the probed partitions; then the exact scan answers, keeping the contract."""
        q: Any = self._table.search(vector, vector_column_name="vector")  # a vector query builder
        q = q.distance_type("cosine").nprobes(NPROBES)
        rows = self._run(q, where, n, "_distance")
        if len(rows) < n and where is not None and self._has_vector_index():
            rows = self._run(q.bypass_vector_index(), where, n, "_distance")
        return rows

    def _has_vector_index(self) -> bool:
        return any(ix.columns == ["vector"] for ix in self._table.list_indices())

    def _run(self, q: Any, where: str | None, n: int, score: str) -> list[dict[str, Any]]:
        if where is not None:
            q = q.where(where, prefilter=True)
        return q.select([*_RETURNED, score]).limit(n).to_arrow().to_pylist()

    def doc_hashes(self) -> dict[str, str]:
        """doc_id -> content hash, from the committed version."""
        rows = self._scan(["doc_id", "content_hash"])
        return dict(
            zip(rows.column("doc_id").to_pylist(), rows.column("content_hash").to_pylist(), strict=True)
        )

    def count(self) -> int:
        return self._table.count_rows()

    def _scan(self, columns: list[str]) -> pa.Table:
        n = self.count()
        return self._table.search().select(columns).limit(max(n, 1)).to_arrow()

    # --- writes --------------------------------------------------------------------------------------

    def begin(self) -> LanceWriter:
        return LanceWriter(self)

    def drop(self) -> None:
        self._db.drop_table(TABLE)
        self._table = self._db.create_table(TABLE, schema=self._arrow_schema)

    def _apply(self, rows: list[dict[str, Any]], doc_ids: set[str]) -> None:
        """Apply a sync as one Lance commit (see the module docstring)."""
        if not doc_ids:
            return
        data = pa.Table.from_pylist(rows, schema=self._arrow_schema)
        touched = "doc_id IN (" + ", ".join(_quote(d) for d in sorted(doc_ids)) + ")"
        if not rows:
            self._table.delete(touched)
        elif self.count() == 0:
            self._table.add(data)
        else:
            (
                self._table.merge_insert("chunk_id")
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .when_not_matched_by_source_delete(touched)
                .execute(data)
            )
        self._refresh_indexes()

    def _refresh_indexes(self) -> None:
        """Build missing indexes, else fold the new rows into them (``optimize``, no retraining).

        Runs after the data commit; rows not yet indexed are searched exhaustively meanwhile.
        """
        columns = [ix.columns for ix in self._table.list_indices()]
        rows = self.count()
        if ["text"] not in columns:
            self._table.create_index("text", config=FTS(with_position=False))  # 1st arg = column
        if ["vector"] not in columns and rows >= self.vector_index_min_rows:
            ivf = IvfFlat(
                distance_type="cosine", num_partitions=max(1, int(math.sqrt(rows))), max_iterations=20
            )
            self._table.create_index("vector", config=ivf)
        elif ["text"] in columns:
            self._table.optimize()

    def _row(self, chunk: Chunk, content_hash: str) -> dict[str, Any]:
        assert chunk.vector is not None and len(chunk.vector) == self.dim, f"{chunk.chunk_id}: bad vector"
        row: dict[str, Any] = {
            "chunk_id": chunk.chunk_id,
            "doc_id": chunk.doc_id,
            "text": chunk.text,
            "content": chunk.parent_text or chunk.text,
            "vector": chunk.vector,
            "location": json.dumps(chunk.location),
            "metadata": json.dumps(chunk.metadata),
            "position": chunk.position,
            "content_hash": content_hash,
        }
        for key in self.schema:
            row[column_name(key)] = chunk.metadata.get(key)
        return row


class LanceWriter:
    """Buffers one sync; ``commit`` applies it atomically, ``abort`` forgets it."""

    def __init__(self, store: LanceStore) -> None:
        self._store = store
        self._rows: dict[str, list[dict[str, Any]]] = {}  # doc_id -> rows; [] = delete the doc
        self._closed = False

    def upsert(self, chunks: list[Chunk], doc_hashes: dict[str, str]) -> None:
        """Replace every chunk of the documents in ``doc_hashes`` by ``chunks`` (vectors set)."""
        self._check_open()
        for doc_id in doc_hashes:
            self._rows[doc_id] = []
        for chunk in chunks:
            if chunk.doc_id not in doc_hashes:
                raise ValueError(f"chunk {chunk.chunk_id}: doc {chunk.doc_id!r} is not in doc_hashes")
            self._rows[chunk.doc_id].append(self._store._row(chunk, doc_hashes[chunk.doc_id]))

    def delete_docs(self, doc_ids: list[str]) -> None:
        self._check_open()
        for doc_id in doc_ids:
            self._rows[doc_id] = []

    def commit(self) -> None:
        self._check_open()
        self._closed = True
        rows = [row for doc_rows in self._rows.values() for row in doc_rows]
        self._store._apply(rows, set(self._rows))

    def abort(self) -> None:
        self._closed = True
        self._rows.clear()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this writer was already committed or aborted")

    def __enter__(self) -> LanceWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.commit()
        else:
            self.abort()


def _hit(row: dict[str, Any], score: float) -> Hit:
    return Hit(
        chunk_id=row["chunk_id"],
        doc_id=row["doc_id"],
        content=row["content"],
        score=float(score),
        metadata=json.loads(row["metadata"]),
        location=json.loads(row["location"]),
    )
