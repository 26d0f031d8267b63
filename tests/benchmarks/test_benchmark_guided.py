"""``benchmarks/guided.py --quick`` end to end: TPOT with and without a JSON schema, compile costs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "guided.py"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_quick_guided_benchmark(tiny_checkpoint_factory: Callable[[str], Path], tmp_path: Path) -> None:
    model, out = tiny_checkpoint_factory("llama"), tmp_path / "guided.json"
    cmd = [sys.executable, str(SCRIPT), "--quick", "--model", str(model), "--json", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout's plinth, whatever is installed
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=280, cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    for c in (1, 16):
        pattern = rf"^json-schema/unconstrained time per output token at {c} concurrent: \d+\.\d+x"
        assert re.search(pattern, run.stdout, re.M), run.stdout
    result = json.loads(out.read_text())
    assert [r["concurrency"] for r in result["tpot"]] == [1, 16]
    assert all(r["steps"] == 16 and r["free_ms"] > 0 and r["guided_ms"] > 0 for r in result["tpot"])
    [costs] = result["compile"]
    assert costs["vocab"] == 1820 and costs["schema_chars"] > 10_000 and costs["compile_ms"] > 0
