"""The OpenAPI document as the server behaves: every error in the one error shape, every body declared.

FastAPI documents a 422 ``HTTPValidationError`` the server never sends (validation errors are 400s, see
:mod:`plinth.server.errors`) and knows nothing of the statuses routes raise. :func:`document_api`
replaces that with an ``ErrorResponse`` schema under each status a route can answer, and declares the
bodies of routes that read their request themselves: by hand where no model describes them
(``multipart/form-data`` uploads), else from the model that validates them
(:func:`~plinth.server.bodies.model_body`, whose nested models it moves into the components)::

    document_api(app)  # after every router is included
    app.openapi()["paths"]["/v1/chat/completions"]["post"]["responses"]["413"]
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

__all__ = ["ERROR_RESPONSE", "MANUAL_BODIES", "document_api"]

ERROR_RESPONSE: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}
_REASONS = {
    400: "Invalid request (the message and param name what is wrong)",
    401: "Missing or unknown API key",
    403: "The key may not do this",
    404: "No such resource (or another tenant's)",
    409: "Conflicts with an existing resource",
    413: "Request body too large",
    415: "Unsupported Content-Type (send application/json)",
    422: "The request was understood but could not be carried out",
    429: "Rate limit or quota exceeded (see Retry-After)",
    500: "Internal error (no details are given)",
    503: "Not ready (no model loaded)",
    504: "Timed out",
}
_API_STATUSES = (400, 401, 403, 404, 409, 422, 429, 500, 503, 504)
_PUBLIC_STATUSES = (500,)
_FILE: dict[str, Any] = {"file": {"type": "string", "format": "binary"}}
_MULTIPART_FILE: dict[str, Any] = {"type": "object", "properties": _FILE, "required": ["file"]}
# Routes that parse their own body: method and path -> the requestBody to document.
MANUAL_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("post", "/invocations-async"): {  # or none, with X-Amzn-SageMaker-InputLocation naming a file
        "required": False,
        "content": {
            "application/json": {
                "schema": {"type": "object", "description": "An /invocations body (LMI: inputs, parameters)."}
            }
        },
    },
    ("post", "/v1/adapters"): {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["source"],
                    "properties": {
                        "source": {"type": "string", "maxLength": 1024},
                        "name": {"type": ["string", "null"]},
                        "base_model": {"type": ["string", "null"]},
                        "public": {"type": "boolean"},
                    },
                }
            },
            "multipart/form-data": {
                "schema": {
                    **_MULTIPART_FILE,
                    "properties": {
                        **_FILE,
                        "name": {"type": "string"},
                        "base_model": {"type": "string"},
                        "public": {"type": "string"},
                    },
                }
            },
        },
    },
    ("post", "/v1/files"): {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    **_MULTIPART_FILE,
                    "properties": {**_FILE, "purpose": {"type": "string"}},
                    "required": ["file", "purpose"],
                }
            }
        },
    },
}


def document_api(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the corrected document (built once, on first request)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _correct(build())
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _correct(doc: dict[str, Any]) -> None:
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas["ErrorResponse"] = ERROR_RESPONSE
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for path, operations in doc.get("paths", {}).items():
        for method, operation in operations.items():
            if (method, path) in MANUAL_BODIES and "requestBody" not in operation:
                operation["requestBody"] = MANUAL_BODIES[(method, path)]
            _hoist_definitions(operation, schemas)
            _document_errors(path, operation)


def _hoist_definitions(operation: dict[str, Any], schemas: dict[str, Any]) -> None:
    """Move the ``$defs`` of a body schema given through :func:`~plinth.server.bodies.model_body` into
    the document's components, where its ``#/components/schemas/...`` references point (the document is
    FastAPI's fresh copy, so the route's own ``openapi_extra`` is left as it was)."""
    for media in operation.get("requestBody", {}).get("content", {}).values():
        for name, definition in media.get("schema", {}).pop("$defs", {}).items():
            assert schemas.setdefault(name, definition) == definition, f"two schemas named {name}"


def _document_errors(path: str, operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    responses.pop("422", None)  # FastAPI's validation error; ours is a 400 in the error shape
    authed = path.startswith(("/v1/", "/invocations"))  # /invocations and /invocations-async[/{id}]
    statuses = list(_API_STATUSES if authed else _PUBLIC_STATUSES)
    if "requestBody" in operation:
        statuses += [400, 413, 415]
    ref = {"$ref": "#/components/schemas/ErrorResponse"}
    for status in sorted(set(statuses)):
        response: dict[str, Any] = {
            "description": _REASONS[status],
            "content": {"application/json": {"schema": ref}},
        }
        if status == 429:
            response["headers"] = {"Retry-After": {"schema": {"type": "integer"}}}
        responses.setdefault(str(status), response)
