"""Adapters over HTTP with the real engine: register (path, upload, LMI archive), list, use, delete,
tenancy, validation errors, LMI and vLLM-compatible endpoints, persistence, ``--adapters DIR``, metrics."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from adapter_fixtures import MAX_TOKENS, PROMPT, control_plane, lora_model, reference
from fastapi.testclient import TestClient
from lora_fixtures import make_lmi_archive, make_peft_adapter

from plinth.config import Settings
from plinth.server import create_app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def base(tiny_checkpoint_factory) -> Path:
    return tiny_checkpoint_factory("llama")


@pytest.fixture(scope="module")
def peft(base, tiny_checkpoint_factory, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("peft")
    return {
        "a1": make_peft_adapter(base, root / "a1", r=4, seed=0),
        "a2": make_peft_adapter(base, root / "a2", r=8, targets=("q_proj", "down_proj"), seed=1),
        "rank16": make_peft_adapter(base, root / "rank16", r=16, seed=2),
        "qwen3": make_peft_adapter(tiny_checkpoint_factory("qwen3"), root / "qwen3", r=4, seed=3),
    }


@pytest.fixture(scope="module")
def model(base):
    model = lora_model(base)
    yield model
    model.shutdown()


@pytest.fixture(scope="module")
def refs(base, peft) -> dict[str | None, list[int]]:
    return {None: reference(base, None), "a1": reference(base, peft["a1"]), "a2": reference(base, peft["a2"])}


@pytest.fixture
def server(model, tmp_path):
    cp, keys = control_plane(tmp_path)
    app = create_app(Settings(data_dir=tmp_path), [model], cp)
    with TestClient(app) as client:
        yield client, keys
    for entry in list(app.state.plinth.adapters.visible_all()):
        app.state.plinth.adapters.unregister(entry)  # leave the shared engine clean
    cp.close()


def _complete(client, keys, who: str, model: str, prompt=PROMPT):
    body = {"model": model, "prompt": prompt, "max_tokens": MAX_TOKENS, "temperature": 0, "ignore_eos": True}
    return client.post("/v1/completions", json=body, headers=keys.auth(who))


def _text(model, ids: list[int]) -> str:
    return model.decode(ids)


def _register(client, keys, who: str, **body):
    return client.post("/v1/adapters", json=body, headers=keys.auth(who))


def test_register_list_use_delete(server, model, peft, refs):
    client, keys = server
    r = _register(client, keys, "admin", name="sql", source=str(peft["a1"]))
    assert r.status_code == 201, r.text
    [card] = r.json()["data"]
    assert card["name"] == "sql" and card["base_model"] == "base" and card["owned_by"] == "acme"
    assert (card["rank"], card["target_modules"], card["status"]) == (
        4,
        ["q_proj", "v_proj"],
        "cached",
    )  # in host memory, no slot yet
    assert card["source"] == str(peft["a1"])
    listed = client.get("/v1/adapters", headers=keys.auth("acme")).json()["data"]
    assert [a["name"] for a in listed] == ["sql"]

    adapted = _complete(client, keys, "acme", "sql").json()
    base_out = _complete(client, keys, "acme", "base").json()
    assert adapted["model"] == "sql"
    assert adapted["choices"][0]["text"] == _text(model, refs["a1"])
    assert base_out["choices"][0]["text"] == _text(model, refs[None])
    assert refs["a1"] != refs[None]

    cards = {m["id"]: m for m in client.get("/v1/models", headers=keys.auth("acme")).json()["data"]}
    assert (cards["sql"]["parent"], cards["sql"]["owned_by"]) == ("base", "acme")
    assert cards["base"]["parent"] is None

    r = client.delete("/v1/adapters/sql", headers=keys.auth("acme"))
    assert r.json() == {"id": "sql", "object": "adapter", "deleted": True}
    r = _complete(client, keys, "acme", "sql")
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    assert client.delete("/v1/adapters/sql", headers=keys.auth("acme")).status_code == 404
    assert "sql" not in model.adapters() and "acme:sql" not in model.adapters()


def test_upload_of_an_lmi_archive_as_a_non_admin(server, model, peft, refs, tmp_path):
    client, keys = server
    archive = make_lmi_archive(tmp_path / "two.tar.gz", {"x": peft["a1"], "y": peft["a2"]})
    with archive.open("rb") as f:
        r = client.post("/v1/adapters", files={"file": ("two.tar.gz", f)}, headers=keys.auth("beta"))
    assert r.status_code == 201, r.text
    cards = r.json()["data"]
    assert [(c["name"], c["owned_by"], c["source"]) for c in cards] == [
        ("x", "beta", "upload:two.tar.gz"),
        ("y", "beta", "upload:two.tar.gz"),
    ]
    assert _complete(client, keys, "beta", "y").json()["choices"][0]["text"] == _text(model, refs["a2"])
    assert list((tmp_path / "adapters" / "uploads").iterdir()) == []  # the upload itself is gone

    with archive.open("rb") as f:  # one adapter picked out of the archive by name
        r = client.post(
            "/v1/adapters",
            files={"file": ("two.tar.gz", f)},
            data={"name": "x", "base_model": "base"},
            headers=keys.auth("acme"),
        )
    assert r.status_code == 201 and [c["name"] for c in r.json()["data"]] == ["x"]
    assert _complete(client, keys, "acme", "x").json()["choices"][0]["text"] == _text(model, refs["a1"])


def test_upload_size_limit(model, tmp_path, peft):
    cp, keys = control_plane(tmp_path)
    app = create_app(Settings(data_dir=tmp_path, max_upload_mb=1), [model], cp)
    body = b"".join(
        [b'--B\r\nContent-Disposition: form-data; name="file"; filename="big.tar.gz"\r\n\r\n',
         b"\0" * (2 << 20), b"\r\n--B--\r\n"]
    )  # fmt: skip
    headers = {**keys.auth("beta"), "Content-Type": "multipart/form-data; boundary=B"}
    with TestClient(app) as client:
        r = client.post("/v1/adapters", content=body, headers=headers)  # refused from Content-Length
        assert r.status_code == 413
        chunks = (body[i : i + 65536] for i in range(0, len(body), 65536))  # chunked: no length
        r = client.post("/v1/adapters", content=chunks, headers=headers)
        assert r.status_code == 413 and "limit" in r.json()["error"]["message"]
    assert list((tmp_path / "adapters" / "uploads").iterdir()) == []  # nothing left behind
    cp.close()


def test_tenants_never_see_each_others_adapters(server, model, peft, refs):
    client, keys = server
    assert _register(client, keys, "admin", name="secret", source=str(peft["a1"])).status_code == 201
    unknown = _complete(client, keys, "beta", "no-such-model")
    hidden = _complete(client, keys, "beta", "secret")
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.json()["error"]["code"] == unknown.json()["error"]["code"] == "model_not_found"
    assert "secret" not in str(client.get("/v1/adapters", headers=keys.auth("beta")).json())
    assert "secret" not in str(client.get("/v1/models", headers=keys.auth("beta")).json())
    assert client.delete("/v1/adapters/secret", headers=keys.auth("beta")).status_code == 404
    r = client.post("/v1/unload_lora_adapter", json={"lora_name": "secret"}, headers=keys.auth("beta"))
    assert r.status_code == 404
    assert _complete(client, keys, "acme", "secret").status_code == 200  # still there for its owner


def test_same_name_in_two_tenants_are_two_adapters(server, model, peft, refs, tmp_path):
    client, keys = server
    assert _register(client, keys, "admin", name="same", source=str(peft["a1"])).status_code == 201
    archive = make_lmi_archive(tmp_path / "a2.tar.gz", {"same": peft["a2"]})
    with archive.open("rb") as f:
        r = client.post("/v1/adapters", files={"file": ("a2.tar.gz", f)}, headers=keys.auth("beta"))
    assert r.status_code == 201, r.text
    assert _complete(client, keys, "acme", "same").json()["choices"][0]["text"] == _text(model, refs["a1"])
    assert _complete(client, keys, "beta", "same").json()["choices"][0]["text"] == _text(model, refs["a2"])


def test_public_adapters_and_permissions(server, model, peft, refs, tmp_path):
    client, keys = server
    r = _register(client, keys, "acme", name="p", source=str(peft["a1"]), public=True)
    assert r.status_code == 403  # public needs an admin key (and so does a server path)
    archive = make_lmi_archive(tmp_path / "p.tar.gz", {"p": peft["a1"]})
    with archive.open("rb") as f:
        r = client.post("/v1/adapters", files={"file": ("p.tar.gz", f)}, data={"public": "true"},
                        headers=keys.auth("beta"))  # fmt: skip
    assert r.status_code == 403
    for source in (str(peft["a1"]), str(archive), "./relative/dir"):
        r = _register(client, keys, "beta", name="mine", source=source)
        assert r.status_code == 403, source
        assert "upload" in r.json()["error"]["message"]
    r = _register(client, keys, "admin", name="rel", source="./relative/dir")
    assert r.status_code == 400 and "absolute" in r.json()["error"]["message"]

    r = _register(client, keys, "admin", name="p", source=str(peft["a1"]), public=True)
    assert r.status_code == 201 and r.json()["data"][0]["owned_by"] == "public"
    for who in ("acme", "beta"):
        cards = {m["id"]: m for m in client.get("/v1/models", headers=keys.auth(who)).json()["data"]}
        assert (cards["p"]["owned_by"], cards["p"]["parent"]) == ("public", "base")
        assert _complete(client, keys, who, "p").json()["choices"][0]["text"] == _text(model, refs["a1"])
    assert client.delete("/v1/adapters/p", headers=keys.auth("beta")).status_code == 403
    assert client.delete("/v1/adapters/p", headers=keys.auth("admin")).status_code == 200
    assert _complete(client, keys, "beta", "p").status_code == 404


@pytest.mark.parametrize(
    ("adapter", "problem"),
    [
        ("qwen3", "different base model"),
        ("rank16", "exceeds the server's maximum LoRA rank 8"),
        ("corrupt", "corrupt"),
        ("missing", "does not exist"),
    ],
)
def test_invalid_adapters_are_400_naming_adapter_and_problem(server, model, peft, tmp_path, adapter, problem):
    client, keys = server
    source = peft.get(adapter)
    if adapter == "corrupt":
        source = Path(shutil.copytree(peft["a1"], tmp_path / "corrupt"))
        (source / "adapter_model.safetensors").write_bytes(b"not a safetensors file")
    elif adapter == "missing":
        source = tmp_path / "missing"
    r = _register(client, keys, "admin", name="bad", source=str(source))
    assert r.status_code == 400, r.text
    message = r.json()["error"]["message"]
    assert "adapter 'bad'" in message and problem in message, message
    assert "acme:bad" not in message  # engine-level names stay internal
    assert client.get("/v1/adapters", headers=keys.auth("admin")).json()["data"] == []


def test_bad_names_base_models_and_duplicates(server, peft):
    client, keys = server
    for name in ("a/b", "x:y", "", "base"):
        assert _register(client, keys, "admin", name=name, source=str(peft["a1"])).status_code == 400, name
    r = _register(client, keys, "admin", name="ok", source=str(peft["a1"]), base_model="nope")
    assert r.status_code == 400 and r.json()["error"]["param"] == "base_model"
    assert _register(client, keys, "admin", name="ok", source=str(peft["a1"])).status_code == 201
    r = _register(client, keys, "admin", name="ok", source=str(peft["a2"]))
    assert r.status_code == 409 and r.json()["error"]["code"] == "adapter_exists"


def test_lmi_adapters_field_and_header(server, model, peft, refs):
    client, keys = server
    assert _register(client, keys, "admin", name="sql", source=str(peft["a1"])).status_code == 201
    text = "hello world"
    params = {"max_new_tokens": 6, "ignore_eos_token": True}

    def lmi(headers=None, **body):
        return client.post(
            "/invocations", json={"inputs": body.pop("inputs", text), "parameters": params, **body},
            headers={**keys.auth("acme"), **(headers or {})},
        )  # fmt: skip

    base_text = lmi().json()["generated_text"]
    sql_text = lmi(adapters="sql").json()["generated_text"]
    assert base_text != sql_text
    both = lmi(inputs=[text, text], adapters=["", "sql"]).json()
    assert [o["generated_text"] for o in both] == [base_text, sql_text]
    header = {"X-Amzn-SageMaker-Adapter-Identifier": "sql"}
    assert lmi(headers=header).json()["generated_text"] == sql_text
    assert [o["generated_text"] for o in lmi(headers=header, inputs=[text, text]).json()] == [sql_text] * 2
    assert lmi(adapters="nope").status_code == 404
    assert lmi(headers={"X-Amzn-SageMaker-Adapter-Identifier": "nope"}).status_code == 404
    assert lmi(inputs=[text, text], adapters=["sql"]).status_code == 400


def test_vllm_load_and_unload(server, model, peft, refs):
    client, keys = server
    load = {"lora_name": "v", "lora_path": str(peft["a1"])}
    r = client.post("/v1/load_lora_adapter", json=load, headers=keys.auth("admin"))
    assert (r.status_code, r.text) == (200, "Success: LoRA adapter 'v' added successfully.")
    assert r.headers["content-type"].startswith("text/plain")
    r = client.post("/v1/load_lora_adapter", json=load, headers=keys.auth("admin"))
    assert r.status_code == 400 and "has already been loaded" in r.json()["error"]["message"]
    r = client.post("/v1/load_lora_adapter", json={**load, "lora_name": "w"}, headers=keys.auth("beta"))
    assert r.status_code == 403  # a server path needs an admin key here too
    assert _complete(client, keys, "acme", "v").json()["choices"][0]["text"] == _text(model, refs["a1"])
    r = client.post("/v1/unload_lora_adapter", json={"lora_name": "v"}, headers=keys.auth("acme"))
    assert (r.status_code, r.text) == (200, "Success: LoRA adapter 'v' removed successfully.")
    r = client.post("/v1/unload_lora_adapter", json={"lora_name": "v"}, headers=keys.auth("acme"))
    assert r.status_code == 404 and "cannot be found" in r.json()["error"]["message"]
    assert _complete(client, keys, "acme", "v").status_code == 404


def test_registrations_survive_a_restart(base, peft, tmp_path, caplog):
    cp, keys = control_plane(tmp_path)
    doomed = Path(shutil.copytree(peft["a2"], tmp_path / "doomed"))
    first = lora_model(base)
    with TestClient(create_app(Settings(data_dir=tmp_path), [first], cp)) as client:
        assert _register(client, keys, "admin", name="mine", source=str(peft["a1"])).status_code == 201
        assert (
            _register(client, keys, "admin", name="pub", source=str(peft["a2"]), public=True).status_code
            == 201
        )
        assert _register(client, keys, "admin", name="gone", source=str(doomed)).status_code == 201
        before = _complete(client, keys, "acme", "mine").json()["choices"][0]["text"]
    first.shutdown()
    shutil.rmtree(doomed)

    second = lora_model(base)  # a new engine: it knows no adapters until the app registers them
    try:
        with (
            caplog.at_level(logging.WARNING),
            TestClient(create_app(Settings(data_dir=tmp_path), [second], cp)) as client,
        ):
            cards = client.get("/v1/adapters", headers=keys.auth("acme")).json()["data"]
            assert {a["name"]: a["owned_by"] for a in cards} == {"mine": "acme", "pub": "public"}
            # validated at start-up but left on disk: no host memory until a request needs them
            assert {a["name"]: a["status"] for a in cards} == {"mine": "disk", "pub": "disk"}
            assert _complete(client, keys, "acme", "mine").json()["choices"][0]["text"] == before
            cards = client.get("/v1/adapters", headers=keys.auth("acme")).json()["data"]
            assert {a["name"]: a["status"] for a in cards} == {"mine": "resident", "pub": "disk"}
            assert sorted(second.adapters()) == ["acme:mine", "public:pub"]
        assert "gone" in caplog.text and "skipped" in caplog.text
    finally:
        second.shutdown()
        cp.close()


def test_adapters_dir_registers_public_adapters_at_start(model, peft, tmp_path):
    directory = tmp_path / "adapters-dir"
    shutil.copytree(peft["a1"], directory / "alpha")
    shutil.copytree(peft["a2"], directory / "beta-lora")
    (directory / "junk").mkdir()
    cp, keys = control_plane(tmp_path)
    app = create_app(Settings(data_dir=tmp_path / "data", adapters=[directory]), [model], cp)
    with TestClient(app) as client:
        for who in ("acme", "beta"):
            cards = client.get("/v1/adapters", headers=keys.auth(who)).json()["data"]
            assert [(c["name"], c["owned_by"]) for c in cards] == [
                ("alpha", "public"),
                ("beta-lora", "public"),
            ]
        assert _complete(client, keys, "beta", "alpha").status_code == 200
        metrics = client.get("/metrics").text
        assert 'plinth_lora_adapters_registered{model="base"} 2.0' in metrics
        assert 'plinth_lora_slot_loads_total{model="base"}' in metrics
        assert "alpha" not in metrics  # adapter names never reach the unauthenticated scrape
        for entry in app.state.plinth.adapters.visible_all():
            app.state.plinth.adapters.unregister(entry)
    cp.close()
