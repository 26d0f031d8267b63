"""A knowledge base's build as the API shows it: a first build answers from what has landed while it
runs (``state: building`` with progress, rate and ETA), a re-sync keeps answering from the previous
version (``syncing``), and closing the service stops a running sync between batches."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from adapter_fixtures import control_plane
from fastapi.testclient import TestClient
from test_kb_sync import write_corpus

from plinth.config import Settings
from plinth.control.knowledge import JobRow
from plinth.knowledge import sync as sync_module
from plinth.knowledge.progress import rate_and_eta, sync_state
from plinth.llm import get_embedder
from plinth.server import create_app

KB = "/v1/knowledge-bases"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _job(status: str, done: int = 0, total: int = 0, started: datetime | None = T0) -> JobRow:
    return JobRow("kbjob-1", 1, 1, status, done, total, None, None, T0, started, None)


def test_sync_state_names_what_retrieval_answers_from() -> None:
    assert sync_state(None, False) == "not_synced"
    assert sync_state(_job("running"), False) == "building"
    assert sync_state(_job("queued"), False) == "building"
    assert sync_state(_job("running"), True) == "syncing"
    assert sync_state(_job("succeeded"), True) == "ready"
    assert sync_state(_job("failed"), True) == "failed"


def test_rate_and_eta_from_done_total_and_start() -> None:
    now = T0 + timedelta(seconds=100)
    assert rate_and_eta(_job("running", 1_000, 36_000), now) == (10.0, 3500.0)
    naive = _job("running", 1_000, 36_000, started=T0.replace(tzinfo=None))  # as SQLite returns it
    assert rate_and_eta(naive, now) == (10.0, 3500.0)
    assert rate_and_eta(_job("running", 0, 36_000), now) == (None, None)  # nothing done: unknown
    assert rate_and_eta(_job("succeeded", 36_000, 36_000), now) == (None, None)


class GatedEmbedder:
    """The real embedder; on a sync thread, every call after the first waits for ``gate``."""

    def __init__(self, inner) -> None:
        self.inner, self.calls = inner, 0
        self.gate, self.waiting = threading.Event(), threading.Event()

    @property
    def dimensions(self) -> int:
        return self.inner.dimensions

    @property
    def model(self):
        return self.inner.model

    def embed(self, texts):
        if threading.current_thread().name.startswith("kb-sync-"):
            self.calls += 1
            if self.calls > 1:
                self.waiting.set()
                assert self.gate.wait(60), "the test never opened the gate"
        return self.inner.embed(texts)


@pytest.fixture
def built(tmp_path, monkeypatch):
    """A server with KB ``docs`` over the three-file corpus, its embedder gated."""
    monkeypatch.setattr(sync_module, "DOC_BATCH", 1)
    monkeypatch.setattr(sync_module, "COMMIT_SECONDS", 0.0)
    cp, keys = control_plane(tmp_path)
    app = create_app(Settings(data_dir=tmp_path / "data"), [], cp)
    gated = GatedEmbedder(get_embedder("sentence-transformers/all-MiniLM-L6-v2"))
    service = app.state.knowledge
    monkeypatch.setattr(service, "embedder", lambda config: gated)
    corpus = write_corpus(tmp_path / "corpus")
    with TestClient(app) as client:
        assert client.post(KB, json={"name": "docs"}, headers=keys.auth("acme")).status_code == 201
        source = {"type": "files", "path": str(corpus)}
        assert client.post(f"{KB}/docs/sources", json=source, headers=keys.auth("admin")).status_code == 201
        yield client, keys, service, gated, corpus
        gated.gate.set()
        service.close()
    cp.close()


def _titles(client, keys, query: str) -> list[str]:
    body = {"query": query, "numberOfResults": 3}
    response = client.post(f"{KB}/docs/retrieve", json=body, headers=keys.auth("acme"))
    assert response.status_code == 200, response.text
    return [r["content"]["text"] for r in response.json()["results"]]


def _card(client, keys) -> dict:
    return client.get(f"{KB}/docs", headers=keys.auth("acme")).json()


def _start(client, keys, gated) -> dict:
    gated.calls = 0
    gated.gate.clear()
    gated.waiting.clear()
    job = client.post(f"{KB}/docs/sync", headers=keys.auth("acme")).json()
    assert gated.waiting.wait(60), "the sync never reached its second batch"
    return job


def _finish(service, gated, job: dict) -> None:
    gated.gate.set()
    service.wait(job["id"], timeout=60)


def test_first_build_answers_from_what_landed_and_reports_progress(built) -> None:
    client, keys, service, gated, corpus = built
    job = _start(client, keys, gated)
    time.sleep(0.05)  # a measurable elapsed time for the rate

    card = _card(client, keys)
    assert card["state"] == "building"
    progress = card["last_sync"]["progress"]
    assert (progress["done"], progress["total"]) == (1, 3)
    assert progress["rate"] > 0 and progress["eta_seconds"] > 0
    assert any("purr" in text for text in _titles(client, keys, "purring cats"))  # cats.md landed

    _finish(service, gated, job)
    card = _card(client, keys)
    assert card["state"] == "ready" and card["last_sync"]["progress"]["done"] == 3

    (corpus / "cats.md").write_text("# cats\n\nCats chase laser pointers all evening.\n")
    (corpus / "tea.md").write_text("# tea\n\nOolong is rolled into tight pearls.\n")
    again = _start(client, keys, gated)
    assert _card(client, keys)["state"] == "syncing"
    assert any("purr" in text for text in _titles(client, keys, "purring cats"))  # the old version
    assert not any("laser" in text for text in _titles(client, keys, "laser pointers"))

    _finish(service, gated, again)
    assert _card(client, keys)["state"] == "ready"
    assert any("laser" in text for text in _titles(client, keys, "laser pointers"))


def test_close_stops_a_running_sync_between_batches(built) -> None:
    client, keys, service, gated, _ = built
    job = _start(client, keys, gated)
    closing = threading.Thread(target=service.close, args=(60,))
    closing.start()
    gated.gate.set()  # the batch being embedded finishes, then the sync sees the stop
    closing.join(60)
    assert not closing.is_alive()

    stopped = client.get(f"{KB}/docs/jobs/{job['id']}", headers=keys.auth("acme")).json()
    assert stopped["status"] == "failed" and stopped["error"].startswith("SyncStopped")
    assert _card(client, keys)["state"] == "failed"
    assert len(_titles(client, keys, "cats tea rust")) == 2  # a first build keeps what it committed
