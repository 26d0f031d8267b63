"""``benchmarks/lora.py --quick`` end to end: base, multi-LoRA (resident and swapping) and PEFT runs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "lora.py"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_quick_lora_benchmark(tiny_checkpoint_factory: Callable[[str], Path], tmp_path: Path) -> None:
    model, out = tiny_checkpoint_factory("llama"), tmp_path / "lora.json"
    cmd = [sys.executable, str(SCRIPT), "--quick", "--model", str(model), "--json", str(out)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=280, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert re.search(r"^plinth/PEFT throughput with 4 adapters: \d+\.\d\d× \(goal ≥ 5×\)$", run.stdout, re.M)
    rows = json.loads(out.read_text())["rows"]
    runs = {(r["label"], r["adapters"], r["max_loras"]) for r in rows}
    assert runs == {
        ("base (LoRA off)", 0, None),
        ("plinth multi-LoRA", 1, 1),
        ("plinth multi-LoRA", 4, 4),
        ("plinth multi-LoRA", 4, 1),  # fewer slots than adapters: forced swapping
        ("PEFT, one adapter at a time", 4, None),
    }
    assert all(r["tokens_per_s"] > 0 for r in rows)
