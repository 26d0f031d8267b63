"""SQL datasets per tenant: the one object the HTTP API and the CLI call.

``SQLService`` ties the control-plane rows (which datasets a tenant has, where their tables are) to the
query engines. Registering validates before it records: the path resolves to tables, their files read,
and a DuckDB catalog binds every view -- only then is the row written, so a failed registration leaves
the previous state (including a previous registration of the same name) untouched. Registering an
existing name replaces it::

    service = SQLService(cp, settings.data_dir, settings)
    service.register(tenant, "costs", "/data/cur")                  # kind inferred: cur
    vetted, result = service.runner(tenant, "costs").run("SELECT ... FROM ${table_name}", "athena")
    answer = await service.ask(tenant, "costs", "top services last month?", chat)

DuckDB engines are cached per (tenant, dataset) and rebuilt when the dataset changes; other engines are
opened per runner (the caller closes them with ``runner.engine.close()``).

The server builds this service at start-up whether or not a SQL route is ever called, so the modules
that pull in pyarrow (dataset resolution) and sqlglot (the runner) are imported by the methods that use
them, not here: about 60 MB of RSS a plain ``plinth serve`` does not carry (issue 18).
"""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plinth.control import ControlPlane, Tenant
from plinth.control import sql_datasets as rows
from plinth.sql.engines import QueryEngine, open_engine
from plinth.sql.types import AskResult, Dataset, DatasetError, DatasetNotFoundError, SQLError, TableSource

if TYPE_CHECKING:
    from plinth.guard import GuardHook
    from plinth.sql.runner import QueryRunner

__all__ = ["DatasetNotFoundError", "SQLService"]


class SQLService:
    """Register, list, delete and query a tenant's datasets."""

    def __init__(self, control_plane: ControlPlane, data_dir: Path | str, settings: Any = None) -> None:
        self.cp = control_plane
        self.data_dir = Path(data_dir)
        self.max_rows: int = getattr(settings, "sql_max_rows", None) or 1000
        self.timeout_s: float = getattr(settings, "sql_timeout_s", None) or 30.0
        self.memory_limit: str = getattr(settings, "sql_memory_limit", None) or "1GB"
        self.threads: int = getattr(settings, "sql_threads", None) or 2
        self.grammar: bool = bool(getattr(settings, "sql_grammar", False))  # the ask loop's default
        self._engines: dict[tuple[int, str], tuple[Dataset, QueryEngine]] = {}
        self._lock = threading.Lock()

    # --- datasets ------------------------------------------------------------------------------------

    def list_datasets(self, tenant: Tenant) -> list[Dataset]:
        return [_dataset(row) for row in rows.list_datasets(self.cp, tenant.id)]

    def get(self, tenant: Tenant, name: str) -> Dataset:
        row = rows.get_dataset(self.cp, tenant.id, name)
        if row is None:
            raise DatasetNotFoundError(f"The dataset '{name}' does not exist.")
        return _dataset(row)

    def register(
        self,
        tenant: Tenant,
        name: str,
        path: str | Path,
        *,
        kind: str | None = None,
        tables: Mapping[str, str | TableSource] | None = None,
        description: str = "",
    ) -> Dataset:
        """Resolve, validate (files readable, views bind) and record ``path`` as dataset ``name``.

        Raises :class:`DatasetError` (a ValueError) with the reason; nothing is recorded then.
        """
        from plinth.sql.datasets import resolve_dataset  # pyarrow: see the module docstring

        dataset = resolve_dataset(name, str(path), kind=kind, tables=tables, description=description)
        self._validate(tenant, dataset)
        config = _config(dataset)
        existing = rows.get_dataset(self.cp, tenant.id, name)
        if existing is None:
            try:
                rows.create_dataset(self.cp, tenant_id=tenant.id, name=name, kind=dataset.kind, config=config)
            except rows.DatasetExistsError:  # registered concurrently: replace it as a re-registration
                existing = rows.get_dataset(self.cp, tenant.id, name)
        if existing is not None:
            rows.update_dataset(self.cp, existing.id, kind=dataset.kind, config=config)
        self._drop_engine(tenant, name)
        return dataset

    def delete(self, tenant: Tenant, name: str) -> None:
        """Forget the dataset (its files are the user's and stay where they are)."""
        if not rows.delete_dataset(self.cp, tenant.id, name):
            raise DatasetNotFoundError(f"The dataset '{name}' does not exist.")
        self._drop_engine(tenant, name)
        shutil.rmtree(self.work_dir(tenant, name), ignore_errors=True)

    # --- queries -------------------------------------------------------------------------------------

    def runner(
        self,
        tenant: Tenant,
        name: str,
        *,
        engine: str = "duckdb",
        url: str | None = None,
        max_rows: int | None = None,
        timeout_s: float | None = None,
    ) -> QueryRunner:
        """A runner over the dataset on ``engine`` (DuckDB cached; others opened for this runner)."""
        from plinth.sql.runner import QueryRunner  # sqlglot: see the module docstring

        dataset = self.get(tenant, name)
        if engine == "duckdb":
            opened = self._duckdb(tenant, dataset)
        else:
            opened = open_engine(engine, dataset, url=url, work_dir=self.work_dir(tenant, name))
        return QueryRunner(
            dataset, opened, max_rows=max_rows or self.max_rows, timeout_s=timeout_s or self.timeout_s
        )

    async def ask(
        self,
        tenant: Tenant,
        name: str,
        question: str,
        chat: Any,
        *,
        engine: str = "duckdb",
        url: str | None = None,
        guard: GuardHook | None = None,
        prompt_format: str | None = None,
        grammar: bool | None = None,
    ) -> AskResult:
        """Question -> vetted SQL -> rows, chart, answer: the ask loop over this dataset's runner
        (``prompt_format``: the one an SQL adapter was trained on, see :mod:`plinth.sql.adapter_prompt`;
        ``grammar``: constrain the model's SQL to the dataset's SELECT grammar, None = the
        ``sql_grammar`` setting).

        Opening the runner reads the control plane and may build the engine's catalog file, and
        describing it queries the engine: both run in a worker thread, off the caller's event loop."""
        from plinth.sql.ask import ask
        from plinth.sql.catalog import Catalog

        runner = await asyncio.to_thread(self.runner, tenant, name, engine=engine, url=url)
        try:
            catalog = Catalog.for_dataset(runner.dataset, await asyncio.to_thread(runner.describe))
            return await ask(
                question, runner.dataset, chat, runner=runner, catalog=catalog, guard=guard,
                dialect=runner.engine.dialect, prompt_format=prompt_format,
                grammar=self.grammar if grammar is None else grammar,
            )  # fmt: skip
        finally:
            if engine != "duckdb":
                runner.engine.close()

    def close(self) -> None:
        """Close the cached engines (server shutdown, tests)."""
        with self._lock:
            engines, self._engines = list(self._engines.values()), {}
        for _, engine in engines:
            engine.close()

    def work_dir(self, tenant: Tenant, name: str) -> Path:
        """Where the dataset's engine files (the DuckDB view catalog) live."""
        return self.data_dir / "sql" / tenant.name / name

    # --- internals -----------------------------------------------------------------------------------

    def _validate(self, tenant: Tenant, dataset: Dataset) -> None:
        """Open a throwaway DuckDB engine: every view must bind, so every table must be readable."""
        staging = self.data_dir / "sql" / tenant.name / ".staging"
        try:
            engine = open_engine("duckdb", dataset, work_dir=staging)
        except SQLError as exc:
            raise DatasetError(exc.reason) from exc
        try:
            engine.describe()
        except Exception as exc:
            raise DatasetError(f"dataset {dataset.name!r}: {exc}") from exc
        finally:
            engine.close()

    def _duckdb(self, tenant: Tenant, dataset: Dataset) -> QueryEngine:
        key = (tenant.id, dataset.name)
        with self._lock:
            cached = self._engines.get(key)
            if cached is not None and cached[0] == dataset:
                return cached[1]
            engine = open_engine(
                "duckdb", dataset, work_dir=self.work_dir(tenant, dataset.name),
                memory_limit=self.memory_limit, threads=self.threads,
            )  # fmt: skip
            self._engines[key] = (dataset, engine)
        if cached is not None:
            cached[1].close()  # the dataset was re-registered (by another process, maybe)
        return engine

    def _drop_engine(self, tenant: Tenant, name: str) -> None:
        with self._lock:
            cached = self._engines.pop((tenant.id, name), None)
        if cached is not None:
            cached[1].close()


def _config(dataset: Dataset) -> dict[str, Any]:
    tables = {name: {"path": s.path, "format": s.format} for name, s in dataset.tables.items()}
    return {"tables": tables, "description": dataset.description}


def _dataset(row: rows.DatasetRow) -> Dataset:
    tables = {name: TableSource(t["path"], t["format"]) for name, t in row.config["tables"].items()}
    return Dataset(row.name, row.kind, tables, row.config.get("description", ""))  # type: ignore[arg-type]
