"""Adapters registered from fsspec URLs over HTTP (fsspec's real ``memory://`` filesystem standing in for
an object store: ``s3fs`` cannot be installed beside this environment's botocore): served exactly as the
engine runs them, fetched once per process, found by a second app on the same control plane, and every
bad URL a 4xx that registers nothing."""

from __future__ import annotations

import uuid
from pathlib import Path

import fsspec
import pytest
from adapter_fixtures import MAX_TOKENS, PROMPT, control_plane, lora_model, reference
from fastapi.testclient import TestClient
from fsspec.implementations.memory import MemoryFileSystem
from lora_fixtures import make_lmi_archive, make_peft_adapter

from plinth.config import Settings
from plinth.server import create_app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def base(tiny_checkpoint_factory) -> Path:
    return tiny_checkpoint_factory("llama")


@pytest.fixture(scope="module")
def adapter(base, tmp_path_factory) -> Path:
    return make_peft_adapter(base, tmp_path_factory.mktemp("peft") / "sql", r=4, seed=0)


@pytest.fixture(scope="module")
def other(base, tmp_path_factory) -> Path:
    return make_peft_adapter(base, tmp_path_factory.mktemp("peft") / "other", r=4, seed=1)


@pytest.fixture
def bucket(adapter, other, tmp_path) -> str:
    """A fresh folder of the (process-wide) memory filesystem holding the adapter as a PEFT folder
    (``sql/``) and an LMI archive of two adapters (``lmi.tar.gz``: ``adapters/a``, ``adapters/b``)."""
    fs, root = fsspec.filesystem("memory"), f"/bucket-{uuid.uuid4().hex}"
    for file in adapter.iterdir():
        fs.put_file(str(file), f"{root}/sql/{file.name}")
    fs.put_file(
        str(make_lmi_archive(tmp_path / "lmi.tar.gz", {"a": adapter, "b": other})), f"{root}/lmi.tar.gz"
    )
    yield f"memory://{root}"
    fs.rm(root, recursive=True)


@pytest.fixture
def downloads(monkeypatch) -> list[str]:
    """Every file fetched from the memory filesystem."""
    fetched: list[str] = []
    real = MemoryFileSystem.get_file

    def counting(self, rpath, lpath, **kwargs):
        fetched.append(rpath)
        return real(self, rpath, lpath, **kwargs)

    monkeypatch.setattr(MemoryFileSystem, "get_file", counting)
    return fetched


def _complete(client, keys, model: str):
    body = {"model": model, "prompt": PROMPT, "max_tokens": MAX_TOKENS, "temperature": 0, "ignore_eos": True}
    return client.post("/v1/completions", json=body, headers=keys.auth("acme"))


def test_url_adapters_are_served_fetched_once_and_found_by_a_second_app(
    base, adapter, other, bucket, downloads, tmp_path
):
    url = f"{bucket}/sql"
    cp, keys = control_plane(tmp_path)
    models = [lora_model(base), lora_model(base)]
    want, want_b = (models[0].decode(reference(base, folder)) for folder in (adapter, other))
    assert want != want_b
    files = len(list(adapter.iterdir()))
    try:
        with TestClient(create_app(Settings(data_dir=tmp_path / "one"), [models[0]], cp)) as one:
            add = {"source": url, "name": "sql"}
            refused = one.post("/v1/adapters", json=add, headers=keys.auth("acme"))
            assert refused.status_code == 403 and refused.json()["error"]["param"] == "source"

            r = one.post("/v1/adapters", json=add, headers=keys.auth("admin"))
            assert r.status_code == 201, r.text
            assert r.json()["data"][0]["source"] == url
            assert _complete(one, keys, "sql").json()["choices"][0]["text"] == want
            assert len(downloads) == files

            assert one.delete("/v1/adapters/sql", headers=keys.auth("acme")).status_code == 200
            again = {"lora_name": "sql2", "lora_path": url}  # vLLM's route, the same URL
            assert (
                one.post("/v1/load_lora_adapter", json=again, headers=keys.auth("admin")).status_code == 200
            )
            assert len(downloads) == files  # the cached copy was reused

            archive = {"source": f"{bucket}/lmi.tar.gz"}  # no name: every adapter it holds
            r = one.post("/v1/adapters", json=archive, headers=keys.auth("admin"))
            assert sorted(card["name"] for card in r.json()["data"]) == ["a", "b"], r.text
            assert len(downloads) == files + 1

        # Another process (its own data dir and engine) on the same control plane fetches it itself.
        with TestClient(create_app(Settings(data_dir=tmp_path / "two"), [models[1]], cp)) as two:
            assert _complete(two, keys, "sql2").json()["choices"][0]["text"] == want
            assert _complete(two, keys, "b").json()["choices"][0]["text"] == want_b  # picked by name
            assert len(downloads) == 2 * (files + 1)  # a and b: one archive, fetched once
    finally:
        for model in models:
            model.shutdown()
        cp.close()


@pytest.mark.parametrize(
    ("source", "code"),
    [
        ("nosuch://bucket/sql", "unsupported_protocol"),
        ("memory://no-such-bucket/sql", "artifact_not_found"),
    ],
)
def test_a_bad_url_is_400_and_registers_nothing(base, tmp_path, source, code):
    cp, keys = control_plane(tmp_path)
    model = lora_model(base)
    try:
        with TestClient(create_app(Settings(data_dir=tmp_path), [model], cp)) as client:
            for route, body, param in (
                ("/v1/adapters", {"source": source, "name": "sql"}, "source"),
                ("/v1/load_lora_adapter", {"lora_name": "sql", "lora_path": source}, "lora_path"),
            ):
                r = client.post(route, json=body, headers=keys.auth("admin"))
                assert r.status_code == 400, r.text
                error = r.json()["error"]
                assert (error["code"], error["param"]) == (code, param) and source in error["message"]
            assert client.get("/v1/adapters", headers=keys.auth("admin")).json()["data"] == []
            assert model.adapters() == []
    finally:
        model.shutdown()
        cp.close()
