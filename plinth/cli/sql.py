"""``plinth data …`` and ``plinth sql …``: cost datasets and vetted SQL over them, as the ``local`` tenant.

Like ``plinth kb``, these act on the data dir directly (no server): the datasets registered here are the
ones ``plinth serve --no-auth`` serves. ``plinth sql query`` goes through the same runner as
``POST /v1/sql/query`` -- placeholders, the safety layer, a locked-down engine, a timeout -- and exits 1
with the reason on stderr when the SQL is refused or fails.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from plinth.cli.common import adapter_model, build_settings, fail

data_app = typer.Typer(help="Cost and usage datasets (generate, register).", no_args_is_help=True)
sql_app = typer.Typer(help="Ask questions of a dataset, or run vetted SQL.", no_args_is_help=True)


class CostFormat(StrEnum):
    cur = "cur"
    cur2 = "cur2"
    focus = "focus"


class Engine(StrEnum):
    duckdb = "duckdb"
    spark = "spark"
    sqlalchemy = "sqlalchemy"


def _service(ctx: typer.Context) -> tuple[Any, Any]:
    """The SQL service on this data dir, acting as the ``local`` tenant."""
    from plinth.control import LOCAL_TENANT, Tenant, get_or_create_tenant, open_control_plane
    from plinth.sql import SQLService

    settings = build_settings(ctx)
    assert settings.database_url is not None
    cp = open_control_plane(settings.database_url)
    tenant = get_or_create_tenant(cp, LOCAL_TENANT)
    return SQLService(cp, settings.data_dir, settings), Tenant(tenant.id, tenant.name, is_admin=True)


@data_app.command("cost-sample")
def cost_sample(
    format: Annotated[CostFormat, typer.Option("--format", help="Which export to imitate.")] = CostFormat.cur,
    rows: Annotated[int, typer.Option(min=1, help="Rows to write.")] = 100_000,
    months: Annotated[int, typer.Option(min=1, help="Whole months, ending last month.")] = 3,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same data).")] = 0,
    out: Annotated[Path, typer.Option(help="Folder to write <table>/ Parquet under.")] = Path("cost-sample"),
) -> None:
    """Write synthetic CUR / CUR 2.0 / FOCUS data as Parquet (then: plinth data register NAME PATH)."""
    import pyarrow.parquet as pq

    from plinth.samples import generate

    path = generate(format.value, out, rows=rows, months=months, seed=seed)
    count = sum(pq.ParquetFile(f).metadata.num_rows for f in sorted(Path(path).rglob("*.parquet")))
    typer.echo(f"wrote {count} {format.value} rows to {path}")


@data_app.command("register")
def data_register(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    path: Annotated[
        str, typer.Argument(help="Parquet/CSV file or folder (one subfolder per table), or s3://.")
    ],
    kind: Annotated[str | None, typer.Option(help="cur|cur2|focus|custom (default: inferred).")] = None,
    description: Annotated[str, typer.Option(help="What the data is.")] = "",
) -> None:
    """Register (or re-register) a dataset for the local tenant; validated before it is recorded."""
    service, tenant = _service(ctx)
    source = path if path.startswith("s3://") else str(Path(path).absolute())
    try:
        dataset = service.register(tenant, name, source, kind=kind, description=description)
    except ValueError as exc:
        fail(str(exc), code=1)
    finally:
        service.cp.close()
    tables = ", ".join(f"{t} ({s.format})" for t, s in dataset.tables.items())
    typer.echo(f"registered {dataset.name} ({dataset.kind}): {tables}")


@data_app.command("list")
def data_list(ctx: typer.Context) -> None:
    """List the local tenant's datasets."""
    service, tenant = _service(ctx)
    try:
        datasets = service.list_datasets(tenant)
    finally:
        service.cp.close()
    typer.echo(f"{'NAME':<24} {'KIND':<7} TABLES")
    for ds in datasets:
        tables = ", ".join(f"{t}={s.path}" for t, s in ds.tables.items())
        typer.echo(f"{ds.name:<24} {ds.kind:<7} {tables}")


@data_app.command("rm")
def data_rm(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Dataset name.")]) -> None:
    """Forget a dataset (its files are not touched)."""
    service, tenant = _service(ctx)
    try:
        service.delete(tenant, name)
    except LookupError as exc:
        fail(str(exc).strip("'\""), code=1)
    finally:
        service.cp.close()
    typer.echo(f"removed {name}")


@sql_app.command("query")
def sql_query(
    ctx: typer.Context,
    sql: Annotated[
        str, typer.Argument(help="One SELECT (- reads stdin); ${table_name} and ${date_filter} are filled.")
    ],
    dataset: Annotated[str, typer.Option("--dataset", help="Dataset name.")],
    dialect: Annotated[
        str, typer.Option(help="Dialect the SQL is written in (athena, duckdb, ...).")
    ] = "duckdb",
    engine: Annotated[Engine, typer.Option(help="Where it runs.")] = Engine.duckdb,
    url: Annotated[str | None, typer.Option(help="Database URL for --engine sqlalchemy.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    max_rows: Annotated[int | None, typer.Option(min=1, help="Row cap (default 1000).")] = None,
    timeout: Annotated[float | None, typer.Option(min=0.1, help="Seconds before it is stopped.")] = None,
) -> None:
    """Run vetted SQL over a dataset; exit 1 with the reason when it is refused or fails.

    SQL that starts with a ``--`` comment (as library files do) goes after ``--`` or through stdin:
    ``plinth sql query --dataset costs --dialect athena - < query.sql``.
    """
    import sys

    from plinth.sql import SQLError

    if sql == "-":
        sql = sys.stdin.read()
    service, tenant = _service(ctx)
    try:
        runner = service.runner(
            tenant, dataset, engine=engine.value, url=url, max_rows=max_rows, timeout_s=timeout
        )
        vetted, result = runner.run(sql, dialect)
    except SQLError as exc:
        fail(f"{exc.reason} [{exc.rule}]", code=1)
    except (LookupError, ValueError) as exc:
        fail(str(exc).strip("'\""), code=1)
    finally:
        service.close()
        service.cp.close()
    if as_json:
        payload = {
            "sql": vetted.sql, "columns": result.columns, "types": result.types, "rows": result.rows,
            "truncated": result.truncated, "elapsed_ms": round(result.elapsed_ms, 2), "engine": result.engine,
        }  # fmt: skip
        typer.echo(json.dumps(payload))
        return
    typer.echo(_table(result.columns, result.rows))
    note = f" (cut at {vetted.limit}: the row cap)" if result.truncated else ""
    typer.echo(f"{len(result.rows)} rows in {result.elapsed_ms:.0f} ms on {result.engine}{note}")


@sql_app.command("ask")
def sql_ask(
    ctx: typer.Context,
    question: Annotated[str, typer.Argument(help="A question about the dataset, in plain words.")],
    dataset: Annotated[str, typer.Option("--dataset", help="Dataset name.")],
    model: Annotated[str | None, typer.Option(help="Local checkpoint dir or hub id.")] = None,
    llm_url: Annotated[str | None, typer.Option(help="OpenAI-compatible server (…/v1) instead.")] = None,
    adapter: Annotated[
        str | None,
        typer.Option(help="LoRA adapter merged into the model: a folder or a packaged name (cost-sql)."),
    ] = None,
    grammar: Annotated[
        bool | None,
        typer.Option(
            "--grammar/--no-grammar",
            help="Constrain the SQL to the dataset's SELECT grammar (default: the sql_grammar setting).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Answer a question: generated SQL (vetted, self-repaired), rows, a chart spec and an answer."""
    import asyncio
    import dataclasses

    from plinth.sql import SQLError

    settings = build_settings(ctx, llm_url=llm_url, models=[model] if model else None)
    chat, prompt_format = adapter_model(ctx, settings, adapter) if adapter else (_chat_model(settings), None)
    service, tenant = _service(ctx)
    try:
        result = asyncio.run(
            service.ask(tenant, dataset, question, chat, prompt_format=prompt_format, grammar=grammar)
        )
    except SQLError as exc:
        fail(f"{exc.reason} [{exc.rule}]", code=1)
    except (LookupError, ValueError) as exc:
        fail(str(exc).strip("'\""), code=1)
    finally:
        getattr(chat, "shutdown", lambda: None)()
        service.close()
        service.cp.close()
    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(result)))
        return
    typer.echo(result.sql)
    typer.echo(_table(result.columns, result.rows))
    typer.echo(result.answer)


def _chat_model(settings: Any) -> Any:
    """``--llm-url`` (an OpenAI-compatible server) if given, else the local ``--model``."""
    if settings.llm_url:
        from plinth.llm.openai_compat import OpenAICompatModel

        return OpenAICompatModel(settings.llm_url, settings.models[0] if settings.models else "default")
    if not settings.models:
        fail("sql ask needs a model: --model PATH_OR_ID or --llm-url URL (or PLINTH_MODELS / PLINTH_LLM_URL)")
    from plinth.llm.local import LocalModel

    return LocalModel.load(settings.engine_config(settings.models[0]))


def _table(columns: list[str], rows: list[list[Any]], width: int = 40) -> str:
    """A plain aligned text table (cells cut at ``width`` characters)."""

    def cell(value: Any) -> str:
        text = "NULL" if value is None else f"{value:.6g}" if isinstance(value, float) else str(value)
        return text if len(text) <= width else text[: width - 1] + "…"

    cells = [[cell(v) for v in row] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)
