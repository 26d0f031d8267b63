"""Adapters against a live server (uvicorn in a thread): registering and unregistering while 32
requests stream, and the ``plinth adapters`` CLI as an HTTP client."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import httpx
import pytest
from adapter_fixtures import PROMPT, control_plane, lora_model, reference
from live_server import live_server
from lora_fixtures import make_peft_adapter
from typer.testing import CliRunner

from plinth.cli import app as cli
from plinth.config import Settings
from plinth.server import create_app

pytestmark = pytest.mark.slow

TOKENS = 12


@pytest.fixture(scope="module")
def setup(tiny_checkpoint_factory, tmp_path_factory):
    base = tiny_checkpoint_factory("llama")
    root = tmp_path_factory.mktemp("live")
    peft = {
        "a1": make_peft_adapter(base, root / "a1", r=4, seed=0),
        "a2": make_peft_adapter(base, root / "a2", r=8, targets=("q_proj", "down_proj"), seed=1),
    }
    refs = {k: reference(base, v, PROMPT, TOKENS) for k, v in [("base", None), *peft.items()]}
    model = lora_model(base, max_loras=2)  # 3 adapters + base over 2 slots: eviction under load
    cp, keys = control_plane(root)
    app = create_app(Settings(data_dir=root / "data"), [model], cp)
    with live_server(app) as url:
        yield {"url": url, "keys": keys, "peft": peft, "refs": refs, "model": model}
    model.shutdown()
    cp.close()


async def _stream(
    client: httpx.AsyncClient,
    key: str,
    model: str,
    started: asyncio.Event | None = None,
    done: list | None = None,
):
    """(status, text, finish_reason) of one streamed greedy completion; appends to ``done`` at the end."""
    body = {"model": model, "prompt": PROMPT, "max_tokens": TOKENS, "temperature": 0, "ignore_eos": True,
            "stream": True}  # fmt: skip
    async with client.stream(
        "POST", "/v1/completions", json=body, headers={"Authorization": f"Bearer {key}"}
    ) as r:
        if r.status_code != 200:
            return r.status_code, (await r.aread()).decode(), None
        text, finish = "", None
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            assert "error" not in chunk, chunk
            text += chunk["choices"][0]["text"]
            finish = chunk["choices"][0]["finish_reason"] or finish
            if started is not None:
                started.set()
        if done is not None:
            done.append(model)
        return 200, text, finish


def test_register_and_unregister_while_32_requests_stream(setup, tmp_path):
    url, keys, peft, refs, model = (setup[k] for k in ("url", "keys", "peft", "refs", "model"))
    doomed = Path(shutil.copytree(peft["a1"], tmp_path / "doomed"))
    auth = {"Authorization": f"Bearer {keys.admin}"}
    for name, source in (("keep1", peft["a1"]), ("keep2", peft["a2"]), ("doomed", doomed)):
        r = httpx.post(
            f"{url}/v1/adapters", json={"name": name, "source": str(source)}, headers=auth, timeout=60
        )
        assert r.status_code == 201, r.text
        assert r.json()["data"][0]["status"] == "cached"  # validated into host memory, not in a slot yet
    expected = {"base": model.decode(refs["base"]), "keep1": model.decode(refs["a1"]),
                "keep2": model.decode(refs["a2"]), "doomed": model.decode(refs["a1"])}  # fmt: skip

    async def run():
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            started, done = asyncio.Event(), []
            names = ["base", "keep1", "keep2", "doomed"] * 8
            tasks = [
                asyncio.create_task(_stream(client, keys.acme, n, started if n == "doomed" else None, done))
                for n in names
            ]
            await asyncio.wait_for(started.wait(), 60)  # a request for it is streaming now
            r = await client.delete("/v1/adapters/doomed", headers=auth)
            assert r.status_code == 200
            assert done.count("doomed") < 8  # so the removal really happened with requests in flight
            churn = []
            for i in range(3):  # other registrations coming and going must disturb nobody
                r = await client.post("/v1/adapters", json={"name": f"churn{i}", "source": str(peft["a2"])},
                                      headers=auth)  # fmt: skip
                churn.append(r.status_code)
            for i in range(3):
                churn.append((await client.delete(f"/v1/adapters/churn{i}", headers=auth)).status_code)
            late = await asyncio.gather(*(_stream(client, keys.acme, "doomed") for _ in range(4)))
            return names, await asyncio.gather(*tasks), late, churn

    names, results, late, churn = asyncio.run(run())
    assert churn == [201, 201, 201, 200, 200, 200]
    doomed_done = 0
    for name, (status, text, finish) in zip(names, results, strict=True):
        if name == "doomed" and status == 404:
            assert "model_not_found" in text  # arrived after the removal: as if never registered
            continue
        assert (status, finish) == (200, "length"), (name, status, text)
        assert text == expected[name], name
        doomed_done += name == "doomed"
    assert doomed_done >= 1  # at least the one in flight at removal time finished normally
    assert all(status == 404 for status, _, _ in late)
    assert sorted(model.adapters()) == ["acme:keep1", "acme:keep2"]
    assert model.lora_stats().evictions > 0  # the 2 slots really were shared
    listed = httpx.get(f"{url}/v1/adapters", headers=auth, timeout=30).json()["data"]
    status = {card["name"]: card["status"] for card in listed if card["name"].startswith("keep")}
    assert set(status) == {"keep1", "keep2"} and set(status.values()) <= {"resident", "cached"}
    assert "resident" in status.values()  # the last adapter served is still in its compute slot


def test_cli_adapters_add_list_rm(setup, monkeypatch, tmp_path):
    url, keys, peft = setup["url"], setup["keys"], setup["peft"]
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    # a non-admin key: a local folder is packed and uploaded, never read by the server from a path
    r = runner.invoke(
        cli, ["adapters", "add", "cli-a", str(peft["a1"]), "--url", url, "--api-key", keys.beta]
    )
    assert r.exit_code == 0, r.output
    assert "added cli-a (base base, rank 4, beta)" in r.output
    monkeypatch.setenv("PLINTH_API_KEY", keys.beta)
    monkeypatch.setenv("PLINTH_SERVER_URL", url)
    r = runner.invoke(cli, ["adapters", "list"])
    assert r.exit_code == 0, r.output
    header, row = r.output.splitlines()[:2]
    assert header.split() == ["NAME", "BASE", "MODEL", "OWNER", "RANK", "SOURCE"]
    assert row.split()[:4] == ["cli-a", "base", "beta", "4"] and "upload:a1.tar.gz" in row
    r = runner.invoke(cli, ["adapters", "add", "srv", str(peft["a1"]), "--server-path"])
    assert r.exit_code == 1 and "403" in r.output  # server paths need an admin key
    r = runner.invoke(cli, ["adapters", "rm", "cli-a"])
    assert (r.exit_code, r.output.strip()) == (0, "removed cli-a")
    r = runner.invoke(cli, ["adapters", "rm", "cli-a"])
    assert r.exit_code == 1 and "does not exist" in r.output
    r = runner.invoke(cli, ["adapters", "list", "--api-key", "pk-wrong"])
    assert r.exit_code == 1 and "401" in r.output
