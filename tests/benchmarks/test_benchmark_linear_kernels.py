"""``benchmarks/bf16_linear.py`` and ``benchmarks/qlinear.py`` end to end on two of SmolLM2's layers:
both kernels run at every row count, and the table holds their times and the ratio between them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

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


AGAINST = re.compile(
    r"^\| (\d+) \| (\d+\.\d\d) \| (\d+\.\d\d) \| (\d+\.\d\d\d)x \| (\d+) of 4 \| (yes|no) \|$", re.M
)
SHAPE = re.compile(r"^\| (\d+) \| (\d+) x (\d+) \| (\d+(?:\.\d+)?) \| (\d+\.\d{3}) \| (\d+\.\d) \|$", re.M)


@NO_BF16
@pytest.mark.timeout(300)
def test_against_an_older_source_alternates_the_two_builds_and_per_shape_times_each_shape() -> None:
    source = Path(native.__file__).parent / "csrc" / "bf16_linear.cpp"  # the current one, as an "older" build
    cmd = [sys.executable, str(BENCHMARKS / "bf16_linear.py"), "--rows", "3,17", "--repeats", "3", "--layers",
           "2", "--shapes", "--against", str(source), "--rounds", "4"]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=280)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = AGAINST.findall(run.stdout)
    assert [int(r[0]) for r in rows] == [3, 17], run.stdout
    for _, older, ours, ratio, _, same in rows:
        assert same == "yes"  # the same source gives the same bits
        assert abs(float(ratio) - float(older) / float(ours)) <= 0.002 + 0.01 * float(ratio)
    shapes = SHAPE.findall(run.stdout)
    assert [(int(r[0]), int(r[1]), int(r[2])) for r in shapes] == [
        (rows, n, k) for rows in (3, 17) for n, k in ((960, 576), (576, 576), (3072, 576), (576, 1536))
    ]
    assert all(float(r[4]) > 0 and float(r[5]) > 0 for r in shapes)
