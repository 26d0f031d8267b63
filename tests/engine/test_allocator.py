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
