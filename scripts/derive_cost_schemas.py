"""Regenerate ``plinth/samples/schemas/{cur,cur2,focus}.json`` from the shared cost files.

The schemas are package data (the generator and the SQL catalog read them at run time, offline), but they
are *derived*: this script is the derivation, so anyone can check where each column and type came from::

    .venv/bin/python scripts/derive_cost_schemas.py [--data ../shared/data] [--out plinth/samples/schemas]

- ``cur``: the 65 legacy CUR columns Cloud Intelligence Dashboards declares (``cur_legacy_columns.yaml``),
  plus every further CUR column the 111 CUR Query Library files reference (found with sqlglot; columns
  the queries define themselves as aliases are left out), plus the ``year``/``month`` partitions
  (strings, as Athena's CUR integration writes them) and a few user tags the generator fills.
- ``cur2``: the CUR 2.0 Glue table, plus the columns the Data Exports default query selects.
- ``focus``: the FOCUS 1.0 columns in ``focus_sample.csv``'s order (its non-FOCUS ``Id`` dropped), typed
  from the FOCUS Glue table.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from pathlib import Path
from typing import Any

import sqlglot
import yaml
from sqlglot import exp

ROOT = Path(__file__).resolve().parents[1]
CUR_PREFIXES = (
    "bill_",
    "identity_",
    "line_item_",
    "pricing_",
    "product_",
    "reservation_",
    "resource_tags_",
    "savings_plan_",
    "split_line_item_",
)
# Placeholder spellings found upstream; filled with neutral values only so sqlglot can parse the files.
_TABLE_PLACEHOLDER = re.compile(r"\$\s?\{table_?name\}|\{\$table_?name\}|\$\(table_name\)", re.IGNORECASE)
_DATE_PLACEHOLDER = re.compile(r"\$\{date_filter\}\}?|\{\$date_filter\}", re.IGNORECASE)
# Legacy CUR Parquet keeps rates and a few counts as strings (the CUR data dictionary); everything else
# numeric-looking is a double.
_STRING_NUMERICS = {
    "line_item_blended_rate",
    "line_item_unblended_rate",
    "pricing_public_on_demand_rate",
    "reservation_number_of_reservations",
    "reservation_total_reserved_units",
    "reservation_units_per_reservation",
}
_DOUBLE_HINTS = (
    "cost",
    "discount",
    "amount",
    "quantity",
    "fee",
    "commitment",
    "_rate",
    "ratio",
    "factor",
    "_usage",
    "_value",
)
_STRING_PREFIXES = ("product_", "pricing_rate_")
# A typo upstream ("line_item_unblended_costELSE 0" in Global/spendaccount.sql) that the regex fallback for
# unparseable files would otherwise take for a column.
_UPSTREAM_TYPOS = {"line_item_unblended_costelse"}
# Tags a FinOps team allocates by; the generator fills them, Athena would expose them as these columns.
GENERATOR_TAGS = ("application", "cost_center", "environment", "name", "owner", "team")
SOURCES = {
    "cur_legacy_columns": {
        "file": "cost/cur_legacy_columns.yaml",
        "upstream": "aws-samples/aws-cudos-framework-deployment",
        "path": "cid/builtin/core/data/queries/shared/cur.yaml",
        "commit": "53f6f72a1a0d04dc412abeef6a22e7e0a566028f",
        "licence": "MIT-0",
    },
    "cur_query_library": {
        "file": "cost/cur_query_library/",
        "upstream": "awslabs/aws-well-architected-labs",
        "path": "static/Cost/300_CUR_Queries/Code/",
        "licence": "Apache-2.0 / MIT-0",
        "note": "columns referenced by the queries; types follow the CUR data dictionary conventions",
    },
    "cur2_data_exports": {
        "file": "cost/cur2_data_exports.yaml",
        "upstream": "awslabs/cid-data-collection-framework",
        "path": "data-exports/deploy/data-exports-aggregation.yaml",
        "commit": "c1cc27d0d593d1203ced94b5a45886ab1d8d4f5e",
        "licence": "Apache-2.0",
    },
    "focus_sample": {
        "file": "cost/focus_sample.csv",
        "upstream": "FinOps-Open-Cost-and-Usage-Spec/FOCUS-Sample-Data",
        "path": "FOCUS-1.0/focus_sample.csv",
        "commit": "139a302bdaa2eb84a86becb82056488a5528a672",
        "licence": "CC BY 4.0",
    },
}


def infer_type(name: str) -> str:
    """Athena type for a column no source declares, by the CUR naming conventions."""
    if name in ("year", "month") or name in _STRING_NUMERICS or name.startswith(_STRING_PREFIXES):
        return "string"
    if name.endswith(("_date", "_start_date", "_end_date")):
        return "timestamp"
    return "double" if any(hint in name for hint in _DOUBLE_HINTS) else "string"


def _column(name: str, type_: str, source: str) -> dict[str, str]:
    return {"name": name, "type": type_, "source": source}


def query_library_columns(library: Path) -> set[str]:
    """CUR columns the library's queries read: sqlglot column references minus the queries' own aliases;
    for the few files sqlglot cannot parse (broken upstream), prefixed identifiers not introduced by AS."""
    found: set[str] = set()
    for path in sorted(library.rglob("*.sql")):
        sql = _DATE_PLACEHOLDER.sub("year = '2024'", _TABLE_PLACEHOLDER.sub("cur", path.read_text()))
        try:
            found |= _parsed_columns(sql)
        except sqlglot.errors.SqlglotError:
            aliases = {a.lower() for a in re.findall(r"\bAS\s+(\w+)", sql, re.IGNORECASE)}
            found |= {w.lower() for w in re.findall(r"\b\w+\b", sql) if w.lower() not in aliases}
    wanted = {n for n in found if n.startswith(CUR_PREFIXES) or n in ("year", "month")}
    return wanted - _UPSTREAM_TYPOS


def _parsed_columns(sql: str) -> set[str]:
    names: set[str] = set()
    for tree in sqlglot.parse(sql, read="athena"):
        if tree is None:
            continue
        aliases = {a.alias.lower() for a in tree.find_all(exp.Alias)}
        aliases |= {c.alias.lower() for c in tree.find_all(exp.CTE)}
        for table_alias in tree.find_all(exp.TableAlias):
            aliases |= {c.name.lower() for c in table_alias.columns}
        names |= {c.name.lower() for c in tree.find_all(exp.Column)} - aliases
    return names


def cur_schema(data: Path) -> list[dict[str, str]]:
    legacy_doc = yaml.safe_load((data / "cost/cur_legacy_columns.yaml").read_text())
    legacy = legacy_doc["TableInput"]["StorageDescriptor"]["Columns"]
    columns = [_column(c["Name"], c["Type"], "cur_legacy_columns") for c in legacy]
    known = {c["name"] for c in columns}
    for name in sorted(query_library_columns(data / "cost/cur_query_library") - known):
        columns.append(_column(name, infer_type(name), "cur_query_library"))
        known.add(name)
    for tag in GENERATOR_TAGS:
        if f"resource_tags_user_{tag}" not in known:
            columns.append(_column(f"resource_tags_user_{tag}", "string", "plinth_generator"))
    return columns


def cur2_schema(data: Path) -> list[dict[str, str]]:
    cur2 = yaml.safe_load((data / "cost/cur2_data_exports.yaml").read_text())["CUR2"]
    columns = [
        _column(c["name"], c["type"], "cur2_data_exports:glue_table") for c in cur2["glue_table_columns"]
    ]
    known = {c["name"] for c in columns}
    for c in cur2["export_DefaultQuery"]["columns"]:
        name = c["name"].lower()
        if name not in known:
            columns.append(_column(name, c["type"] or infer_type(name), "cur2_data_exports:export_query"))
            known.add(name)
    columns.append(_column("billing_period", "string", "cur2_data_exports:glue_partition_keys"))
    return columns


def focus_schema(data: Path) -> list[dict[str, str]]:
    focus = yaml.safe_load((data / "cost/cur2_data_exports.yaml").read_text())["FOCUS"]
    glue_types = {c["name"].lower(): c["type"] for c in focus["glue_table_columns"]}
    with (data / "cost/focus_sample.csv").open(newline="") as f:
        header = next(csv.reader(f))
    return [_column(n, glue_types[n.lower()], "focus_sample") for n in header if n != "Id"]


def build(data: Path) -> dict[str, dict[str, Any]]:
    """All three schema documents, keyed by dataset kind (= main table name)."""
    parts = {
        "cur": (cur_schema(data), ["cur_legacy_columns", "cur_query_library"]),
        "cur2": (cur2_schema(data), ["cur2_data_exports"]),
        "focus": (focus_schema(data), ["focus_sample", "cur2_data_exports"]),
    }
    return {
        kind: {
            "table": kind,
            "generated_by": "scripts/derive_cost_schemas.py",
            "sources": {name: SOURCES[name] for name in source_names},
            "columns": columns,
        }
        for kind, (columns, source_names) in parts.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "plinth" / "samples" / "schemas")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for kind, doc in build(args.data).items():
        (args.out / f"{kind}.json").write_text(json.dumps(doc, indent=1) + "\n")
        print(f"{kind}: {len(doc['columns'])} columns -> {args.out / (kind + '.json')}")


if __name__ == "__main__":
    main()
