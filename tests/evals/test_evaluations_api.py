"""``/v1/evaluations`` over scripted served models: create, list, get, results, report, cancel, resume, and
every bad input as an OpenAI-style 4xx naming the field."""

from __future__ import annotations

import json
import time

import pytest
from fastapi.testclient import TestClient
from server_fakes import build_app

from plinth.control import create_key, get_or_create_tenant
from plinth.llm.scripted_served import ScriptedServedModel

EV = "/v1/evaluations"
VERDICT = ('{"reasoning": "it answers",', ' "score": 4}', "")  # the double's last token is EOS


def rows(n: int) -> str:
    return "".join(
        json.dumps({"id": f"q{i}", "input": f"Say hello {i}", "reference": "Hello there, friend.",
                    "human_score": 4 if i % 2 else 3}) + "\n"
        for i in range(n)
    )  # fmt: skip


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def upload(client, key, text: str, purpose: str = "evals"):
    files = {"file": ("set.jsonl", text.encode(), "application/jsonl")}
    return client.post("/v1/files", headers=auth(key), data={"purpose": purpose}, files=files)


def wait(client, key, ev_id: str, statuses=("succeeded", "failed", "cancelled"), timeout: float = 30):
    deadline = time.monotonic() + timeout
    while (job := client.get(f"{EV}/{ev_id}", headers=auth(key)).json())["status"] not in statuses:
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
    return job


@pytest.fixture
def app_key(tmp_path):
    models = [ScriptedServedModel("target"), ScriptedServedModel("judge", script=VERDICT, max_model_len=4096)]
    return build_app(tmp_path, models)


def test_create_run_list_results_report(app_key) -> None:
    app, key = app_key
    with TestClient(app) as client:
        file = upload(client, key, rows(4)).json()
        judge = {"model": "judge", "criteria": ["correctness", "coherence"], "constrained": False}
        body = {"name": "hello", "dataset": file["id"], "targets": [{"model": "target", "max_tokens": 16}],
                "judge": judge}  # fmt: skip
        created = client.post(EV, headers=auth(key), json=body)
        assert created.status_code == 200, created.text
        ev = created.json()
        assert (
            ev["object"] == "evaluation"
            and ev["id"].startswith("eval-")
            and ev["targets"] == ["model:target"]
        )
        done = wait(client, key, ev["id"])
        assert done["status"] == "succeeded", done["error"]
        summary = done["summary"]["model:target"]
        assert summary["exact_match"] == 1.0 and summary["token_f1"] == 1.0 and summary["items"] == 4
        assert summary["judge.correctness"] == 4.0 and summary["judge.coherence"] == 4.0
        assert done["progress"] == {"done": 4, "total": 4}
        assert done["agreement"]["model:target"]["correctness"]["n"] == 4

        listed = client.get(EV, headers=auth(key)).json()
        assert [e["id"] for e in listed["data"]] == [ev["id"]]
        results = client.get(f"{EV}/{ev['id']}/results", headers=auth(key)).json()
        assert [r["id"] for r in results["data"]] == ["q0", "q1", "q2", "q3"]
        assert (
            results["data"][0]["output"] == "Hello there, friend"
            and results["data"][0]["completion_tokens"] > 0
        )
        report = client.get(f"{EV}/{ev['id']}/report", headers=auth(key))
        assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
        assert "<svg" in report.text and "hello" in report.text and "<script" not in report.text

        cancel = client.post(f"{EV}/{ev['id']}/cancel", headers=auth(key))
        assert cancel.status_code == 400 and "already succeeded" in cancel.json()["error"]["message"]
    acme = str(get_or_create_tenant(app.state.plinth.control_plane, "acme").id)
    for model in app.state.plinth.models.values():  # target and judge calls take the tenant's fair share
        assert model.calls and {params.share_group for _, params, _, _ in model.calls} == {acme}


def test_two_targets_are_compared(tmp_path) -> None:
    models = [ScriptedServedModel("a"), ScriptedServedModel("b", script=("Goodbye", "."))]
    app, key = build_app(tmp_path, models)
    with TestClient(app) as client:
        file = upload(client, key, rows(5)).json()
        body = {
            "dataset": file["id"],
            "targets": [{"model": "a", "max_tokens": 16}, {"model": "b", "max_tokens": 16}],
            "metrics": ["exact_match"],
        }
        ev = client.post(EV, headers=auth(key), json=body).json()
        done = wait(client, key, ev["id"])
        [em] = [c for c in done["comparison"] if c["metric"] == "exact_match"]
        assert (em["a"], em["b"], em["diff"], em["ci_low"], em["ci_high"]) == (1.0, 0.0, -1.0, -1.0, -1.0)
        assert "Comparison" in client.get(f"{EV}/{ev['id']}/report", headers=auth(key)).text


def test_cancel_a_running_evaluation(tmp_path) -> None:
    app, key = build_app(tmp_path, [ScriptedServedModel("slow", delay=0.05)])
    with TestClient(app) as client:
        file = upload(client, key, rows(200)).json()
        ev = client.post(
            EV,
            headers=auth(key),
            json={"dataset": file["id"], "targets": [{"model": "slow", "max_tokens": 16}]},
        ).json()
        wait(client, key, ev["id"], ("running",))
        assert client.post(f"{EV}/{ev['id']}/cancel", headers=auth(key)).status_code == 200
        done = wait(client, key, ev["id"])
        assert done["status"] == "cancelled" and done["progress"]["done"] < 200
        partial = client.get(f"{EV}/{ev['id']}/report", headers=auth(key))  # drawn from the records so far
        assert partial.status_code == 200 and "cancelled" in partial.text


def test_bad_requests_are_openai_errors(app_key) -> None:
    app, key = app_key
    with TestClient(app) as client:
        bad_file = upload(client, key, '{"question": "no input"}\n')
        assert bad_file.status_code == 400 and "'input'" in bad_file.json()["error"]["message"]
        good = upload(client, key, rows(2)).json()["id"]
        tuning = upload(client, key, '{"prompt": "a", "completion": "b"}\n', purpose="fine-tune").json()["id"]
        target = [{"model": "target"}]
        kb = [{"type": "knowledge_base", "model": "target", "knowledge_base": "k"}]
        cases = [
            ({"targets": target}, "dataset"),
            ({"dataset": good, "targets": [{"model": "nope"}]}, "targets.0.model"),
            ({"dataset": good, "targets": target, "judge": {"model": "nope"}}, "judge.model"),
            ({"dataset": good, "targets": target, "judge": {"model": "judge", "criteria": ["x"]}}, "judge"),
            ({"dataset": good, "targets": kb}, "targets.0.knowledge_base"),
            ({"dataset": good, "targets": [{"model": "target", "adapter": "nope"}]}, "targets.0.adapter"),
            ({"dataset": good, "targets": [{"model": "target", "adapter": "judge"}]}, "targets.0.adapter"),
            ({"dataset": tuning, "targets": target}, "dataset"),
            ({"dataset": good, "targets": target, "metrics": ["nope"]}, None),
        ]  # fmt: skip
        for body, param in cases:
            response = client.post(EV, headers=auth(key), json=body)
            assert response.status_code == 400, (body, response.text)
            error = response.json()["error"]
            assert error["type"] == "invalid_request_error" and error["param"] == param, (body, error)
        missing = client.post(EV, headers=auth(key), json={"dataset": "file-nope", "targets": target})
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "file_not_found"
        not_json = client.post(EV, headers={**auth(key), "content-type": "application/json"}, content=b"{")
        assert not_json.status_code == 400
        assert client.get(f"{EV}/eval-nope", headers=auth(key)).status_code == 404


def test_another_tenant_sees_nothing(app_key, tmp_path) -> None:
    app, key = app_key
    other = create_key(app.state.plinth.control_plane, "globex")
    with TestClient(app) as client:
        file = upload(client, key, rows(1)).json()
        ev = client.post(
            EV, headers=auth(key), json={"dataset": file["id"], "targets": [{"model": "target"}]}
        )
        ev_id = ev.json()["id"]
        for path in (f"{EV}/{ev_id}", f"{EV}/{ev_id}/report", f"{EV}/{ev_id}/results"):
            assert client.get(path, headers=auth(other)).status_code == 404
        assert client.post(f"{EV}/{ev_id}/cancel", headers=auth(other)).status_code == 404
        assert client.get(EV, headers=auth(other)).json()["data"] == []
        foreign = client.post(
            EV, headers=auth(other), json={"dataset": file["id"], "targets": [{"model": "target"}]}
        )
        assert foreign.status_code == 404


def test_a_server_stopped_mid_run_resumes_without_redoing_items(tmp_path) -> None:
    from fastapi.testclient import TestClient as Client

    from plinth.config import Settings
    from plinth.control import open_control_plane
    from plinth.server import create_app

    # slow enough that the 40 items outlast a stop on a loaded CI machine (0.02 s a token once finished first)
    app, key = build_app(tmp_path, [ScriptedServedModel("slow", delay=0.1)])
    with TestClient(app) as client:
        file = upload(client, key, rows(40)).json()
        body = {
            "dataset": file["id"],
            "targets": [{"model": "slow", "max_tokens": 16}],
            "metrics": ["exact_match"],
        }
        ev_id = client.post(EV, headers=auth(key), json=body).json()["id"]
        deadline = time.monotonic() + 30
        while client.get(f"{EV}/{ev_id}", headers=auth(key)).json()["progress"]["done"] < 3:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        started = time.monotonic()
    assert time.monotonic() - started < 10  # the server stopped promptly; the job is left running
    cp = open_control_plane(f"sqlite:///{tmp_path / 'plinth.db'}")
    # slow too: the restart resumes the job at once, and without a delay its 37 items could all finish
    # before the first request below (one fresh-clone run saw done == 40 there)
    again = create_app(Settings(data_dir=tmp_path), [ScriptedServedModel("slow", delay=0.02)], cp)
    with Client(again) as client:
        assert client.get(f"{EV}/{ev_id}", headers=auth(key)).json()["progress"]["done"] < 40
        done = wait(client, key, ev_id)
        assert done["status"] == "succeeded" and done["summary"]["model:slow"]["items"] == 40
        ids = [r["id"] for r in client.get(f"{EV}/{ev_id}/results", headers=auth(key)).json()["data"]]
        assert sorted(ids) == sorted(f"q{i}" for i in range(40))  # each item once: none redone
