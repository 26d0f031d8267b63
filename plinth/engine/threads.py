"""Who uses the CPU's cores for torch's intra-op threads: an engine thread, and everyone else on one.

torch on Linux parallelises with GNU OpenMP, which gives every thread that starts a parallel region a
team of its own. Once the teams hold more threads than there are CPUs, libgomp throttles *all* of them:
a worker waiting for the next region spins ~100 times instead of ~300,000 before it sleeps, so every
parallel region starts with a futex wake-up. A decode step starts ~250 regions (121 matmuls, 30
attentions, ...). So a single ``/v1/embeddings`` request, run by a server worker thread that then lives
on, took a one-stream decode step of SmolLM2 from 8.6 to 14.5 ms (p50) for the rest of the server's
life, on a 2-core machine (``benchmarks/shared_cores.py`` measures it). While an engine thread runs,
torch work on any other thread (the embedder, the guard's encoder) therefore runs on that thread
alone: it keeps the engine's team the only one::

    with engine_thread():          # on the thread that builds and steps an engine
        ...
    share_cores()                  # anywhere else, before torch work: one thread while an engine runs

A process with no engine (the command line, an evaluation) keeps torch's threads for everyone.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["DEFAULT_THREADS", "engine_thread", "engines_running", "share_cores"]

_lock = threading.Lock()
_engines: set[int] = set()  # threading.get_ident() of each running engine thread
_shared = threading.local()  # .done: this thread already runs torch on one thread
# torch's own count before anyone lowered it: torch.set_num_threads(1) on one thread also lowers the
# count that threads starting later begin with, so an engine thread sets this one back for itself
DEFAULT_THREADS = torch.get_num_threads()


@contextmanager
def engine_thread(threads: int | None = None) -> Iterator[None]:
    """Mark the calling thread as an engine's for the block: its torch ops use ``threads`` (default:
    torch's count at start-up), and every other thread's :func:`share_cores` takes one."""
    torch.set_num_threads(threads or DEFAULT_THREADS)
    me = threading.get_ident()
    with _lock:
        _engines.add(me)
    try:
        yield
    finally:
        with _lock:
            _engines.discard(me)


def engines_running() -> bool:
    """Whether some thread of this process is inside :func:`engine_thread`."""
    with _lock:
        return bool(_engines)


def share_cores() -> None:
    """Before torch work off an engine thread: while an engine runs, this thread's torch ops run on one
    thread (for the rest of its life: a server's worker threads are reused). Cheap to call again."""
    if getattr(_shared, "done", False) or not engines_running():
        return
    if threading.get_ident() in _engines:
        return
    torch.set_num_threads(1)
    _shared.done = True
