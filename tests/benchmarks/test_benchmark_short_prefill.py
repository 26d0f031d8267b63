"""``benchmarks/short_prefill.py`` end to end on the tiny llama: both ways run for each chunk size, each
ratio is SDPA's time over the row-by-row one, and the last column says what the engine's limits pick."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from benchmark_scripts import BENCHMARKS, ratio_as_printed

from plinth.engine import attention, native

ROW = re.compile(r"^\| (\d+) \| (\d+\.\d) \| (\d+\.\d) \| (\d+\.\d\d)x \| (row by row|SDPA) \|$", re.M)


@pytest.mark.skipif(not native.has("decode_layer"), reason="no AVX2")
@pytest.mark.timeout(300)
@pytest.mark.parametrize(("dtype", "long_way"), [("bfloat16", "row by row"), ("float16", "SDPA")])
def test_it_times_a_short_chunk_both_ways_and_says_which_the_engine_takes(
    tiny_llama, dtype: str, long_way: str
) -> None:
    """bf16 prompts always go row by row (their rows attended as a block); fp16 ones only within the
    limits (each row on its own)."""
    too_long = attention.ROW_WISE_PREFILL + 1  # and after 2 * ROW_WISE_MEAN_CONTEXT cached positions
    cached = 2 * attention.ROW_WISE_MEAN_CONTEXT
    cmd = [sys.executable, str(BENCHMARKS / "short_prefill.py"), "--model", str(tiny_llama), "--dtype", dtype,
           "--tokens", f"4,{too_long}", "--cached", str(cached), "--rounds", "2"]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=280)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = ROW.findall(run.stdout)
    assert [(int(r[0]), r[4]) for r in rows] == [(4, "row by row"), (too_long, long_way)], run.stdout
    for _, by_rows, sdpa, ratio, _ in rows:
        assert float(by_rows) > 0 and float(sdpa) > 0
        assert ratio_as_printed(ratio, sdpa, by_rows, time_step=0.1)  # SDPA's time over the rows' time


@pytest.mark.skipif(not native.has("decode_layer"), reason="no AVX2")
@pytest.mark.timeout(300)
def test_a_wave_of_prompts_is_one_chunk_and_goes_row_by_row_when_its_rows_attend_over_few_positions(
    tiny_llama,
) -> None:
    tokens = str(attention.ROW_WISE_PREFILL)  # 3 x 128 tokens: past the short limit, 64.5 positions a row
    cmd = [sys.executable, str(BENCHMARKS / "short_prefill.py"), "--model", str(tiny_llama),
           "--requests", "3", "--tokens", tokens, "--decodes", "1", "--rounds", "2"]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=280)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "3 prompts a chunk" in run.stdout
    rows = ROW.findall(run.stdout)
    assert [(int(r[0]), r[4]) for r in rows] == [(attention.ROW_WISE_PREFILL, "row by row")], run.stdout


@pytest.mark.skipif(not native.has("decode_layer"), reason="no AVX2")
@pytest.mark.timeout(300)
def test_against_unpruned_times_the_engines_way_against_the_last_layer_running_every_row(tiny_llama) -> None:
    cmd = [sys.executable, str(BENCHMARKS / "short_prefill.py"), "--model", str(tiny_llama), "--requests",
           "3", "--tokens", "32", "--decodes", "0", "--rounds", "2", "--against", "unpruned"]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=280)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "| unpruned / row by row |" in run.stdout
    [(tokens, by_rows, unpruned, ratio, takes)] = ROW.findall(run.stdout)
    assert (int(tokens), takes) == (32, "row by row")
    assert ratio_as_printed(ratio, unpruned, by_rows, time_step=0.1)
