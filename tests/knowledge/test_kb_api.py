"""Knowledge bases over HTTP with the real control plane, LanceDB and default embedder: create -> add
source -> sync job -> poll -> retrieve (filters, search types, 400s) -> tenancy -> delete."""

from __future__ import annotations

import time

import pytest
from adapter_fixtures import control_plane
from fastapi.testclient import TestClient
from test_kb_sync import write_corpus

from plinth.config import Settings
from plinth.control.knowledge import create_job, get_kb
from plinth.server import create_app

KB = "/v1/knowledge-bases"


@pytest.fixture
def server(tmp_path):
    cp, keys = control_plane(tmp_path)
    app = create_app(Settings(data_dir=tmp_path / "data"), [], cp)
    with TestClient(app) as client:
        yield client, keys, cp, tmp_path
    cp.close()


def _wait(client, keys, job: dict) -> dict:
    for _ in range(600):
        job = client.get(f"{KB}/docs/jobs/{job['id']}", headers=keys.auth("acme")).json()
        if job["status"] in ("succeeded", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"sync job never finished: {job}")


def _error(response, status: int, param: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    if param is not None:
        assert error["param"] == param, error
    return error


def test_lifecycle_sync_retrieve_tenancy_delete(server) -> None:
    client, keys, cp, tmp_path = server
    corpus = write_corpus(tmp_path / "corpus")
    (corpus / "blob.exe").write_bytes(b"MZ")
    body = {"name": "docs", "chunking": {"strategy": "fixed", "max_tokens": 64}}
    created = client.post(KB, json=body, headers=keys.auth("acme"))
    assert created.status_code == 201, created.text
    assert created.json()["id"] == "docs" and created.json()["last_sync"] is None
    assert created.json()["state"] == "not_synced"
    _error(client.post(KB, json=body, headers=keys.auth("acme")), 409)

    source = {"type": "files", "path": str(corpus)}
    _error(client.post(f"{KB}/docs/sources", json=source, headers=keys.auth("acme")), 403, "path")
    relative = {"type": "files", "path": "corpus"}
    _error(client.post(f"{KB}/docs/sources", json=relative, headers=keys.auth("admin")), 400, "path")
    added = client.post(f"{KB}/docs/sources", json=source, headers=keys.auth("admin"))
    assert added.status_code == 201 and added.json()["config"]["sources"] == [source]

    started = client.post(f"{KB}/docs/sync", headers=keys.auth("acme"))
    assert started.status_code == 202 and started.json()["status"] in ("queued", "running", "succeeded")
    job = _wait(client, keys, started.json())
    assert job["status"] == "succeeded", job
    assert job["progress"] == {"done": 3, "total": 3, "rate": None, "eta_seconds": None}  # not running
    report = job["report"]
    assert (report["added"], report["changed"], report["deleted"]) == (3, 0, 0)
    assert [s["path"] for s in report["skipped"]] == ["blob.exe"]
    card = client.get(f"{KB}/docs", headers=keys.auth("acme")).json()
    assert card["last_sync"]["id"] == job["id"] and card["state"] == "ready"

    _check_retrieve(client, keys)
    _check_tenancy(client, keys, job["id"])

    deleted = client.delete(f"{KB}/docs", headers=keys.auth("acme"))
    assert deleted.json() == {"id": "docs", "object": "knowledge_base", "deleted": True}
    _error(client.get(f"{KB}/docs", headers=keys.auth("acme")), 404)
    assert not (tmp_path / "data" / "knowledge" / "acme" / "docs").exists()


def _retrieve(client, keys, body: dict, who: str = "acme"):
    return client.post(f"{KB}/docs/retrieve", json=body, headers=keys.auth(who))


def _check_retrieve(client, keys) -> None:
    results = _retrieve(client, keys, {"query": "purring cats", "numberOfResults": 2}).json()["results"]
    assert len(results) == 2
    top = results[0]
    assert set(top) == {"content", "score", "metadata", "location"}
    assert "purr" in top["content"]["text"] and top["metadata"]["topic"] == "pets"
    assert top["location"]["type"] == "FILE" and top["location"]["uri"].endswith("cats.md")

    only_food = {"query": "cats", "filter": {"equals": {"key": "topic", "value": "food"}}}
    results = _retrieve(client, keys, only_food).json()["results"]
    assert [r["metadata"]["topic"] for r in results] == ["food"]
    newer = {"query": "anything", "filter": {"greaterThan": {"key": "year", "value": 2020}}}
    assert {r["metadata"]["year"] for r in _retrieve(client, keys, newer).json()["results"]} == {2021, 2022}
    lexical = {"query": "borrow checker", "searchType": "LEXICAL", "numberOfResults": 1}
    assert "borrow" in _retrieve(client, keys, lexical).json()["results"][0]["content"]["text"]
    semantic = {"query": "a hot drink", "searchType": "SEMANTIC", "numberOfResults": 1}
    assert "tea" in _retrieve(client, keys, semantic).json()["results"][0]["content"]["text"]

    _error(_retrieve(client, keys, {"query": "x", "numberOfResults": 0}), 400, "numberOfResults")
    _error(_retrieve(client, keys, {"query": "x", "numberOfResults": 101}), 400, "numberOfResults")
    _error(_retrieve(client, keys, {"query": "x", "searchType": "FUZZY"}), 400, "searchType")
    _error(_retrieve(client, keys, {"query": ""}), 400, "query")
    _error(_retrieve(client, keys, {"query": "x", "topK": 3}), 400, "topK")
    bad_op = {"query": "x", "filter": {"like": {"key": "topic", "value": "f"}}}
    _error(_retrieve(client, keys, bad_op), 400, "filter")
    undeclared = {"query": "x", "filter": {"andAll": [{"equals": {"key": "nope", "value": 1}}]}}
    assert _error(_retrieve(client, keys, undeclared), 400)["param"].startswith("filter.andAll")
    bad_json = client.post(f"{KB}/docs/retrieve", content=b"{nope", headers=keys.auth("acme"))
    assert _error(bad_json, 400)["code"] == "invalid_json"


def _check_tenancy(client, keys, job_id: str) -> None:
    beta = keys.auth("beta")
    assert client.get(KB, headers=beta).json() == {"object": "list", "data": []}
    _error(client.get(f"{KB}/docs", headers=beta), 404)
    _error(_retrieve(client, keys, {"query": "cats"}, who="beta"), 404)
    _error(client.get(f"{KB}/docs/jobs/{job_id}", headers=beta), 404)
    _error(client.post(f"{KB}/docs/sync", headers=beta), 404)
    _error(client.delete(f"{KB}/docs", headers=beta), 404)
    assert [kb["name"] for kb in client.get(KB, headers=keys.auth("acme")).json()["data"]] == ["docs"]


def test_bad_requests_and_conflicts(server) -> None:
    client, keys, cp, tmp_path = server
    auth = keys.auth("acme")
    _error(client.post(KB, json=["docs"], headers=auth), 400)
    _error(client.post(KB, json={"name": "Not Valid"}, headers=auth), 400, "name")
    _error(client.post(KB, json={"name": "pg", "store": "pgvector"}, headers=auth), 400, "store")
    _error(
        client.post(KB, json={"name": "c", "chunking": {"strategy": "magic"}}, headers=auth), 400, "chunking"
    )
    _error(client.get(f"{KB}/missing", headers=auth), 404)
    assert client.post(KB, json={"name": "docs"}, headers=auth).status_code == 201
    records = {"type": "records", "path": "/tmp/x.jsonl"}  # no text_fields
    _error(client.post(f"{KB}/docs/sources", json=records, headers=keys.auth("admin")), 400)
    assert _retrieve(client, keys, {"query": "before any sync"}).json() == {"results": []}

    kb = get_kb(cp, keys_tenant_id(cp, "acme"), "docs")
    job = create_job(cp, kb)  # a sync already queued
    _error(client.post(f"{KB}/docs/sync", headers=auth), 409)
    _error(client.delete(f"{KB}/docs", headers=auth), 409)
    restarted = TestClient(create_app(Settings(data_dir=tmp_path / "data"), [], cp))  # after a crash
    interrupted = restarted.get(f"{KB}/docs/jobs/{job.id}", headers=auth).json()
    assert interrupted["status"] == "failed" and "interrupted" in interrupted["error"]
    assert restarted.delete(f"{KB}/docs", headers=auth).status_code == 200
    _error(client.get(f"{KB}", headers={"Authorization": "Bearer nope"}), 401)


def keys_tenant_id(cp, name: str) -> int:
    from plinth.control import get_tenant

    tenant = get_tenant(cp, name)
    assert tenant is not None
    return tenant.id
