"""The Batch API over HTTP with the scripted model and a real SQLite control plane: every endpoint kind,
a bad line failing alone, file-level validation, cancel, tenancy, batch priority, and a restart midway
that loses and repeats no line (two apps over one data dir, one after the other)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from server_fakes import FakeEmbedder

from plinth.config import Settings
from plinth.control import create_key, open_control_plane
from plinth.engine import BATCH_PRIORITY
from plinth.llm.scripted_served import ScriptedServedModel
from plinth.server import create_app

CHAT = "/v1/chat/completions"


def make_app(data: Path, model: ScriptedServedModel, **settings: Any) -> tuple[Any, dict[str, str], Any]:
    cp = open_control_plane(f"sqlite:///{data / 'plinth.db'}")
    key = create_key(cp, "acme")  # a new key per app: both are valid for the tenant
    app = create_app(Settings(data_dir=data, **settings), [model], cp, embedder=FakeEmbedder())
    return app, {"Authorization": f"Bearer {key}"}, cp


def chat_line(custom_id: str, text: str, **body: Any) -> dict[str, Any]:
    body = {"model": "fake-model", "messages": [{"role": "user", "content": text}], **body}
    return {"custom_id": custom_id, "method": "POST", "url": CHAT, "body": body}


def upload(client: TestClient, auth: dict[str, str], lines: list[Any]) -> str:
    text = "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines)
    files = {"file": ("batch.jsonl", text.encode(), "application/jsonl")}
    response = client.post("/v1/files", headers=auth, data={"purpose": "batch"}, files=files)
    assert response.status_code == 200, response.text
    return response.json()["id"]


def create(
    client: TestClient, auth: dict[str, str], lines: list[Any], endpoint: str = CHAT
) -> dict[str, Any]:
    file_id = upload(client, auth, lines)
    body = {
        "input_file_id": file_id,
        "endpoint": endpoint,
        "completion_window": "24h",
        "metadata": {"k": "v"},
    }
    response = client.post("/v1/batches", headers=auth, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def wait(
    client: TestClient, auth: dict[str, str], batch_id: str, statuses: tuple[str, ...]
) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while (batch := client.get(f"/v1/batches/{batch_id}", headers=auth).json())["status"] not in statuses:
        assert time.monotonic() < deadline, batch
        time.sleep(0.05)
    return batch


def content(client: TestClient, auth: dict[str, str], file_id: str | None) -> dict[str, dict[str, Any]]:
    if file_id is None:
        return {}
    text = client.get(f"/v1/files/{file_id}/content", headers=auth).text
    records = [json.loads(line) for line in text.splitlines()]
    by_id = {r["custom_id"]: r for r in records}
    assert len(by_id) == len(records), "each custom_id once"
    return by_id


def test_chat_batch_matches_interactive_and_a_bad_line_fails_alone(tmp_path):
    model = ScriptedServedModel(max_model_len=512)
    app, auth, _ = make_app(tmp_path, model)
    lines = [chat_line(f"req-{i}", f"question {i}", max_tokens=3 + i % 3, temperature=0) for i in range(6)]
    lines.append(chat_line("bad-temp", "hi", temperature=9))  # SamplingParams says no
    lines.append(chat_line("bad-model", "hi", model="nope"))  # 404 model_not_found
    lines.append(chat_line("bad-body", "hi", messages="not a list"))  # pydantic says no
    with TestClient(app) as client:
        batch = create(client, auth, lines)
        assert batch["status"] == "validating" and batch["metadata"] == {"k": "v"}
        done = wait(client, auth, batch["id"], ("completed",))
        assert done["request_counts"] == {"total": 9, "completed": 6, "failed": 3}
        assert done["in_progress_at"] and done["finalizing_at"] and done["completed_at"]
        outputs = content(client, auth, done["output_file_id"])
        errors = content(client, auth, done["error_file_id"])
        for line in lines[:6]:
            interactive = client.post(CHAT, headers=auth, json=line["body"]).json()
            got = outputs[line["custom_id"]]
            assert got["error"] is None and got["response"]["status_code"] == 200
            assert got["id"].startswith("batch_req_") and got["response"]["request_id"]
            for volatile in ("id", "created"):
                got["response"]["body"].pop(volatile), interactive.pop(volatile)
            assert got["response"]["body"] == interactive
        assert errors["bad-temp"]["response"]["status_code"] == 400
        assert errors["bad-temp"]["response"]["body"]["error"]["param"] == "temperature"
        assert errors["bad-model"]["response"]["status_code"] == 404
        assert errors["bad-body"]["response"]["body"]["error"]["param"].startswith("messages")
        files = client.get("/v1/files", headers=auth, params={"purpose": "batch_output"}).json()["data"]
        assert {f["id"] for f in files} == {done["output_file_id"], done["error_file_id"]}
    batch_calls = [params for _, params, _, rid in model.calls if params.priority == BATCH_PRIORITY]
    assert len(batch_calls) == 6  # every batch line reached the model in the batch priority class
    assert len(model.calls) == 12  # ... and the interactive repeats in the interactive class
    tenants = {params.share_group for _, params, _, _ in model.calls}
    assert len(tenants) == 1 and None not in tenants  # batch lines take their tenant's fair share


def test_completions_and_embeddings_batches(tmp_path):
    app, auth, _ = make_app(tmp_path, ScriptedServedModel(max_model_len=512))
    with TestClient(app) as client:
        completions = [
            {"custom_id": f"c{i}", "method": "POST", "url": "/v1/completions",
             "body": {"model": "fake-model", "prompt": f"say {i}", "max_tokens": 2}}
            for i in range(3)
        ]  # fmt: skip
        batch = wait(client, auth, create(client, auth, completions, "/v1/completions")["id"], ("completed",))
        out = content(client, auth, batch["output_file_id"])
        assert out["c0"]["response"]["body"]["object"] == "text_completion"
        assert out["c0"]["response"]["body"]["choices"][0]["text"] == "Hello there"
        embeds = [
            {"custom_id": f"e{i}", "method": "POST", "url": "/v1/embeddings",
             "body": {"model": "all-MiniLM-L6-v2", "input": ["a", "bb"], "encoding_format": "float"}}
            for i in range(2)
        ]  # fmt: skip
        batch = wait(client, auth, create(client, auth, embeds, "/v1/embeddings")["id"], ("completed",))
        out = content(client, auth, batch["output_file_id"])
        assert out["e1"]["response"]["body"]["data"][1]["embedding"] == [1.0, 2.0, 0.5]
        assert batch["error_file_id"] is None


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("{not json", "invalid_json_line"),
        ({"method": "POST", "url": CHAT, "body": {}}, "missing_required_parameter"),
        ({**chat_line("x", "hi"), "url": "/v1/embeddings"}, "invalid_url"),
        ({**chat_line("x", "hi"), "method": "GET"}, "invalid_method"),
    ],
)
def test_a_file_of_the_wrong_shape_fails_the_batch(tmp_path, line, code):
    app, auth, _ = make_app(tmp_path, ScriptedServedModel(max_model_len=512))
    with TestClient(app) as client:
        batch = create(client, auth, [chat_line("ok", "hi"), line])
        failed = wait(client, auth, batch["id"], ("failed",))
        assert failed["errors"]["data"][0]["code"] == code and failed["errors"]["data"][0]["line"] == 2
        assert failed["failed_at"] and failed["output_file_id"] is None


def test_duplicate_custom_ids_fail_the_batch(tmp_path):
    app, auth, _ = make_app(tmp_path, ScriptedServedModel(max_model_len=512))
    with TestClient(app) as client:
        batch = create(client, auth, [chat_line("same", "a"), chat_line("same", "b")])
        assert (
            wait(client, auth, batch["id"], ("failed",))["errors"]["data"][0]["code"] == "duplicate_custom_id"
        )


def test_bad_requests_list_and_tenancy(tmp_path):
    app, auth, cp = make_app(tmp_path, ScriptedServedModel(max_model_len=512))
    other = {"Authorization": f"Bearer {create_key(cp, 'globex')}"}
    with TestClient(app) as client:
        file_id = upload(client, auth, [chat_line("a", "hi")])
        post = lambda body, who=auth: client.post("/v1/batches", headers=who, json=body)  # noqa: E731
        good = {"input_file_id": file_id, "endpoint": CHAT, "completion_window": "24h"}
        assert post({**good, "endpoint": "/v1/images"}).json()["error"]["param"] == "endpoint"
        assert post({**good, "completion_window": "1h"}).json()["error"]["param"] == "completion_window"
        assert post(good, other).status_code == 404  # another tenant's file
        batch = post(good).json()
        assert client.get(f"/v1/batches/{batch['id']}", headers=other).status_code == 404
        wait(client, auth, batch["id"], ("completed",))
        second = create(client, auth, [chat_line("b", "hi")])
        listed = client.get("/v1/batches", headers=auth, params={"limit": 1}).json()
        assert [b["id"] for b in listed["data"]] == [second["id"]] and listed["has_more"]
        after = client.get("/v1/batches", headers=auth, params={"after": second["id"]}).json()
        assert [b["id"] for b in after["data"]] == [batch["id"]]
        assert client.get("/v1/batches", headers=other).json()["data"] == []
        cancel = client.post(f"/v1/batches/{batch['id']}/cancel", headers=auth)
        assert cancel.status_code == 409  # completed


def test_cancel_lets_the_lines_in_flight_finish_and_starts_no_other(tmp_path):
    model = ScriptedServedModel(max_model_len=512, delay=0.05)
    app, auth, _ = make_app(tmp_path, model, batch_max_lines_in_flight=2)
    with TestClient(app) as client:
        batch = create(client, auth, [chat_line(f"r{i}", "hi") for i in range(40)])
        wait(client, auth, batch["id"], ("in_progress",))
        time.sleep(0.8)
        cancelling = client.post(f"/v1/batches/{batch['id']}/cancel", headers=auth).json()
        assert cancelling["status"] == "cancelling" and cancelling["cancelling_at"]
        done = wait(client, auth, batch["id"], ("cancelled",))
        counts = done["request_counts"]
        assert counts["total"] == 40 and 0 < counts["completed"] < 40 and counts["failed"] == 0
        assert len(content(client, auth, done["output_file_id"])) == counts["completed"]
        assert done["cancelled_at"]
        time.sleep(0.3)
    # OpenAI's cancel: the lines in flight finished and were recorded; no line started after it
    assert len(model.calls) == len(model.finished) == counts["completed"]
    assert counts["completed"] >= cancelling["request_counts"]["completed"] + 1


def test_a_restart_midway_loses_and_repeats_no_line(tmp_path):
    lines = [chat_line(f"r{i}", f"q{i}") for i in range(30)]
    first = ScriptedServedModel(max_model_len=512, delay=0.1)  # outlasts a stop on a loaded CI machine
    app, auth, _ = make_app(tmp_path, first, batch_max_lines_in_flight=3)
    log = tmp_path / "jobs"
    with TestClient(app) as client:
        batch = create(client, auth, lines)
        deadline = time.monotonic() + 30
        while _done_lines(log) < 8:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    done_before = _done_lines(log)
    assert 8 <= done_before < 30  # stopped midway
    second = ScriptedServedModel(max_model_len=512)
    app, auth, _ = make_app(tmp_path, second, batch_max_lines_in_flight=3)
    with TestClient(app) as client:
        done = wait(client, auth, batch["id"], ("completed",))
        assert done["request_counts"] == {"total": 30, "completed": 30, "failed": 0}
        outputs = content(client, auth, done["output_file_id"])  # asserts each custom_id once
        assert set(outputs) == {line["custom_id"] for line in lines}
    assert len(second.calls) == 30 - done_before  # only the lines not yet done ran again
    assert len(first.finished) == done_before  # every line the first app finished was recorded


def _done_lines(jobs_dir: Path) -> int:
    logs = list(jobs_dir.glob("*/output.jsonl"))
    return sum(1 for line in logs[0].read_text().splitlines() if line.strip()) if logs else 0


def test_lines_not_run_before_the_window_closes_expire(tmp_path, monkeypatch):
    from plinth.jobs import batch as batch_files

    monkeypatch.setitem(batch_files.COMPLETION_WINDOWS, "24h", 0)  # the window closes at once
    app, auth, _ = make_app(tmp_path, ScriptedServedModel(max_model_len=512))
    with TestClient(app) as client:
        batch = create(client, auth, [chat_line(f"r{i}", "hi") for i in range(3)])
        expired = wait(client, auth, batch["id"], ("expired",))
        assert expired["expired_at"] and expired["request_counts"] == {
            "total": 3,
            "completed": 0,
            "failed": 3,
        }
        errors = content(client, auth, expired["error_file_id"])
        assert {e["error"]["code"] for e in errors.values()} == {"batch_expired"}
        assert all(e["response"] is None for e in errors.values())
