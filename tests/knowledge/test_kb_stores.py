"""One retrieval suite, run against a real LanceDB (tmp dir) and a real PostgreSQL + pgvector (pgserver).

Vectors are hand-made 8-dim: doc i is ``c_i * e0 + e_j`` so its cosine with the query ``e0`` grows with
``c_i``; every expectation is recomputed here with numpy and plain Python predicates, independently of
the stores.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from plinth.knowledge.filters import parse_filter
from plinth.knowledge.store import Store
from plinth.knowledge.stores import open_store
from plinth.knowledge.types import Chunk

DIM = 8
SCHEMA = {"genre": "string", "year": "number", "tags": "string_list", "classic": "boolean"}
QUERY = [1.0] + [0.0] * (DIM - 1)
# doc_id, text, semantic strength c, metadata
DOCS: list[tuple[str, str, float, dict[str, Any]]] = [
    ("d1", "Astronauts drift through a silent space odyssey", 9.0,
     {"genre": "scifi", "year": 1968, "tags": ["space", "classic"], "classic": True}),
    ("d2", "A romantic comedy set in Paris", 8.0,
     {"genre": "romance", "year": 1994, "tags": ["paris", "love"], "classic": False}),
    ("d3", "A heist thriller with a twist ending", 7.0,
     {"genre": "thriller", "year": 2001, "tags": ["crime"], "classic": False}),
    ("d4", "Astronauts stranded on Mars grow potatoes", 0.5,
     {"genre": "scifi", "year": 2015, "tags": ["space", "mars"], "classic": False}),
    ("d5", "O'Brien's quiet drama about family", 5.0,
     {"genre": "drama's", "year": 1994.5, "tags": ["it's"], "classic": True}),
    ("d6", "A documentary about whales and oceans", 4.0, {"genre": "documentary"}),
]  # fmt: skip


def vec(c: float, j: int) -> list[float]:
    v = [0.0] * DIM
    v[0], v[1 + j % (DIM - 1)] = c, 1.0
    return v


def chunks_of(doc_id: str, text: str, c: float, meta: dict[str, Any], n: int = 1) -> list[Chunk]:
    j = int(doc_id[1:])
    return [
        Chunk(f"{doc_id}#{p}", doc_id, text, meta, {"type": "FILE", "uri": f"s3://b/{doc_id}"}, p,
              parent_text=f"parent of {doc_id}", vector=vec(c - p * 0.1, j))
        for p in range(n)
    ]  # fmt: skip


def hash_of(doc_id: str, version: int = 1) -> str:
    return f"h-{doc_id}-{version}"


def expected_semantic(pred: Callable[[dict[str, Any]], bool], k: int) -> list[str]:
    """Doc ids passing ``pred``, ranked by cosine with QUERY, computed with numpy."""
    q = np.array(QUERY)
    scored = []
    for doc_id, _, c, meta in DOCS:
        if pred(meta):
            v = np.array(vec(c, int(doc_id[1:])))
            scored.append((float(v @ q / np.linalg.norm(v)), doc_id))
    return [d for _, d in sorted(scored, reverse=True)][:k]


# --- fixtures ----------------------------------------------------------------------------------------


_tables = itertools.count()


@pytest.fixture(params=["lancedb", "pgvector"])
def empty_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "lancedb":
        yield open_store("lancedb", dim=DIM, schema=SCHEMA, path=tmp_path / "kb")
        return
    dsn = request.getfixturevalue("pg_dsn")
    store = open_store("pgvector", dim=DIM, schema=SCHEMA, dsn=dsn, table=f"store_suite_{next(_tables)}")
    yield store
    store.drop()
    store.close()  # type: ignore[attr-defined]


@pytest.fixture
def store(empty_store: Store) -> Store:
    chunks = [ch for d, t, c, m in DOCS for ch in chunks_of(d, t, c, m)]
    with empty_store.begin() as w:
        w.upsert(chunks, {d: hash_of(d) for d, *_ in DOCS})
    return empty_store


def ids(hits: list) -> list[str]:
    return [h.doc_id for h in hits]


# --- retrieval ---------------------------------------------------------------------------------------


def test_semantic_ranks_by_cosine(store: Store) -> None:
    hits = store.search("", QUERY, k=4, search_type="SEMANTIC")
    assert ids(hits) == expected_semantic(lambda m: True, 4) == ["d1", "d2", "d3", "d5"]
    assert hits[0].score > hits[1].score > hits[3].score
    assert hits[0].content == "parent of d1"
    assert hits[0].metadata == DOCS[0][3] and hits[0].location["uri"] == "s3://b/d1"


def test_lexical_finds_exact_terms(store: Store) -> None:
    assert ids(store.search("whales", None, k=5, search_type="LEXICAL")) == ["d6"]
    assert set(ids(store.search("astronauts", None, k=5, search_type="LEXICAL"))) == {"d1", "d4"}
    assert store.search("zyzzyva", None, k=5, search_type="LEXICAL") == []


def test_hybrid_puts_doc_strong_in_both_first(store: Store) -> None:
    hits = store.search("astronauts", QUERY, k=3, search_type="HYBRID")
    assert hits[0].doc_id == "d1"  # 1st semantically and a lexical match
    assert "d4" in ids(store.search("astronauts", QUERY, k=4))  # lexical-only match still fused in
    assert ids(store.search("astronauts", QUERY, k=3, hybrid_weight=1.0)) == ["d1", "d2", "d3"]
    assert set(ids(store.search("astronauts", QUERY, k=3, hybrid_weight=0.0))[:2]) == {"d1", "d4"}


FILTER_CASES: list[tuple[dict[str, Any], Callable[[dict[str, Any]], bool]]] = [
    ({"equals": {"key": "genre", "value": "scifi"}}, lambda m: m.get("genre") == "scifi"),
    ({"notEquals": {"key": "classic", "value": True}}, lambda m: m.get("classic") is not True),
    ({"greaterThan": {"key": "year", "value": 1994}}, lambda m: m.get("year", -1) > 1994),
    ({"greaterThanOrEquals": {"key": "year", "value": 1994.5}}, lambda m: m.get("year", -1) >= 1994.5),
    ({"lessThan": {"key": "year", "value": 1994.5}}, lambda m: m.get("year", 9999) < 1994.5),
    ({"lessThanOrEquals": {"key": "year", "value": 1994}}, lambda m: m.get("year", 9999) <= 1994),
    ({"in": {"key": "genre", "value": ["thriller", "drama's"]}},
     lambda m: m.get("genre") in ("thriller", "drama's")),
    ({"notIn": {"key": "genre", "value": ["scifi", "romance"]}},
     lambda m: m.get("genre") not in ("scifi", "romance")),
    ({"startsWith": {"key": "genre", "value": "d"}}, lambda m: m.get("genre", "").startswith("d")),
    ({"listContains": {"key": "tags", "value": "space"}}, lambda m: "space" in m.get("tags", [])),
    ({"stringContains": {"key": "genre", "value": "ill"}}, lambda m: "ill" in m.get("genre", "")),
    ({"stringContains": {"key": "tags", "value": "ar"}}, lambda m: any("ar" in t for t in m.get("tags", []))),
    ({"equals": {"key": "genre", "value": "drama's"}}, lambda m: m.get("genre") == "drama's"),
    ({"equals": {"key": "genre", "value": "x' OR 'a'='a"}}, lambda m: False),  # no injection
    (
        {"andAll": [{"equals": {"key": "classic", "value": False}},
                    {"lessThan": {"key": "year", "value": 2010}}]},
        lambda m: m.get("classic") is False and m.get("year", 9999) < 2010,
    ),
    (
        {"orAll": [{"listContains": {"key": "tags", "value": "mars"}},
                   {"equals": {"key": "year", "value": 1968}}]},
        lambda m: "mars" in m.get("tags", []) or m.get("year") == 1968,
    ),
]  # fmt: skip


@pytest.mark.parametrize(("raw", "pred"), FILTER_CASES, ids=[next(iter(r)) for r, _ in FILTER_CASES])
def test_every_filter_operator_is_a_pre_filter(store: Store, raw: dict, pred: Callable) -> None:
    f = parse_filter(raw, SCHEMA)
    assert ids(store.search("", QUERY, k=3, search_type="SEMANTIC", filter=f)) == expected_semantic(pred, 3)


def test_filter_applies_to_lexical_and_hybrid(store: Store) -> None:
    f = parse_filter({"greaterThan": {"key": "year", "value": 2000}}, SCHEMA)
    assert ids(store.search("astronauts", None, k=5, search_type="LEXICAL", filter=f)) == ["d4"]
    assert ids(store.search("astronauts", QUERY, k=2, filter=f)) == ["d4", "d3"]


# --- writes ------------------------------------------------------------------------------------------


def test_count_and_doc_hashes(store: Store) -> None:
    assert store.count() == len(DOCS)
    assert store.doc_hashes() == {d: hash_of(d) for d, *_ in DOCS}


def test_writer_invisible_until_commit(store: Store) -> None:
    w = store.begin()
    w.upsert(chunks_of("d7", "Whales sing", 20.0, {"genre": "documentary"}), {"d7": hash_of("d7")})
    w.delete_docs(["d1"])
    assert store.count() == len(DOCS) and "d7" not in store.doc_hashes()
    assert ids(store.search("", QUERY, k=1, search_type="SEMANTIC")) == ["d1"]
    w.commit()
    assert store.count() == len(DOCS) and "d1" not in store.doc_hashes()
    assert ids(store.search("", QUERY, k=1, search_type="SEMANTIC")) == ["d7"]
    assert set(ids(store.search("whales", None, k=5, search_type="LEXICAL"))) == {"d6", "d7"}


def test_exception_inside_with_leaves_previous_version(store: Store) -> None:
    with pytest.raises(RuntimeError), store.begin() as w:
        w.upsert(chunks_of("d7", "new", 20.0, {}), {"d7": hash_of("d7")})
        w.delete_docs(["d1", "d2"])
        raise RuntimeError("embedder crashed")
    assert store.doc_hashes() == {d: hash_of(d) for d, *_ in DOCS}
    assert ids(store.search("", QUERY, k=2, search_type="SEMANTIC")) == ["d1", "d2"]


def test_upsert_replaces_a_docs_chunks_and_delete_docs(empty_store: Store) -> None:
    with empty_store.begin() as w:
        w.upsert(chunks_of("d3", "heist", 7.0, {}, n=3) + chunks_of("d6", "whales", 4.0, {}), {
            "d3": hash_of("d3"), "d6": hash_of("d6")})  # fmt: skip
    assert empty_store.count() == 4
    with empty_store.begin() as w:
        w.upsert(chunks_of("d3", "vault robbery", 7.0, {}, n=1), {"d3": hash_of("d3", 2)})
    assert empty_store.count() == 2
    assert empty_store.doc_hashes() == {"d3": hash_of("d3", 2), "d6": hash_of("d6")}
    assert empty_store.search("heist", None, k=5, search_type="LEXICAL") == []
    assert ids(empty_store.search("robbery", None, k=5, search_type="LEXICAL")) == ["d3"]
    with empty_store.begin() as w:
        w.delete_docs(["d6"])
    assert empty_store.count() == 1 and empty_store.doc_hashes() == {"d3": hash_of("d3", 2)}


def test_lance_ivf_index_keeps_order_and_pre_filter(tmp_path: Path) -> None:
    from plinth.knowledge.stores.lancedb import LanceStore

    store = LanceStore(tmp_path / "kb", DIM, SCHEMA, vector_index_min_rows=1)  # IVF from the first row
    with store.begin() as w:
        w.upsert(
            [ch for d, t, c, m in DOCS for ch in chunks_of(d, t, c, m)], {d: hash_of(d) for d, *_ in DOCS}
        )
    assert store._has_vector_index()
    assert ids(store.search("", QUERY, k=3, search_type="SEMANTIC")) == expected_semantic(lambda m: True, 3)
    f = parse_filter({"listContains": {"key": "tags", "value": "mars"}}, SCHEMA)
    assert ids(store.search("", QUERY, k=3, search_type="SEMANTIC", filter=f)) == ["d4"]
