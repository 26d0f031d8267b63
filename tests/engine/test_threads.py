"""``plinth.engine.threads``: while an engine thread runs, torch work on any other thread runs on one
thread, so the engine's OpenMP team stays the only one; with no engine nothing changes. The timing
effect is measured by ``benchmarks/shared_cores.py``, not here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import torch

from plinth.engine.threads import (
    DEFAULT_THREADS,
    engine_thread,
    engines_running,
    hold_engine_threads,
    share_cores,
)


def on_new_thread(job: Callable[[], object]) -> object:
    """``job``'s result, run on a thread of its own (torch counts threads per thread)."""
    out: list[object] = []
    thread = threading.Thread(target=lambda: out.append(job()))
    thread.start()
    thread.join()
    return out[0]


@contextmanager
def an_engine_thread() -> Iterator[None]:
    """A thread inside ``engine_thread`` for the block, as AsyncLLMEngine's stepping thread is."""
    inside, leave = threading.Event(), threading.Event()

    def run() -> None:
        with engine_thread():
            inside.set()
            leave.wait()

    thread = threading.Thread(target=run)
    thread.start()
    inside.wait()
    try:
        yield
    finally:
        leave.set()
        thread.join()


@pytest.fixture(autouse=True)
def _restore_torch_threads() -> Iterator[None]:
    # share_cores lowers the count new threads start with; the rest of the session keeps torch's own
    yield
    torch.set_num_threads(DEFAULT_THREADS)


def _shared_count() -> int:
    share_cores()
    return torch.get_num_threads()


def test_without_an_engine_every_thread_keeps_torchs_threads() -> None:
    assert DEFAULT_THREADS >= 1 and not engines_running()
    assert on_new_thread(_shared_count) == DEFAULT_THREADS


def test_beside_an_engine_another_threads_torch_work_runs_on_one_thread() -> None:
    with an_engine_thread():
        assert engines_running()
        assert on_new_thread(_shared_count) == 1
    assert not engines_running()


def test_a_thread_gets_torchs_count_back_once_no_engine_runs() -> None:
    # a test process, or a command that stopped its engine, must not stay on one thread
    step, leave, counts = threading.Event(), threading.Event(), []

    def neighbour() -> None:
        counts.append(_shared_count())  # beside the engine
        step.set()
        leave.wait()
        counts.append(_shared_count())  # after it stopped

    with an_engine_thread():
        thread = threading.Thread(target=neighbour)
        thread.start()
        step.wait()
    leave.set()
    thread.join()
    assert counts == [1, DEFAULT_THREADS]


def test_the_engine_thread_keeps_its_threads_even_after_others_took_one() -> None:
    with an_engine_thread():
        assert on_new_thread(_shared_count) == 1  # lowers the count later threads start with

    def engine_then_share() -> int:
        with engine_thread(threads=DEFAULT_THREADS):
            return _shared_count()

    assert on_new_thread(engine_then_share) == DEFAULT_THREADS


def test_the_embedder_shares_the_cores_with_a_serving_engine() -> None:
    from plinth.llm.embedder import SentenceEmbedder

    embedder = SentenceEmbedder()

    def embed_then_count() -> int:
        assert len(embedder.embed(["a sentence beside a serving engine"])[0]) == 384
        return torch.get_num_threads()

    with an_engine_thread():
        assert on_new_thread(embed_then_count) == 1


# In a fresh process: the test process's own threads come and go (servers, tokenizers) and would blur
# the count. A thread ran torch on two threads (libgomp starts a worker for it and keeps it), then an
# engine started beside it, then the thread shared the cores.
_FREED_WORKER = """
import json, os, threading, time
import torch
from plinth.engine.threads import engine_thread, share_cores

def threads():
    return len(os.listdir("/proc/self/task"))

inside, leave, out = threading.Event(), threading.Event(), {}

def engine():
    with engine_thread():
        inside.set()
        leave.wait()

def neighbour():
    torch.set_num_threads(2)
    torch.ones(1 << 20).add_(1.0)
    out["with_worker"] = threads()
    engine_thread_ = threading.Thread(target=engine)
    engine_thread_.start()
    inside.wait()
    out["engine_started"] = threads()
    share_cores()
    deadline = time.monotonic() + 5
    while threads() >= out["engine_started"] and time.monotonic() < deadline:
        time.sleep(0.01)
    out["shared"] = threads()
    leave.set()
    engine_thread_.join()

worker = threading.Thread(target=neighbour)
worker.start()
worker.join()
print(json.dumps(out))
"""


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="an OpenMP team needs two CPUs")
def test_sharing_frees_the_idle_workers_a_thread_already_had() -> None:
    run = subprocess.run([sys.executable, "-c", _FREED_WORKER], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    counts = json.loads(run.stdout.splitlines()[-1])
    # the engine thread adds one; sharing frees the neighbour's worker
    assert counts["engine_started"] == counts["with_worker"] + 1
    assert counts["shared"] == counts["engine_started"] - 1


def test_an_engine_thread_gets_its_count_back_before_a_step() -> None:
    # a library's first parallel op on a thread sets that thread's count from the count any thread set
    # last (share_cores' 1); the stepping loop holds the engine's count
    def lowered_then_held() -> tuple[int, int]:
        with engine_thread(threads=DEFAULT_THREADS):
            torch.set_num_threads(1)  # what that first op does
            lowered = torch.get_num_threads()
            hold_engine_threads()
            return lowered, torch.get_num_threads()

    assert on_new_thread(lowered_then_held) == (1, DEFAULT_THREADS)
    hold_engine_threads()  # off an engine thread: nothing to hold
    assert torch.get_num_threads() == DEFAULT_THREADS
