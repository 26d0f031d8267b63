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
        while serving:
            hold_engine_threads()  # before each step: the engine's count, whatever another thread set
            engine.step()
    share_cores()                  # anywhere else, before torch work: one thread while an engine runs

A process with no engine (the command line, an evaluation) keeps torch's threads for everyone.

Taking one thread is not enough for a thread that already ran torch on more: libgomp keeps that thread's
idle workers, counted, for as long as the thread lives. Its ``omp_pause_resource_all`` frees them
(:func:`release_idle_workers`, torch's libgomp, found in ``/proc/self/maps``), which
:func:`share_cores` and the thread that starts an engine call.
"""

from __future__ import annotations

import ctypes
import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

__all__ = [
    "DEFAULT_THREADS",
    "engine_thread",
    "engines_running",
    "hold_engine_threads",
    "release_idle_workers",
    "share_cores",
]

_lock = threading.Lock()
_engines = 0  # engine threads running, in this process
_shared = threading.local()  # .done: this thread already runs torch on one thread
_engine = threading.local()  # .threads: this engine thread's count (unset or None off engine threads)
# torch's own count before anyone lowered it: torch.set_num_threads(1) on one thread also lowers the
# count that threads starting later begin with, so an engine thread sets this one back for itself
DEFAULT_THREADS = torch.get_num_threads()


@contextmanager
def engine_thread(threads: int | None = None) -> Iterator[None]:
    """Mark the calling thread as an engine's for the block: its torch ops use ``threads`` (default:
    torch's count at start-up), and every other thread's :func:`share_cores` takes one."""
    global _engines
    _engine.threads = threads or DEFAULT_THREADS
    _set_own_count(_engine.threads)
    with _lock:
        _engines += 1
    try:
        yield
    finally:
        _engine.threads = None
        with _lock:
            _engines -= 1


def hold_engine_threads() -> None:
    """On an engine thread, before a step: its count back if something lowered it. Each library built
    on torch (Plinth's native ops among them) sets a thread's count on its own first parallel op there,
    from the count last set by any thread, so the first step after another thread's :func:`share_cores`
    took 1: one stream served at 12.2 ms a step instead of 8.1 until this was checked."""
    threads = getattr(_engine, "threads", None)
    if threads and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def engines_running() -> bool:
    """Whether some thread of this process is inside :func:`engine_thread`."""
    with _lock:
        return _engines > 0


def share_cores() -> None:
    """Before torch work off an engine thread: while an engine runs, this thread's torch ops run on one
    thread, and the idle workers it had are freed; once no engine runs, its next call gives it torch's
    count back (a test process or a command that stopped its engine). Cheap to call again."""
    if getattr(_engine, "threads", None):
        return
    shared, running = getattr(_shared, "done", False), engines_running()
    if running and not shared:
        _set_own_count(1)
        release_idle_workers()
        _shared.done = True
    elif shared and not running:
        _set_own_count(DEFAULT_THREADS)
        _shared.done = False


def release_idle_workers() -> None:
    """Free the OpenMP workers the calling thread keeps between parallel regions (libgomp counts them
    against the CPUs for as long as the thread lives). The thread that starts an engine calls it: a
    main thread that had run one 2-thread op before kept the engine's step at 14.3-15.2 ms, 7.9-10.1 ms
    once freed."""
    release = _omp_pause()
    if release is not None:
        release(1)  # omp_pause_soft; -1 (nothing done) inside a parallel region


def _set_own_count(threads: int) -> None:
    """This thread's torch thread count. torch sets a thread's count on its first parallel op from the
    count last set by *any* thread, unless it was read before: so it is read first."""
    torch.get_num_threads()  # torch's per-thread first-use set-up, done now
    torch.set_num_threads(threads)


@functools.cache
def _omp_pause() -> Callable[[int], int] | None:
    """``omp_pause_resource_all`` of the GNU OpenMP runtime torch runs on, if this process has loaded
    one. Other wheels bring their own copies (scikit-learn's ``scikit_learn.libs/libgomp-*.so``, loaded
    by the server too), and pausing one of those frees nothing of torch's: so torch's own copy (in its
    package, or its wheel's ``torch.libs``), else a system one, else none."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    loaded = {line.split()[-1] for line in maps.splitlines() if "/libgomp" in line}
    here = Path(torch.__file__).resolve().parent
    torchs = sorted(p for p in loaded if p.startswith((f"{here}/", f"{here.parent}/torch.libs/")))
    system = sorted(p for p in loaded if ".libs/" not in p and "site-packages" not in p)
    paths = torchs or system
    if not paths:
        return None
    pause = ctypes.CDLL(paths[0]).omp_pause_resource_all
    pause.argtypes, pause.restype = [ctypes.c_int], ctypes.c_int
    return pause
