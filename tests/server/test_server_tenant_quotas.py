"""Issue 16: quotas on what a tenant holds (adapters, knowledge-base documents, SQL datasets, unfinished
jobs), set by admin keys and checked by the routes that create them: at the limit, a 429
``rate_limit_exceeded`` with ``Retry-After`` and nothing created; below it, the route works as before.
Usage is what the control plane holds, so the tests put rows there the way the features do."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from server_fakes import build_app

from plinth.control import add_adapter, create_key, get_or_create_tenant
from plinth.control import jobs as job_rows
from plinth.control import knowledge as kb_rows
from plinth.control.sql_datasets import create_dataset, list_datasets

LIMITS = "/v1/admin/tenants/{}/limits"


@pytest.fixture
def env(tmp_path):
    app, key = build_app(tmp_path)
    cp = app.state.plinth.control_plane
    admin = create_key(cp, "root", admin=True)
    client = TestClient(app)
    return (
        client,
        cp,
        {"acme": {"Authorization": f"Bearer {key}"}, "admin": {"Authorization": f"Bearer {admin}"}},
    )


def set_quota(client: TestClient, headers: dict, tenant: str, **limits: int) -> None:
    r = client.put(LIMITS.format(tenant), json=limits, headers=headers["admin"])
    assert r.status_code == 200, r.text


def assert_quota_refusal(response, quota_words: str) -> None:
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert error["code"] == "rate_limit_exceeded" and error["type"] == "rate_limit_error"
    assert quota_words in error["message"]
    assert int(response.headers["Retry-After"]) >= 1


def test_quotas_are_read_and_set_with_the_rate_limits(env):
    client, _, headers = env
    set_quota(
        client, headers, "acme", adapters=2, knowledge_base_documents=100, datasets=1, concurrent_jobs=3
    )
    card = client.get(LIMITS.format("acme"), headers=headers["admin"]).json()
    quotas = ("adapters", "knowledge_base_documents", "datasets", "concurrent_jobs")
    assert [card[name] for name in quotas] == [2, 100, 1, 3]
    bad = client.put(LIMITS.format("acme"), json={"datasets": 0}, headers=headers["admin"])
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "datasets"


def test_an_adapter_past_the_quota_is_429_and_nothing_is_registered(env, tmp_path):
    client, cp, headers = env
    root = get_or_create_tenant(cp, "root")  # an admin: it may register from a path on the server
    add_adapter(cp, tenant_id=root.id, name="first", base_model="fake-model", source="x", path=tmp_path)
    set_quota(client, headers, "root", adapters=1)
    body = {"lora_name": "second", "lora_path": str(tmp_path)}
    assert_quota_refusal(
        client.post("/v1/load_lora_adapter", json=body, headers=headers["admin"]), "1 of 1 adapters"
    )
    names = [a["id"] for a in client.get("/v1/adapters", headers=headers["admin"]).json()["data"]]
    assert "second" not in names
    set_quota(client, headers, "root", adapters=2)  # room again: the route goes on to its own checks
    again = client.post("/v1/load_lora_adapter", json=body, headers=headers["admin"])
    assert again.status_code == 400 and "adapter_config.json" in again.text  # the folder holds no adapter


def test_a_dataset_past_the_quota_is_429(env, tmp_path):
    client, cp, headers = env
    root = get_or_create_tenant(cp, "root")
    create_dataset(cp, tenant_id=root.id, name="one", kind="custom", config={"tables": {}})
    set_quota(client, headers, "root", datasets=1)
    body = {"name": "two", "path": str(tmp_path)}
    assert_quota_refusal(
        client.post("/v1/sql/datasets", json=body, headers=headers["admin"]), "1 of 1 datasets"
    )
    assert [d.name for d in list_datasets(cp, root.id)] == ["one"]
    metrics = client.get("/metrics").text
    assert f'plinth_tenant_quota_refusals_total{{quota="datasets",tenant_id="{root.id}"}} 1.0' in metrics


def test_a_sync_is_refused_once_the_tenants_knowledge_bases_hold_the_documents_quota(env):
    client, cp, headers = env
    assert (
        client.post("/v1/knowledge-bases", json={"name": "docs"}, headers=headers["acme"]).status_code == 201
    )
    acme = get_or_create_tenant(cp, "acme")
    kb = kb_rows.get_kb(cp, acme.id, "docs")
    job = kb_rows.create_job(cp, kb)
    kb_rows.update_job(cp, job.id, status="succeeded", report={"added": 3, "changed": 1, "unchanged": 1})
    set_quota(client, headers, "acme", knowledge_base_documents=5)
    refused = client.post("/v1/knowledge-bases/docs/sync", headers=headers["acme"])
    assert_quota_refusal(refused, "5 of 5 knowledge base documents")
    assert client.post("/v1/knowledge-bases/nope/sync", headers=headers["acme"]).status_code == 404
    set_quota(client, headers, "acme", knowledge_base_documents=6)
    assert client.post("/v1/knowledge-bases/docs/sync", headers=headers["acme"]).status_code == 202


def test_a_job_past_the_concurrent_jobs_quota_is_429_until_one_finishes(env):
    client, cp, headers = env
    acme = get_or_create_tenant(cp, "acme")
    job_rows.create_job(
        cp, job_id="ftjob-1", tenant_id=acme.id, kind="fine_tune", request={}, status="running"
    )
    job_rows.create_job(
        cp, job_id="async-1", tenant_id=acme.id, kind="async_inference", request={}
    )  # not counted
    set_quota(client, headers, "acme", concurrent_jobs=1)
    line = {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}}  # fmt: skip
    files = {"file": ("batch.jsonl", json.dumps(line).encode())}
    upload = client.post("/v1/files", headers=headers["acme"], data={"purpose": "batch"}, files=files)
    batch = {"input_file_id": upload.json()["id"], "endpoint": "/v1/chat/completions"}
    assert_quota_refusal(
        client.post("/v1/batches", json=batch, headers=headers["acme"]), "1 of 1 concurrent jobs"
    )
    assert client.get("/v1/batches", headers=headers["acme"]).json()["data"] == []
    job_rows.transition(cp, "ftjob-1", ("running",), "succeeded")
    assert client.post("/v1/batches", json=batch, headers=headers["acme"]).status_code == 200
    # the batch itself is now the tenant's one unfinished job: a second one waits for it
    assert_quota_refusal(client.post("/v1/batches", json=batch, headers=headers["acme"]), "concurrent jobs")
