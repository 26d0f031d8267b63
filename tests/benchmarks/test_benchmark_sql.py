"""The SQL benchmark's quick mode runs end to end (DuckDB, pandas and Spark) and prints its ratios."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_benchmark_prints_ratios(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "sql.py"),
            "--rows",
            "20000",
            "--quick",
            "--cache",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if "pandas/duckdb" in line]
    assert len(lines) == 5
    assert all("spark/duckdb" in line and "duckdb<1s: yes" in line for line in lines)
    assert "generated in" in done.stdout
