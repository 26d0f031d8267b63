"""glibc malloc tuning: freed blocks stay in the process until release_freed_memory hands them back."""

from __future__ import annotations

import ctypes.util
from pathlib import Path

import pytest
import torch

from plinth.engine.allocator import keep_freed_memory, release_freed_memory


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(
    not Path("/proc/self/status").exists() or not ctypes.util.find_library("c"), reason="Linux"
)
def test_freed_memory_stays_until_released() -> None:
    if not keep_freed_memory():
        pytest.skip("not glibc")
    buffer = torch.ones(256 * 2**20 // 4)  # 256 MiB, written so every page is resident
    del buffer
    kept = _rss_mb()
    assert release_freed_memory()
    assert _rss_mb() < kept - 128


def test_the_trimmer_trims_every_n_steps_and_once_large_steps_end(monkeypatch: pytest.MonkeyPatch) -> None:
    from plinth.engine import allocator

    trims: list[int] = []
    monkeypatch.setattr(allocator, "release_freed_memory", lambda: trims.append(1) or True)
    trimmer = allocator.HeapTrimmer(every=4, large=100)
    steps = (1, 1, 1, 1, 1, 150, 200, 1, 1, 99, 1, 1, 1, 1)
    due = [trimmer.after_step(tokens) for tokens in steps]
    # the 4th step; none between the two large ones; the small one after them; then every 4th again
    assert [i for i, trimmed in enumerate(due) if trimmed] == [3, 7, 11]
    assert len(trims) == 3


@pytest.mark.skipif(
    not Path("/proc/self/status").exists() or not ctypes.util.find_library("c"), reason="Linux"
)
def test_a_large_step_gives_its_freed_activations_back() -> None:
    if not keep_freed_memory():
        pytest.skip("not glibc")
    from plinth.engine.allocator import HeapTrimmer

    trimmer = HeapTrimmer(every=1000, large=512)
    buffer = torch.ones(256 * 2**20 // 4)  # a prefill's activations, freed when the step ends
    del buffer
    kept = _rss_mb()
    assert not trimmer.after_step(4096)  # a prefill step: the next one may reuse its memory
    assert _rss_mb() > kept - 128
    assert trimmer.after_step(1)  # a decode step after it: the prefill's memory goes back
    assert _rss_mb() < kept - 128
