"""Bedrock-grammar filter parsing/validation, SQL compilation and escaping, and RRF math (no store)."""

from __future__ import annotations

import pytest

from plinth.knowledge.filters import (
    Condition,
    FilterError,
    Logical,
    parse_filter,
    to_lance_sql,
    to_postgres_sql,
    validate_schema,
)
from plinth.knowledge.fusion import rrf

SCHEMA = {"genre": "string", "year": "number", "tags": "string_list", "classic": "boolean"}


def test_parses_nested_filter_into_ast() -> None:
    raw = {
        "andAll": [{"equals": {"key": "genre", "value": "scifi"}}, {"in": {"key": "year", "value": [1, 2.5]}}]
    }
    f = parse_filter(raw, SCHEMA)
    assert f == Logical(
        "andAll",
        (Condition("equals", "genre", "scifi", "string"), Condition("in", "year", (1, 2.5), "number")),
    )


@pytest.mark.parametrize(
    ("raw", "param", "needle"),
    [
        ({"equals": {"key": "nope", "value": 1}}, "filter.equals.key", "unknown metadata field 'nope'"),
        ({"equals": {"key": "year", "value": "1994"}}, "filter.equals.value", "must be a finite number"),
        ({"equals": {"key": "year", "value": True}}, "filter.equals.value", "must be a finite number"),
        ({"equals": {"key": "classic", "value": 1}}, "filter.equals.value", "must be a boolean"),
        ({"greaterThan": {"key": "genre", "value": "a"}}, "filter.greaterThan", "does not apply to string"),
        ({"listContains": {"key": "genre", "value": "a"}}, "filter.listContains", "does not apply"),
        ({"startsWith": {"key": "tags", "value": "a"}}, "filter.startsWith", "does not apply"),
        ({"in": {"key": "year", "value": 1994}}, "filter.in.value", "non-empty list"),
        ({"in": {"key": "year", "value": []}}, "filter.in.value", "non-empty list"),
        ({"notIn": {"key": "genre", "value": ["a", 2]}}, "filter.notIn.value[1]", "must be a string"),
        ({"equals": {"key": "year"}}, "filter.equals", '"key" and "value"'),
        ({"andAll": [{"equals": {"key": "year", "value": 1}}]}, "filter.andAll", "at least 2"),
        ({"equals": {"key": "year", "value": 1}, "in": {}}, "filter", "exactly one operator"),
        (
            {"orAll": [{"equals": {"key": "year", "value": 1}}, {"equals": {"key": "bad", "value": 1}}]},
            "filter.orAll[1].equals.key",
            "unknown metadata field",
        ),
        ({"equals": {"key": "year", "value": float("nan")}}, "filter.equals.value", "finite"),
    ],
)
def test_validation_errors_name_the_parameter(raw: dict, param: str, needle: str) -> None:
    with pytest.raises(FilterError) as info:
        parse_filter(raw, SCHEMA)
    assert info.value.param == param
    assert needle in info.value.message


def test_unknown_operator_lists_the_valid_ones() -> None:
    with pytest.raises(FilterError) as info:
        parse_filter({"like": {"key": "genre", "value": "a"}}, SCHEMA)
    assert info.value.param == "filter"
    for op in ("equals", "notIn", "listContains", "stringContains", "andAll", "orAll"):
        assert op in info.value.message


def test_schema_names_must_be_identifiers() -> None:
    with pytest.raises(ValueError, match="must match"):
        validate_schema({'x"; drop': "string"})
    with pytest.raises(ValueError, match="type"):
        validate_schema({"x": "date"})


def test_lance_sql_escapes_quotes() -> None:
    f = parse_filter({"equals": {"key": "genre", "value": "x' OR '1'='1"}}, SCHEMA)
    assert to_lance_sql(f) == "`m_genre` = 'x'' OR ''1''=''1'"


def test_lance_sql_for_each_operator() -> None:
    def sql(op: str, key: str, value: object) -> str:
        return to_lance_sql(parse_filter({op: {"key": key, "value": value}}, SCHEMA))

    assert sql("notEquals", "classic", True) == "(`m_classic` IS NULL OR `m_classic` <> TRUE)"
    assert sql("lessThanOrEquals", "year", 2000) == "`m_year` <= 2000"
    assert sql("notIn", "genre", ["a", "b"]) == "(`m_genre` IS NULL OR `m_genre` NOT IN ('a', 'b'))"
    assert sql("listContains", "tags", "it's") == "array_has(`m_tags`, 'it''s')"
    assert sql("startsWith", "genre", "50%_") == "starts_with(`m_genre`, '50%_')"
    assert sql("stringContains", "tags", "a") == "strpos(array_to_string(`m_tags`, chr(31)), 'a') > 0"


def test_postgres_sql_is_parameterized() -> None:
    raw = {
        "orAll": [
            {"equals": {"key": "genre", "value": "x' OR 1=1 --"}},
            {
                "andAll": [
                    {"in": {"key": "year", "value": [1994, 2001]}},
                    {"listContains": {"key": "tags", "value": "a"}},
                ]
            },
        ]
    }
    sql, params = to_postgres_sql(parse_filter(raw, SCHEMA))
    assert sql == '("m_genre" = %s OR ("m_year" = ANY(%s) AND %s = ANY("m_tags")))'
    assert params == ["x' OR 1=1 --", [1994.0, 2001.0], "a"]


def test_rrf_weighted_math_and_tie_break() -> None:
    fused = dict(rrf([["a", "b"], ["b", "c"]], [1.0, 1.0], k=60))
    assert fused["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert fused["a"] == pytest.approx(1 / 61)
    assert fused["c"] == pytest.approx(1 / 62)
    assert [i for i, _ in rrf([["a", "b"], ["b", "c"]], [1.0, 1.0])] == ["b", "a", "c"]
    # equal scores: best rank first, then id
    assert [i for i, _ in rrf([["y", "x"], ["x", "y"]], [1.0, 1.0])] == ["x", "y"]
    assert [i for i, _ in rrf([["a"], ["b"]], [0.2, 0.8], k=1)] == ["b", "a"]


def test_rrf_rejects_mismatched_weights() -> None:
    with pytest.raises(ValueError):
        rrf([["a"]], [1.0, 2.0])
