"""Datasets: layouts and kinds inferred from files, validation with clear errors, tenant scoping, and a
failed registration that leaves the previous one in place. The FOCUS sample loads as a second dataset."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from plinth.control import Tenant, get_or_create_tenant, open_control_plane
from plinth.sql.datasets import DatasetError, resolve_dataset
from plinth.sql.dialects import date_filter, fill_placeholders
from plinth.sql.service import DatasetNotFoundError, SQLService
from plinth.sql.types import Dataset, TableSource

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
FOCUS_SAMPLE = SHARED / "cost" / "focus_sample.csv"


def write_parquet(path: Path, select: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    duckdb.connect().execute(f"COPY (SELECT {select}) TO '{path}' (FORMAT parquet)")
    return path


CUR_ROW = (
    "'AmazonEC2' AS line_item_product_code, 1.25::DOUBLE AS line_item_unblended_cost, "
    "'x' AS identity_line_item_id"
)


@pytest.fixture
def service(tmp_path: Path):
    cp = open_control_plane(f"sqlite:///{tmp_path / 'plinth.db'}")
    svc = SQLService(cp, tmp_path / "data")
    yield svc
    svc.close()
    cp.close()


def tenant(service: SQLService, name: str) -> Tenant:
    row = get_or_create_tenant(service.cp, name)
    return Tenant(row.id, row.name)


# --- resolving paths ----------------------------------------------------------------------------------


def test_a_cur_folder_with_hive_partitions_is_one_cur_table(tmp_path: Path) -> None:
    write_parquet(tmp_path / "export" / "year=2024" / "month=7" / "a.parquet", CUR_ROW)
    dataset = resolve_dataset("costs", str(tmp_path / "export"))
    assert dataset.kind == "cur"
    assert dataset.tables == {"cur": TableSource(str(tmp_path / "export"), "parquet")}


def test_a_folder_of_table_folders_is_one_table_each(tmp_path: Path) -> None:
    write_parquet(tmp_path / "lake" / "billing" / "p.parquet", CUR_ROW)
    write_parquet(tmp_path / "lake" / "accounts" / "p.parquet", "'123' AS account_id, 'prod' AS name")
    (tmp_path / "lake" / "_tmp").mkdir()  # Spark/Hive leftovers are not tables
    dataset = resolve_dataset("lake", str(tmp_path / "lake"))
    assert sorted(dataset.tables) == ["accounts", "billing"]
    assert dataset.kind == "cur" and dataset.main_table == "accounts"  # no `cur` table: the first one


def test_kind_inference_cur2_and_custom(tmp_path: Path) -> None:
    cur2 = write_parquet(
        tmp_path / "c2.parquet", "1.0 AS line_item_unblended_cost, 'a' AS bill_payer_account_name"
    )
    assert resolve_dataset("c2", str(cur2)).kind == "cur2"
    other = tmp_path / "sales-2024.csv"
    other.write_text("region,amount\neu,3\n")
    dataset = resolve_dataset("sales", str(other))
    assert (dataset.kind, list(dataset.tables)) == ("custom", ["sales_2024"])


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: str(p / "missing"), "no such file or folder"),
        (lambda p: (p / "empty").mkdir() or str(p / "empty"), "no Parquet or CSV files"),
        (
            lambda p: (p / "bad.parquet").write_text("not parquet") and str(p / "bad.parquet"),
            "cannot read it",
        ),
        (lambda p: "s3://bucket/cur/", "cannot be inferred offline"),
    ],
)
def test_resolve_errors_are_precise(tmp_path: Path, setup, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        resolve_dataset("x", setup(tmp_path))


def test_invalid_names_and_kinds(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "c.parquet", CUR_ROW)
    with pytest.raises(DatasetError, match="invalid dataset name"):
        resolve_dataset("../etc", str(path))
    with pytest.raises(DatasetError, match="unknown dataset kind"):
        resolve_dataset("ok", str(path), kind="azure")
    with pytest.raises(DatasetError, match="invalid table name"):
        resolve_dataset("ok", "", tables={"bad name": str(path)})


def test_s3_with_an_explicit_kind_needs_no_network() -> None:
    dataset = resolve_dataset("remote", "s3://bucket/cur/", kind="cur")
    assert dataset.tables == {"cur": TableSource("s3://bucket/cur/", "parquet")}


# --- placeholders ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spelling", ["${table_name}", "${tableName}", "${table_Name}", "{$table_name}", "$(table_name)"]
)
def test_every_table_placeholder_spelling(spelling: str) -> None:
    dataset = Dataset("d", "cur", {"cur": TableSource("/x")})
    assert fill_placeholders(f"SELECT * FROM {spelling}", dataset) == "SELECT * FROM cur"


@pytest.mark.parametrize("spelling", ["${date_filter}", "{$date_filter}", "${date_filter}}"])
def test_every_date_placeholder_spelling(spelling: str) -> None:
    dataset = Dataset("d", "cur", {"cur": TableSource("/x")})
    assert fill_placeholders(f"WHERE {spelling} AND x", dataset, date_sql="D") == "WHERE (D) AND x"


def test_default_date_filter_is_the_current_and_three_previous_months() -> None:
    from datetime import date

    day = date(2024, 2, 15)  # Nov 2023 .. Feb 2024 across the year boundary: 2024*12+2-3 = 2023*12+11
    cur = Dataset("d", "cur", {"cur": TableSource("/x")})
    partitions = date_filter(cur, columns=["year", "month", "x"], today=day)
    con = duckdb.connect()
    months = [(y, m) for y in ("2023", "2024") for m in ("1", "2", "3", "10", "11", "12", "02")]
    kept = con.execute(
        f"SELECT year, month FROM (VALUES {', '.join(str(p) for p in months)}) AS t(year, month) "
        f"WHERE {partitions} AND CAST(year AS INT) * 12 + CAST(month AS INT) <= 2024 * 12 + 2 ORDER BY ALL"
    ).fetchall()
    assert kept == [("2023", "11"), ("2023", "12"), ("2024", "02"), ("2024", "1"), ("2024", "2")]
    focus = Dataset("f", "focus", {"focus": TableSource("/x")})
    assert date_filter(focus, today=day).startswith(
        "ChargePeriodStart >= date_trunc('month', DATE '2024-02-15')"
    )


# --- the service ----------------------------------------------------------------------------------------


def test_focus_sample_registers_as_a_second_dataset(service: SQLService, tmp_path: Path) -> None:
    assert FOCUS_SAMPLE.is_file(), f"the shared data is missing: {FOCUS_SAMPLE}"
    local = tenant(service, "local")
    write_parquet(tmp_path / "cur" / "p.parquet", CUR_ROW)
    service.register(local, "costs", tmp_path / "cur")
    focus = service.register(local, "focus-sample", FOCUS_SAMPLE)
    assert (focus.kind, list(focus.tables)) == ("focus", ["focus"])
    assert [d.name for d in service.list_datasets(local)] == ["costs", "focus-sample"]
    runner = service.runner(local, "focus-sample")
    _, result = runner.run("SELECT ProviderName, COUNT(*) AS n FROM focus GROUP BY 1 ORDER BY 1", "athena")
    assert result.rows == [["AWS", 942], ["Microsoft", 51], ["Oracle", 7]]  # the README's counts
    _, nulls = runner.run("SELECT COUNT(*) FROM focus WHERE ChargeClass IS NULL")
    assert nulls.rows[0][0] > 0  # the literal NULL is a null


def test_datasets_belong_to_their_tenant(service: SQLService, tmp_path: Path) -> None:
    alice, bob = tenant(service, "alice"), tenant(service, "bob")
    service.register(alice, "costs", write_parquet(tmp_path / "a.parquet", CUR_ROW))
    assert service.list_datasets(bob) == []
    with pytest.raises(DatasetNotFoundError):
        service.get(bob, "costs")
    with pytest.raises(DatasetNotFoundError):
        service.runner(bob, "costs")
    with pytest.raises(DatasetNotFoundError):
        service.delete(bob, "costs")
    service.register(bob, "costs", FOCUS_SAMPLE)  # the same name, another tenant: no clash
    assert service.get(alice, "costs").kind == "cur" and service.get(bob, "costs").kind == "focus"


def test_failed_registration_keeps_the_previous_state(service: SQLService, tmp_path: Path) -> None:
    local = tenant(service, "local")
    good = write_parquet(tmp_path / "good" / "p.parquet", CUR_ROW).parent
    service.register(local, "costs", good)
    before = service.get(local, "costs")
    _, first = service.runner(local, "costs").run("SELECT SUM(line_item_unblended_cost) FROM cur")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "p.parquet").write_bytes(b"PAR1 but not really")
    with pytest.raises(DatasetError):
        service.register(local, "costs", broken)
    with pytest.raises(DatasetError):
        service.register(local, "costs", tmp_path / "nowhere")
    assert service.get(local, "costs") == before
    _, again = service.runner(local, "costs").run("SELECT SUM(line_item_unblended_cost) FROM cur")
    assert again.rows == first.rows == [[1.25]]


def test_re_registration_replaces_and_delete_forgets(service: SQLService, tmp_path: Path) -> None:
    local = tenant(service, "local")
    service.register(local, "costs", write_parquet(tmp_path / "one" / "p.parquet", CUR_ROW).parent)
    runner = service.runner(local, "costs")
    assert service.runner(local, "costs").engine is runner.engine  # the DuckDB engine is cached
    two = write_parquet(tmp_path / "two" / "p.parquet", CUR_ROW.replace("1.25", "2.0")).parent
    service.register(local, "costs", two)
    _, result = service.runner(local, "costs").run("SELECT SUM(line_item_unblended_cost) FROM cur")
    assert result.rows == [[2.0]]
    service.delete(local, "costs")
    assert service.list_datasets(local) == []
    assert two.is_dir()  # the user's files stay


def test_ask_delegates_to_the_loop_over_the_dataset_runner(service: SQLService) -> None:
    import asyncio

    from plinth.llm.scripted import ScriptedModel

    local = tenant(service, "local")
    service.register(local, "focus-sample", FOCUS_SAMPLE)
    chat = ScriptedModel(
        [
            "```sql\nDELETE FROM focus\n```",  # refused by the safety layer, fed back
            "```sql\nSELECT ProviderName, SUM(BilledCost) AS cost FROM focus GROUP BY 1 ORDER BY 2 DESC\n```",
        ]
    )
    result = asyncio.run(service.ask(local, "focus-sample", "Which provider costs most?", chat))
    assert result.attempts == 2 and result.history[0].rule == "statement_kind"
    import csv

    totals: dict[str, float] = {}
    with FOCUS_SAMPLE.open(newline="") as handle:  # the reference, computed without any SQL engine
        for row in csv.DictReader(handle):
            totals[row["ProviderName"]] = totals.get(row["ProviderName"], 0.0) + float(row["BilledCost"])
    assert [row[0] for row in result.rows] == sorted(totals, key=totals.__getitem__, reverse=True)
    assert [round(row[1], 6) for row in result.rows] == [
        round(v, 6) for v in sorted(totals.values(), reverse=True)
    ]
