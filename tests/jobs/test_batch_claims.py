"""Two servers on one control plane and data dir: one claims a batch and runs it, the other leaves it
alone until the owner's lease lapses (the owner died), then resumes it with no line lost or repeated; a
cancel sent to the server that does not run the batch reaches the one that does."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient
from test_batches_api import _done_lines, chat_line, content, create, make_app, wait

from plinth.control import open_control_plane
from plinth.control.jobs import claim, create_job, get_job, release_claim
from plinth.llm.scripted_served import ScriptedServedModel
from plinth.server import batch_runner

LEASE_S = 2.0  # heartbeats and look-ups every 0.67 s: slack for a loaded 2-core CI machine


def test_a_claim_is_held_renewed_taken_over_after_its_lease_and_released(tmp_path):
    cp = open_control_plane(f"sqlite:///{tmp_path / 'plinth.db'}")
    create_job(cp, job_id="batch_x", tenant_id=1, kind="batch", request={}, status="in_progress")
    assert claim(cp, "batch_x", "a", 0.3)
    assert not claim(cp, "batch_x", "b", 0.3)  # a holds it
    assert claim(cp, "batch_x", "a", 0.3)  # a renews
    time.sleep(0.35)
    assert claim(cp, "batch_x", "b", 10)  # a's lease lapsed: b takes over
    assert not claim(cp, "batch_x", "a", 10)
    release_claim(cp, "batch_x", "a")  # not a's to release: b keeps it
    assert get_job(cp, "batch_x").claimed_by == "b"
    release_claim(cp, "batch_x", "b")
    assert claim(cp, "batch_x", "a", 10)


def test_one_server_runs_a_batch_and_another_takes_it_over_when_it_dies(tmp_path, monkeypatch):
    lines = [chat_line(f"r{i}", f"q{i}") for i in range(30)]
    first = ScriptedServedModel(max_model_len=512, delay=0.1)  # outlasts a stop on a loaded CI machine
    second = ScriptedServedModel(max_model_len=512)
    settings = {"batch_max_lines_in_flight": 3, "batch_claim_lease_s": LEASE_S}
    app_a, auth_a, _ = make_app(tmp_path, first, **settings)
    app_b, auth_b, _ = make_app(tmp_path, second, **settings)
    with TestClient(app_b) as b:
        a = TestClient(app_a).__enter__()
        batch = create(a, auth_a, lines)
        deadline = time.monotonic() + 30
        while _done_lines(tmp_path / "jobs") < 8:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert second.calls == []  # b looked for unclaimed batches every 0.2 s: a holds this one
        with monkeypatch.context() as m:  # a dies: its claim is never let go
            m.setattr(batch_runner, "release_claim", lambda *args: None)
            a.__exit__(None, None, None)
        done_before = _done_lines(tmp_path / "jobs")
        assert done_before < 30
        done = wait(b, auth_b, batch["id"], ("completed",))
        assert done["request_counts"] == {"total": 30, "completed": 30, "failed": 0}
        assert set(content(b, auth_b, done["output_file_id"])) == {line["custom_id"] for line in lines}
    assert len(second.calls) == 30 - done_before  # b ran only what a had not recorded
    assert len(first.finished) == done_before


def test_a_cancel_sent_to_the_other_server_reaches_the_one_running_the_batch(tmp_path):
    first = ScriptedServedModel(max_model_len=512, delay=0.05)
    second = ScriptedServedModel(max_model_len=512)
    settings = {"batch_max_lines_in_flight": 2, "batch_claim_lease_s": LEASE_S}
    app_a, auth_a, _ = make_app(tmp_path, first, **settings)
    app_b, auth_b, _ = make_app(tmp_path, second, **settings)
    with TestClient(app_a) as a, TestClient(app_b) as b:
        batch = create(a, auth_a, [chat_line(f"r{i}", "hi") for i in range(40)])
        wait(a, auth_a, batch["id"], ("in_progress",))
        time.sleep(0.5)
        cancelling = b.post(f"/v1/batches/{batch['id']}/cancel", headers=auth_b).json()
        assert cancelling["status"] == "cancelling"
        done = wait(b, auth_b, batch["id"], ("cancelled",))
        counts = done["request_counts"]
        assert 0 < counts["completed"] < 40 and counts["failed"] == 0
        assert len(content(b, auth_b, done["output_file_id"])) == counts["completed"]
    assert second.calls == []
    assert len(first.calls) == len(first.finished) == counts["completed"]  # nothing cut off, none after
