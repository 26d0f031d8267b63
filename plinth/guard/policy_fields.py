"""Checks of a guardrail body's JSON, field by field, each naming the dotted path of the bad field.

Why a module of its own: :mod:`plinth.guard.policy` says what each field of Bedrock's body *means*; these
helpers only say whether a value has the JSON shape asked for, and raise :class:`PolicyError` with the
path (``sensitiveInformationPolicyConfig.piiEntitiesConfig.0.type``) that the API returns as ``param``::

    section = optional_section(body, "topicPolicyConfig", ("topicsConfig",))
    for path, item in list_items(section, "topicPolicyConfig.topicsConfig", 1, 30):
        name = text(item.get("name"), f"{path}.name", 1, 100)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, cast

__all__ = ["PolicyError", "choice", "json_object", "list_items", "optional_section", "required", "text"]


class PolicyError(ValueError):
    """An invalid guardrail body; ``param`` is the dotted path of the field (``a.b.0.type``)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def json_object(value: Any, path: str | None, keys: tuple[str, ...]) -> dict[str, Any]:
    """``value`` as an object with no keys outside ``keys``; ``path`` None is the body itself."""
    where = f"{path}: " if path else ""
    if not isinstance(value, dict):
        raise PolicyError(f"{where}must be a JSON object.", path)
    if unknown := sorted(set(value) - set(keys)):
        prefix = f"{path}." if path else ""
        raise PolicyError(
            f"{where}unknown or unsupported field(s): {', '.join(unknown)}; allowed: {', '.join(keys)}.",
            prefix + unknown[0],
        )
    return value


def optional_section(body: Mapping[str, Any], key: str, keys: tuple[str, ...]) -> dict[str, Any] | None:
    """``body[key]`` checked by :func:`json_object`, or None where the section is absent or null."""
    return None if body.get(key) is None else json_object(body[key], key, keys)


def list_items(section: Mapping[str, Any], path: str, least: int, most: int) -> list[tuple[str, Any]]:
    """``(path.i, item)`` for the list at the last part of ``path``, checking its length."""
    items = section.get(path.rsplit(".", 1)[-1], [])
    if not isinstance(items, list) or not least <= len(items) <= most:
        raise PolicyError(f"{path}: must be a list of {least} to {most} items.", path)
    return [(f"{path}.{i}", item) for i, item in enumerate(items)]


def required(item: Mapping[str, Any], key: str, path: str) -> Any:
    """``item[key]``, which must be present and not null."""
    if item.get(key) is None:
        raise PolicyError(f"{path}.{key}: is required.", f"{path}.{key}")
    return item[key]


def text(value: Any, path: str, least: int, most: int, pattern: re.Pattern[str] | None = None) -> str:
    """A string of ``least`` to ``most`` characters (``least`` counts what is left after stripping) that
    ``pattern``, if given, matches from its start."""
    if not isinstance(value, str) or not least <= len(value.strip() if least else value) <= most:
        need = "a non-empty string" if least else "a string"
        raise PolicyError(f"{path}: must be {need} of at most {most} characters.", path)
    if pattern is not None and not pattern.match(value):
        raise PolicyError(f"{path}: {value!r} has characters outside {pattern.pattern}.", path)
    return value


def choice(value: Any, path: str, allowed: tuple[str, ...]) -> str:
    """One of ``allowed``."""
    if value not in allowed:
        raise PolicyError(f"{path}: must be one of {', '.join(allowed)}, got {value!r}.", path)
    return cast(str, value)
