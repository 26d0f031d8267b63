"""Random JSON schemas and regexes for the constrained-decoding conformance tests.

Every case is *bounded* (strings have ``maxLength``, arrays ``maxItems``, numbers both bounds and a
``multipleOf`` that is an exact binary fraction, objects ``additionalProperties: false``), so every
valid output is finite and a random-weight model must reach the end of the grammar: correctness can
never depend on the model. Schemas are objects at the top (as OpenAI's structured outputs require),
nest objects and arrays up to three levels, and mix required and optional properties, enums, bounded
numbers, date-shaped patterns and other patterns.

    >>> schemas(3, seed=0)[0]["type"]
    'object'
"""

from __future__ import annotations

import random
from typing import Any

__all__ = ["regexes", "schemas"]

WORDS = ("name", "id", "tags", "price", "owner", "items", "count", "ok", "kind", "when", "score", "meta")
ENUM_VALUES = ("red", "green", "blue", "small", "large", 1, 2, 10, True, None)


def schemas(n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` random bounded schemas, reproducible from ``seed``."""
    rng = random.Random(seed)
    return [_object(rng, depth=0) for _ in range(n)]


def _object(rng: random.Random, depth: int) -> dict[str, Any]:
    names = rng.sample(WORDS, rng.randint(1, 4 if depth == 0 else 3))
    properties = {name: _value(rng, depth + 1) for name in names}
    required = [name for name in names if rng.random() < 0.6]
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = required
    return schema


def _value(rng: random.Random, depth: int) -> dict[str, Any]:
    kinds = ["string", "integer", "number", "boolean", "enum", "nullable", "date", "pattern"]
    if depth < 3:
        kinds += ["object", "array", "array"]
    kind = rng.choice(kinds)
    if kind == "object":
        return _object(rng, depth)
    if kind == "array":
        low = rng.randint(0, 1)
        items = _value(rng, 3) if depth >= 2 else _value(rng, depth + 1)  # arrays of leaves below depth 1
        return {"type": "array", "items": items, "minItems": low, "maxItems": rng.randint(max(low, 1), 3)}
    return _leaf(rng, kind)


def _leaf(rng: random.Random, kind: str) -> dict[str, Any]:
    if kind == "string":
        return {"type": "string", "minLength": rng.randint(0, 2), "maxLength": rng.randint(3, 12)}
    if kind == "integer":
        low = rng.randint(-100, 50)
        return {"type": "integer", "minimum": low, "maximum": low + rng.randint(0, 1000)}
    if kind == "number":
        low = rng.choice([-10.5, 0, 0.25, 3])
        return {"type": "number", "minimum": low, "maximum": low + rng.choice([1, 7.5, 100]),
                "multipleOf": rng.choice([0.25, 0.5, 1])}  # fmt: skip
    if kind == "boolean":
        return {"type": "boolean"}
    if kind == "enum":
        return {"enum": rng.sample(ENUM_VALUES, rng.randint(1, 4))}
    if kind == "nullable":
        return {"anyOf": [{"type": "string", "maxLength": 6}, {"type": "null"}]}
    if kind == "date":  # not ``format: date``: llguidance's allows year 0000 and Feb 29 in any year
        return {"type": "string", "pattern": r"^20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])$"}
    return {"type": "string", "pattern": rng.choice([r"^[a-z]{1,6}$", r"^[A-Z]{2}-[0-9]{3}$", r"^(yes|no)$"])}


REGEX_PIECES = (
    r"[a-z]{1,6}",
    r"[0-9]{1,4}",
    r"(cat|dog|bird)",
    r"-?[0-9]{1,3}(\.[0-9]{1,2})?",
    r"[A-Z][a-z]{0,5}",
    r"\d{2}-\d{2}",
    r"(ab){1,3}",
    r"[ _@.]",
    r"(true|false)",
    r"#[0-9a-f]{6}",
)


def regexes(n: int, seed: int) -> list[str]:
    """``n`` random bounded regexes (1-4 pieces, in the syntax Python's ``re`` and Rust's share)."""
    rng = random.Random(seed)
    return ["".join(rng.choice(REGEX_PIECES) for _ in range(rng.randint(1, 4))) for _ in range(n)]
