"""Plinth's one settings object, and the only module that reads the environment.

Sources, lowest priority first: ``plinth.toml`` (flat keys; path from ``config=``, ``PLINTH_CONFIG``,
or ``./plinth.toml`` when present), ``PLINTH_*`` environment variables, then keyword arguments (the
CLI passes its flags that way, leaving out flags the user did not give)::

    settings = Settings(models=["./tiny-llama"], port=9000)
    check_bind(settings)                     # refuses --no-auth on a non-loopback address
    engine = LLMEngine(settings.engine_config(settings.models[0]))
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

if TYPE_CHECKING:  # importing plinth.engine may pull in torch; keep `plinth --help` fast
    from plinth.engine.config import EngineConfig

__all__ = [
    "DEFAULT_CONFIG_FILE", "InsecureBindError", "RaySettings", "Settings", "check_bind", "is_loopback_host",
]  # fmt: skip

DEFAULT_CONFIG_FILE = Path("plinth.toml")
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


class RaySettings(BaseModel):
    """``plinth serve --ray``: the ``[ray]`` table of ``plinth.toml`` (see :mod:`plinth.scale`).

    Replicas autoscale between ``min_replicas`` and ``max_replicas`` on Serve's ongoing-requests
    signal; equal bounds mean a fixed count. The delays are the cooldowns Serve waits before adding or
    removing a replica, so a burst does not thrash the fleet. Each replica keeps at most
    ``max_cpu_loras`` adapters (the engine's host-memory cache), which is also what Serve's
    multiplexing counts.
    """

    model_config = ConfigDict(extra="forbid")

    address: str | None = None  # a running cluster ("auto", "ray://head:10001"); None starts a local one
    min_replicas: int = Field(default=1, ge=0)
    max_replicas: int = Field(default=1, ge=1)
    target_ongoing_requests: float = Field(default=8.0, gt=0)  # per replica, what autoscaling aims at
    max_ongoing_requests: int = Field(default=32, ge=1)  # a replica takes no more; the router tries another
    upscale_delay_s: float = Field(default=30.0, ge=0)
    downscale_delay_s: float = Field(default=600.0, ge=0)
    replica_cpus: float = Field(default=1.0, gt=0)  # Ray resources one engine replica reserves
    replica_gpus: float = Field(default=0.0, ge=0)
    ingress_replicas: int = Field(default=1, ge=1)  # the HTTP front: parses, picks routing keys, forwards
    max_attempts: int = Field(default=3, ge=1, le=10)  # a request whose replica died is retried on another

    @model_validator(mode="after")
    def _check_bounds(self) -> RaySettings:
        if self.min_replicas > self.max_replicas:
            raise ValueError("ray.min_replicas must not exceed ray.max_replicas")
        return self


class Settings(BaseSettings):
    """Everything a Plinth process is configured by; see the module docstring for sources.

    ``database_url`` is always a URL after validation: unset, it is ``sqlite:///<data_dir>/plinth.db``.
    """

    model_config = SettingsConfigDict(env_prefix="PLINTH_", extra="forbid", validate_default=True)

    config: Path | None = None  # the toml file itself; an explicit path must exist
    data_dir: Path = Path("plinth-data")
    models: Annotated[list[str], NoDecode] = Field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    device: str = "auto"
    load_format: Literal["auto", "dummy"] = "auto"
    quantization: Literal["int8", "int4"] | None = None  # weight-only, CPU (see README "Speed")
    batch_invariant: bool = False  # each request's outputs independent of its batch (README "Batch")
    no_auth: bool = False
    llm_url: str | None = None
    max_num_seqs: int = Field(64, ge=1)
    max_num_batched_tokens: int = Field(2048, ge=1)
    max_model_len: int | None = Field(None, ge=1)
    kv_cache_memory_gb: float | None = Field(None, gt=0)  # None: by need, capped at 1/4 of free RAM
    kv_cache_policy: Literal["keep", "lean"] = "keep"  # prefix hits vs resident memory (README)
    embedding_model: str = "sentence-transformers/all-MiniLM-L6-v2"
    pgvector_dsn: str | None = None  # PostgreSQL for knowledge bases with store "pgvector"
    demo_data: Path | None = None  # shared/data: the demo builds the `movies` knowledge base from it
    database_url: str | None = None
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    # LoRA adapters (see docs/adapters.md)
    adapters: Annotated[list[Path], NoDecode] = Field(default_factory=list)  # dirs of public adapters
    enable_lora: bool = True
    max_loras: int = Field(8, ge=1)  # adapters in compute slots at once
    max_lora_rank: int = Field(16, ge=1)
    max_cpu_loras: int = Field(64, ge=1)  # adapters cached in host memory
    merge_lora: str | None = None  # an adapter of `adapters` to serve merged into its base
    max_upload_mb: int = Field(2048, ge=1)  # adapter archives and /v1/files uploads
    # request limits (see README "Limits and hardening"): checked before a route runs or tokenizes
    max_json_body_mb: float = Field(8.0, gt=0)  # a JSON request body; larger is a 413
    max_json_depth: int = Field(64, ge=2, le=500)  # nesting of arrays/objects in a JSON body
    max_prompt_chars: int = Field(1_000_000, ge=1)  # one prompt's (or a chat's) text, before tokenizing
    max_batch_inputs: int = Field(2048, ge=1)  # inputs per embeddings, completions or /invocations request
    shutdown_timeout_s: int = Field(10, ge=1)  # on shutdown, requests still running after it are cancelled
    # the longest the engine thread waits for the GIL while the event loop runs (sys.setswitchinterval)
    gil_switch_interval_ms: float = Field(0.2, gt=0, le=100)
    # a cached key's 429 is held this long before it is sent (below its Retry-After of 1 s or more), so a
    # client that retries at once without backing off sends a few requests a second, not thousands
    refusal_delay_ms: float = Field(100, ge=0, le=1000)
    # jobs (fine-tuning): one worker process at a time by default, a queue behind it
    max_concurrent_jobs: int = Field(1, ge=1, le=16)
    job_threads: int = Field(2, ge=1, le=256)  # torch threads in a job's worker process
    # an fsspec URL (s3://bucket/plinth) a finished fine-tune's adapter is also uploaded to, and served
    # from by every process on the control plane; None: <data_dir>/fine_tuned only (a shared path)
    artifact_store: str | None = None
    # batches and asynchronous inference: run in the server on its engine, below interactive requests
    batch_max_lines_in_flight: int = Field(16, ge=1, le=4096)  # batch lines generating at once (all batches)
    batch_lines_in_flight_when_busy: int = Field(4, ge=1, le=4096)  # ... while interactive requests run
    batch_claim_lease_s: float = Field(30.0, gt=0)  # a server's claim on a batch lapses this long after its
    # last heartbeat (it renews every second); then another server on the control plane resumes the batch
    async_result_ttl_s: float = Field(6 * 3600.0, gt=0)  # how long an async inference result is kept
    # ask your data (plinth.sql)
    sql_max_rows: int = Field(1000, ge=1, le=100_000)  # the LIMIT forced on every vetted query
    sql_timeout_s: float = Field(30.0, gt=0)  # the engine is interrupted after this long
    sql_memory_limit: str = Field("1GB", pattern=r"^\d+(\.\d+)?\s*[KMGT]i?B$")  # DuckDB's memory_limit
    sql_threads: int = Field(2, ge=1, le=256)  # DuckDB threads per query
    sql_grammar: bool = False  # ask: constrain the model's SQL to the dataset's SELECT grammar
    # `plinth adapters ...` and other client commands
    server_url: str = "http://127.0.0.1:8000"
    api_key: str | None = None
    # `plinth serve --ray`: engine replicas on a Ray cluster (the [ray] table)
    ray: RaySettings = Field(default_factory=lambda: RaySettings())

    @field_validator("models", "adapters", mode="before")
    @classmethod
    def _split_models(cls, value: Any) -> Any:
        """Accept ``PLINTH_MODELS`` / ``PLINTH_ADAPTERS`` as a JSON list or a comma-separated string."""
        if not isinstance(value, str):
            return value
        if value.lstrip().startswith("["):
            return json.loads(value)
        return [part.strip() for part in value.split(",") if part.strip()]

    @model_validator(mode="after")
    def _check_merge_lora(self) -> Settings:
        if self.merge_lora is not None and not self.adapters:
            raise ValueError("merge_lora names an adapter folder of `adapters`; give --adapters DIR too")
        return self

    @field_validator("artifact_store")
    @classmethod
    def _check_artifact_store(cls, value: str | None) -> str | None:
        """Refused at start, not when the first fine-tune ends: a URL whose protocol fsspec serves here."""
        if value is None:
            return None
        from plinth.artifacts import ArtifactError, check_url, is_url  # fsspec only when it is set

        if not is_url(value):
            raise ValueError(
                f"artifact_store must be an fsspec URL such as s3://bucket/plinth, not {value!r}"
            )
        try:
            return check_url(value)
        except ArtifactError as exc:
            raise ValueError(str(exc)) from exc

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        if not _DEVICE.fullmatch(value):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, not {value!r}")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_log_level(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _default_database_url(self) -> Settings:
        if self.database_url is None:
            self.database_url = f"sqlite:///{self.data_dir / 'plinth.db'}"
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Kwargs beat env beats toml; no dotenv or secrets dirs (one documented set of sources)."""
        explicit = getattr(init_settings, "init_kwargs", {}).get("config") or os.environ.get("PLINTH_CONFIG")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_file = _toml_path(explicit)
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    def engine_config(self, model: str, *, enable_lora: bool | None = None) -> EngineConfig:
        """The engine's config for ``model``, carrying this process's device, batching and LoRA limits
        (``enable_lora`` overrides the setting: a ``--merge-lora`` model needs no adapter slots)."""
        from plinth.engine.config import EngineConfig

        return EngineConfig(
            model=model,
            dtype=self.dtype,
            device=self.device,
            load_format=self.load_format,
            quantization=self.quantization,
            batch_invariant=self.batch_invariant,
            max_num_seqs=self.max_num_seqs,
            max_num_batched_tokens=self.max_num_batched_tokens,
            max_model_len=self.max_model_len,
            kv_cache_memory_gb=self.kv_cache_memory_gb,
            kv_cache_policy=self.kv_cache_policy,
            enable_lora=self.enable_lora if enable_lora is None else enable_lora,
            max_loras=self.max_loras,
            max_lora_rank=self.max_lora_rank,
            max_cpu_loras=self.max_cpu_loras,
        )


def _toml_path(explicit: str | Path | None) -> Path | None:
    """The toml file to read: an explicit one must exist; the default one is optional."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        return path
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


class InsecureBindError(ValueError):
    """``no_auth`` on an address other machines can reach: anyone could use the server as any tenant."""


def is_loopback_host(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ``::1``; False for anything else, hostnames included."""
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(settings: Settings) -> None:
    """Raise :class:`InsecureBindError` when auth is off and the server would listen beyond loopback."""
    if settings.no_auth and not is_loopback_host(settings.host):
        raise InsecureBindError(
            f"refusing --no-auth on host {settings.host!r}: without API keys anyone who can reach it "
            "acts as any tenant. Bind to 127.0.0.1 (or ::1), or drop --no-auth and create a key with "
            "`plinth keys create --tenant NAME`."
        )
