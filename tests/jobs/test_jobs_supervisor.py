"""The job system: queued jobs run in real spawned worker processes, one at a time by default; they
succeed (after the server-side finalize), fail with the reason, are cancelled within seconds, and resume
from their newest checkpoint after the server stops mid-job."""

from __future__ import annotations

import time

import pytest

from plinth.control import open_control_plane
from plinth.control.jobs import create_job, get_job, list_events, request_cancel
from plinth.jobs import JobKind, JobSupervisor

pytestmark = pytest.mark.slow  # each worker is a fresh interpreter (about a second to start)

KINDS = {name: JobKind(name, f"job_kinds:{name}") for name in ("count", "fail", "disk_full", "crash")}


@pytest.fixture
def env(tmp_path):
    url = f"sqlite:///{tmp_path / 'plinth.db'}"
    cp = open_control_plane(url)
    supervisors = []

    def supervisor(kinds=KINDS, **kwargs) -> JobSupervisor:
        sup = JobSupervisor(cp, url, tmp_path, kinds, poll_s=0.05, **kwargs)
        supervisors.append(sup)
        return sup

    yield cp, supervisor
    for sup in supervisors:
        sup.stop()
    cp.close()


def new_job(cp, job_id: str, kind: str = "count", **request):
    return create_job(cp, job_id=job_id, tenant_id=1, kind=kind, request=request)


def run_until(sup: JobSupervisor, cp, job_id: str, statuses, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while (job := get_job(cp, job_id)).status not in statuses:
        assert time.monotonic() < deadline, f"{job_id} stuck in {job.status}"
        sup.tick()
        time.sleep(0.05)
    return job


def messages(cp, job_id: str) -> list[str]:
    return [e.message for e in reversed(list_events(cp, job_id, limit=100)[0])]


def test_a_job_runs_in_a_worker_and_succeeds_after_finalize(env):
    cp, supervisor = env
    finalized = []

    def finalize(job, result):
        finalized.append((job.id, result))
        return {**result, "published": "yes"}

    sup = supervisor({"count": JobKind("count", "job_kinds:count", finalize)})
    new_job(cp, "job-1", steps=10)
    job = run_until(sup, cp, "job-1", ("succeeded", "failed"))
    assert job.status == "succeeded" and job.attempts == 1 and job.error is None
    assert finalized == [("job-1", {"steps": 10, "resumed_from": 0})]
    assert job.result == {"steps": 10, "resumed_from": 0, "published": "yes"}
    assert messages(cp, "job-1") == [
        "Files validated; the job is queued",
        "Job started (attempt 1)",
        "The job has successfully completed",
    ]


@pytest.mark.parametrize(
    ("kind", "code", "message"),
    [
        ("fail", "ValueError", "n_epochs must be between 1 and 50, not 0"),
        ("disk_full", "disk_full", "No space left on device"),
        ("crash", "worker_crashed", "the worker process exited with code 9"),
    ],
)
def test_a_failing_job_ends_failed_with_the_reason(env, kind, code, message):
    cp, supervisor = env
    sup = supervisor()
    new_job(cp, "job-f", kind=kind)
    job = run_until(sup, cp, "job-f", ("succeeded", "failed"))
    assert job.status == "failed" and job.error["code"] == code and message in job.error["message"]
    assert job.result is None
    if kind == "fail":
        assert job.error["param"] == "n_epochs"


def test_finalize_failure_fails_the_job(env):
    cp, supervisor = env

    def finalize(job, result):
        raise ValueError("adapter does not load")

    sup = supervisor({"count": JobKind("count", "job_kinds:count", finalize)})
    new_job(cp, "job-z", steps=2)
    job = run_until(sup, cp, "job-z", ("succeeded", "failed"))
    assert job.status == "failed" and job.error == {
        "code": "finalize_failed", "message": "adapter does not load", "param": None
    }  # fmt: skip


def test_one_job_at_a_time_and_the_rest_queue(env):
    cp, supervisor = env
    sup = supervisor()
    new_job(cp, "job-a", steps=40, sleep=0.05)
    new_job(cp, "job-b", steps=2)
    run_until(sup, cp, "job-a", ("running",))
    for _ in range(5):
        sup.tick()
        assert get_job(cp, "job-b").status == "queued"
    run_until(sup, cp, "job-a", ("succeeded",))
    assert run_until(sup, cp, "job-b", ("succeeded",)).status == "succeeded"
    assert get_job(cp, "job-a").finished_at <= get_job(cp, "job-b").started_at


def test_cancel_stops_a_running_job_within_seconds_and_a_queued_one_at_once(env):
    cp, supervisor = env
    sup = supervisor()
    new_job(cp, "job-r", steps=10_000, sleep=0.01)
    new_job(cp, "job-q", steps=2)
    run_until(sup, cp, "job-r", ("running",))
    assert request_cancel(cp, 1, "job-q").status == "cancelled"
    time.sleep(1.0)
    asked = time.monotonic()
    assert request_cancel(cp, 1, "job-r").cancel_requested
    job = run_until(sup, cp, "job-r", ("cancelled", "succeeded", "failed"), timeout=15)
    assert job.status == "cancelled" and time.monotonic() - asked < 5
    assert get_job(cp, "job-q").attempts == 0  # never started
    assert request_cancel(cp, 2, "job-r") is None  # another tenant's job is not found


def test_a_job_resumes_from_its_newest_checkpoint_after_a_restart(env):
    cp, supervisor = env
    first = supervisor()
    new_job(cp, "job-s", steps=60, every=5, sleep=0.05)
    first.start()
    deadline = time.monotonic() + 60
    while not [m for m in messages(cp, "job-s") if m.startswith("Job started")] or not _checkpoints(
        cp, "job-s"
    ):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    first.stop()  # the server goes away mid-job: the worker is terminated, the job stays running
    assert get_job(cp, "job-s").status == "running"
    second = supervisor()
    second.start()
    job = run_until(second, cp, "job-s", ("succeeded", "failed"))
    assert job.status == "succeeded" and job.attempts == 2
    assert job.result["resumed_from"] >= 5 and job.result["resumed_from"] % 5 == 0
    assert f"Resumed from checkpoint at step {job.result['resumed_from']}" in messages(cp, "job-s")


def _checkpoints(cp, job_id: str):
    from plinth.control.jobs import list_checkpoints

    return list_checkpoints(cp, job_id)


def test_a_second_server_on_the_control_plane_never_runs_a_running_job(env):
    """Two servers, one database: the one starting later leaves the other's running job alone (it holds
    the job's claim), and a queued job is started by exactly one of them."""
    cp, supervisor = env
    first, second = supervisor(), supervisor()
    new_job(cp, "job-1", steps=30, sleep=0.05)
    run_until(first, cp, "job-1", ("running",))
    assert get_job(cp, "job-1").claimed_by == first.owner
    second.start()  # a restart of *another* server re-queues only jobs nobody holds
    new_job(cp, "job-2", steps=2)
    for _ in range(10):
        second.tick()  # takes job-2, never job-1
        first.tick()
        time.sleep(0.05)
    job = run_until(first, cp, "job-1", ("succeeded", "failed"))
    assert job.status == "succeeded" and job.attempts == 1 and job.claimed_by is None
    assert [m for m in messages(cp, "job-1") if m.startswith("Job started")] == ["Job started (attempt 1)"]
    assert run_until(second, cp, "job-2", ("succeeded",)).attempts == 1


def test_a_dead_servers_job_is_taken_over_once_its_lease_runs_out(env):
    cp, supervisor = env
    dead, alive = supervisor(lease_s=3.0), supervisor(lease_s=3.0)  # slack for a loaded CI machine
    new_job(cp, "job-d", steps=60, every=5, sleep=0.05)
    run_until(dead, cp, "job-d", ("running",))
    while not _checkpoints(cp, "job-d"):
        dead.tick()
        time.sleep(0.05)
    worker = dead._workers["job-d"].process
    worker.kill()  # the server dies: its worker is gone, nothing renews or releases the claim
    worker.join()
    alive.tick()
    assert get_job(cp, "job-d").status == "running"  # the lease still runs: not taken yet
    job = run_until(alive, cp, "job-d", ("succeeded", "failed"))
    assert job.status == "succeeded" and job.attempts == 2 and job.result["resumed_from"] >= 5
