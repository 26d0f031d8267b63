"""The parts of the Ray deployment that need no cluster: routing keys, session ranking, the in-process
ASGI call, and how ``[ray]`` settings become Serve's deployment options."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from ray.exceptions import RayActorError
from starlette.requests import Request
from typer.testing import CliRunner

import plinth.scale
from plinth.cli import app
from plinth.config import RaySettings, Settings
from plinth.scale.deploy import build, replica_options
from plinth.scale.forwarding import Forwarded, Start, call_app, routing_keys
from plinth.scale.ingress import Ingress
from plinth.scale.router import rank_for_session


def _post(body: bytes, *headers: tuple[str, str]) -> Forwarded:
    raw = [(k.encode(), v.encode()) for k, v in [("content-type", "application/json"), *headers]]
    return Forwarded("POST", "/v1/chat/completions", b"", raw, body)


def test_routing_keys_name_adapters_not_base_models() -> None:
    assert routing_keys(_post(b'{"model": "support-bot"}'), {"llama"}) == ("support-bot", "")
    assert routing_keys(_post(b'{"model": "llama"}'), {"llama"}) == ("", "")
    sagemaker = _post(b'{"inputs": "hi"}', ("X-Amzn-SageMaker-Adapter-Identifier", "sql"))
    assert routing_keys(sagemaker, {"llama"}) == ("sql", "")


def test_routing_keys_find_the_session_in_headers_or_body() -> None:
    assert routing_keys(_post(b"{}", ("X-Session-Id", "s1")), ()) == ("", "s1")
    assert routing_keys(_post(b"{}", ("X-Amzn-SageMaker-Session-Id", "s2")), ()) == ("", "s2")
    assert routing_keys(_post(b'{"sessionId": "s3", "model": 7}'), ()) == ("", "s3")


def test_routing_keys_leave_bad_bodies_to_the_replica() -> None:
    assert routing_keys(_post(b"{not json"), ()) == ("", "")
    assert routing_keys(_post(b'["model"]'), ()) == ("", "")


def test_a_session_ranks_replicas_the_same_way_everywhere() -> None:
    replicas = ["a", "b", "c", "d"]
    ranked = rank_for_session("s1", replicas)
    assert sorted(ranked) == replicas
    assert rank_for_session("s1", list(reversed(replicas))) == ranked


def test_removing_a_replica_moves_only_its_own_sessions() -> None:
    sessions = [f"session-{i}" for i in range(1000)]
    before = {s: rank_for_session(s, ["a", "b", "c", "d"])[0] for s in sessions}
    after = {s: rank_for_session(s, ["a", "b", "d"])[0] for s in sessions}
    assert all(after[s] == before[s] for s in sessions if before[s] != "c")
    assert all(150 < n < 350 for n in Counter(before.values()).values())  # spread, not piled up


async def test_call_app_streams_status_headers_and_chunks() -> None:
    app = FastAPI()

    @app.get("/events")
    def events() -> StreamingResponse:
        return StreamingResponse(iter([b"data: 1\n\n", b"data: 2\n\n"]), media_type="text/event-stream")

    items = [item async for item in call_app(app, Forwarded("GET", "/events", b"", [], b""))]
    assert isinstance(items[0], Start) and items[0].status == 200
    assert (b"content-type", b"text/event-stream; charset=utf-8") in items[0].headers
    assert items[1:] == [b"data: 1\n\n", b"data: 2\n\n"]
    missing = [item async for item in call_app(app, Forwarded("GET", "/nope", b"", [], b""))]
    assert isinstance(missing[0], Start) and missing[0].status == 404


async def test_call_app_answers_a_crash_with_the_apps_500_and_does_not_raise() -> None:
    app = FastAPI()

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("bug")

    items = [item async for item in call_app(app, Forwarded("GET", "/boom", b"", [], b""))]
    assert isinstance(items[0], Start) and items[0].status == 500


class _DyingEngine:
    """A Serve handle whose every replica dies mid-request."""

    def __init__(self) -> None:
        self.calls = 0
        self.handle = self.base_models = self

    def options(self, **_: object) -> _DyingEngine:
        return self

    def remote(self, *args: object) -> object:
        if not args:  # base_models.remote()
            return asyncio.sleep(0, result=["llama"])
        self.calls += 1
        return self._replies()

    async def _replies(self) -> AsyncIterator[bytes]:
        raise RayActorError()
        yield b""


async def test_the_ingress_retries_dead_replicas_then_answers_503() -> None:
    engine = _DyingEngine()
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "query_string": b"",
        "headers": [],
    }

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b'{"model": "llama"}', "more_body": False}

    response = await Ingress(engine, max_attempts=3)(Request(scope, receive))  # type: ignore[arg-type]
    assert (response.status_code, engine.calls) == (503, 3)
    assert json.loads(response.body)["error"]["code"] == "replica_unavailable"


def test_fixed_or_autoscaled_replicas_from_settings() -> None:
    fixed = replica_options(RaySettings(min_replicas=2, max_replicas=2, replica_cpus=0.5))
    assert fixed["num_replicas"] == 2 and "autoscaling_config" not in fixed
    assert fixed["ray_actor_options"] == {"num_cpus": 0.5, "num_gpus": 0.0}
    scaled = replica_options(RaySettings(min_replicas=1, max_replicas=8, upscale_delay_s=5))
    assert scaled["autoscaling_config"] == {
        "min_replicas": 1, "max_replicas": 8, "target_ongoing_requests": 8.0,
        "upscale_delay_s": 5.0, "downscale_delay_s": 600.0,
    }  # fmt: skip
    assert scaled["request_router_config"].request_router_class == "plinth.scale.router.AffinityRouter"


@pytest.mark.usefixtures("clean_env")
def test_the_ray_table_of_plinth_toml(tmp_path: Path) -> None:
    config = tmp_path / "plinth.toml"
    config.write_text('[ray]\naddress = "auto"\nmin_replicas = 2\nmax_replicas = 4\n')
    assert Settings(config=config).ray == RaySettings(address="auto", min_replicas=2, max_replicas=4)
    config.write_text("[ray]\nmin_replicas = 5\nmax_replicas = 4\n")
    with pytest.raises(ValidationError, match="min_replicas"):
        Settings(config=config)
    config.write_text("[ray]\nreplicas = 5\n")
    with pytest.raises(ValidationError, match="replicas"):
        Settings(config=config)


@pytest.mark.usefixtures("clean_env")
def test_serve_ray_deploys_with_the_toml_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deployed: list[Settings] = []
    monkeypatch.setattr(plinth.scale, "serve_on_ray", deployed.append)
    (tmp_path / "plinth.toml").write_text("[ray]\nmin_replicas = 2\nmax_replicas = 3\n")
    result = CliRunner().invoke(app, ["serve", "--ray", "--port", "9100"])
    assert result.exit_code == 0, result.output
    [settings] = deployed
    assert (settings.port, settings.ray.min_replicas, settings.ray.max_replicas) == (9100, 2, 3)


def test_the_rayservice_manifest_builds_valid_settings() -> None:
    manifest = yaml.safe_load((Path(__file__).parents[2] / "deploy" / "rayservice.yaml").read_text())
    [application] = yaml.safe_load(manifest["spec"]["serveConfigV2"])["applications"]
    assert application["import_path"] == f"{build.__module__}:{build.__name__}"
    settings = Settings(**application["args"])
    assert (
        settings.ray.max_replicas
        == manifest["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["maxReplicas"]
    )
