"""Incremental, atomic sync on real LanceDB with the real default embedder: added / changed / deleted
across syncs, skipped files with reasons, and a sync failing midway leaving the previous version intact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plinth.knowledge import sync as sync_module
from plinth.knowledge.chunking import ChunkingConfig
from plinth.knowledge.kb import KnowledgeBaseConfig
from plinth.knowledge.retriever import retrieve
from plinth.knowledge.sources import infer_schema
from plinth.knowledge.stores import open_store
from plinth.knowledge.sync import load_documents, sync
from plinth.llm.embedders import get_embedder

DOCS = {
    "cats.md": ("Cats purr and sleep most of the day in sunny windows.", {"topic": "pets", "year": 2020}),
    "rust.md": (
        "Rust's borrow checker prevents data races at compile time.",
        {"topic": "code", "year": 2021},
    ),
    "tea.md": ("Green tea is steeped at eighty degrees for two minutes.", {"topic": "food", "year": 2022}),
}


def write_corpus(root: Path, docs: dict[str, tuple[str, dict]] = DOCS) -> Path:
    """Markdown files with Bedrock-style ``.metadata.json`` sidecars."""
    root.mkdir(parents=True, exist_ok=True)
    for name, (text, meta) in docs.items():
        (root / name).write_text(f"# {Path(name).stem}\n\n{text}\n")
        (root / f"{name}.metadata.json").write_text(json.dumps({"metadataAttributes": meta}))
    return root


@pytest.fixture(scope="module")
def embedder():
    return get_embedder("sentence-transformers/all-MiniLM-L6-v2")


def _setup(tmp_path: Path, embedder):
    corpus = write_corpus(tmp_path / "corpus")
    config = KnowledgeBaseConfig("docs", chunking=ChunkingConfig(strategy="fixed", max_tokens=64))
    config = config.with_source({"type": "files", "path": str(corpus)})
    docs, _ = load_documents(config, tmp_path)
    config.metadata_schema = infer_schema(docs)
    store = open_store(
        "lancedb", dim=embedder.dimensions, schema=config.metadata_schema, path=tmp_path / "kb"
    )
    return corpus, config, store


def _search(store, embedder, config, query="purring cats", raw_filter=None):
    hits = retrieve(store, embedder, config.metadata_schema, query, 3, "HYBRID", raw_filter)
    return [(h.doc_id, h.content, round(h.score, 6)) for h in hits]


def test_incremental_sync_reports_added_changed_deleted_and_skipped(tmp_path, embedder) -> None:
    corpus, config, store = _setup(tmp_path, embedder)
    (corpus / "notes.bin").write_bytes(b"\x00\x01")
    ticks: list[tuple[int, int]] = []

    first = sync(config, store, embedder, tmp_path, lambda done, total: ticks.append((done, total)))
    assert first.status == "succeeded", first.error
    assert (first.added, first.changed, first.deleted, first.unchanged) == (3, 0, 0, 0)
    assert [s.path for s in first.skipped] == ["notes.bin"] and "unsupported" in first.skipped[0].reason
    assert ticks[0] == (0, 3) and ticks[-1] == (3, 3)
    assert store.count() == first.chunks >= 3
    top = _search(store, embedder, config)[0]
    assert top[0] == "cats.md"

    again = sync(config, store, embedder, tmp_path)
    assert (again.added, again.changed, again.deleted, again.unchanged, again.chunks) == (0, 0, 0, 3, 0)

    (corpus / "tea.md").write_text("# tea\n\nBlack tea is brewed with boiling water.\n")
    (corpus / "rust.md").unlink()
    (corpus / "rust.md.metadata.json").unlink()
    (corpus / "owls.md").write_text("# owls\n\nOwls hunt mice at night.\n")
    third = sync(config, store, embedder, tmp_path)
    assert (third.added, third.changed, third.deleted, third.unchanged) == (1, 1, 1, 1)
    assert set(store.doc_hashes()) == {"cats.md", "tea.md", "owls.md"}
    assert "Black tea" in _search(store, embedder, config, "brewing tea")[0][1]
    assert third.to_json()["skipped"] == [{"path": "notes.bin", "reason": third.skipped[0].reason}]


class FailingEmbedder:
    """The real embedder, raising on its ``fail_on``-th call: a sync dying midway."""

    def __init__(self, inner, fail_on: int) -> None:
        self.inner, self.fail_on, self.calls = inner, fail_on, 0

    @property
    def model(self):
        return self.inner.model

    @property
    def tokenizer(self):
        return self.inner.model.tokenizer

    def embed(self, texts):
        self.calls += 1
        if self.calls == self.fail_on:
            raise RuntimeError("embedding server went away")
        return self.inner.embed(texts)


def test_failed_sync_leaves_previous_version_queryable(tmp_path, embedder, monkeypatch) -> None:
    corpus, config, store = _setup(tmp_path, embedder)
    assert sync(config, store, embedder, tmp_path).status == "succeeded"
    before = (store.count(), store.doc_hashes(), _search(store, embedder, config))
    filtered = _search(store, embedder, config, "drinks", {"equals": {"key": "topic", "value": "food"}})

    for name in ("cats.md", "rust.md", "tea.md"):
        (corpus / name).write_text(f"# {name}\n\nRewritten: {name} now talks about volcanoes.\n")
    (corpus / "tea.md.metadata.json").unlink()
    monkeypatch.setattr(sync_module, "DOC_BATCH", 1)  # one document per batch -> several batches
    monkeypatch.setattr(sync_module, "EMBED_BATCH", 1)
    failing = FailingEmbedder(embedder, fail_on=2)
    report = sync(config, store, failing, tmp_path)

    assert report.status == "failed" and "embedding server went away" in (report.error or "")
    assert report.to_json()["status"] == "failed"
    assert (store.count(), store.doc_hashes(), _search(store, embedder, config)) == before
    assert (
        _search(store, embedder, config, "drinks", {"equals": {"key": "topic", "value": "food"}}) == filtered
    )

    retry = sync(config, store, embedder, tmp_path)  # the failed sync did not poison the next one
    assert retry.status == "succeeded" and retry.changed == 3
    assert "volcanoes" in _search(store, embedder, config, "volcanoes")[0][1]


def _first_build_lands_in_batches(tmp_path, embedder, config, store) -> None:
    """A first build dying at its third batch: each batch was searchable once committed, the landed
    ones stay, and a retry embeds only the rest."""
    seen: list[tuple[int, int, set[str]]] = []
    found: list[str] = []

    def look(done: int, total: int) -> None:  # runs inside the sync, between its batches
        seen.append((done, total, set(store.doc_hashes())))
        if done == 1:
            found.extend(doc_id for doc_id, _, _ in _search(store, embedder, config, "purring cats"))

    report = sync(config, store, FailingEmbedder(embedder, fail_on=3), tmp_path, look, first_build=True)

    assert report.status == "failed" and "embedding server went away" in (report.error or "")
    assert seen == [(0, 3, set()), (1, 3, {"cats.md"}), (2, 3, {"cats.md", "rust.md"})]
    assert found == ["cats.md"]  # retrieval answered from the first batch while the build went on
    assert set(store.doc_hashes()) == {"cats.md", "rust.md"}  # what landed stays
    assert report.chunks == store.count() > 0  # the report counts what it committed

    retry = sync(config, store, embedder, tmp_path, first_build=True)
    assert retry.status == "succeeded", retry.error
    assert (retry.added, retry.unchanged) == (1, 2)  # only the document that never landed
    assert set(store.doc_hashes()) == {"cats.md", "rust.md", "tea.md"}


def test_first_build_is_searchable_as_it_lands_and_a_retry_resumes(tmp_path, embedder, monkeypatch) -> None:
    _, config, store = _setup(tmp_path, embedder)
    monkeypatch.setattr(sync_module, "DOC_BATCH", 1)
    monkeypatch.setattr(sync_module, "COMMIT_SECONDS", 0.0)  # commit after every batch
    _first_build_lands_in_batches(tmp_path, embedder, config, store)


def test_first_build_on_pgvector_lands_in_batches(pg_dsn, tmp_path, embedder, monkeypatch) -> None:
    _, config, _ = _setup(tmp_path, embedder)
    assert config.metadata_schema is not None
    store = open_store(
        "pgvector", dim=embedder.dimensions, schema=config.metadata_schema, dsn=pg_dsn, table="kb_first"
    )
    monkeypatch.setattr(sync_module, "DOC_BATCH", 1)
    monkeypatch.setattr(sync_module, "COMMIT_SECONDS", 0.0)
    try:
        _first_build_lands_in_batches(tmp_path, embedder, config, store)
    finally:
        store.drop()


def test_first_build_commits_its_first_batch_at_once_then_on_the_clock(tmp_path, embedder, monkeypatch):
    _, config, store = _setup(tmp_path, embedder)
    monkeypatch.setattr(sync_module, "DOC_BATCH", 1)
    monkeypatch.setattr(sync_module, "COMMIT_SECONDS", 3600.0)
    ticks: list[tuple[int, int]] = []

    report = sync(config, store, embedder, tmp_path, lambda *tick: ticks.append(tick), first_build=True)

    assert report.status == "succeeded" and report.chunks == store.count()
    assert ticks == [(0, 3), (1, 3), (3, 3)]  # a tick per commit: the first batch, then the end


@pytest.mark.parametrize("first_build", [False, True])
def test_a_stopped_sync_keeps_the_committed_state(tmp_path, embedder, monkeypatch, first_build) -> None:
    corpus, config, store = _setup(tmp_path, embedder)
    monkeypatch.setattr(sync_module, "DOC_BATCH", 1)
    monkeypatch.setattr(sync_module, "COMMIT_SECONDS", 0.0)
    if not first_build:
        assert sync(config, store, embedder, tmp_path).status == "succeeded"
        for name in ("cats.md", "rust.md", "tea.md"):
            (corpus / name).write_text(f"# {name}\n\nRewritten: {name} now talks about volcanoes.\n")
    before = store.doc_hashes()
    polls = iter([False, True])  # let one batch through, then stop

    report = sync(config, store, embedder, tmp_path, first_build=first_build, should_stop=lambda: next(polls))

    assert report.status == "failed" and (report.error or "").startswith("SyncStopped: stopped after 1 of 3")
    if first_build:
        assert set(store.doc_hashes()) == {"cats.md"}  # the first batch landed
    else:
        assert store.doc_hashes() == before  # the re-sync was aborted whole


def test_config_round_trips_through_json_and_rejects_bad_values() -> None:
    config = KnowledgeBaseConfig("docs", chunking=ChunkingConfig(strategy="hierarchical"), store="lancedb")
    config = config.with_source({"type": "records", "path": "/x.jsonl", "text_fields": ["body"]})
    assert KnowledgeBaseConfig.from_json(json.loads(json.dumps(config.to_json()))) == config
    for bad in (
        {"name": "Bad Name"},
        {"name": "ok", "store": "chroma"},
        {"name": "ok", "chunking": {"strategy": "magic"}},
        {"name": "ok", "hybrid_weight": 2},
        {"name": "ok", "colour": "red"},
    ):
        with pytest.raises(ValueError):
            KnowledgeBaseConfig.from_json(bad)
    with pytest.raises(ValueError, match="text_fields"):
        config.with_source({"type": "records", "path": "/x.jsonl"})


def test_openai_embedder_orders_vectors_by_index(monkeypatch) -> None:
    import httpx

    from plinth.llm.openai_embedder import OpenAIEmbedder

    seen = {}

    def post(url, json, headers, timeout):
        seen.update(url=url, body=json, headers=headers)
        data = [{"index": 1, "embedding": [0.0, 1.0]}, {"index": 0, "embedding": [1.0, 0.0]}]
        return httpx.Response(200, json={"data": data}, request=httpx.Request("POST", url))

    monkeypatch.setattr(httpx, "post", post)
    embedder = OpenAIEmbedder("http://emb:8000/v1/", "e5", api_key="sk-1")
    assert embedder.embed(["a", "b"]) == [[1.0, 0.0], [0.0, 1.0]]
    assert seen["url"] == "http://emb:8000/v1/embeddings" and seen["body"] == {
        "model": "e5",
        "input": ["a", "b"],
    }
    assert seen["headers"] == {"Authorization": "Bearer sk-1"}


def test_pgvector_knowledge_base_syncs_incrementally_and_filters(pg_dsn, tmp_path):
    """The same lifecycle on a real PostgreSQL + pgvector store, through the knowledge service."""
    from plinth.config import Settings
    from plinth.control import LOCAL_TENANT, Tenant, get_or_create_tenant, open_control_plane
    from plinth.knowledge.service import KnowledgeService

    corpus = write_corpus(tmp_path / "corpus")
    cp = open_control_plane(f"sqlite:///{tmp_path / 'plinth.db'}")
    row = get_or_create_tenant(cp, LOCAL_TENANT)
    tenant = Tenant(row.id, row.name, is_admin=True)
    service = KnowledgeService(
        cp, tmp_path / "data", Settings(data_dir=tmp_path / "data", pgvector_dsn=pg_dsn)
    )
    service.create(tenant, KnowledgeBaseConfig("pg", store="pgvector"))
    service.add_source(tenant, "pg", {"type": "files", "path": str(corpus)})
    first = service.sync_now(tenant, "pg")
    assert first.status == "succeeded" and first.report["added"] == len(DOCS)
    name, (text, meta) = next(iter(DOCS.items()))
    (corpus / name).unlink()
    second = service.sync_now(tenant, "pg")
    assert second.report["deleted"] == 1 and second.report["unchanged"] == len(DOCS) - 1
    key, value = next(iter(meta.items()))
    hits = service.retrieve(tenant, "pg", text, 10, "HYBRID", {"equals": {"key": key, "value": value}})
    assert all(h.metadata[key] == value for h in hits) and all(h.doc_id != name for h in hits)
    service.delete(tenant, "pg")
    cp.close()
