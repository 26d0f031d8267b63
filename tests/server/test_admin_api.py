"""``/v1/admin/keys`` (admin keys only) and ``/v1/me``, the two routes the web app adds for itself."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from server_fakes import build_app

from plinth.control import create_key


@pytest.fixture
def server(tmp_path):
    app, key = build_app(tmp_path)
    admin = create_key(app.state.plinth.control_plane, "root", admin=True)
    with TestClient(app) as client:
        yield client, {"Authorization": f"Bearer {admin}"}, {"Authorization": f"Bearer {key}"}


def test_me_names_the_tenant_and_whether_the_key_is_admin(server):
    client, admin, plain = server
    assert client.get("/v1/me", headers=plain).json() == {"tenant": "acme", "is_admin": False, "auth": "key"}
    assert client.get("/v1/me", headers=admin).json()["is_admin"] is True
    wrong = client.get("/v1/me", headers={"Authorization": "Bearer pk-nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"


def test_me_without_auth_is_the_local_admin(tmp_path):
    app, _ = build_app(tmp_path, no_auth=True)
    with TestClient(app) as client:
        assert client.get("/v1/me").json() == {"tenant": "local", "is_admin": True, "auth": "none"}


def test_admin_creates_lists_and_revokes_keys_without_ever_listing_a_secret(server):
    client, admin, _ = server
    created = client.post("/v1/admin/keys", json={"tenant": "beta"}, headers=admin)
    assert created.status_code == 201
    body = created.json()
    key, prefix = body["key"], body["prefix"]
    assert key.startswith(prefix) and body["tenant"] == "beta" and body["admin"] is False and body["active"]
    assert client.get("/v1/me", headers={"Authorization": f"Bearer {key}"}).json()["tenant"] == "beta"

    listing = client.get("/v1/admin/keys", headers=admin).json()["data"]
    assert {k["tenant"] for k in listing} == {"acme", "root", "beta"}
    assert key not in created.text.replace(key, "", 1) and all(key not in str(k) for k in listing)

    revoked = client.delete(f"/v1/admin/keys/{prefix}", headers=admin)
    assert revoked.json() == {"id": prefix, "object": "api_key", "deleted": True}
    assert client.get("/v1/me", headers={"Authorization": f"Bearer {key}"}).status_code == 401
    row = next(k for k in client.get("/v1/admin/keys", headers=admin).json()["data"] if k["prefix"] == prefix)
    assert row["active"] is False and row["revoked"] is not None
    again = client.delete(f"/v1/admin/keys/{prefix}", headers=admin)
    assert again.status_code == 404 and again.json()["error"]["param"] == "prefix"


def test_admin_key_creation_validates_the_tenant(server):
    client, admin, _ = server
    for body, param in (({"tenant": "Bad Name"}, "tenant"), ({"tenant": "public"}, "tenant"), ({}, "tenant")):
        reply = client.post("/v1/admin/keys", json=body, headers=admin)
        assert reply.status_code == 400 and reply.json()["error"]["param"] == param
    made = client.post("/v1/admin/keys", json={"tenant": "ops", "admin": True}, headers=admin).json()
    assert client.get("/v1/me", headers={"Authorization": f"Bearer {made['key']}"}).json()["is_admin"] is True


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/v1/admin/keys"), ("post", "/v1/admin/keys"), ("delete", "/v1/admin/keys/pk-x")],
)
def test_non_admin_keys_get_a_403_in_the_openai_shape(server, method, path):
    client, _, plain = server
    kwargs = {"json": {"tenant": "evil", "admin": True}} if method == "post" else {}
    reply = getattr(client, method)(path, headers=plain, **kwargs)
    assert reply.status_code == 403
    assert reply.json()["error"] == {
        "message": "Only admin keys may manage API keys.",
        "type": "permission_error",
        "param": None,
        "code": "admin_required",
    }
    assert client.get("/v1/admin/keys", headers=server[1]).json()["data"][-1]["tenant"] != "evil"


def test_the_web_app_is_served_at_the_root_without_a_key(server):
    client, _, _ = server
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert '<script type="module" src="/static/app.js">' in page.text and 'data-auth="key"' in page.text
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/vendor/vega-embed.min.js").status_code == 200
    assert client.get("/static/missing.js").json()["error"]["code"] == "not_found"
