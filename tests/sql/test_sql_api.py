"""``/v1/sql/*`` over HTTP: the real app, control plane, SQL service and DuckDB over generated CUR data,
with a scripted served model. Datasets are per tenant; errors are OpenAI-shaped with precise params."""

from __future__ import annotations

from typing import Any

import pytest
from adapter_fixtures import control_plane
from fastapi.testclient import TestClient

from plinth.config import Settings
from plinth.llm.scripted_served import ScriptedRepliesModel
from plinth.samples import generate
from plinth.server import create_app

SQL = "/v1/sql"
BY_SERVICE = (
    "SELECT line_item_product_code AS service, SUM(line_item_unblended_cost) AS cost FROM cur "
    "GROUP BY 1 ORDER BY cost DESC"
)


@pytest.fixture(scope="module")
def cur_folder(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(generate("cur", tmp_path_factory.mktemp("cur-data"), rows=3000, months=2, seed=3))


@pytest.fixture
def server(tmp_path, cur_folder):
    cp, keys = control_plane(tmp_path)
    model = ScriptedRepliesModel(name="sql-model")
    app = create_app(Settings(data_dir=tmp_path / "data"), [model], cp)
    with TestClient(app) as client:
        created = client.post(
            f"{SQL}/datasets", json={"name": "costs", "path": cur_folder}, headers=keys.auth("admin")
        )
        assert created.status_code == 201, created.text
        yield client, keys, model
    app.state.sql.close()
    cp.close()


def _error(response: Any, status: int, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    if param is not None:
        assert error["param"] == param, error
    if code is not None:
        assert error["code"] == code, error
    return error


# --- datasets -------------------------------------------------------------------------------------


def test_registered_dataset_is_listed_for_its_tenant_only(server, cur_folder):
    client, keys, _ = server
    card = client.get(f"{SQL}/datasets/costs", headers=keys.auth("admin")).json()
    assert card["kind"] == "cur" and card["main_table"] == "cur"
    assert card["tables"]["cur"] == {"format": "parquet", "path": cur_folder}
    listed = client.get(f"{SQL}/datasets", headers=keys.auth("acme")).json()
    assert listed["object"] == "list" and [d["id"] for d in listed["data"]] == ["costs"]
    assert listed["data"][0]["tables"]["cur"] == {"format": "parquet"}, "paths are for admin keys"
    assert client.get(f"{SQL}/datasets", headers=keys.auth("beta")).json()["data"] == []
    _error(client.get(f"{SQL}/datasets/costs", headers=keys.auth("beta")), 404, "dataset", "not_found")
    _error(client.delete(f"{SQL}/datasets/costs", headers=keys.auth("beta")), 404, "dataset")


def test_registering_needs_an_admin_key_and_a_real_absolute_path(server, cur_folder):
    client, keys, _ = server
    body = {"name": "more", "path": cur_folder}
    _error(client.post(f"{SQL}/datasets", json=body, headers=keys.auth("acme")), 403, "path")
    admin = keys.auth("admin")
    _error(client.post(f"{SQL}/datasets", json={**body, "path": "cur"}, headers=admin), 400, "path")
    _error(client.post(f"{SQL}/datasets", json={**body, "path": "/no/such/dir"}, headers=admin), 400, "path")
    _error(client.post(f"{SQL}/datasets", json={**body, "kind": "csv"}, headers=admin), 400, "kind")
    _error(client.post(f"{SQL}/datasets", json={**body, "name": "bad name!"}, headers=admin), 400, "name")
    _error(client.post(f"{SQL}/datasets", json={"path": cur_folder}, headers=admin), 400, "name")
    _error(client.post(f"{SQL}/datasets", json={**body, "owner": "x"}, headers=admin), 400, "owner")


def test_deleted_dataset_is_gone(server):
    client, keys, _ = server
    deleted = client.delete(f"{SQL}/datasets/costs", headers=keys.auth("acme"))
    assert deleted.json() == {"id": "costs", "object": "sql.dataset", "deleted": True}
    _error(client.get(f"{SQL}/datasets/costs", headers=keys.auth("acme")), 404, "dataset")


# --- query ----------------------------------------------------------------------------------------


def test_query_runs_vetted_sql_with_types_and_chart(server):
    client, keys, _ = server
    response = client.post(
        f"{SQL}/query", json={"sql": BY_SERVICE, "dataset": "costs"}, headers=keys.auth("acme")
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["columns"] == ["service", "cost"] and body["types"] == ["string", "number"]
    assert body["sql"].endswith("LIMIT 1001") and body["source_sql"] == BY_SERVICE
    assert body["truncated"] is False and body["chart"]["mark"]["type"] == "bar"
    costs = [row[1] for row in body["rows"]]
    assert costs == sorted(costs, reverse=True) and len(costs) > 3


def test_query_in_athena_dialect_fills_the_table_placeholder(server):
    client, keys, _ = server
    sql = "SELECT COUNT(*) AS n FROM ${table_name}"
    body = client.post(
        f"{SQL}/query", json={"sql": sql, "dataset": "costs", "dialect": "athena"}, headers=keys.auth("acme")
    ).json()
    assert body["rows"][0][0] > 0 and "FROM cur" in body["sql"]


@pytest.mark.parametrize(
    ("sql", "code"),
    [
        ("DROP TABLE cur", "statement_kind"),
        ("SELECT 1 AS a; DELETE FROM cur", "multiple_statements"),
        ("SELECT * FROM read_csv('/etc/passwd')", "table_function"),
        ("SELECT * FROM other_table", "table_not_allowed"),
        ("SELECT no_such_column FROM cur", "engine_error"),
    ],
)
def test_query_refusals_and_failures_are_400_with_the_rule(server, sql: str, code: str):
    client, keys, _ = server
    response = client.post(f"{SQL}/query", json={"sql": sql, "dataset": "costs"}, headers=keys.auth("acme"))
    _error(response, 400, "sql", code)


def test_query_request_errors(server):
    client, keys, _ = server
    acme, beta = keys.auth("acme"), keys.auth("beta")
    _error(client.post(f"{SQL}/query", json={"dataset": "costs"}, headers=acme), 400, "sql")
    _error(
        client.post(f"{SQL}/query", json={"sql": "SELECT 1", "dataset": "nope"}, headers=acme), 404, "dataset"
    )
    _error(
        client.post(f"{SQL}/query", json={"sql": "SELECT 1", "dataset": "costs"}, headers=beta),
        404,
        "dataset",
    )
    bad_dialect = {"sql": "SELECT 1", "dataset": "costs", "dialect": "klingon"}
    _error(client.post(f"{SQL}/query", json=bad_dialect, headers=acme), 400, "dialect")
    _error(client.post(f"{SQL}/query", content=b"[1]", headers=acme), 400, code="invalid_json")
    assert client.post(f"{SQL}/query", json={"sql": "SELECT 1", "dataset": "costs"}).status_code == 401


# --- ask ------------------------------------------------------------------------------------------


def test_ask_answers_with_sql_rows_chart_and_attempts(server):
    client, keys, model = server
    model.replies = [
        "```sql\nSELECT line_item_product_code AS service FROM nope\n```",
        f"```sql\n{BY_SERVICE}\n```",
    ]
    body = {"question": "Which services cost the most?", "dataset": "costs", "model": "sql-model"}
    response = client.post(f"{SQL}/ask", json=body, headers=keys.auth("acme"))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["object"] == "sql.answer" and answer["attempts"] == 2
    assert answer["history"][0]["rule"] == "table_not_allowed" and answer["history"][1]["error"] is None
    assert answer["sql"].startswith("SELECT line_item_product_code AS service")
    assert answer["columns"] == ["service", "cost"] and answer["chart"]["mark"]["type"] == "bar"
    top = answer["rows"][0]
    assert answer["answer"].startswith(f"{len(answer['rows'])} rows. Highest cost: {top[0]}")
    assert "Which services cost the most?" in model.messages[0][1]["content"]


def test_ask_grammar_field_constrains_the_model(server, monkeypatch):
    """``"grammar": true`` sends the dataset's SELECT grammar with the chat call; false or absent (the
    ``sql_grammar`` setting, off by default) sends none; a non-boolean is a 400 naming it."""
    client, keys, model = server
    formats: list[Any] = []
    sampling_params = model.sampling_params

    def recording(options: Any, prompt_len: int) -> Any:
        formats.append(options.response_format)
        return sampling_params(options, prompt_len)

    monkeypatch.setattr(model, "sampling_params", recording)
    model.replies = [f"```sql\n{BY_SERVICE}\n```"] * 3
    body = {"question": "Which services cost the most?", "dataset": "costs", "model": "sql-model"}
    for grammar in (True, False, None):
        sent = body if grammar is None else {**body, "grammar": grammar}
        assert client.post(f"{SQL}/ask", json=sent, headers=keys.auth("acme")).status_code == 200
    spec, off, default = formats
    assert spec.kind == "grammar" and spec.param == "grammar" and "line_item_product_code" in spec.source
    assert off is None and default is None
    bad = client.post(f"{SQL}/ask", json={**body, "grammar": "yes"}, headers=keys.auth("acme"))
    _error(bad, 400, "grammar")


def test_ask_that_never_works_is_422_with_the_attempts(server):
    client, keys, model = server
    model.replies = ["no idea"] * 3
    body = {"question": "What is the cost?", "dataset": "costs", "model": "sql-model"}
    error = _error(
        client.post(f"{SQL}/ask", json=body, headers=keys.auth("acme")), 422, code="attempts_exhausted"
    )
    assert [a["rule"] for a in error["attempts"]] == ["no_sql"] * 3 and model.replies == []


def test_ask_errors(server):
    client, keys, model = server
    acme = keys.auth("acme")
    body = {"question": "Delete all rows from cur", "dataset": "costs", "model": "sql-model"}
    _error(client.post(f"{SQL}/ask", json=body, headers=acme), 400, "question", "modification_refused")
    assert model.messages == [], "a refused question never reaches the model"
    _error(
        client.post(f"{SQL}/ask", json={**body, "model": "gpt-9"}, headers=acme),
        404,
        "model",
        "model_not_found",
    )
    _error(client.post(f"{SQL}/ask", json={**body, "dataset": "nope"}, headers=acme), 404, "dataset")
    _error(client.post(f"{SQL}/ask", json=body, headers=keys.auth("beta")), 404, "dataset")
    _error(client.post(f"{SQL}/ask", json={**body, "question": " "}, headers=acme), 400, "question")
    _error(client.post(f"{SQL}/ask", json={**body, "engine": "spark"}, headers=acme), 400, "engine")
    _error(client.post(f"{SQL}/ask", json={**body, "temperature": 1}, headers=acme), 400, "temperature")


# --- demo -----------------------------------------------------------------------------------------

FOCUS_CSV = """\
"BilledCost","ChargePeriodStart","ServiceName","Tags"
1.5,"2024-09-01 00:00:00","Amazon Simple Storage Service","{""team"": ""data"", ""environment"": ""dev""}"
2.0,"2024-09-02 00:00:00","Amazon Elastic Compute Cloud",NULL
"""


def test_demo_datasets_are_prepared_once_and_queryable(server, tmp_path, monkeypatch):
    from plinth.control import get_or_create_tenant
    from plinth.demo import cost_data as demo

    client, keys, _ = server
    monkeypatch.setattr(demo, "DEMO_ROWS", 2400)  # the shape of the demo, not its size
    shared = tmp_path / "shared"
    (shared / "cost").mkdir(parents=True)
    (shared / "cost" / "focus_sample.csv").write_text(FOCUS_CSV)
    service = client.app.state.sql
    tenant = get_or_create_tenant(service.cp, "beta")  # acme has a "costs" already
    data_dir = tmp_path / "data"
    assert demo.prepare_cost_dataset(service, tenant, data_dir, shared) == ["costs", "focus-sample"]
    assert demo.prepare_cost_dataset(service, tenant, data_dir, shared) == [], "nothing is redone"
    beta = keys.auth("beta")
    names = {d["id"]: d["kind"] for d in client.get(f"{SQL}/datasets", headers=beta).json()["data"]}
    assert names == {"costs": "cur", "focus-sample": "focus"}
    sql = "SELECT ServiceName, Tags['team'] AS team FROM focus ORDER BY BilledCost"
    body = client.post(f"{SQL}/query", json={"sql": sql, "dataset": "focus-sample"}, headers=beta).json()
    assert body["rows"] == [["Amazon Simple Storage Service", "data"], ["Amazon Elastic Compute Cloud", None]]
    count = client.post(
        f"{SQL}/query", json={"sql": "SELECT COUNT(*) FROM cur", "dataset": "costs"}, headers=beta
    )
    assert count.json()["rows"][0][0] >= 2400
