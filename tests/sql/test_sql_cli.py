"""``plinth data …`` and ``plinth sql query`` as real subprocesses on a temporary data dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

LIBRARY = Path(__file__).resolve().parents[3] / "shared" / "data" / "cost" / "cur_query_library"


def plinth(cwd: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLINTH_")}
    return subprocess.run(
        [sys.executable, "-m", "plinth", "--data-dir", "data", *args],
        cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """cost-sample then register, once for the module."""
    cwd = tmp_path_factory.mktemp("cli")
    sample = plinth(cwd, "data", "cost-sample", "--format", "cur", "--rows", "5000", "--months", "3",
                    "--seed", "3", "--out", "sample")  # fmt: skip
    assert sample.returncode == 0, sample.stderr
    assert "wrote 5000 cur rows to" in sample.stdout or "cur rows to" in sample.stdout
    registered = plinth(cwd, "data", "register", "costs", "sample/cur")
    assert registered.returncode == 0, registered.stderr
    assert registered.stdout.startswith("registered costs (cur): cur (parquet)")
    return cwd


def test_cost_sample_reports_the_rows_it_wrote(workdir: Path) -> None:
    import pyarrow.parquet as pq

    files = sorted((workdir / "sample" / "cur").rglob("*.parquet"))
    assert sum(pq.ParquetFile(f).metadata.num_rows for f in files) > 0
    listing = plinth(workdir, "data", "list")
    assert listing.returncode == 0 and "costs" in listing.stdout and "cur" in listing.stdout


def test_query_a_library_file_as_athena_json(workdir: Path) -> None:
    sql = (LIBRARY / "Compute" / "ec2_total_spend.sql").read_text()
    done = plinth(
        workdir, "sql", "query", "--dataset", "costs", "--dialect", "athena", "--json", "-", stdin=sql
    )
    assert done.returncode == 0, done.stderr
    after_dashes = plinth(
        workdir, "sql", "query", "--dataset", "costs", "--dialect", "athena", "--json", "--", sql
    )
    payload = json.loads(done.stdout)
    # float sums may differ in the last bit between runs (parallel aggregation), which can swap the
    # order of near-equal rows: compare the sets of groups
    again = json.loads(after_dashes.stdout)["rows"]
    assert sorted(r[:2] for r in again) == sorted(r[:2] for r in payload["rows"])
    assert payload["columns"] == [
        "line_item_product_code",
        "line_item_line_item_description",
        "sum_line_item_unblended_cost",
    ]
    assert payload["rows"] and all(row[0] == "AmazonEC2" for row in payload["rows"])
    assert payload["types"][2] == "number" and payload["sql"].endswith("LIMIT 1001")


def test_query_table_output_and_row_cap(workdir: Path) -> None:
    done = plinth(workdir, "sql", "query", "SELECT line_item_product_code FROM cur", "--dataset", "costs",
                  "--max-rows", "3")  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].strip() == "line_item_product_code" and len(lines) == 2 + 3 + 1
    assert "cut at 3" in lines[-1]


@pytest.mark.parametrize(
    ("sql", "rule"),
    [
        ("DELETE FROM cur", "statement_kind"),
        ("SELECT * FROM read_csv('/etc/passwd')", "table_function"),
        ("SELECT 1; DROP TABLE cur", "multiple_statements"),
    ],
)
def test_refused_sql_exits_1_with_the_reason(workdir: Path, sql: str, rule: str) -> None:
    done = plinth(workdir, "sql", "query", sql, "--dataset", "costs")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("Error: ") and f"[{rule}]" in done.stderr


def test_failed_query_and_unknown_dataset_exit_1(workdir: Path) -> None:
    failed = plinth(workdir, "sql", "query", "SELECT nope FROM cur", "--dataset", "costs")
    assert failed.returncode == 1 and "[engine_error]" in failed.stderr and "nope" in failed.stderr
    missing = plinth(workdir, "sql", "query", "SELECT 1", "--dataset", "ghost")
    assert missing.returncode == 1 and "The dataset 'ghost' does not exist." in missing.stderr
    bad = plinth(workdir, "data", "register", "other", "no/such/folder")
    assert bad.returncode == 1 and "no such file or folder" in bad.stderr


def test_ask_with_an_unknown_adapter_exits_2(workdir: Path) -> None:
    asked = plinth(workdir, "sql", "ask", "Total cost?", "--dataset", "costs", "--adapter", "no-such-adapter")
    assert asked.returncode == 2 and "--adapter no-such-adapter: no such folder" in asked.stderr


@pytest.mark.slow
def test_ask_with_the_packaged_adapter_under_the_grammar(workdir: Path) -> None:
    """The real default model with ``cost-sql`` merged in, asked in the adapter's prompt format under the
    grammar: one vetted SELECT over ``cur`` whose total matches the data."""
    asked = plinth(workdir, "sql", "ask", "What is our total cost?", "--dataset", "costs",
                   "--adapter", "cost-sql", "--grammar", "--json")  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    result = json.loads(asked.stdout)
    assert result["sql"].startswith("SELECT SUM(line_item_unblended_cost)") and "FROM cur" in result["sql"]
    total = plinth(workdir, "sql", "query", "SELECT SUM(line_item_unblended_cost) FROM cur", "--dataset",
                   "costs", "--json")  # fmt: skip
    assert result["rows"][0][0] == pytest.approx(json.loads(total.stdout)["rows"][0][0])
