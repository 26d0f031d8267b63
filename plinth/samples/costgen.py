"""Synthetic AWS cost data — legacy CUR, CUR 2.0 and FOCUS 1.0 — written as Parquet.

``generate(kind, out, rows=..., months=..., seed=...)`` writes ``out/<table>/part-00000.parquet`` with the
columns of ``plinth/samples/schemas/<kind>.json`` and returns the table folder. The data is one month at a
time, vectorised (numpy indices into per-column vocabularies, written as dictionary arrays), in row groups
of at most ``CHUNK_ROWS``, so memory is bounded by one row group and 10M rows take a minute or two.

The bill is built the way AWS builds one, so costs add up and can be checked from the raw columns:

- ``Usage``: unblended = public on-demand = amortised cost.
- ``SavingsPlanCoveredUsage``: unblended = on-demand equivalent, ``savings_plan_savings_plan_effective_cost``
  = the discounted rate; each has a ``SavingsPlanNegation`` twin (same resource and day) with
  ``-unblended``. One ``SavingsPlanRecurringFee`` per plan and month bills the commitment:
  ``total_commitment_to_date`` = unblended, ``used_commitment`` = the month's covered effective cost.
- ``DiscountedUsage``: unblended 0, ``reservation_effective_cost`` = amortised RI rate. One ``RIFee`` per
  reservation and month: recurring fee (unblended) + ``amortized_upfront_fee`` = month's RI cost
  = used effective cost + ``unused_recurring_fee`` + ``unused_amortized_upfront_fee``; the upfront
  ``Fee`` row appears once, in the first month.
- ``Tax``, ``Fee`` (Premium Support, Marketplace) >= 0; ``Credit``, ``Refund``, ``EdpDiscount`` <= 0.

Dates cover ``months`` whole months ending with the month before ``start`` (default: today), with the
``year``/``month`` partition strings Athena's CUR integration writes ('2024', '7').
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any, Literal

import pyarrow.parquet as pq

from plinth.samples.cost_bill import CHUNK_ROWS, Bill
from plinth.samples.cost_tables import to_cur, to_cur2, to_focus

__all__ = ["KINDS", "Kind", "generate", "load_schema"]

SCHEMA_DIR = Path(__file__).with_name("schemas")
Kind = Literal["cur", "cur2", "focus"]
KINDS: tuple[Kind, ...] = ("cur", "cur2", "focus")  # each is written to a folder (table) of its own name


def load_schema(kind: str) -> list[dict[str, str]]:
    """The ``columns`` list of ``schemas/<kind>.json`` (name, Athena type, source)."""
    doc: dict[str, Any] = json.loads((SCHEMA_DIR / f"{kind}.json").read_text())
    return list(doc["columns"])


def generate(kind: Kind, out: Path, *, rows: int, months: int, seed: int, start: date | None = None) -> Path:
    """Write ``rows`` synthetic rows of ``kind`` to ``out/<table>/part-00000.parquet``; return the folder.

    Deterministic for a given (rows, months, seed, start). FOCUS has no negation rows (commitment
    coverage is expressed by ``EffectiveCost``), so its usage rows take their place.
    """
    if months < 1 or rows < 200 * months:
        raise ValueError(f"need months >= 1 and rows >= 200 per month, got rows={rows} months={months}")
    folder = Path(out) / kind
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "part-00000.parquet"
    schema = load_schema(kind)
    bill = Bill(seed, months, start, negations=kind != "focus")
    writer: pq.ParquetWriter | None = None
    try:
        for chunk in bill.chunks(rows):
            table = {"cur": to_cur, "cur2": to_cur2, "focus": to_focus}[kind](chunk, schema)
            if writer is None:
                # Snappy, as AWS Data Exports write (*.snappy.parquet); DuckDB scans it ~2x faster than zstd.
                # store_schema=False: readers see plain strings, not the dictionary arrays we write.
                writer = pq.ParquetWriter(path, table.schema, compression="snappy", store_schema=False)
            writer.write_table(table, row_group_size=CHUNK_ROWS)
    finally:
        if writer is not None:
            writer.close()
    return folder
