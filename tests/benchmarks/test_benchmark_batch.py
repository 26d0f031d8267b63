"""``benchmarks/batch.py --quick`` end to end: a real ``plinth serve`` subprocess, a batch with a restart
midway, outputs compared with interactive requests, and the TTFT table and ratio printed."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "batch.py"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_quick_batch_benchmark(tiny_checkpoint_factory: Callable[[str], Path], tmp_path: Path) -> None:
    model, out = tiny_checkpoint_factory("llama"), tmp_path / "bench.json"
    cmd = [sys.executable, str(SCRIPT), "--quick", "--model", str(model), "--json", str(out)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=580, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:] + run.stdout[-3000:]
    assert "interactive TTFT p95 with a batch running / idle:" in run.stdout
    report = json.loads(out.read_text())
    assert report["every_line_exactly_once"] and report["identical"] == report["checked"] == 60
    assert report["request_counts"] == {"total": 60, "completed": 60, "failed": 0}
