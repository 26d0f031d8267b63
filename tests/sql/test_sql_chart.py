"""Chart kind by result shape: a line for time series, bars for categories, nothing when it would mislead."""

from __future__ import annotations

from plinth.sql.chart import MAX_BARS, MAX_CATEGORIES, MAX_SERIES, VEGA_LITE_SCHEMA, chart_spec

MONTHS = ["2024-01-01", "2024-02-01", "2024-03-01"]


def test_time_series_is_a_line_over_time():
    spec = chart_spec(
        ["month", "cost"], ["temporal", "number"], [[m, 10.0 + i] for i, m in enumerate(MONTHS)]
    )
    assert spec is not None and spec["$schema"] == VEGA_LITE_SCHEMA
    assert spec["mark"]["type"] == "line"
    assert spec["encoding"]["x"] == {"field": "month", "type": "temporal", "title": "month"}
    assert spec["encoding"]["y"]["field"] == "cost" and spec["encoding"]["y"]["type"] == "quantitative"
    assert spec["data"]["values"][1] == {"month": "2024-02-01", "cost": 11.0}


def test_formatted_month_strings_count_as_time():
    rows = [["2024-01", 1.0], ["2024-02", 2.0], ["2024-03", 1.5]]
    spec = chart_spec(["month", "cost"], ["string", "number"], rows)
    assert spec is not None and spec["mark"]["type"] == "line"


def test_one_category_over_time_is_coloured_lines():
    rows = [[m, svc, float(i)] for i, m in enumerate(MONTHS) for svc in ("AmazonEC2", "AmazonS3")]
    spec = chart_spec(["month", "service", "cost"], ["temporal", "string", "number"], rows)
    assert spec is not None and spec["mark"]["type"] == "line"
    assert spec["encoding"]["color"]["field"] == "service"
    assert len(spec["data"]["values"]) == 6


def test_too_many_series_is_no_chart():
    services = [f"svc{i}" for i in range(MAX_SERIES + 1)]
    rows = [[m, s, 1.0] for m in MONTHS for s in services]
    assert chart_spec(["month", "service", "cost"], ["temporal", "string", "number"], rows) is None


def test_several_measures_over_time_are_folded_into_lines():
    rows = [[m, 10.0, 8.0] for m in MONTHS]
    spec = chart_spec(["month", "unblended", "amortized"], ["temporal", "number", "number"], rows)
    assert spec is not None
    assert spec["transform"] == [{"fold": ["unblended", "amortized"], "as": ["measure", "value"]}]
    assert spec["encoding"]["color"]["field"] == "measure"


def test_ungrouped_time_rows_are_no_chart():
    """Two rows at the same time in one series: a line through them would zig-zag and mislead."""
    rows = [[MONTHS[0], 1.0], [MONTHS[0], 2.0], [MONTHS[1], 3.0]]
    assert chart_spec(["month", "cost"], ["temporal", "number"], rows) is None


def test_category_and_number_is_a_sorted_bar_chart():
    rows = [["AmazonS3", 5.0], ["AmazonEC2", 50.0], ["AWSLambda", -1.0]]
    spec = chart_spec(["service", "cost"], ["string", "number"], rows)
    assert spec is not None and spec["mark"]["type"] == "bar"
    assert spec["encoding"]["y"] == {"field": "service", "type": "nominal", "sort": "-x", "title": "service"}
    assert spec["encoding"]["x"]["field"] == "cost"
    assert {v["service"] for v in spec["data"]["values"]} == {"AmazonS3", "AmazonEC2", "AWSLambda"}
    assert "title" not in spec


def test_bars_are_capped_at_the_largest_and_say_so():
    rows = [[f"acct{i:02d}", float(i)] for i in range(40)]
    spec = chart_spec(["account", "cost"], ["string", "number"], rows)
    assert spec is not None and len(spec["data"]["values"]) == MAX_BARS
    assert min(v["cost"] for v in spec["data"]["values"]) == 40 - MAX_BARS
    assert spec["title"] == f"Top {MAX_BARS} of 40 by cost"


def test_long_tail_or_repeated_categories_is_no_chart():
    many = [[f"r{i}", 1.0] for i in range(MAX_CATEGORIES + 1)]
    assert chart_spec(["resource", "cost"], ["string", "number"], many) is None
    repeated = [["AmazonEC2", 1.0], ["AmazonEC2", 2.0], ["AmazonS3", 3.0]]
    assert chart_spec(["service", "cost"], ["string", "number"], repeated) is None


def test_shapes_without_a_honest_chart():
    assert chart_spec(["total_cost"], ["number"], [[123.4]]) is None  # one number: an answer
    assert chart_spec(["service", "cost"], ["string", "number"], [["AmazonEC2", 1.0]]) is None
    assert chart_spec(["service", "region"], ["string", "string"], [["a", "b"], ["c", "d"]]) is None
    assert chart_spec(["a", "b"], ["number", "number"], [[1, 2], [3, 4]]) is None  # no axis to draw on
    assert chart_spec(["service", "cost"], ["string", "number"], [["a", None], ["b", None]]) is None
    two_categories = [["EC2", "us-east-1", 1.0], ["S3", "eu-west-1", 2.0]]
    assert chart_spec(["service", "region", "cost"], ["string", "string", "number"], two_categories) is None


def test_field_names_with_dots_are_escaped():
    rows = [["a", 1.0], ["b", 2.0]]
    spec = chart_spec(["t.service", "sum(cost)"], ["string", "number"], rows)
    assert spec is not None and spec["encoding"]["y"]["field"] == "t\\.service"
    assert spec["data"]["values"][0]["t.service"] in ("a", "b")
