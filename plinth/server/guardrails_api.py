"""``/v1/guardrails``: Bedrock-shaped guardrail objects and ApplyGuardrail, scoped to the caller's tenant
(another tenant's guardrail is a 404, the same as a missing one).

- ``POST /v1/guardrails`` -- Bedrock's CreateGuardrail body (see :mod:`plinth.guard.policy` for what is
  supported and Plinth's extensions) plus ``isDefault`` -> 201 guardrail; 409 if the name is taken.
- ``GET /v1/guardrails`` -> ``{"guardrails": [summary]}``, Bedrock's ListGuardrails shape (no paging):
  ``{id, name, description, version, status, isDefault, createdAt, updatedAt}``.
- ``GET|PUT|DELETE /v1/guardrails/{id}`` -- ``id`` is the guardrailId or the name. A guardrail is
  ``{guardrailId, object: "guardrail", version, status, isDefault, createdAt, updatedAt}`` plus its body in
  the *request* shape (so GET -> edit -> PUT round-trips; Bedrock's GetGuardrail renames the keys). PUT
  takes a whole body, replaces it and bumps ``version``; ``isDefault`` left out keeps the default as is.
- ``POST /v1/guardrails/{id}/apply`` -- Bedrock's ApplyGuardrail: ``{"source": "INPUT"|"OUTPUT",
  "content": [{"text": {"text", "qualifiers"?}}]}`` -> ``{"action", "outputs", "assessments"}``. Items
  qualified ``grounding_source`` / ``query`` are the grounding context, the rest are checked. Plinth also
  takes ``source: "DATA"`` (the untrusted-data stage).

For the features that guard their own paths: :func:`resolve_policy` (a request's ``guardrailConfig``, else
the tenant's default) and :func:`get_guard` (the app's :class:`~plinth.guard.check.Guard`, which writes
every intervention to the audit log, matches as HMAC-SHA256 under the installation's
:func:`~plinth.guard.audit_key.audit_key`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import ConfigDict, SkipValidation

from plinth.control import ControlPlane, Tenant, record
from plinth.control.guardrails import (
    GuardrailExistsError,
    GuardrailRow,
    create_guardrail,
    delete_guardrail,
    get_default,
    get_guardrail,
    list_guardrails,
    update_guardrail,
)
from plinth.guard import (
    AuditEntry,
    DetectContext,
    Guard,
    GuardrailPolicy,
    GuardResult,
    PolicyError,
    Stage,
    audit_key,
)
from plinth.server.auth import require_tenant
from plinth.server.bodies import JSONBody
from plinth.server.errors import APIError
from plinth.server.state import get_state

__all__ = [
    "audit_writer",
    "get_guard",
    "make_guard",
    "resolve_policy",
    "router",
]

router = APIRouter(prefix="/v1/guardrails", dependencies=[Depends(require_tenant)])

_STAGES: dict[str, Stage] = {"INPUT": "input", "OUTPUT": "output", "DATA": "data"}
_QUALIFIERS = ("grounding_source", "query", "guard_content")
_CONFIG_KEYS = ("guardrailIdentifier", "guardrailVersion", "trace", "streamProcessingMode")
MAX_APPLY_CHARS = 200_000  # per request: a guard check is CPU work the caller should not make unbounded


class GuardrailBody(JSONBody):
    """Bedrock's CreateGuardrail body (see :mod:`plinth.guard.policy` for what is supported) plus
    ``isDefault``; :meth:`GuardrailPolicy.from_bedrock` judges it (unknown keys included), after the
    guardrail is found on PUT."""

    model_config = ConfigDict(extra="allow")

    name: SkipValidation[str | None] = None
    description: SkipValidation[str] = ""
    blockedInputMessaging: SkipValidation[str | None] = None
    blockedOutputsMessaging: SkipValidation[str | None] = None
    contentPolicyConfig: SkipValidation[dict[str, Any] | None] = None
    topicPolicyConfig: SkipValidation[dict[str, Any] | None] = None
    wordPolicyConfig: SkipValidation[dict[str, Any] | None] = None
    sensitiveInformationPolicyConfig: SkipValidation[dict[str, Any] | None] = None
    contextualGroundingPolicyConfig: SkipValidation[dict[str, Any] | None] = None
    detectorFailureMode: SkipValidation[str] = "CLOSED"  # CLOSED or OPEN (Plinth's)
    isDefault: SkipValidation[bool | None] = None  # the tenant's default guardrail (Plinth's)


class ApplyBody(JSONBody):
    """Bedrock's ApplyGuardrail body, checked before the guardrail is looked up."""

    source: SkipValidation[Literal["INPUT", "OUTPUT", "DATA"]]
    content: SkipValidation[list[dict[str, Any]]]  # [{"text": {"text", "qualifiers"?}}]

    @classmethod
    def check(cls, body: dict[str, Any]) -> None:
        _apply_request(body)


@router.post("", status_code=201)
async def create(guardrail: GuardrailBody, request: Request) -> dict[str, Any]:
    body = guardrail.raw()
    is_default = _is_default(body)
    policy = _policy(body)
    row = await _call(create_guardrail, _cp(request), tenant_id=_tenant(request).id, name=policy.name,
                      config=policy.to_bedrock(), is_default=bool(is_default))  # fmt: skip
    return _guardrail(row)


@router.get("")
async def list_all(request: Request) -> dict[str, Any]:
    rows = await _call(list_guardrails, _cp(request), _tenant(request).id)
    return {"guardrails": [_summary(row) for row in rows]}


@router.get("/{guardrail_id}")
async def get(guardrail_id: str, request: Request) -> dict[str, Any]:
    return _guardrail(await _row(request, guardrail_id))


@router.put("/{guardrail_id}")
async def update(guardrail_id: str, guardrail: GuardrailBody, request: Request) -> dict[str, Any]:
    body = guardrail.raw()
    row = await _row(request, guardrail_id)
    is_default = _is_default(body)
    policy = _policy(body)
    fresh = await _call(update_guardrail, _cp(request), row, name=policy.name, config=policy.to_bedrock(),
                        is_default=is_default)  # fmt: skip
    return _guardrail(fresh)


@router.delete("/{guardrail_id}")
async def delete(guardrail_id: str, request: Request) -> dict[str, Any]:
    row = await _row(request, guardrail_id)
    await _call(delete_guardrail, _cp(request), row)
    return {"guardrailId": row.id, "object": "guardrail", "deleted": True}


@router.post("/{guardrail_id}/apply")
async def apply(guardrail_id: str, body: ApplyBody, request: Request) -> dict[str, Any]:
    stage, texts, context = _apply_request(body.raw())
    policy = _loaded(await _row(request, guardrail_id))
    guard, tenant_id = get_guard(request), _tenant(request).id
    results = []
    for text in texts:  # in a worker thread: a check is CPU work (and its audit, database I/O)
        results.append(
            await asyncio.to_thread(guard.check, stage, text, policy, context, tenant_id=tenant_id)
        )
    return _combined(results, policy, stage)


# --- for the features that guard their paths ------------------------------------------------------


async def resolve_policy(request: Request, guardrail_config: Any) -> GuardrailPolicy | None:
    """The policy a request asks for: ``guardrailConfig`` ``{"guardrailIdentifier", "guardrailVersion"?}``
    (Bedrock's Converse field; ``trace`` and ``streamProcessingMode`` are accepted and ignored), else the
    tenant's default guardrail, else None (no guarding). An unknown or another tenant's guardrail is a
    404 naming ``guardrailConfig.guardrailIdentifier``. Only the current version is kept: a
    ``guardrailVersion`` other than it (or ``DRAFT``) is a 404 naming ``guardrailConfig.guardrailVersion``."""
    cp, tenant = _cp(request), _tenant(request)
    if guardrail_config is None:
        row = await _call(get_default, cp, tenant.id)
        return _loaded(row) if row else None
    if not isinstance(guardrail_config, dict):
        raise APIError(400, "guardrailConfig must be a JSON object.", param="guardrailConfig")
    if unknown := sorted(set(guardrail_config) - set(_CONFIG_KEYS)):
        raise APIError(400, f"Unknown field(s) in guardrailConfig: {', '.join(unknown)}.",
                       param=f"guardrailConfig.{unknown[0]}")  # fmt: skip
    identifier = guardrail_config.get("guardrailIdentifier")
    if not isinstance(identifier, str) or not identifier:
        raise APIError(400, "guardrailConfig.guardrailIdentifier must be a non-empty string.",
                       param="guardrailConfig.guardrailIdentifier")  # fmt: skip
    row = await _call(get_guardrail, cp, tenant.id, identifier)
    if row is None:
        raise APIError(404, f"The guardrail '{identifier}' does not exist.",
                       param="guardrailConfig.guardrailIdentifier", code="not_found")  # fmt: skip
    version = guardrail_config.get("guardrailVersion")
    if version is not None and str(version) not in ("DRAFT", str(row.version)):
        message = f"Version {version!r} of guardrail '{identifier}' does not exist (current: {row.version})."
        raise APIError(404, message, param="guardrailConfig.guardrailVersion", code="not_found")
    return _loaded(row)


def get_guard(request: Request) -> Guard:
    """The app's guard (``create_app`` puts it on ``app.state.guard``); made on first use otherwise."""
    guard = getattr(request.app.state, "guard", None)
    if guard is None:
        data_dir = Path(get_state(request).settings.data_dir)
        guard = request.app.state.guard = make_guard(_cp(request), audit_key(data_dir))
    return guard


def make_guard(cp: ControlPlane, key: bytes) -> Guard:
    """A guard whose interventions go to ``cp``'s audit log, matches keyed-hashed with ``key``."""
    return Guard(audit=audit_writer(cp), audit_key=key)


def audit_writer(cp: ControlPlane) -> Callable[[AuditEntry], None]:
    """Write each intervention as a ``guardrail.intervene`` audit event (the match's HMAC only, never the
    match). The detail key is ``guard_action`` because ``action`` is the audit event's own column."""

    def write(entry: AuditEntry) -> None:
        with cp.engine.begin() as conn:
            record(conn, "guardrail.intervene", tenant_id=entry.tenant_id, stage=entry.stage,
                   guardrail=entry.policy, rule=entry.rule, guard_action=entry.action,
                   match_hmac=entry.match_hmac)  # fmt: skip

    return write


# --- helpers --------------------------------------------------------------------------------------


def _cp(request: Request) -> ControlPlane:
    return get_state(request).control_plane


def _tenant(request: Request) -> Tenant:
    return request.state.tenant


async def _call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a control-plane call in a worker thread (database I/O), mapping its errors."""
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except GuardrailExistsError as exc:
        raise APIError(409, str(exc), param="name", code="conflict") from exc
    except LookupError as exc:
        raise APIError(404, str(exc), param="guardrail_id", code="not_found") from exc


async def _row(request: Request, guardrail_id: str) -> GuardrailRow:
    row = await _call(get_guardrail, _cp(request), _tenant(request).id, guardrail_id)
    if row is None:
        raise APIError(404, f"The guardrail '{guardrail_id}' does not exist.", param="guardrail_id",
                       code="not_found")  # fmt: skip
    return row


def _is_default(body: dict[str, Any]) -> bool | None:
    value = body.pop("isDefault", None)
    if value is not None and not isinstance(value, bool):
        raise APIError(400, "isDefault must be true or false.", param="isDefault")
    return value


def _policy(body: dict[str, Any]) -> GuardrailPolicy:
    try:
        return GuardrailPolicy.from_bedrock(body)
    except PolicyError as exc:
        raise APIError(400, exc.message, param=exc.param) from exc


def _loaded(row: GuardrailRow) -> GuardrailPolicy:
    """The stored body as a policy, labelled with its id and version (audit entries name them)."""
    return replace(GuardrailPolicy.from_bedrock(row.config), guardrail_id=row.id, version=row.version)


def _apply_request(body: dict[str, Any]) -> tuple[Stage, list[str], DetectContext]:
    """Validate an ApplyGuardrail body: the stage, the texts to check, and their grounding context."""
    if unknown := sorted(set(body) - {"source", "content"}):
        raise APIError(400, f"Unknown field(s): {', '.join(unknown)}.", param=unknown[0])
    source = body.get("source")
    stage = _STAGES.get(source) if isinstance(source, str) else None
    if stage is None:
        raise APIError(400, "source must be INPUT or OUTPUT (or DATA).", param="source")
    content = body.get("content")
    if not isinstance(content, list) or not content:
        raise APIError(400, 'content must be a non-empty list of {"text": {"text": ...}}.', param="content")
    texts, sources, queries = [], [], []
    for i, item in enumerate(content):
        text, qualifiers = _content_item(item, f"content.{i}")
        if "grounding_source" in qualifiers:
            sources.append(text)
        elif "query" in qualifiers:
            queries.append(text)
        else:
            texts.append(text)
    if not texts:
        raise APIError(400, "content has nothing to check (every item is a grounding_source or query).",
                       param="content")  # fmt: skip
    if sum(map(len, texts + sources + queries)) > MAX_APPLY_CHARS:
        raise APIError(400, f"content is longer than {MAX_APPLY_CHARS} characters.", param="content")
    context = DetectContext(stage=stage, query=" ".join(queries) or None, sources=sources)
    return stage, texts, context


def _content_item(item: Any, path: str) -> tuple[str, list[str]]:
    block = item.get("text") if isinstance(item, dict) and set(item) == {"text"} else None
    if not isinstance(block, dict) or not isinstance(block.get("text"), str):
        raise APIError(400, f'{path} must be {{"text": {{"text": "..."}}}}.', param=f"{path}.text.text")
    if unknown := sorted(set(block) - {"text", "qualifiers"}):
        raise APIError(400, f"Unknown field(s) in {path}.text: {', '.join(unknown)}.",
                       param=f"{path}.text.{unknown[0]}")  # fmt: skip
    qualifiers = block.get("qualifiers", [])
    if not isinstance(qualifiers, list) or any(q not in _QUALIFIERS for q in qualifiers):
        raise APIError(400, f"{path}.text.qualifiers must be a list of {', '.join(_QUALIFIERS)}.",
                       param=f"{path}.text.qualifiers")  # fmt: skip
    return block["text"], qualifiers


def _combined(results: list[GuardResult], policy: GuardrailPolicy, stage: Stage) -> dict[str, Any]:
    """One ApplyGuardrail answer for several checked texts: a block anywhere blocks all of it."""
    intervened = any(r.action == "GUARDRAIL_INTERVENED" for r in results)
    if any(r.blocked for r in results):
        message = policy.blocked_outputs_messaging if stage == "output" else policy.blocked_input_messaging
        outputs = [{"text": message}]
    else:
        outputs = [{"text": r.text} for r in results] if intervened else []
    return {
        "action": "GUARDRAIL_INTERVENED" if intervened else "NONE",
        "outputs": outputs,
        "assessments": [a for r in results for a in r.assessments],
    }


def _summary(row: GuardrailRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "description": row.config.get("description", ""),
        "version": str(row.version),
        "status": "READY",
        "isDefault": row.is_default,
        "createdAt": _iso(row.created_at),
        "updatedAt": _iso(row.updated_at),
    }


def _guardrail(row: GuardrailRow) -> dict[str, Any]:
    meta = {"guardrailId": row.id, "object": "guardrail", **_summary(row)}
    del meta["id"], meta["name"], meta["description"]
    return {**meta, **row.config}


def _iso(value: datetime) -> str:
    """ISO 8601 in UTC; SQLite hands back naive datetimes, which the control plane wrote in UTC."""
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
