"""API keys gate /v1 and /invocations (real SQLite control plane); health, ping and metrics stay open."""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.testclient import TestClient
from server_fakes import build_app

from plinth.server.auth import require_tenant

LMI = {"inputs": "hi"}


def test_missing_and_invalid_keys_are_401(tmp_path):
    app, _ = build_app(tmp_path)
    client = TestClient(app)
    for headers in ({}, {"Authorization": "Bearer plinth-wrong"}, {"Authorization": "Basic abc"}):
        for method, path, body in (("GET", "/v1/models", None), ("POST", "/invocations", LMI)):
            r = client.request(method, path, json=body, headers=headers)
            assert r.status_code == 401, (path, headers)
            err = r.json()["error"]
            assert err["type"] == "authentication_error" and err["code"] in {
                "missing_api_key",
                "invalid_api_key",
            }


def test_valid_key_is_accepted_and_tenant_is_on_request_state(tmp_path):
    app, key = build_app(tmp_path)

    @app.get("/v1/whoami", dependencies=[Depends(require_tenant)])
    def whoami(request: Request) -> dict:
        return {"name": request.state.tenant.name}

    client = TestClient(app, headers={"Authorization": f"Bearer {key}"})
    assert client.get("/v1/models").status_code == 200
    assert client.post("/invocations", json=LMI).status_code == 200
    assert client.get("/v1/whoami").json() == {"name": "acme"}


def test_no_auth_serves_the_local_tenant(tmp_path):
    app, _ = build_app(tmp_path, no_auth=True)

    @app.get("/v1/whoami", dependencies=[Depends(require_tenant)])
    def whoami(request: Request) -> dict:
        return {"name": request.state.tenant.name}

    client = TestClient(app)
    assert client.get("/v1/models").status_code == 200
    assert client.get("/v1/whoami").json() == {"name": "local"}


def test_health_ping_metrics_need_no_key(tmp_path):
    app, _ = build_app(tmp_path)
    client = TestClient(app)
    for path in ("/health", "/ping", "/metrics", "/"):
        assert client.get(path).status_code == 200, path
