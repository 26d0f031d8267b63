"""``benchmarks/serve.py --quick`` end to end: a real ``plinth serve`` subprocess, then HF ``generate``."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "serve.py"
TABLE_HEADER = (
    "| concurrency | requests | throughput tok/s | latency ms/token p50 | TTFT p50 ms | TTFT p95 ms |"
)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_quick_benchmark_prints_tables_and_ratio(
    tiny_checkpoint_factory: Callable[[str], Path], tmp_path: Path
) -> None:
    model, out = tiny_checkpoint_factory("llama"), tmp_path / "bench.json"
    cmd = [sys.executable, str(SCRIPT), "--quick", "--model", str(model), "--json", str(out)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=280, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]

    assert run.stdout.count(TABLE_HEADER) == 2  # Plinth and HF
    assert "| output tok/s | 1 stream | 4 concurrent | peak RSS |" in run.stdout  # the summary table
    assert re.search(r"^\| plinth \| \d+\.\d \| \d+\.\d \| \d\.\d\d GiB \|$", run.stdout, re.M)
    assert re.search(r"^\| hf \| – \| \d+\.\d \| \d\.\d\d GiB \|$", run.stdout, re.M)
    assert re.search(r"^plinth/hf throughput at 4 concurrent: \d+\.\d\d× \(goal ≥ 2×\)$", run.stdout, re.M)

    results = json.loads(out.read_text())
    assert results["dtype"] == "float32" and results["input_len"] == 16 and results["output_len"] == 8
    engines = results["engines"]
    assert [lv["concurrency"] for lv in engines["plinth"]["levels"]] == [1, 4]
    assert [lv["concurrency"] for lv in engines["hf"]["levels"]] == [4]
    for engine in engines.values():
        assert engine["peak_rss_bytes"] > 50 * 2**20  # a real process's high-water mark, not a placeholder
        for level in engine["levels"]:
            assert level["requests"] == max(level["concurrency"], 4)  # one stream: 4 requests
            assert level["output_tokens"] == level["requests"] * 8
            for key in (
                "wall_s",
                "throughput_tok_s",
                "latency_ms_per_token_p50",
                "ttft_p50_ms",
                "ttft_p95_ms",
            ):
                assert level[key] > 0, (key, level)
            assert level["ttft_p95_ms"] >= level["ttft_p50_ms"]
    assert results["ratios"]["plinth/hf throughput at 4 concurrent"] > 0
