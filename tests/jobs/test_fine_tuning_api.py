"""Fine-tuning over HTTP on a tiny model: upload a file, create a job, watch its events and checkpoints,
chat with the adapter it registers (no restart), cancel, resume after the server stops mid-job, and every
bad input (a 4xx naming the field; another tenant's file or job is a 404)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import fsspec
import pytest
from adapter_fixtures import control_plane, lora_model
from fastapi.testclient import TestClient

from plinth.config import Settings
from plinth.control import list_adapters
from plinth.server import create_app

pytestmark = pytest.mark.slow  # each job trains in a spawned worker (transformers + PEFT start-up)

FT = "/v1/fine_tuning/jobs"


def chat_lines(n: int) -> str:
    rows = [
        {"messages": [
            {"role": "system", "content": "Answer with the colour."},
            {"role": "user", "content": f"What colour is item {i}?"},
            {"role": "assistant", "content": ["red", "green", "blue"][i % 3]},
        ]}
        for i in range(n)
    ]  # fmt: skip
    return "".join(json.dumps(r) + "\n" for r in rows)


@pytest.fixture(scope="module")
def base(tiny_checkpoint_factory):
    return tiny_checkpoint_factory("llama")


def make_app(base: Path, data: Path):
    cp, keys = control_plane(data)
    settings = Settings(data_dir=data, max_lora_rank=8, job_threads=1)
    return create_app(settings, [lora_model(base)], cp), keys, cp


def upload(client, keys, who: str, text: str, purpose: str = "fine-tune", name: str = "train.jsonl"):
    files = {"file": (name, text.encode(), "application/jsonl")}
    return client.post("/v1/files", headers=keys.auth(who), data={"purpose": purpose}, files=files)


def wait_for(client, keys, job_id: str, statuses: tuple[str, ...], timeout: float = 240):
    deadline = time.monotonic() + timeout
    while (job := client.get(f"{FT}/{job_id}", headers=keys.auth("acme")).json())["status"] not in statuses:
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
    return job


def test_round_trip_train_serve_and_tenancy(base, tmp_path):
    app, keys, cp = make_app(base, tmp_path)
    with TestClient(app) as client:
        file = upload(client, keys, "acme", chat_lines(24)).json()
        assert (
            file["object"] == "file" and file["purpose"] == "fine-tune" and file["filename"] == "train.jsonl"
        )
        hyper = {"n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 5}
        body = {"model": "base", "training_file": file["id"], "suffix": "colours", "seed": 7,
                "method": {"type": "supervised", "supervised": {"hyperparameters": hyper}}}  # fmt: skip
        created = client.post(FT, headers=keys.auth("acme"), json=body)
        assert created.status_code == 200, created.text
        job = created.json()
        assert job["status"] in ("validating_files", "queued") and job["fine_tuned_model"] is None
        assert job["hyperparameters"] == hyper

        done = wait_for(client, keys, job["id"], ("succeeded", "failed", "cancelled"))
        assert done["status"] == "succeeded", done["error"]
        name = done["fine_tuned_model"]
        assert name == f"ft:base:acme:colours:{job['id'].removeprefix('ftjob-')}"
        assert done["trained_tokens"] > 0

        events = client.get(f"{FT}/{job['id']}/events?limit=1000", headers=keys.auth("acme")).json()["data"]
        losses = [e["data"]["train_loss"] for e in events if "train_loss" in e["data"]]
        assert len(losses) >= 2 and all(loss > 0 for loss in losses)
        assert any("valid_loss" in e["data"] for e in events)
        assert events[0]["message"] == "The job has successfully completed"  # newest first
        checkpoints = client.get(f"{FT}/{job['id']}/checkpoints", headers=keys.auth("acme")).json()["data"]
        assert [c["step_number"] for c in checkpoints] == sorted(
            (c["step_number"] for c in checkpoints), reverse=True
        )
        assert len(checkpoints) == 2 and all(c["fine_tuning_job_id"] == job["id"] for c in checkpoints)

        models = [m["id"] for m in client.get("/v1/models", headers=keys.auth("acme")).json()["data"]]
        assert name in models  # served at once, no restart
        chat = {
            "model": name,
            "messages": [{"role": "user", "content": "What colour is item 4?"}],
            "max_tokens": 4,
        }
        assert client.post("/v1/chat/completions", headers=keys.auth("acme"), json=chat).status_code == 200
        listed = client.get(f"{FT}?limit=5", headers=keys.auth("acme")).json()
        assert [j["id"] for j in listed["data"]] == [job["id"]] and listed["has_more"] is False

        # Another tenant sees none of it.
        assert client.get(f"{FT}/{job['id']}", headers=keys.auth("beta")).status_code == 404
        assert client.get(f"/v1/files/{file['id']}", headers=keys.auth("beta")).status_code == 404
        assert client.post(f"{FT}/{job['id']}/cancel", headers=keys.auth("beta")).status_code == 404
        assert name not in [
            m["id"] for m in client.get("/v1/models", headers=keys.auth("beta")).json()["data"]
        ]
        assert client.post("/v1/chat/completions", headers=keys.auth("beta"), json=chat).status_code == 404
        other = {**body, "training_file": file["id"]}
        assert client.post(FT, headers=keys.auth("beta"), json=other).status_code == 404
    cp.close()


def test_cancel_and_resume_after_a_restart(base, tmp_path):
    app, keys, cp = make_app(base, tmp_path)
    long = {"n_epochs": 30, "batch_size": 2}
    with TestClient(app) as client:
        file = upload(client, keys, "acme", chat_lines(40)).json()["id"]
        body = {"model": "base", "training_file": file, "method": {"supervised": {"hyperparameters": long}}}
        doomed = client.post(FT, headers=keys.auth("acme"), json=body).json()["id"]
        wait_for(client, keys, doomed, ("running",))
        time.sleep(2)
        asked = time.monotonic()
        assert client.post(f"{FT}/{doomed}/cancel", headers=keys.auth("acme")).json()["id"] == doomed
        cancelled = wait_for(client, keys, doomed, ("cancelled", "succeeded", "failed"), timeout=60)
        assert cancelled["status"] == "cancelled" and time.monotonic() - asked < 20
        assert client.post(f"{FT}/{doomed}/cancel", headers=keys.auth("acme")).json()["status"] == "cancelled"

        short = {"n_epochs": 3, "batch_size": 4}
        body = {"model": "base", "training_file": file, "method": {"supervised": {"hyperparameters": short}}}
        resumed = client.post(FT, headers=keys.auth("acme"), json=body).json()["id"]
        deadline = time.monotonic() + 240
        while not client.get(f"{FT}/{resumed}/checkpoints", headers=keys.auth("acme")).json()["data"]:
            assert time.monotonic() < deadline
            time.sleep(0.3)
    # The server stopped mid-job (its worker was terminated); a new one resumes from the checkpoint.
    cp.close()
    app, keys2, cp = make_app_again(base, tmp_path)
    with TestClient(app) as client:
        done = wait_for(client, keys2, resumed, ("succeeded", "failed", "cancelled"))
        assert done["status"] == "succeeded", done["error"]
        messages = [
            e["message"]
            for e in client.get(f"{FT}/{resumed}/events?limit=1000", headers=keys2.auth("acme")).json()[
                "data"
            ]
        ]
        assert "Resuming from the last checkpoint" in messages
        assert any(m.startswith("The server restarted") for m in messages)
        assert done["fine_tuned_model"] in [
            m["id"] for m in client.get("/v1/models", headers=keys2.auth("acme")).json()["data"]
        ]
    cp.close()


def test_with_an_artifact_store_a_second_server_serves_the_adapter_from_it(base, tmp_path):
    """fsspec's real ``memory://`` filesystem stands in for an object store (s3fs cannot be installed
    beside this environment's botocore); each app has its own data dir, so the second can only fetch."""
    store = f"memory://plinth-{uuid.uuid4().hex}"
    cp, keys = control_plane(tmp_path)
    settings = Settings(data_dir=tmp_path / "one", max_lora_rank=8, job_threads=1, artifact_store=store)
    models = [lora_model(base), lora_model(base)]
    chat = {
        "messages": [{"role": "user", "content": "What colour is item 4?"}],
        "max_tokens": 4,
        "temperature": 0,
    }
    try:
        with TestClient(create_app(settings, [models[0]], cp)) as one:
            file = upload(one, keys, "acme", chat_lines(8)).json()["id"]
            hyper = {"n_epochs": 1, "batch_size": 4}
            body = {
                "model": "base",
                "training_file": file,
                "method": {"supervised": {"hyperparameters": hyper}},
            }
            job = one.post(FT, headers=keys.auth("acme"), json=body).json()
            done = wait_for(one, keys, job["id"], ("succeeded", "failed", "cancelled"))
            assert done["status"] == "succeeded", done["error"]
            name = done["fine_tuned_model"]
            first = one.post("/v1/chat/completions", headers=keys.auth("acme"), json={**chat, "model": name})
        uploaded = f"{store}/fine_tuned/{job['id']}"
        files = fsspec.filesystem("memory").ls(uploaded.removeprefix("memory://"), detail=False)
        assert sorted(Path(f).name for f in files) == [
            "adapter_config.json",
            "adapter_model.safetensors",
            "training.json",
        ]
        assert [row.path for row in list_adapters(cp)] == [uploaded]

        again = Settings(data_dir=tmp_path / "two", max_lora_rank=8, job_threads=1, artifact_store=store)
        with TestClient(create_app(again, [models[1]], cp)) as two:
            second = two.post("/v1/chat/completions", headers=keys.auth("acme"), json={**chat, "model": name})
        assert second.status_code == 200, second.text
        assert second.json()["choices"] == first.json()["choices"]
        assert any((tmp_path / "two" / "adapters" / "remote").iterdir())  # fetched from the store
    finally:
        for model in models:
            model.shutdown()
        cp.close()


def make_app_again(base: Path, data: Path):
    """The same data dir and database, keys looked up again (the first app's are still valid)."""
    from plinth.control import open_control_plane

    cp = open_control_plane(f"sqlite:///{data / 'plinth.db'}")
    settings = Settings(data_dir=data, max_lora_rank=8, job_threads=1)
    app = create_app(settings, [lora_model(base)], cp)
    return app, _SameKeys(app), cp


class _SameKeys:
    """Fresh keys for tenant acme on the reopened control plane."""

    def __init__(self, app) -> None:
        from plinth.control import create_key

        self.acme = create_key(app.state.plinth.control_plane, "acme")

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {getattr(self, who)}"}


@pytest.mark.parametrize(
    ("change", "status", "param"),
    [
        ({"model": "nope"}, 400, "model"),
        ({"training_file": "file-missing"}, 404, "training_file"),
        ({"validation_file": "file-missing"}, 404, "validation_file"),
        ({"method": {"supervised": {"hyperparameters": {"n_epochs": 0}}}}, 400, None),
        ({"method": {"supervised": {"hyperparameters": {"learning_rate_multiplier": -1}}}}, 400, None),
        ({"lora": {"r": 64}}, 400, "lora.r"),
        ({"lora": {"target_modules": ["embed_tokens"]}}, 400, None),
        ({"suffix": "has spaces"}, 400, None),
        ({"unknown": 1}, 400, None),
        ({"hyperparameters": {"n_epochs": 2}, "method": {"supervised": {}}}, 400, None),
    ],
)
def test_bad_job_requests_are_4xx_naming_the_field(base, tmp_path, change, status, param):
    app, keys, cp = make_app(base, tmp_path)
    client = TestClient(app)  # no lifespan: nothing runs, only validation
    file = upload(client, keys, "acme", chat_lines(3)).json()["id"]
    body = {"model": "base", "training_file": file, **change}
    response = client.post(FT, headers=keys.auth("acme"), json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"] and (param is None or error["param"] == param)
    assert client.get(FT, headers=keys.auth("acme")).json()["data"] == []  # nothing recorded
    cp.close()


def test_bad_uploads_are_400_listing_the_first_bad_lines(base, tmp_path):
    app, keys, cp = make_app(base, tmp_path)
    client = TestClient(app)
    bad = chat_lines(2) + "not json\n" + json.dumps({"messages": [{"role": "user", "content": "x"}]}) + "\n"
    response = upload(client, keys, "acme", bad)
    assert response.status_code == 400 and response.json()["error"]["param"] == "file"
    message = response.json()["error"]["message"]
    assert "line 3" in message and "line 4" in message
    assert upload(client, keys, "acme", chat_lines(2), purpose="weights").status_code == 400
    batch = upload(client, keys, "acme", "{}\n", purpose="batch").json()
    body = {"model": "base", "training_file": batch["id"]}
    wrong = client.post(FT, headers=keys.auth("acme"), json=body)
    assert wrong.status_code == 400 and wrong.json()["error"]["param"] == "training_file"
    listed = client.get("/v1/files", headers=keys.auth("acme")).json()["data"]
    assert [f["id"] for f in listed] == [batch["id"]]  # the bad uploads left nothing behind
    assert client.get(f"/v1/files/{batch['id']}/content", headers=keys.auth("acme")).content == b"{}\n"
    assert client.delete(f"/v1/files/{batch['id']}", headers=keys.auth("beta")).status_code == 404
    assert client.delete(f"/v1/files/{batch['id']}", headers=keys.auth("acme")).json()["deleted"] is True
    assert client.get("/v1/files", headers=keys.auth("acme")).json()["data"] == []
    cp.close()
