"""Two ``plinth serve`` processes on one PostgreSQL control plane (and one shared data directory, as
replicas on a shared filesystem have): a key made through one works on the other, an adapter
registered on one is served and removed through the other, and a batch created on one is seen,
finished and downloaded through the other."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from lora_fixtures import make_peft_adapter

import plinth
from plinth.control import create_key, open_control_plane

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def two_servers(pg_dsn: str, tiny_llama: Path, tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """``(url A, url B, admin key)``; both processes serve the tiny model from one database."""
    database = pg_dsn.replace("postgresql://", "postgresql+psycopg://", 1)
    cp = open_control_plane(database)  # migrated once here, before the two processes start
    admin = create_key(cp, "ops", admin=True)
    cp.close()
    env = {
        **os.environ, "PLINTH_DATABASE_URL": database, "PLINTH_KV_CACHE_MEMORY_GB": "0.05",
        "PYTHONPATH": str(Path(plinth.__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1",
    }  # fmt: skip
    ports = [_free_port(), _free_port()]
    servers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "plinth",
                "serve",
                "--model",
                str(tiny_llama),
                "--port",
                str(port),
                "--data-dir",
                str(tmp_path / "shared-data"),
                "--device",
                "cpu",
                "--dtype",
                "float32",
            ],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for port in ports
    ]
    try:
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        for url, server in zip(urls, servers, strict=True):
            _wait_ready(url, server)
        yield urls[0], urls[1], admin
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=30)


def _wait_ready(url: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert server.poll() is None, "the server exited"
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} did not start")


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_keys_adapters_and_jobs_are_shared(two_servers, tiny_llama: Path, tmp_path: Path) -> None:
    a, b, admin = two_servers
    made = httpx.post(f"{a}/v1/admin/keys", json={"tenant": "acme"}, headers=_auth(admin), timeout=30)
    assert made.status_code == 201, made.text
    acme = _auth(made.json()["key"])
    assert httpx.get(f"{b}/v1/me", headers=acme, timeout=30).json()["tenant"] == "acme"

    source = make_peft_adapter(tiny_llama, tmp_path / "bot", r=4)  # a server-side path: admins only
    body = {"name": "bot", "source": str(source), "public": True}
    assert httpx.post(f"{a}/v1/adapters", json=body, headers=_auth(admin), timeout=60).status_code == 201
    chat = {"model": "bot", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    assert httpx.post(f"{b}/v1/chat/completions", json=chat, headers=acme, timeout=60).status_code == 200
    assert httpx.delete(f"{b}/v1/adapters/bot", headers=_auth(admin), timeout=30).status_code == 200
    assert "bot" not in {
        m["id"] for m in httpx.get(f"{a}/v1/models", headers=acme, timeout=30).json()["data"]
    }

    line = {"custom_id": "q1", "method": "POST", "url": "/v1/chat/completions",
            "body": {**chat, "model": str(tiny_llama)}}  # fmt: skip
    files = {"file": ("batch.jsonl", (json.dumps(line) + "\n").encode(), "application/jsonl")}
    uploaded = httpx.post(f"{a}/v1/files", data={"purpose": "batch"}, files=files, headers=acme, timeout=30)
    batch = {
        "input_file_id": uploaded.json()["id"],
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
    }
    created = httpx.post(f"{a}/v1/batches", json=batch, headers=acme, timeout=30).json()
    finished = _wait_batch(b, acme, created["id"])
    output = httpx.get(f"{b}/v1/files/{finished['output_file_id']}/content", headers=acme, timeout=30)
    assert json.loads(output.text)["response"]["status_code"] == 200


def _wait_batch(url: str, auth: dict[str, str], batch_id: str) -> dict:
    deadline = time.monotonic() + 60
    while (batch := httpx.get(f"{url}/v1/batches/{batch_id}", headers=auth, timeout=30).json())["status"] != (
        "completed"
    ):
        assert batch["status"] in ("validating", "in_progress", "finalizing"), batch
        assert time.monotonic() < deadline, batch
        time.sleep(0.2)
    return batch
