"""OpenAI-shaped errors for every failure the server can answer, so clients parse one format.

Every non-2xx body is ``{"error": {"message", "type", "param", "code"}}``. Routes raise
:class:`APIError` or let a domain error through (:data:`DOMAIN_ERRORS`: the engine's request checks, the
adapter registry's refusals, knowledge-base and dataset lookups), which is mapped here and only here;
:func:`install_error_handlers` maps the rest —
FastAPI's 422 validation errors become 400s naming the field, unknown routes 404, and anything
unexpected a 500 whose body never carries a stack trace::

    raise APIError(404, "The model 'x' does not exist", code="model_not_found", param="model")
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from plinth.adapters import AdapterConflictError, AdapterRegistryError
from plinth.engine import PromptTooLongError, SamplingParamsError
from plinth.knowledge import ConflictError, FilterError, InvalidError, NotFoundError, RetrievalError
from plinth.llm import GrammarError
from plinth.sql import DatasetError, DatasetNotFoundError

__all__ = [
    "DOMAIN_ERRORS",
    "APIError",
    "as_api_error",
    "error_body",
    "invalid_body",
    "install_error_handlers",
    "prompt_too_long",
]

log = logging.getLogger(__name__)

DOMAIN_ERRORS: tuple[type[Exception], ...] = (
    SamplingParamsError,
    GrammarError,
    PromptTooLongError,
    AdapterRegistryError,
    NotFoundError,
    ConflictError,
    FilterError,
    RetrievalError,
    InvalidError,
    DatasetNotFoundError,
    DatasetError,
)
_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "server_error",
}


class APIError(Exception):
    """An error the client should see, with the HTTP status and OpenAI's error fields."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.headers = headers or {}  # e.g. Retry-After on a 429
        self.status = status
        self.message = message
        self.type = type or _TYPES.get(status, "invalid_request_error")
        self.param = param
        self.code = code

    def response(self) -> JSONResponse:
        return JSONResponse(error_body(self), status_code=self.status, headers=self.headers or None)


def error_body(err: APIError) -> dict[str, Any]:
    """The JSON body for ``err``; also used for the error event inside a stream."""
    return {"error": {"message": err.message, "type": err.type, "param": err.param, "code": err.code}}


def prompt_too_long(exc: PromptTooLongError) -> APIError:
    """The 400 for a prompt (plus max_tokens) that does not fit the model's context."""
    message = str(exc) or (
        f"This model's maximum context length is {exc.max_model_len} tokens, "
        f"but the prompt has {exc.prompt_len} tokens."
    )
    return APIError(400, message, param="messages", code="context_length_exceeded")


def as_api_error(exc: Exception) -> APIError:
    """Map a library error to the error the client sees; anything unknown is an opaque 500."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, DOMAIN_ERRORS):
        return _domain_error(exc)
    if isinstance(exc, RecursionError):  # input nested past what a parser can follow
        return APIError(400, "The request is nested too deeply to process.", code="too_deeply_nested")
    log.exception("internal error", exc_info=exc)
    return APIError(500, "The server had an error while processing your request.", code="internal_error")


def _domain_error(exc: Exception) -> APIError:
    """The client's view of a domain error (one of :data:`DOMAIN_ERRORS`)."""
    if isinstance(exc, PromptTooLongError):
        return prompt_too_long(exc)
    if isinstance(exc, AdapterRegistryError):
        status = 409 if isinstance(exc, AdapterConflictError) else 400
        return APIError(status, exc.message, param=exc.param, code=exc.code)
    if isinstance(exc, NotFoundError):  # a knowledge base or sync job the tenant cannot see
        return APIError(404, str(exc), param="kb", code="not_found")
    if isinstance(exc, DatasetNotFoundError):
        return APIError(404, str(exc), param="dataset", code="not_found")
    if isinstance(exc, ConflictError):
        return APIError(409, str(exc), code="conflict")
    if isinstance(exc, GrammarError):  # the message names the unsupported keyword
        return APIError(400, exc.message, param=exc.param, code="unsupported_grammar")
    assert isinstance(exc, SamplingParamsError | FilterError | RetrievalError | InvalidError | DatasetError)
    return APIError(400, str(exc), param=exc.param)


def _param(loc: tuple[Any, ...]) -> str | None:
    """``("body", "messages", 0, "role")`` -> ``"messages.0.role"``; None for the body itself."""
    parts = [str(p) for p in loc if p not in ("body", "query", "header", "path")]
    return ".".join(parts) or None


def invalid_body(errors: Sequence[Any]) -> APIError:
    """The 400 for a body that failed validation (pydantic's ``errors()``), naming the first bad field."""
    first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": ""}
    if first.get("type") == "json_invalid":
        return APIError(400, "The request body is not valid JSON.", code="invalid_json")
    param = _param(tuple(first.get("loc", ())))
    message = f"{param}: {first['msg']}" if param else str(first["msg"])
    return APIError(400, message, param=param)


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if errors and _empty_json_object(request, errors[0]):
        return APIError(400, "The request body is not valid JSON.", code="invalid_json").response()
    return invalid_body(errors).response()


def _empty_json_object(request: Request, error: dict[str, Any]) -> bool:
    """No body at all, sent to a route whose body is a :class:`~plinth.server.bodies.JSONBody`: those
    routes have always answered it as unparsable JSON (chat completions keep pydantic's "Field required")."""
    if error.get("type") != "missing" or tuple(error.get("loc", ())) != ("body",):
        return False
    field = getattr(request.scope.get("route"), "body_field", None)
    model = getattr(getattr(field, "field_info", None), "annotation", None)
    return bool(getattr(model, "empty_is_invalid_json", False))


def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return APIError(404, "Unknown route.", code="not_found").response()
    if exc.status_code == 405:
        response = APIError(405, "Method not allowed.", code="method_not_allowed").response()
        response.headers.update(exc.headers or {})  # Starlette names the allowed methods in Allow
        return response
    return APIError(exc.status_code, str(exc.detail)).response()


def _known_error(_: Request, exc: Exception) -> JSONResponse:
    return as_api_error(exc).response()


def install_error_handlers(app: FastAPI) -> None:
    """Register handlers so every error, expected or not, leaves in the OpenAI shape."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    handled: tuple[type[Exception], ...] = (APIError, *DOMAIN_ERRORS, Exception)
    for exc_type in handled:
        app.add_exception_handler(exc_type, _known_error)
