"""The synthetic cost data: schemas match the shared AWS/FinOps definitions and the money adds up.

Expected values are computed here from raw columns (with DuckDB), never by the generator's own helpers.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
import yaml

from plinth.samples import generate, load_schema

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
COST = DATA / "cost"
START = date(2026, 11, 15)
ROWS, MONTHS = 20_000, 3


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cost")
    for kind in ("cur", "cur2", "focus"):
        generate(kind, root, rows=ROWS, months=MONTHS, seed=7, start=START)
    return root


def q(out: Path, table: str, sql: str) -> list[tuple]:
    con = duckdb.connect()
    con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{out / table}/*.parquet')")
    return con.execute(sql).fetchall()


def test_shared_data_exists() -> None:
    assert (COST / "cur_legacy_columns.yaml").is_file()
    assert (COST / "cur_query_library" / "MANIFEST.csv").is_file()


def test_cur_schema_has_every_legacy_column_with_its_type() -> None:
    legacy = yaml.safe_load((COST / "cur_legacy_columns.yaml").read_text())
    expected = {c["Name"]: c["Type"] for c in legacy["TableInput"]["StorageDescriptor"]["Columns"]}
    assert len(expected) == 65
    ours = {c["name"]: c["type"] for c in load_schema("cur")}
    assert {n: ours.get(n) for n in expected} == expected
    extra = {c["name"]: c for c in load_schema("cur") if c["source"] == "cur_query_library"}
    assert extra["year"]["type"] == extra["month"]["type"] == "string"
    assert {"product_usagetype", "savings_plan_savings_plan_rate", "line_item_blended_cost"} <= set(extra)


def test_cur_schema_covers_columns_the_query_library_names() -> None:
    # Independent of the derivation script: a few columns named in the queries' WHERE clauses.
    names = {c["name"] for c in load_schema("cur")}
    sql = " ".join(p.read_text() for p in (COST / "cur_query_library").rglob("*.sql"))
    for column in (
        "product_location_type",
        "product_bundle_description",
        "reservation_unused_quantity",
        "savings_plan_recurring_commitment_for_billing_period",
        "resource_tags_user_environment",
    ):
        assert column in sql and column in names


def test_cur2_schema_has_the_glue_columns() -> None:
    cur2 = yaml.safe_load((COST / "cur2_data_exports.yaml").read_text())["CUR2"]
    ours = {c["name"]: c["type"] for c in load_schema("cur2")}
    for c in cur2["glue_table_columns"]:
        assert ours[c["name"]] == c["type"]
    assert ours["product"] == ours["resource_tags"] == "map<string,string>"


def test_focus_columns_match_the_sample_header_and_load_in_duckdb(out: Path) -> None:
    with (COST / "focus_sample.csv").open(newline="") as f:
        header = next(csv.reader(f))
    expected = [h for h in header if h != "Id"]
    assert [c["name"] for c in load_schema("focus")] == expected
    sample = duckdb.sql(f"SELECT * FROM read_csv('{COST / 'focus_sample.csv'}', nullstr='NULL')")
    assert sample is not None
    ours = pq.read_schema(next((out / "focus").glob("*.parquet"))).names
    assert [c for c in sample.columns if c != "Id"] == ours
    assert len(sample.fetchall()) == 1000


def test_files_have_the_schema_columns_and_row_count(out: Path) -> None:
    for kind in ("cur", "cur2", "focus"):
        table = pq.read_table(out / kind)
        assert table.num_rows == ROWS
        assert table.column_names == [c["name"] for c in load_schema(kind)]


def test_all_line_item_types_present(out: Path) -> None:
    types = {r[0] for r in q(out, "cur", "SELECT DISTINCT line_item_line_item_type FROM cur")}
    assert types >= {
        "Usage",
        "Tax",
        "Credit",
        "Refund",
        "SavingsPlanCoveredUsage",
        "DiscountedUsage",
        "Fee",
        "SavingsPlanNegation",
        "SavingsPlanRecurringFee",
        "RIFee",
        "EdpDiscount",
    }


def test_months_spread_and_end_before_start(out: Path) -> None:
    rows = q(
        out,
        "cur",
        "SELECT year, month, count(*), min(line_item_usage_start_date), "
        "max(line_item_usage_start_date) FROM cur GROUP BY 1, 2 ORDER BY 4",
    )
    assert [(y, m) for y, m, *_ in rows] == [("2026", "8"), ("2026", "9"), ("2026", "10")]
    assert all(n > ROWS / MONTHS * 0.9 for _, _, n, *_ in rows)
    assert rows[-1][4].date() < date(2026, 11, 1)


def test_usage_costs(out: Path) -> None:
    bad = q(
        out,
        "cur",
        """
        SELECT count(*) FILTER (WHERE line_item_line_item_type = 'Usage'
                                  AND abs(line_item_unblended_cost - pricing_public_on_demand_cost) > 1e-9),
               count(*) FILTER (WHERE line_item_line_item_type = 'SavingsPlanCoveredUsage'
                                  AND savings_plan_savings_plan_effective_cost
                                      > line_item_unblended_cost + 1e-12),
               count(*) FILTER (WHERE line_item_line_item_type = 'DiscountedUsage'
                                  AND (line_item_unblended_cost <> 0 OR reservation_effective_cost
                                       > pricing_public_on_demand_cost
                                       OR reservation_reservation_a_r_n = '')),
               count(*) FILTER (WHERE line_item_line_item_type IN ('Tax', 'Fee')
                                  AND line_item_unblended_cost < 0),
               count(*) FILTER (WHERE line_item_line_item_type IN ('Credit', 'Refund', 'EdpDiscount')
                                  AND line_item_unblended_cost > 0)
        FROM cur""",
    )
    assert bad == [(0, 0, 0, 0, 0)]


def test_negations_cancel_covered_usage_per_plan_and_day(out: Path) -> None:
    rows = q(
        out,
        "cur",
        """
        SELECT savings_plan_savings_plan_a_r_n, line_item_usage_start_date, line_item_resource_id,
               sum(line_item_unblended_cost)
                 FILTER (WHERE line_item_line_item_type = 'SavingsPlanCoveredUsage'),
               sum(line_item_unblended_cost) FILTER (WHERE line_item_line_item_type = 'SavingsPlanNegation')
        FROM cur WHERE line_item_line_item_type IN ('SavingsPlanCoveredUsage', 'SavingsPlanNegation')
        GROUP BY 1, 2, 3""",
    )
    assert len(rows) > 100
    assert all(abs(cov + neg) < 1e-9 for *_, cov, neg in rows)


def test_savings_plan_commitment_equals_used_plus_unused(out: Path) -> None:
    rows = q(
        out,
        "cur",
        """
        SELECT f.arn, f.month, f.fee, f.total, f.used, c.effective FROM
          (SELECT savings_plan_savings_plan_a_r_n arn, month, sum(line_item_unblended_cost) fee,
                  sum(savings_plan_total_commitment_to_date) total, sum(savings_plan_used_commitment) used
           FROM cur WHERE line_item_line_item_type = 'SavingsPlanRecurringFee' GROUP BY 1, 2) f
        LEFT JOIN
          (SELECT savings_plan_savings_plan_a_r_n arn, month,
                  sum(savings_plan_savings_plan_effective_cost) effective
           FROM cur WHERE line_item_line_item_type = 'SavingsPlanCoveredUsage' GROUP BY 1, 2) c
        USING (arn, month)""",
    )
    assert len(rows) == 6 * MONTHS
    for _, _, fee, total, used, effective in rows:
        assert fee == pytest.approx(total)
        assert used == pytest.approx(effective or 0.0)
        assert used <= total + 1e-9


def test_reservation_cost_equals_used_plus_unused(out: Path) -> None:
    rows = q(
        out,
        "cur",
        """
        SELECT f.arn, f.month, f.recurring + f.upfront, f.unused, coalesce(u.used, 0) FROM
          (SELECT reservation_reservation_a_r_n arn, month, sum(line_item_unblended_cost) recurring,
                  sum(reservation_amortized_upfront_fee_for_billing_period) upfront,
                  sum(reservation_unused_recurring_fee
                      + reservation_unused_amortized_upfront_fee_for_billing_period)
                    unused
           FROM cur WHERE line_item_line_item_type = 'RIFee' GROUP BY 1, 2) f
        LEFT JOIN
          (SELECT reservation_reservation_a_r_n arn, month, sum(reservation_effective_cost) used
           FROM cur WHERE line_item_line_item_type = 'DiscountedUsage' GROUP BY 1, 2) u
        USING (arn, month)""",
    )
    assert len(rows) == 15 * MONTHS
    for *_, cost, unused, used in rows:
        assert cost == pytest.approx(used + unused)


def _amortised(table: str) -> str:
    # The CUR Query Library's amortised-cost formula (Global/amortized_cost_by_charge_type.sql).
    return f"""SELECT sum(CASE line_item_line_item_type
        WHEN 'SavingsPlanCoveredUsage' THEN savings_plan_savings_plan_effective_cost
        WHEN 'SavingsPlanRecurringFee'
            THEN savings_plan_total_commitment_to_date - savings_plan_used_commitment
        WHEN 'SavingsPlanNegation' THEN 0
        WHEN 'DiscountedUsage' THEN reservation_effective_cost
        WHEN 'RIFee'
            THEN reservation_unused_amortized_upfront_fee_for_billing_period
                 + reservation_unused_recurring_fee
        ELSE CASE WHEN line_item_line_item_type = 'Fee' AND reservation_reservation_a_r_n <> '' THEN 0
                  ELSE line_item_unblended_cost END END) FROM {table}"""


def test_amortised_total_is_unblended_minus_savings_plus_amortisation(out: Path) -> None:
    ((amortised,),) = q(out, "cur", _amortised("cur"))
    ((unblended, sp_savings, ri_upfront_fee, ri_amortised),) = q(
        out,
        "cur",
        """
        SELECT sum(line_item_unblended_cost),
               sum(line_item_unblended_cost - savings_plan_savings_plan_effective_cost)
                 FILTER (WHERE line_item_line_item_type = 'SavingsPlanCoveredUsage'),
               sum(line_item_unblended_cost) FILTER (WHERE line_item_line_item_type = 'Fee'
                                                     AND reservation_reservation_a_r_n <> ''),
               sum(reservation_amortized_upfront_fee_for_billing_period)
                 FILTER (WHERE line_item_line_item_type = 'RIFee')
        FROM cur""",
    )
    # Amortised = unblended, with the SP negations turned into the plan's discount, the upfront RI
    # payment spread over the months, and RI coverage counted once (recurring fee + amortised upfront).
    ((negations, sp_fees, sp_unused),) = q(
        out,
        "cur",
        """
        SELECT sum(line_item_unblended_cost) FILTER (WHERE line_item_line_item_type = 'SavingsPlanNegation'),
               sum(line_item_unblended_cost)
                 FILTER (WHERE line_item_line_item_type = 'SavingsPlanRecurringFee'),
               sum(savings_plan_total_commitment_to_date - savings_plan_used_commitment)
                 FILTER (WHERE line_item_line_item_type = 'SavingsPlanRecurringFee') FROM cur""",
    )
    # RI: DiscountedUsage effective + RIFee unused = recurring fee (unblended) + amortised upfront, so the
    # recurring fee stays and the one-off upfront Fee is replaced by its monthly amortisation.
    expected = unblended - negations - sp_savings - sp_fees + sp_unused - ri_upfront_fee + ri_amortised
    assert amortised == pytest.approx(expected, rel=1e-9)
    assert amortised < unblended


def test_focus_effective_cost_matches_cur_amortised_cost(out: Path) -> None:
    ((amortised,),) = q(out, "cur", _amortised("cur"))
    ((effective, billed, listed, negation_rows),) = q(
        out,
        "focus",
        """
        SELECT sum(EffectiveCost), sum(BilledCost), sum(ListCost) FILTER (WHERE ChargeCategory = 'Usage'),
               count(*) FILTER (WHERE ChargeDescription LIKE 'SavingsPlanNegation%') FROM focus""",
    )
    assert negation_rows == 0
    # Same seed but FOCUS replaces negation rows with usage rows, so totals differ; the ratio must not.
    assert 0.5 < effective / amortised < 2.0
    ((bad,),) = q(
        out,
        "focus",
        "SELECT count(*) FROM focus WHERE ChargeCategory = 'Usage' AND EffectiveCost > ListCost + 1e-9",
    )
    assert bad == 0 and billed > 0 and listed >= effective


def test_cur2_maps_carry_product_and_tags(out: Path) -> None:
    rows = q(
        out,
        "cur2",
        """SELECT product['instance_type'], resource_tags['user_environment'], billing_period
                             FROM cur2 WHERE line_item_usage_type LIKE '%BoxUsage:m5.large' LIMIT 5""",
    )
    assert rows and all(r[0] == "m5.large" and r[2].startswith("2026-") for r in rows)


def test_deterministic_per_seed(tmp_path: Path) -> None:
    a = pq.read_table(generate("cur", tmp_path / "a", rows=4000, months=2, seed=3, start=START))
    b = pq.read_table(generate("cur", tmp_path / "b", rows=4000, months=2, seed=3, start=START))
    c = pq.read_table(generate("cur", tmp_path / "c", rows=4000, months=2, seed=4, start=START))
    assert a.equals(b)
    assert not a.equals(c)


@pytest.mark.parametrize("kind", ["cur2", "focus"])
def test_same_bytes_across_processes_with_different_hash_seeds(tmp_path: Path, kind: str) -> None:
    """Map columns (CUR 2.0 product/tags, FOCUS Tags) once followed set order, which changes with
    Python's per-process string hashing; in one process the data looked deterministic."""
    script = (
        "import sys; from datetime import date; from pathlib import Path; "
        "from plinth.samples import generate; "
        f"generate({kind!r}, Path(sys.argv[1]), rows=3000, months=2, seed=5, start=date(2026, 11, 1))"
    )
    digests = []
    for hash_seed in ("1", "99"):
        out = tmp_path / hash_seed
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run([sys.executable, "-c", script, str(out)], check=True, env=env, timeout=120)
        files = sorted(out.rglob("*.parquet"))
        assert files
        digests.append([hashlib.sha256(f.read_bytes()).hexdigest() for f in files])
    assert digests[0] == digests[1]


def test_query_library_filters_find_rows(out: Path) -> None:
    # A sample of the library's WHERE clauses, written out here by hand.
    checks = [
        "line_item_product_code = 'AmazonEC2' AND line_item_usage_type LIKE '%BoxUsage%' "
        "AND line_item_operation LIKE '%RunInstances%'",
        "product_product_family = 'NAT Gateway' AND line_item_usage_type LIKE '%NatGateway-Hours'",
        "line_item_usage_type LIKE '%TimedStorage-ByteHrs' AND line_item_operation = 'StandardStorage'",
        "product_product_name = 'Amazon Elastic Compute Cloud' AND product_volume_api_name = 'gp2' "
        "AND product_region = 'eu-west-1'",
        "line_item_line_item_type IN ('Refund', 'Credit') AND line_item_line_item_description LIKE '%_MPE%'",
        "bill_billing_entity = 'AWS Marketplace'",
        "line_item_product_code = 'OCBPremiumSupport'",
        "product_location_type = 'AWS Outposts'",
    ]
    for where in checks:
        ((n,),) = q(out, "cur", f"SELECT count(*) FROM cur WHERE {where}")
        assert n > 0, where


def test_schema_json_names_sources_and_licences() -> None:
    doc = json.loads((Path(__file__).resolve().parents[2] / "plinth/samples/schemas/cur.json").read_text())
    assert doc["sources"]["cur_legacy_columns"]["licence"] == "MIT-0"
    focus = json.loads(
        (Path(__file__).resolve().parents[2] / "plinth/samples/schemas/focus.json").read_text()
    )
    assert focus["sources"]["focus_sample"]["licence"] == "CC BY 4.0"


def test_each_kind_is_written_under_the_table_name_the_sql_feature_reads() -> None:
    """plinth.samples imports nothing of plinth.sql, so the two agree here: a kind's folder is its name."""
    from plinth.samples import KINDS
    from plinth.sql import DATASET_KINDS
    from plinth.sql.types import MAIN_TABLES

    assert set(KINDS) <= set(DATASET_KINDS) and {MAIN_TABLES[k] for k in KINDS} == set(KINDS)
