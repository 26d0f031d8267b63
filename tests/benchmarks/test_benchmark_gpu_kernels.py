"""``benchmarks/gpu_kernels.py --smoke``: the GPU kernel benchmark runs end to end on Triton's interpreter
(tiny shapes, CPU), writes every figure, and refuses a timing run where there is no GPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_kernels.py"


def test_the_smoke_run_measures_both_kernels_against_their_torch_paths(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--json", str(out)],
                          capture_output=True, text=True, timeout=240)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert [(r["requests"], r["context"]) for r in report["attention"]] == [(1, 40), (3, 40)]
    assert [(r["adapters"], r["step"]) for r in report["lora"]] == [
        (1, "decode"), (1, "prefill"), (3, "decode"), (3, "prefill"),
    ]  # fmt: skip
    for row in report["attention"]:
        assert row["triton_ms"] > 0 and row["ratio"] == pytest.approx(row["torch_ms"] / row["triton_ms"])
    assert "| requests | context |" in done.stdout and "| adapters | step |" in done.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_a_timing_run_without_a_gpu_says_so() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "no CUDA device here" in done.stdout
