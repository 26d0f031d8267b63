"""``plinth kb``: knowledge bases in the data dir, as the ``local`` tenant (no server needed)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from plinth.cli.common import build_settings, fail
from plinth.config import Settings

if TYPE_CHECKING:
    from plinth.control import Tenant
    from plinth.knowledge import KnowledgeService

T = TypeVar("T")

kb_app = typer.Typer(
    help="Knowledge bases in the data dir, as the `local` tenant (no server needed).", no_args_is_help=True
)


def _kb_service(ctx: typer.Context) -> tuple[KnowledgeService, Tenant]:
    """The knowledge service on this data dir, acting as the ``local`` tenant (admin: it is your disk)."""
    from plinth.control import LOCAL_TENANT, Tenant, get_or_create_tenant, open_control_plane
    from plinth.knowledge import KnowledgeService

    settings = build_settings(ctx)
    assert settings.database_url is not None
    cp = open_control_plane(settings.database_url)
    tenant = get_or_create_tenant(cp, LOCAL_TENANT)
    return KnowledgeService(cp, settings.data_dir, settings), Tenant(tenant.id, tenant.name, is_admin=True)


def _kb_call(ctx: typer.Context, call: Callable[[KnowledgeService, Tenant], T]) -> T:
    """``call(service, tenant)``; the service's errors (not found, conflict, invalid input) exit 1 with
    the reason."""
    service, tenant = _kb_service(ctx)
    try:
        return call(service, tenant)
    except (LookupError, RuntimeError, ValueError) as exc:
        fail(str(exc).strip("'\""), code=1)
    finally:
        service.cp.close()


@kb_app.command("create")
def kb_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Knowledge base name.")],
    chunking: Annotated[
        str,
        typer.Option(
            help='none|fixed|hierarchical|semantic, or JSON: \'{"strategy": "fixed", "max_tokens": 300}\'.'
        ),
    ] = "fixed",
    store: Annotated[
        str, typer.Option(help="lancedb (files in the data dir) or pgvector (PLINTH_PGVECTOR_DSN).")
    ] = "lancedb",
    embedder: Annotated[str | None, typer.Option(help="Embedding model (default all-MiniLM-L6-v2).")] = None,
    embedder_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible server for the embedder (…/v1).")
    ] = None,
) -> None:
    """Create an empty knowledge base; add sources, then sync."""
    import json

    from plinth.knowledge import KnowledgeBaseConfig

    raw: dict[str, Any] = {"name": name, "store": store, "embedder_url": embedder_url}
    raw["chunking"] = json.loads(chunking) if chunking.lstrip().startswith("{") else chunking
    if embedder:
        raw["embedder"] = embedder
    try:
        config = KnowledgeBaseConfig.from_json(raw)
    except ValueError as exc:
        fail(str(exc))
    _kb_call(ctx, lambda kbs, tenant: kbs.create(tenant, config))
    typer.echo(f"created knowledge base {name} ({config.store}, chunking {config.chunking.strategy})")


@kb_app.command("add-source")
def kb_add_source(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Knowledge base name.")],
    path: Annotated[str, typer.Argument(help="Folder, file or glob (records: .jsonl/.csv/.json).")],
    text_fields: Annotated[
        str | None, typer.Option(help="Records: comma-separated fields making the text.")
    ] = None,
    metadata_fields: Annotated[
        str | None, typer.Option(help="Records: comma-separated metadata fields.")
    ] = None,
    id_field: Annotated[str | None, typer.Option(help="Records: the field holding a stable id.")] = None,
    title_field: Annotated[str | None, typer.Option(help="Records: the field holding a title.")] = None,
) -> None:
    """Add a source: files (one document each), or records when --text-fields is given."""
    spec: dict[str, Any] = {"type": "records" if text_fields else "files", "path": str(Path(path).absolute())}
    for key, value in (("text_fields", text_fields), ("metadata_fields", metadata_fields)):
        if value:
            spec[key] = [part.strip() for part in value.split(",") if part.strip()]
    spec.update({k: v for k, v in (("id_field", id_field), ("title_field", title_field)) if v})
    _kb_call(ctx, lambda kbs, tenant: kbs.add_source(tenant, name, spec))
    typer.echo(f"added {spec['type']} source {spec['path']} to {name}")


@kb_app.command("sync")
def kb_sync(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Knowledge base name.")]) -> None:
    """Sync incrementally (only added/changed documents are embedded), printing progress and the report."""

    def progress(done: int, total: int) -> None:
        typer.echo(f"\rembedding documents: {done}/{total}", nl=False, err=True)

    job = _kb_call(ctx, lambda kbs, tenant: kbs.sync_now(tenant, name, progress))
    typer.echo("", err=True)
    report = job.report or {}
    typer.echo(
        f"{job.status}: {report.get('added', 0)} added, {report.get('changed', 0)} changed, "
        f"{report.get('deleted', 0)} deleted, {report.get('unchanged', 0)} unchanged, "
        f"{report.get('chunks', 0)} chunks written"
    )
    for skip in report.get("skipped", []):
        typer.echo(f"skipped {skip['path']}: {skip['reason']}")
    if job.status != "succeeded":
        fail(f"sync failed, the previous version is still served: {job.error}", code=1)


@kb_app.command("query")
def kb_query(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Knowledge base name.")],
    query: Annotated[str, typer.Argument(help="What to search for.")],
    filter: Annotated[
        str | None,
        typer.Option(
            "--filter", help='Bedrock filter JSON, e.g. \'{"equals": {"key": "year", "value": 2020}}\'.'
        ),
    ] = None,
    k: Annotated[int, typer.Option("--k", help="Number of results (1-100).")] = 5,
    search_type: Annotated[
        str, typer.Option("--search-type", help="HYBRID, SEMANTIC or LEXICAL.")
    ] = "HYBRID",
    generate: Annotated[
        bool, typer.Option("--generate", help="Answer with the LLM, citing the results.")
    ] = False,
) -> None:
    """Print the best-matching chunks (or, with --generate, a cited answer)."""
    import json

    try:
        raw_filter = json.loads(filter) if filter else None
    except json.JSONDecodeError as exc:
        fail(f"--filter is not valid JSON: {exc}")
    if generate:
        _kb_generate(ctx, name, query, k, search_type, raw_filter)
        return
    hits = _kb_call(ctx, lambda kbs, tenant: kbs.retrieve(tenant, name, query, k, search_type, raw_filter))
    for i, hit in enumerate(hits, 1):
        typer.echo(
            f"[{i}] {hit.score:.4f}  {hit.location.get('uri') or hit.doc_id}  {json.dumps(hit.metadata)}"
        )
        typer.echo("    " + hit.content.strip().replace("\n", "\n    "))


def _kb_generate(
    ctx: typer.Context, name: str, query: str, k: int, search_type: str, raw_filter: Any
) -> None:
    """``--generate``: the RAG function over this KB, with the model from --llm-url or the first --model."""
    import asyncio

    try:
        from plinth.knowledge import retrieve_and_generate
    except ImportError:
        fail(
            "--generate needs plinth.knowledge.rag (retrieve-and-generate), which this install lacks", code=1
        )
    settings = build_settings(ctx)
    chat = _kb_chat_model(settings)
    try:
        result = asyncio.run(
            retrieve_and_generate(
                query=query,
                hits_fn=lambda q, f: _kb_call(ctx, lambda s, t: s.retrieve(t, name, q, k, search_type, f)),
                chat=chat,
                filter=raw_filter,
            )
        )
    finally:
        getattr(chat, "shutdown", lambda: None)()
    typer.echo(result.output_text)
    for i, hit in enumerate(result.hits, 1):
        typer.echo(f"[{i}] {hit.location.get('uri') or hit.doc_id}")


def _kb_chat_model(settings: Settings) -> Any:
    """An OpenAI-compatible server (PLINTH_LLM_URL) if configured, else the first configured model (the
    packaged default model when none is)."""
    if settings.llm_url:
        from plinth.llm.openai_compat import OpenAICompatModel

        return OpenAICompatModel(settings.llm_url, settings.models[0] if settings.models else "default")
    from plinth.llm.catalog import DEFAULT_MODEL, resolve
    from plinth.llm.local import LocalModel

    checkpoint, name = resolve(settings.models[0] if settings.models else DEFAULT_MODEL, settings.data_dir)
    return LocalModel.load(settings.engine_config(checkpoint), name=name)


@kb_app.command("list")
def kb_list(ctx: typer.Context) -> None:
    """List the local tenant's knowledge bases."""
    typer.echo(f"{'NAME':<24} {'STORE':<9} {'CHUNKING':<13} SOURCES")
    for row in _kb_call(ctx, lambda kbs, tenant: kbs.list_kbs(tenant)):
        store, chunking = row.config["store"], row.config["chunking"]["strategy"]
        typer.echo(f"{row.name:<24} {store:<9} {chunking:<13} {len(row.config['sources'])}")


@kb_app.command("rm")
def kb_rm(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Knowledge base name.")]) -> None:
    """Delete a knowledge base and its store."""
    _kb_call(ctx, lambda kbs, tenant: kbs.delete(tenant, name))
    typer.echo(f"removed {name}")
