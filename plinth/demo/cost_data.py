"""``make demo``'s cost datasets: ``costs`` (a generated legacy CUR sample) and ``focus-sample``.

- ``costs``: :data:`DEMO_ROWS` synthetic CUR rows over :data:`DEMO_MONTHS` months ending last month
  (:func:`plinth.samples.generate`, seeded, a few seconds), written once under
  ``<data_dir>/demo/cost/cur`` and registered for the tenant. Later starts reuse the files and the
  registration: nothing is regenerated while both are there.
- ``focus-sample``: the open FOCUS sample (``shared/data/cost/focus_sample.csv``) when the shared data
  folder has it, converted once to Parquet with ``Tags`` parsed from its JSON text into a
  ``MAP(VARCHAR, VARCHAR)`` -- the type the FOCUS catalog documents -- so ``Tags['team']`` works.

Both are ordinary datasets afterwards: ``GET /v1/sql/datasets`` lists them, ``POST /v1/sql/ask`` asks them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import duckdb

from plinth.control import Tenant
from plinth.samples import generate
from plinth.sql import DatasetNotFoundError

__all__ = ["COSTS", "DEMO_MONTHS", "DEMO_ROWS", "FOCUS_SAMPLE", "prepare_cost_dataset", "write_focus_sample"]

log = logging.getLogger(__name__)
COSTS, FOCUS_SAMPLE = "costs", "focus-sample"
DEMO_ROWS, DEMO_MONTHS, DEMO_SEED = 200_000, 6, 7


def prepare_cost_dataset(
    service: Any, tenant: Tenant, data_dir: Path | str, shared_data: Path | str | None = None
) -> list[str]:
    """Generate (once) and register the demo datasets; returns the names registered by this call."""
    root = Path(data_dir) / "demo" / "cost"
    made = []
    if not _registered(service, tenant, COSTS):
        folder = root / "cur"
        if not (folder / "part-00000.parquet").is_file():
            log.info("generating %d rows of demo CUR data under %s", DEMO_ROWS, folder)
            folder = generate("cur", root, rows=DEMO_ROWS, months=DEMO_MONTHS, seed=DEMO_SEED)
        about = "Synthetic AWS Cost and Usage Report (legacy CUR), demo data."
        service.register(tenant, COSTS, str(folder.resolve()), kind="cur", description=about)
        made.append(COSTS)
    csv = Path(shared_data) / "cost" / "focus_sample.csv" if shared_data is not None else None
    if csv is not None and csv.is_file() and not _registered(service, tenant, FOCUS_SAMPLE):
        parquet = write_focus_sample(csv, root / "focus" / "focus_sample.parquet")
        about = "The FinOps FOCUS 1.0 sample billing data."
        service.register(tenant, FOCUS_SAMPLE, str(parquet.parent.resolve()), kind="focus", description=about)
        made.append(FOCUS_SAMPLE)
    return made


def write_focus_sample(csv: Path, out: Path) -> Path:
    """The FOCUS CSV as Parquet, ``Tags`` JSON text -> a string map (an empty map when untagged)."""
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    try:
        src = str(csv).replace("'", "''")
        dst = str(out).replace("'", "''")
        con.execute(
            f"COPY (SELECT * REPLACE (COALESCE(CAST(json(Tags) AS MAP(VARCHAR, VARCHAR)), MAP()) AS Tags) "
            f"FROM read_csv('{src}', header = true, nullstr = ['NULL', ''])) TO '{dst}' (FORMAT parquet)"
        )
    finally:
        con.close()
    return out


def _registered(service: Any, tenant: Tenant, name: str) -> bool:
    """Registered and its files still there (a wiped data dir re-creates the demo)."""
    try:
        dataset = service.get(tenant, name)
    except DatasetNotFoundError:
        return False
    return all(Path(source.path).exists() for source in dataset.tables.values())
