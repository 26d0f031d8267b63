"""JSON request bodies as pydantic models: the one request-parsing style of the server's routes.

A route declares its body as a :class:`JSONBody` subclass; FastAPI parses it and the model's fields fill
the OpenAPI document. The API's own 400s (their exact messages and ``param``s, which clients and tests
rely on) come from the model's :meth:`JSONBody.check`, which sees the raw JSON object first and raises
:class:`~plinth.server.errors.APIError` -- pydantic lets exceptions other than ``ValueError`` through, so
they reach the client unchanged. By the time the fields are validated they are known to be right::

    class QueryBody(JSONBody):
        sql: str
        dataset: str

        @classmethod
        def check(cls, body: dict[str, Any]) -> None:
            text(body, "sql", 20000)
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, model_validator

from plinth.server.errors import APIError

__all__ = ["JSONBody", "check_keys", "json_object", "model_body", "text"]


class JSONBody(BaseModel):
    """A route's JSON object body; unknown fields are a 400 naming the first of them. A body whose keys
    a domain parser judges itself (a Bedrock guardrail, a knowledge-base config) sets ``extra="allow"``
    and hands :meth:`raw` to that parser."""

    model_config = ConfigDict(extra="forbid")
    empty_is_invalid_json: ClassVar[bool] = True  # no body at all: "not valid JSON" (server.errors)

    @model_validator(mode="before")
    @classmethod
    def _checked(cls, data: Any) -> Any:
        body = json_object(data)
        if cls.model_config.get("extra") == "forbid":
            check_keys(body, set(cls.model_fields))
        cls.check(body)
        return body

    @classmethod
    def check(cls, body: dict[str, Any]) -> None:
        """Raise the API's 400 for what is wrong with ``body`` (its keys are already known)."""

    def raw(self) -> dict[str, Any]:
        """The body as sent (fields marked ``SkipValidation`` keep their JSON values)."""
        return {**{key: getattr(self, key) for key in self.model_fields_set}, **(self.model_extra or {})}


def json_object(data: Any) -> dict[str, Any]:
    """The body as a JSON object: FastAPI hands over raw bytes when the content type is not JSON."""
    if isinstance(data, bytes | bytearray):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise APIError(400, "The request body is not valid JSON.", code="invalid_json") from exc
    if not isinstance(data, dict):
        raise APIError(400, "The request body must be a JSON object.", code="invalid_json")
    return data


def check_keys(body: dict[str, Any], allowed: set[str]) -> None:
    if unknown := sorted(set(body) - allowed):
        raise APIError(400, f"Unknown field(s): {', '.join(unknown)}.", param=unknown[0])


def text(body: dict[str, Any], key: str, max_chars: int = 256) -> str:
    """``body[key]``, a required non-blank string of at most ``max_chars``; else the 400 naming it."""
    value = body.get(key)
    if not isinstance(value, str) or not value.strip():
        raise APIError(400, f"{key} is required (a non-empty string).", param=key)
    if len(value) > max_chars:
        raise APIError(400, f"{key} is longer than {max_chars} characters.", param=key)
    return value


def model_body(model: type[BaseModel]) -> dict[str, Any]:
    """A route's ``openapi_extra`` documenting its body as ``model``, for a route that reads the body itself
    and validates it with ``model`` (a feature's own spec, whose 400s the route words): the document shows
    the same schema a :class:`JSONBody` route gets, with no second, hand-written copy to drift from it::

        @router.post("", openapi_extra=model_body(EvalSpec))
        async def create_evaluation(request: Request) -> ...
    """
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}
