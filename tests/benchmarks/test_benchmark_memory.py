"""``benchmarks/memory.py`` end to end on the tiny checkpoint: every start-up stage, then serving streams."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "memory.py"
ROW = r"^\| {stage} \| (\d+) \| [+-]\d+ \| \d+ \| (\d+) \| \d+\.\d \|$"


@pytest.mark.timeout(300)
def test_memory_prints_each_stage_and_the_serving_peak(
    tiny_checkpoint_factory: Callable[[str], Path], tmp_path: Path
) -> None:
    model = tiny_checkpoint_factory("llama")
    cmd = [sys.executable, str(SCRIPT), "--model", str(model), "--max-model-len", "48", "--streams", "3",
           "--prompt-len", "16", "--output-len", "8", "--max-num-batched-tokens", "32"]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=280, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]

    stages = (
        "import torch",
        "KV cache allocated \\(engine built\\)",
        "3 streams: first step \\(prefill, budget 32 tokens\\)",
        "3 streams: all 8 tokens each",
    )
    peaks = []
    for stage in stages:
        found = re.search(ROW.format(stage=stage), run.stdout, re.M)
        assert found, f"no row for {stage!r} in:\n{run.stdout}"
        rss, peak = int(found.group(1)), int(found.group(2))
        assert 0 < rss <= peak
        peaks.append(peak)
    assert peaks == sorted(peaks)  # the peak so far never falls
