"""``benchmarks/bf16_linear.py`` and ``benchmarks/qlinear.py`` end to end on two of SmolLM2's layers:
both kernels run at every row count, and the table holds their times and the ratio between them."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from benchmark_scripts import BENCHMARKS

from plinth.engine import native

ROW = re.compile(r"^\| (\d+) \| (\d+\.\d\d) \| (\d+\.\d\d) \| (\d+\.\d) \| (\d+\.\d\d)x \|$", re.M)


NO_BF16 = pytest.mark.skipif(not native.has("bf16_linear"), reason="no AVX2")


@pytest.mark.parametrize(
    ("script", "options", "levels"),
    [
        pytest.param("bf16_linear.py", [], [1, 3, 17], marks=NO_BF16),
        # Plinth's register tiles against its float32 GEMM path, across gemm_rows (256)
        pytest.param("bf16_linear.py", ["--baseline", "tiles"], [17, 300], marks=NO_BF16),
        pytest.param(
            "qlinear.py",
            [],
            [1, 3, 17],
            marks=pytest.mark.skipif(not native.has("qlinear"), reason="no AVX2"),
        ),
    ],
)
@pytest.mark.timeout(300)
def test_the_kernel_benchmark_times_both_kernels_and_prints_the_ratio(
    script: str, options: list[str], levels: list[int]
) -> None:
    rows_option = ",".join(map(str, levels))
    cmd = [sys.executable, str(BENCHMARKS / script), "--rows", rows_option, "--repeats", "3", "--layers", "2"]
    run = subprocess.run([*cmd, *options], capture_output=True, text=True, timeout=280)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = ROW.findall(run.stdout)
    assert [int(r[0]) for r in rows] == levels
    for _, base, ours, _, ratio in rows:
        assert float(base) > 0 and float(ours) > 0
        assert abs(float(ratio) - float(base) / float(ours)) <= 0.01 + 0.01 * float(ratio)
