"""``plinth serve`` and ``plinth demo``: run the server (the CLI's only long-running commands)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from plinth.cli.common import ConfigFile, DataDir, build_settings, fail
from plinth.config import InsecureBindError, Settings, check_bind

__all__ = ["demo", "serve"]


def _serve(settings: Settings, *, on_ray: bool = False) -> None:
    try:
        check_bind(settings)
    except InsecureBindError as exc:
        fail(str(exc))
    if on_ray:
        try:
            from plinth.scale import serve_on_ray
        except ImportError as exc:  # Ray is an optional extra
            fail(f"--ray needs Ray Serve: pip install 'plinth[ray]' ({exc})")
        serve_on_ray(settings)
        return
    from plinth.server.app import serve

    serve(settings)


def serve(
    ctx: typer.Context,
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            help="Catalog name (default smollm2-135m-instruct; random-llama-small), checkpoint dir, "
            ".gguf file or hub id (repeatable).",
        ),
    ] = None,
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    dtype: Annotated[str | None, typer.Option(help="auto|float32|bfloat16|float16.")] = None,
    device: Annotated[str | None, typer.Option(help="auto|cpu|cuda|cuda:N.")] = None,
    load_format: Annotated[str | None, typer.Option(help="auto|dummy (random weights).")] = None,
    quantization: Annotated[
        str | None, typer.Option(help="int8|int4: weight-only quantized linear layers (CPU).")
    ] = None,
    batch_invariant: Annotated[
        bool | None,
        typer.Option(
            "--batch-invariant/--no-batch-invariant",
            help="Each request's outputs independent of its batch (batch = interactive, greedy).",
        ),
    ] = None,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="No API keys (loopback only).")] = False,
    data_dir: DataDir = None,
    llm_url: Annotated[str | None, typer.Option(help="OpenAI-compatible server for features.")] = None,
    max_num_seqs: Annotated[int | None, typer.Option(help="Max sequences per batch.")] = None,
    max_model_len: Annotated[int | None, typer.Option(help="Max prompt + output tokens.")] = None,
    kv_cache_policy: Annotated[
        str | None,
        typer.Option(
            help="keep: finished requests' prefixes cached until the KV cache is full (default); "
            "lean: freed blocks reused first, so resident memory follows the load."
        ),
    ] = None,
    adapters: Annotated[
        list[Path] | None,
        typer.Option("--adapters", help="Directory whose adapter subfolders are served to all tenants."),
    ] = None,
    enable_lora: Annotated[
        bool | None, typer.Option("--enable-lora/--no-enable-lora", help="Serve LoRA adapters (default on).")
    ] = None,
    max_loras: Annotated[int | None, typer.Option(help="Adapters in compute slots at once (8).")] = None,
    max_lora_rank: Annotated[int | None, typer.Option(help="Largest adapter rank served (16).")] = None,
    max_cpu_loras: Annotated[int | None, typer.Option(help="Adapters cached in host memory (64).")] = None,
    merge_lora: Annotated[
        str | None, typer.Option(help="Serve this --adapters adapter merged into its base model.")
    ] = None,
    on_ray: Annotated[
        bool,
        typer.Option("--ray", help="Engine replicas on a Ray cluster (the [ray] settings; extra 'ray')."),
    ] = False,
    config: ConfigFile = None,
) -> None:
    """Serve the OpenAI-compatible API and the web app."""
    settings = build_settings(
        ctx,
        models=model,
        host=host,
        port=port,
        dtype=dtype,
        device=device,
        load_format=load_format,
        quantization=quantization,
        batch_invariant=batch_invariant,
        no_auth=no_auth or None,
        data_dir=data_dir,
        llm_url=llm_url,
        max_num_seqs=max_num_seqs,
        max_model_len=max_model_len,
        kv_cache_policy=kv_cache_policy,
        adapters=adapters,
        enable_lora=enable_lora,
        max_loras=max_loras,
        max_lora_rank=max_lora_rank,
        max_cpu_loras=max_cpu_loras,
        merge_lora=merge_lora,
        config=config,
    )
    _serve(settings, on_ray=on_ray)


def demo(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    data_dir: DataDir = None,
) -> None:
    """Serve the packaged default model without API keys, with the sample data, to try Plinth offline."""
    settings = build_settings(ctx, models=None, host=host, port=port, data_dir=data_dir, no_auth=True)
    shared = Path("../shared/data")  # the open datasets beside a checkout (the movie catalog)
    demo_data = shared if (shared / "movies").is_dir() else None
    settings = settings.model_copy(update={"models": [], "demo_data": demo_data})
    if demo_data is None:
        typer.echo("No ../shared/data/movies beside this checkout: the movies knowledge base is skipped.")
    url = f"http://{settings.host}:{settings.port}/"
    typer.echo(f"Plinth demo at {url} (model smollm2-135m-instruct, no auth)")
    _serve(settings)
