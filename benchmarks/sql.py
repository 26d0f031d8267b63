"""Five typical CUR questions on generated data: DuckDB vs pandas vs Spark local, in one run.

    .venv/bin/python benchmarks/sql.py                      # 10M rows, generated once into .bench/
    .venv/bin/python benchmarks/sql.py --rows 200000 --quick  # smoke run (what the test runs)

DuckDB and Spark run the same SQL over the Parquet folder (Spark after a warm-up run of each query);
pandas reads the columns a query needs with ``pd.read_parquet`` and groups — the usual notebook way —
and its time *includes that read*, as a notebook user pays it. Times are warm medians of ``--repeat``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sized
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from plinth.samples import generate  # noqa: E402

MONTHS, START = 12, date(2026, 1, 1)
LAST = ("2025", "12")  # the last generated month: START's previous month
COST = "line_item_unblended_cost"
QUERIES: dict[str, str] = {
    "top services last month": f"""
        SELECT line_item_product_code, sum({COST}) AS cost FROM cur
        WHERE year = '{LAST[0]}' AND month = '{LAST[1]}' GROUP BY 1 ORDER BY 2 DESC LIMIT 10""",
    "daily EC2 spend by region": f"""
        SELECT date_trunc('day', line_item_usage_start_date) AS day, product_region, sum({COST}) AS cost
        FROM cur WHERE line_item_product_code = 'AmazonEC2' AND year = '{LAST[0]}' AND month = '{LAST[1]}'
        GROUP BY 1, 2 ORDER BY 1, 2""",
    "cost by account and month": f"""
        SELECT line_item_usage_account_id, year, month, sum({COST}) AS cost FROM cur
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""",
    "top 10 resources": f"""
        SELECT line_item_resource_id, sum({COST}) AS cost FROM cur WHERE line_item_resource_id <> ''
        GROUP BY 1 ORDER BY 2 DESC LIMIT 10""",
    "spend by line item type": f"""
        SELECT line_item_line_item_type, sum({COST}) AS unblended,
               sum(CASE WHEN line_item_line_item_type = 'SavingsPlanCoveredUsage'
                        THEN savings_plan_savings_plan_effective_cost
                        WHEN line_item_line_item_type = 'DiscountedUsage' THEN reservation_effective_cost
                        WHEN line_item_line_item_type = 'SavingsPlanNegation' THEN 0
                        ELSE {COST} END) AS amortised
        FROM cur GROUP BY 1 ORDER BY 2 DESC""",
}


def _read(path: Path, columns: list[str]) -> pd.DataFrame:
    return pd.read_parquet(path, columns=columns)


def _p_top_services(path: Path) -> pd.DataFrame:
    df = _read(path, ["line_item_product_code", COST, "year", "month"])
    df = df[(df.year == LAST[0]) & (df.month == LAST[1])]
    return df.groupby("line_item_product_code")[COST].sum().nlargest(10).reset_index()


def _p_daily_ec2(path: Path) -> pd.DataFrame:
    df = _read(
        path,
        ["line_item_usage_start_date", "product_region", "line_item_product_code", COST, "year", "month"],
    )
    df = df[(df.line_item_product_code == "AmazonEC2") & (df.year == LAST[0]) & (df.month == LAST[1])]
    day = df.line_item_usage_start_date.dt.floor("D")
    return df.groupby([day, df.product_region])[COST].sum().reset_index()


def _p_account_month(path: Path) -> pd.DataFrame:
    df = _read(path, ["line_item_usage_account_id", "year", "month", COST])
    return df.groupby(["line_item_usage_account_id", "year", "month"])[COST].sum().reset_index()


def _p_top_resources(path: Path) -> pd.DataFrame:
    df = _read(path, ["line_item_resource_id", COST])
    df = df[df.line_item_resource_id != ""]
    return df.groupby("line_item_resource_id")[COST].sum().nlargest(10).reset_index()


def _p_line_item_type(path: Path) -> pd.DataFrame:
    df = _read(
        path,
        [
            "line_item_line_item_type",
            COST,
            "savings_plan_savings_plan_effective_cost",
            "reservation_effective_cost",
        ],
    )
    t = df.line_item_line_item_type
    df["amortised"] = df[COST].where(t != "SavingsPlanNegation", 0.0)
    df["amortised"] = df.amortised.where(
        t != "SavingsPlanCoveredUsage", df.savings_plan_savings_plan_effective_cost
    )
    df["amortised"] = df.amortised.where(t != "DiscountedUsage", df.reservation_effective_cost)
    return df.groupby("line_item_line_item_type")[[COST, "amortised"]].sum().reset_index()


PANDAS: list[Callable[[Path], pd.DataFrame]] = [
    _p_top_services,
    _p_daily_ec2,
    _p_account_month,
    _p_top_resources,
    _p_line_item_type,
]


def timed(fn: Callable[[], Sized], repeat: int) -> tuple[float, int]:
    """Median milliseconds over ``repeat`` runs, and the last result's row count."""
    times, result = [], []  # type: tuple[list[float], Sized]
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), len(result)


def _fetch(con: duckdb.DuckDBPyConnection, sql: str) -> list[Any]:
    return con.execute(sql).fetchall()


def _collect(spark: Any, sql: str) -> list[Any]:
    return list(spark.sql(sql).collect())


def dataset(rows: int, cache: Path) -> tuple[Path, float | None]:
    folder = cache / f"cost-{rows}" / "cur"
    if (folder / "part-00000.parquet").exists():
        return folder, None
    t0 = time.perf_counter()
    generate("cur", cache / f"cost-{rows}", rows=rows, months=MONTHS, seed=0, start=START)
    return folder, time.perf_counter() - t0


def run_duckdb(folder: Path, repeat: int) -> list[tuple[float, int]]:
    con = duckdb.connect()
    con.execute(f"CREATE VIEW cur AS SELECT * FROM read_parquet('{folder}/*.parquet')")
    out = []
    for sql in QUERIES.values():
        con.execute(sql).fetchall()  # warm
        out.append(timed(partial(_fetch, con, sql), repeat))
    return out


def run_pandas(folder: Path, repeat: int) -> list[tuple[float, int]]:
    return [timed(partial(f, folder), repeat) for f in PANDAS]


def run_spark(folder: Path, repeat: int) -> tuple[list[tuple[float, int]], float]:
    from pyspark.sql import SparkSession

    t0 = time.perf_counter()
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("plinth-bench")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.driver.memory", "4g")
        .getOrCreate()
    )
    spark.read.parquet(str(folder)).createOrReplaceTempView("cur")
    startup = time.perf_counter() - t0
    out = []
    try:
        for sql in QUERIES.values():
            spark.sql(sql).collect()  # warm-up
            out.append(timed(partial(_collect, spark, sql), repeat))
    finally:
        spark.stop()
    return out, startup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--cache", type=Path, default=ROOT / ".bench")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one timed run per query")
    parser.add_argument("--no-spark", action="store_true")
    args = parser.parse_args()
    repeat = 1 if args.quick else args.repeat
    folder, gen_s = dataset(args.rows, args.cache)
    size = sum(f.stat().st_size for f in folder.glob("*.parquet")) / 2**20
    print(
        f"data: {args.rows:,} CUR rows, {MONTHS} months, {size:.0f} MiB Parquet at {folder}"
        + (f" (generated in {gen_s:.1f} s)" if gen_s is not None else " (cached)")
    )
    duck = run_duckdb(folder, repeat)
    pand = run_pandas(folder, repeat)
    spark, startup = ([], 0.0) if args.no_spark else run_spark(folder, repeat)
    if spark:
        print(f"spark: local[2], session start + view {startup:.1f} s (not in the times)")
    print("pandas times include pd.read_parquet of the needed columns, as in a notebook")
    print(f"{'query':28} {'duckdb ms':>10} {'pandas ms':>10} {'spark ms':>10}  ratios")
    for i, name in enumerate(QUERIES):
        d, p = duck[i][0], pand[i][0]
        s = spark[i][0] if spark else float("nan")
        assert duck[i][1] == pand[i][1] and (not spark or spark[i][1] == duck[i][1]), (
            f"row counts differ: {name}"
        )
        ratios = f"pandas/duckdb {p / d:6.1f}x" + (f"  spark/duckdb {s / d:6.1f}x" if spark else "")
        print(f"{name:28} {d:10.1f} {p:10.1f} {s:10.1f}  {ratios}  duckdb<1s: {'yes' if d < 1000 else 'NO'}")


if __name__ == "__main__":
    main()
