"""/v1/guardrails over HTTP with the real control plane and PII detector: CRUD, 400s naming the param,
tenant isolation, ApplyGuardrail masking/blocking an SSN, the audit log, the default guardrail and
resolve_policy."""

from __future__ import annotations

import hashlib
import hmac
import json
import stat

import pytest
from adapter_fixtures import control_plane
from fastapi import Depends, Request
from fastapi.testclient import TestClient

from plinth.config import Settings
from plinth.control import list_events
from plinth.server import create_app
from plinth.server.auth import require_tenant
from plinth.server.guardrails_api import resolve_policy

GR = "/v1/guardrails"
SSN = "536-22-1843"
BODY = {
    "name": "support",
    "blockedInputMessaging": "Input blocked.",
    "blockedOutputsMessaging": "Output blocked.",
    "sensitiveInformationPolicyConfig": {
        "piiEntitiesConfig": [
            {"type": "US_SOCIAL_SECURITY_NUMBER", "action": "ANONYMIZE", "outputAction": "BLOCK"}
        ]
    },
}


@pytest.fixture
def server(tmp_path):
    cp, keys = control_plane(tmp_path)
    app = create_app(Settings(data_dir=tmp_path / "data"), [], cp)

    async def resolved(request: Request) -> dict:  # exposes resolve_policy the way features call it
        body = await request.json()
        policy = await resolve_policy(request, body.get("guardrailConfig"))
        return {"policy": policy.label if policy else None}

    app.add_api_route("/test/resolve", resolved, methods=["POST"], dependencies=[Depends(require_tenant)])
    with TestClient(app) as client:
        yield client, keys, cp
    cp.close()


def _error(response, status: int, param: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["param"] == param, error
    return error


def test_crud_versions_and_conflicts(server) -> None:
    client, keys, _ = server
    auth = keys.auth("acme")
    created = client.post(GR, json=BODY, headers=auth)
    assert created.status_code == 201, created.text
    gr = created.json()
    gid = gr["guardrailId"]
    assert len(gid) == 12 and gr["version"] == "1" and gr["isDefault"] is False and gr["name"] == "support"
    assert gr["sensitiveInformationPolicyConfig"]["piiEntitiesConfig"][0]["outputAction"] == "BLOCK"
    _error(client.post(GR, json=BODY, headers=auth), 409, "name")

    assert client.get(f"{GR}/{gid}", headers=auth).json() == gr
    assert client.get(f"{GR}/support", headers=auth).json()["guardrailId"] == gid  # by name too
    listed = client.get(GR, headers=auth).json()["guardrails"]
    assert [(g["id"], g["name"], g["version"], g["status"]) for g in listed] == [
        (gid, "support", "1", "READY")
    ]

    meta = ("guardrailId", "object", "version", "status", "isDefault", "createdAt", "updatedAt")
    edited = {k: v for k, v in gr.items() if k not in meta}
    edited["description"] = "v2"
    updated = client.put(f"{GR}/{gid}", json=edited, headers=auth)
    assert updated.status_code == 200, updated.text
    assert (updated.json()["version"], updated.json()["description"]) == ("2", "v2")
    client.post(GR, json={**BODY, "name": "other"}, headers=auth)
    _error(client.put(f"{GR}/{gid}", json={**edited, "name": "other"}, headers=auth), 409, "name")

    deleted = client.delete(f"{GR}/{gid}", headers=auth)
    assert deleted.json() == {"guardrailId": gid, "object": "guardrail", "deleted": True}
    _error(client.get(f"{GR}/{gid}", headers=auth), 404, "guardrail_id")
    _error(client.delete(f"{GR}/{gid}", headers=auth), 404, "guardrail_id")


SIP = "sensitiveInformationPolicyConfig"
ATTACK = {"filtersConfig": [{"type": "PROMPT_ATTACK", "inputStrength": "MAX"}]}
GROUNDING = {"filtersConfig": [{"type": "GROUNDING", "threshold": 2}]}
INVALID = [
    ({**BODY, "name": ""}, "name"),
    ({**BODY, "isDefault": "yes"}, "isDefault"),
    ({**BODY, "tags": []}, "tags"),
    ({**BODY, SIP: {"piiEntitiesConfig": [{"type": "NAME", "action": "BLOCK"}]}},
     f"{SIP}.piiEntitiesConfig.0.type"),
    ({**BODY, SIP: {"regexesConfig": [{"name": "r", "pattern": "(", "action": "BLOCK"}]}},
     f"{SIP}.regexesConfig.0.pattern"),
    ({**BODY, "contentPolicyConfig": ATTACK}, "contentPolicyConfig.filtersConfig.0.inputStrength"),
    ({**BODY, "contextualGroundingPolicyConfig": GROUNDING},
     "contextualGroundingPolicyConfig.filtersConfig.0.threshold"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "param"), INVALID)
def test_invalid_bodies_are_400s_naming_the_param(server, body: dict, param: str) -> None:
    client, keys, _ = server
    _error(client.post(GR, json=body, headers=keys.auth("acme")), 400, param)


def test_non_json_and_non_object_bodies(server) -> None:
    client, keys, _ = server
    headers = {**keys.auth("acme"), "content-type": "application/json"}
    assert client.post(GR, content=b"{nope", headers=headers).json()["error"]["code"] == "invalid_json"
    assert client.post(GR, json=["x"], headers=keys.auth("acme")).status_code == 400


def test_another_tenants_guardrail_is_a_404(server) -> None:
    client, keys, _ = server
    gid = client.post(GR, json=BODY, headers=keys.auth("acme")).json()["guardrailId"]
    beta = keys.auth("beta")
    _error(client.get(f"{GR}/{gid}", headers=beta), 404, "guardrail_id")
    _error(client.get(f"{GR}/support", headers=beta), 404, "guardrail_id")
    _error(client.put(f"{GR}/{gid}", json=BODY, headers=beta), 404, "guardrail_id")
    _error(client.delete(f"{GR}/{gid}", headers=beta), 404, "guardrail_id")
    apply = {"source": "INPUT", "content": [{"text": {"text": "hi"}}]}
    _error(client.post(f"{GR}/{gid}/apply", json=apply, headers=beta), 404, "guardrail_id")
    assert client.get(GR, headers=beta).json() == {"guardrails": []}
    resolve = {"guardrailConfig": {"guardrailIdentifier": gid}}
    _error(
        client.post("/test/resolve", json=resolve, headers=beta), 404, "guardrailConfig.guardrailIdentifier"
    )
    assert client.post(GR, json=BODY, headers=beta).status_code == 201  # names are per tenant


def test_apply_masks_input_blocks_output_and_audits_hashes(server, tmp_path) -> None:
    client, keys, cp = server
    gid = client.post(GR, json=BODY, headers=keys.auth("acme")).json()["guardrailId"]
    text = f"My SSN is {SSN}, please update it."

    def apply(source: str, content: str) -> dict:
        body = {"source": source, "content": [{"text": {"text": content}}]}
        response = client.post(f"{GR}/{gid}/apply", json=body, headers=keys.auth("acme"))
        assert response.status_code == 200, response.text
        return response.json()

    masked = apply("INPUT", text)
    assert masked["action"] == "GUARDRAIL_INTERVENED"
    assert masked["outputs"] == [{"text": "My SSN is {US_SOCIAL_SECURITY_NUMBER}, please update it."}]
    [pii] = masked["assessments"][0]["sensitiveInformationPolicy"]["piiEntities"]
    assert pii == {
        "type": "US_SOCIAL_SECURITY_NUMBER",
        "match": SSN,
        "action": "ANONYMIZED",
        "detected": True,
    }

    blocked = apply("OUTPUT", text)
    assert blocked["outputs"] == [{"text": "Output blocked."}]
    assert blocked["assessments"][0]["sensitiveInformationPolicy"]["piiEntities"][0]["action"] == "BLOCKED"

    assert apply("INPUT", "What is the weather like?") == {"action": "NONE", "outputs": [], "assessments": []}

    events = [
        e for e in list_events(cp, tenant_id=keys_tenant(cp, "acme")) if e.action == "guardrail.intervene"
    ]
    assert [(e.detail["stage"], e.detail["guard_action"]) for e in reversed(events)] == [
        ("input", "ANONYMIZED"), ("output", "BLOCKED")]  # fmt: skip
    key = bytes.fromhex((tmp_path / "data" / "audit.key").read_text())
    digests = {e.detail["match_hmac"] for e in events}
    assert digests == {hmac.new(key, SSN.encode(), hashlib.sha256).hexdigest()}
    assert hashlib.sha256(SSN.encode()).hexdigest() not in digests  # unkeyed: reversible for 10^9 SSNs
    assert all(
        e.detail["guardrail"] == gid and e.detail["rule"] == "pii/US_SOCIAL_SECURITY_NUMBER" for e in events
    )
    assert SSN not in json.dumps([e.detail for e in list_events(cp, limit=1000)])


def test_the_audit_key_is_made_once_per_installation_and_private(tmp_path) -> None:
    from plinth.guard import audit_key

    data_dir = tmp_path / "data"
    key = audit_key(data_dir)
    path = data_dir / "audit.key"
    assert len(key) == 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert audit_key(data_dir) == key and audit_key(tmp_path / "other") != key
    assert [p.name for p in data_dir.iterdir()] == ["audit.key"]  # no temporary file left behind


def keys_tenant(cp, name: str) -> int:
    from plinth.control import get_tenant

    tenant = get_tenant(cp, name)
    assert tenant is not None
    return tenant.id


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"source": "SIDEWAYS", "content": [{"text": {"text": "x"}}]}, "source"),
        ({"source": "INPUT", "content": []}, "content"),
        ({"source": "INPUT", "content": [{"text": "x"}]}, "content.0.text.text"),
        ({"source": "INPUT", "content": [{"text": {"text": "x", "qualifiers": ["nope"]}}]},
         "content.0.text.qualifiers"),
        ({"source": "INPUT", "content": [{"text": {"text": "x", "lang": "en"}}]}, "content.0.text.lang"),
        ({"source": "INPUT", "content": [{"text": {"text": "x", "qualifiers": ["query"]}}]}, "content"),
        ({"source": "INPUT", "content": [{"text": {"text": "x"}}], "outputScope": "FULL"}, "outputScope"),
    ],
)  # fmt: skip
def test_apply_validation(server, body: dict, param: str) -> None:
    client, keys, _ = server
    gid = client.post(GR, json=BODY, headers=keys.auth("acme")).json()["guardrailId"]
    _error(client.post(f"{GR}/{gid}/apply", json=body, headers=keys.auth("acme")), 400, param)


def test_default_guardrail_moves_and_resolve_policy(server) -> None:
    client, keys, _ = server
    auth = keys.auth("acme")
    assert client.post("/test/resolve", json={}, headers=auth).json() == {"policy": None}
    first = client.post(GR, json={**BODY, "isDefault": True}, headers=auth).json()
    assert first["isDefault"] is True
    assert client.post("/test/resolve", json={}, headers=auth).json() == {"policy": first["guardrailId"]}
    second = client.post(GR, json={**BODY, "name": "strict", "isDefault": True}, headers=auth).json()
    listed = {g["name"]: g["isDefault"] for g in client.get(GR, headers=auth).json()["guardrails"]}
    assert listed == {"support": False, "strict": True}
    assert client.post("/test/resolve", json={}, headers=auth).json() == {"policy": second["guardrailId"]}

    explicit = {"guardrailConfig": {"guardrailIdentifier": first["guardrailId"], "guardrailVersion": "1"}}
    assert client.post("/test/resolve", json=explicit, headers=auth).json() == {
        "policy": first["guardrailId"]
    }
    stale = {"guardrailConfig": {"guardrailIdentifier": "support", "guardrailVersion": "7"}}
    _error(client.post("/test/resolve", json=stale, headers=auth), 404, "guardrailConfig.guardrailVersion")
    _error(
        client.post("/test/resolve", json={"guardrailConfig": "support"}, headers=auth),
        400,
        "guardrailConfig",
    )
    bad = {"guardrailConfig": {"guardrailIdentifier": "support", "colour": "red"}}
    _error(client.post("/test/resolve", json=bad, headers=auth), 400, "guardrailConfig.colour")
    assert client.post("/test/resolve", json={}, headers=keys.auth("beta")).json() == {"policy": None}

    client.delete(f"{GR}/{second['guardrailId']}", headers=auth)
    assert client.post("/test/resolve", json={}, headers=auth).json() == {"policy": None}
