"""``benchmarks/sampler_argmax.py`` end to end on the tiny llama: the operator alone and decode steps
with either argmax, each ratio ATen's time over the operator's as printed."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from benchmark_scripts import BENCHMARKS, ratio_as_printed

from plinth.engine import native

OPERATOR = re.compile(r"^\| (\d+) \| (\d+\.\d) \| (\d+\.\d) \| (\d+\.\d\d)x \|$", re.M)
STEP = re.compile(r"^\| (\d+) \| (\d+\.\d\d) \| (\d+\.\d\d) \| (\d+\.\d\d\d)x \|$", re.M)


@pytest.mark.skipif(not native.has("argmax"), reason="no AVX2/AVX512-BF16")
@pytest.mark.timeout(300)
def test_it_times_the_operator_and_decode_steps_both_ways(tiny_llama) -> None:
    cmd = [sys.executable, str(BENCHMARKS / "sampler_argmax.py"), "--model", str(tiny_llama),
           "--streams", "1,4", "--steps", "6", "--repeats", "5"]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=280)
    assert run.returncode == 0, run.stderr[-3000:]
    operator, steps = OPERATOR.findall(run.stdout), STEP.findall(run.stdout)
    assert [int(r[0]) for r in operator] == [1, 4] == [int(r[0]) for r in steps], run.stdout
    for _, aten, ours, ratio in operator:
        assert ratio_as_printed(ratio, aten, ours, time_step=0.1)
    for _, aten, ours, ratio in steps:
        assert float(ours) > 0 and ratio_as_printed(ratio, aten, ours, time_step=0.01)
