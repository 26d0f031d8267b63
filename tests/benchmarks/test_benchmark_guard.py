"""benchmarks/guard.py runs end to end in quick mode and prints its table and goal line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_guard_benchmark_quick_mode_prints_latencies_and_the_goal() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "guard.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    for name in ("prompt_attack short prompt", "prompt_attack 2k-token doc"):
        match = re.search(rf"^{re.escape(name)}\s+([\d.]+)\s+([\d.]+)$", out, re.MULTILINE)
        assert match, out
        p50, p95 = float(match.group(1)), float(match.group(2))
        assert 0 < p50 <= p95
    assert "(tuned)" not in out  # the fine-tuned variant is timed only when asked for (--tuned)
    assert re.search(
        r"^goal: short-prompt p50 [\d.]+ ms < 15 ms with the classifier: (met|NOT met)$", out, re.M
    )
    assert ("pii short prompt" in out) != ("pii: skipped" in out)  # PII measured, or said why not
