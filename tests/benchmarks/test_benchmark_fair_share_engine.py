"""``benchmarks/fair_share_engine.py`` end to end on the tiny llama: both phases run, the ratios are the
printed percentiles' quotients, and the flooded phase's steps carry the noisy requests (three rows) and
their prefills, which the quiet request alone never does."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from benchmark_scripts import BENCHMARKS, ratio_as_printed

LATENCY = re.compile(r"^quiet (alone|flooded): +p50 +([\d.]+) ms  p95 +([\d.]+) ms$", re.M)
RATIO = re.compile(r"^quiet (p50|p95) flooded / alone: ([\d.]+)x", re.M)
STEP = re.compile(r"^\| (alone|flooded) \| \((\d+), (\d+)\) \| (\d+) \| [\d.]+ \|$", re.M)


@pytest.mark.timeout(300)
def test_it_measures_the_quiet_request_alone_and_beside_the_noisy_ones(tiny_llama) -> None:
    cmd = [sys.executable, str(BENCHMARKS / "fair_share_engine.py"), "--model", str(tiny_llama),
           "--rounds", "4", "--output-len", "6"]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=280)
    assert run.returncode == 0, run.stderr[-3000:]
    latency = {mode: (float(p50), float(p95)) for mode, p50, p95 in LATENCY.findall(run.stdout)}
    ratios = dict(RATIO.findall(run.stdout))
    assert set(latency) == {"alone", "flooded"}, run.stdout
    for i, name in enumerate(("p50", "p95")):
        assert ratio_as_printed(ratios[name], latency["flooded"][i], latency["alone"][i], time_step=0.1)
    steps = {
        (mode, int(rows), int(tokens)): int(count) for mode, rows, tokens, count in STEP.findall(run.stdout)
    }
    assert {rows for mode, rows, _ in steps if mode == "alone"} == {1}
    assert ("flooded", 3, 3) in steps  # the quiet request's decode beside the two noisy ones
    assert any(mode == "flooded" and tokens > rows for mode, rows, tokens in steps)  # a noisy prefill joined
    assert sum(n for (mode, rows, _), n in steps.items() if mode == "alone") >= 4 * 6
