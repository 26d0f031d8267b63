"""``benchmarks/shared_cores.py`` end to end on a tiny random llama: the three settings are timed, each
ratio is its median over the ``alone`` median, and both neighbours report their embedding."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from benchmark_scripts import BENCHMARKS, ratio_as_printed

ROW = re.compile(r"^\| (alone|beside torch's threads|beside share_cores) \| ([\d. /]+) \| ([\d.]+) \| "
                 r"([\d.]+)x \| (–|\d+) \|$", re.M)  # fmt: skip


@pytest.mark.timeout(300)
def test_it_times_a_decode_step_alone_and_beside_each_kind_of_neighbour() -> None:
    cmd = [sys.executable, str(BENCHMARKS / "shared_cores.py"), "--model", "tiny", "--rounds", "2",
           "--tokens", "8"]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=280)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = {
        setting: (each, median, ratio, embed)
        for setting, each, median, ratio, embed in ROW.findall(run.stdout)
    }
    assert set(rows) == {"alone", "beside torch's threads", "beside share_cores"}, run.stdout
    alone = rows["alone"][1]
    for setting, (each, median, ratio, embed) in rows.items():
        times = sorted(float(t) for t in each.split(" / "))
        assert len(times) == 2 and times[0] <= float(median) <= times[-1]
        assert ratio_as_printed(ratio, median, alone, time_step=0.01)
        assert (embed == "–") == (setting == "alone")
