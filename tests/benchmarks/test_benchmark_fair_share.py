"""``benchmarks/fair_share.py`` end to end on the tiny checkpoint: both phases run, the quiet tenant gets
no 429, and ``--setting`` reaches the server (an out-of-range value stops it from starting)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "fair_share.py"


def run(model: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, str(SCRIPT), "--model", str(model), "--requests", "4", "--flooders", "3",
           "--output-len", "4", "--json", str(tmp_path / "report.json"), *extra]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=280, cwd=tmp_path)


@pytest.mark.timeout(300)
def test_fair_share_reports_both_phases(
    tiny_checkpoint_factory: Callable[[str], Path], tmp_path: Path
) -> None:
    done = run(tiny_checkpoint_factory("llama"), tmp_path, "--setting", "refusal_delay_ms=10")
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["quiet_status_alone"] == {"200": 4} and report["quiet_status_flooded"] == {"200": 4}
    assert report["noisy_status"].get("200", 0) >= 1
    assert report["ratio_p95"] == pytest.approx(report["flooded_p95_ms"] / report["alone_p95_ms"])
    assert "quiet p95 flooded / alone" in done.stdout


@pytest.mark.timeout(300)
def test_a_setting_reaches_the_server(tiny_checkpoint_factory: Callable[[str], Path], tmp_path: Path) -> None:
    done = run(tiny_checkpoint_factory("llama"), tmp_path, "--setting", "refusal_delay_ms=5000")  # > 1,000
    assert done.returncode != 0
    assert "refusal_delay_ms: Input should be less than or equal to 1000" in done.stderr
    assert not (tmp_path / "report.json").exists()
