"""``benchmarks/decode_attention.py`` end to end on a short context and a small prefill wave: Plinth's
operator, torch's path and an older source built beside it (here the current one) all run, and each
cell's ratio is torch's time over its own."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from benchmark_scripts import BENCHMARKS, ratio_as_printed

from plinth.engine import native

SOURCE = Path(native.__file__).parent / "csrc" / "decode_attention.cpp"
CELL = r"(\d+) us \((\d+\.\d\d)x\)"
ROW = re.compile(rf"^\| (\d+) \| (40|24) \| {CELL} \| {CELL} \| {CELL} \|$", re.M)


@pytest.mark.skipif(not native.has("decode_attention"), reason="no AVX2")
@pytest.mark.timeout(300)
def test_it_times_the_operator_torchs_path_and_an_older_source() -> None:
    cmd = [sys.executable, str(BENCHMARKS / "decode_attention.py"), "--streams", "1,3", "--context", "40",
           "--rounds", "2", "--prefill", "2x24", "--against", str(SOURCE)]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=280)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = ROW.findall(run.stdout)
    assert [(int(r[0]), int(r[1])) for r in rows] == [(1, 40), (3, 40), (2, 24)], run.stdout
    assert "A prefill wave" in run.stdout.split("| 3 | 40 |")[1], run.stdout  # the wave's own table
    for row in rows:
        assert float(row[2]) > 0
        assert float(row[3]) == 1.0
        for us, ratio in ((row[4], row[5]), (row[6], row[7])):
            assert float(us) > 0
            assert ratio_as_printed(ratio, row[2], us, time_step=1.0)  # microseconds
