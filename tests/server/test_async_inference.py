"""Asynchronous inference (SageMaker's shape): 202 with InferenceId and OutputLocation, 404 with Retry-After
until the result is ready, then the /invocations response; input from an uploaded file; results expire."""

from __future__ import annotations

import json
import time

from fastapi.testclient import TestClient
from server_fakes import FakeEmbedder

from plinth.config import Settings
from plinth.control import create_key, open_control_plane
from plinth.engine import BATCH_PRIORITY
from plinth.llm.scripted_served import SCRIPT, ScriptedServedModel
from plinth.server import create_app


def make_client(tmp_path, model, **settings):
    cp = open_control_plane(f"sqlite:///{tmp_path / 'plinth.db'}")
    key = create_key(cp, "acme")
    app = create_app(Settings(data_dir=tmp_path, **settings), [model], cp, embedder=FakeEmbedder())
    return TestClient(app, headers={"Authorization": f"Bearer {key}"}), cp


def test_202_then_404_with_retry_after_then_the_result(tmp_path):
    model = ScriptedServedModel(delay=0.1)
    client, _ = make_client(tmp_path, model)
    with client:
        accepted = client.post(
            "/invocations-async", json={"inputs": "What is DL?", "parameters": {"details": True}}
        )
        assert accepted.status_code == 202
        body = accepted.json()
        assert body["InferenceId"].startswith("inf-")
        assert body["OutputLocation"].endswith(f"/invocations-async/{body['InferenceId']}")
        pending = client.get(body["OutputLocation"])
        assert pending.status_code == 404 and pending.headers["Retry-After"] == "1"
        assert pending.json()["error"]["code"] == "inference_in_progress"
        deadline = time.monotonic() + 10
        while (result := client.get(body["OutputLocation"])).status_code == 404:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert result.status_code == 200
        assert result.json()["generated_text"] == "".join(SCRIPT[:-1])
        assert result.json()["details"]["finish_reason"] == "eos_token"
        assert (
            client.post(
                "/invocations", json={"inputs": "What is DL?", "parameters": {"details": True}}
            ).json()
            == result.json()
        )
    assert model.calls[0][1].priority == BATCH_PRIORITY


def test_input_location_names_an_uploaded_file_and_errors_are_kept(tmp_path):
    client, cp = make_client(tmp_path, ScriptedServedModel())
    with client:
        upload = {
            "file": ("in.json", json.dumps({"inputs": "hi", "parameters": {"max_new_tokens": 2}}).encode())
        }
        file_id = client.post("/v1/files", data={"purpose": "batch"}, files=upload).json()["id"]
        location = client.post(
            "/invocations-async", headers={"X-Amzn-SageMaker-InputLocation": f"/v1/files/{file_id}"}
        ).json()["OutputLocation"]
        assert _wait(client, location).json() == {"generated_text": "Hello there"}
        bad = client.post("/invocations-async", json={"inputs": "hi", "adapters": "nope"}).json()[
            "OutputLocation"
        ]
        failed = _wait(client, location=bad)
        assert failed.status_code == 404 and failed.json()["error"]["code"] == "model_not_found"
        missing = client.post("/invocations-async", headers={"X-Amzn-SageMaker-InputLocation": "file-nope"})
        assert missing.status_code == 404
        assert client.post("/invocations-async", json={"parameters": {}}).status_code == 400  # no inputs
        other = {"Authorization": f"Bearer {create_key(cp, 'globex')}"}
        assert client.get(location, headers=other).status_code == 404
        assert "Retry-After" not in client.get(location, headers=other).headers


def test_results_are_kept_for_the_configured_time(tmp_path):
    client, _ = make_client(tmp_path, ScriptedServedModel(), async_result_ttl_s=0.5)
    with client:
        location = client.post("/invocations-async", json={"inputs": "hi"}).json()["OutputLocation"]
        assert _wait(client, location).status_code == 200
        deadline = time.monotonic() + 10
        while (gone := client.get(location)).status_code == 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert gone.status_code == 404 and "Retry-After" not in gone.headers
        assert list((tmp_path / "async-results").glob("*.json")) == []


def _wait(client, location):
    deadline = time.monotonic() + 10
    while (result := client.get(location)).status_code == 404 and "Retry-After" in result.headers:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return result
