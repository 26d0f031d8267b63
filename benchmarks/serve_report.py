"""The serving benchmark's results: per-request timings, per-level rows, the tables and the goal ratios
(``serve.py`` measures; this module summarizes and prints)."""

from __future__ import annotations

import argparse
import os
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

GOAL_RATIO = 2.0
TABLE_HEADER = (
    "| concurrency | requests | throughput tok/s | latency ms/token p50 | TTFT p50 ms | TTFT p95 ms |"
)


@dataclass
class RequestResult:
    ttft_s: float
    e2e_s: float
    output_tokens: int

    @property
    def per_token_s(self) -> float | None:
        return (self.e2e_s - self.ttft_s) / (self.output_tokens - 1) if self.output_tokens > 1 else None


@dataclass
class Level:
    """One row of a results table."""

    concurrency: int
    requests: int
    output_tokens: int
    wall_s: float
    throughput_tok_s: float
    latency_ms_per_token_p50: float
    ttft_p50_ms: float
    ttft_p95_ms: float


def summarize(concurrency: int, results: list[RequestResult], wall_s: float) -> Level:
    tokens = sum(r.output_tokens for r in results)
    per_token = [r.per_token_s for r in results if r.per_token_s is not None]
    ttft = [r.ttft_s for r in results]
    return Level(
        concurrency=concurrency,
        requests=len(results),
        output_tokens=tokens,
        wall_s=wall_s,
        throughput_tok_s=tokens / wall_s,
        latency_ms_per_token_p50=1000 * float(np.percentile(per_token, 50)) if per_token else float("nan"),
        ttft_p50_ms=1000 * float(np.percentile(ttft, 50)),
        ttft_p95_ms=1000 * float(np.percentile(ttft, 95)),
    )


@dataclass
class Sweep:
    """One engine configuration's levels and the peak resident memory of its process."""

    name: str
    levels: list[Level]
    peak_rss_bytes: int


def table(levels: list[Level]) -> str:
    rows = [TABLE_HEADER, "|---:|---:|---:|---:|---:|---:|"]
    for lv in levels:
        latency, ttft50, ttft95 = lv.latency_ms_per_token_p50, lv.ttft_p50_ms, lv.ttft_p95_ms
        cells = [
            lv.concurrency,
            lv.requests,
            f"{lv.throughput_tok_s:.1f}",
            f"{latency:.1f}",
            f"{ttft50:.0f}",
            f"{ttft95:.0f}",
        ]
        rows.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(rows)


def summary(sweeps: list[Sweep], levels: list[int]) -> str:
    """The issue's table: output tok/s per engine and concurrency, and each engine's peak RSS."""
    head = " | ".join("1 stream" if c == 1 else f"{c} concurrent" for c in levels)
    rows = [f"| output tok/s | {head} | peak RSS |", "|---|" + "---:|" * (len(levels) + 1)]
    for sweep in sweeps:
        found = {lv.concurrency: f"{lv.throughput_tok_s:.1f}" for lv in sweep.levels}
        cells = " | ".join(found.get(c, "–") for c in levels)
        rows.append(f"| {sweep.name} | {cells} | {sweep.peak_rss_bytes / 2**30:.2f} GiB |")
    return "\n".join(rows)


def throughput(sweeps: dict[str, Sweep], name: str, concurrency: int) -> float | None:
    sweep = sweeps.get(name)
    found = [lv.throughput_tok_s for lv in sweep.levels if lv.concurrency == concurrency] if sweep else []
    return found[0] if found else None


def ratio_lines(sweeps: dict[str, Sweep], levels: list[int]) -> dict[str, float]:
    """Every ratio the goals are stated in, printed and returned (keyed by the printed label)."""
    out: dict[str, float] = {}

    def emit(label: str, ours: float | None, theirs: float | None, goal: str) -> None:
        if ours is not None and theirs:
            out[label] = ours / theirs
            print(f"{label}: {ours / theirs:.2f}× ({goal})")

    llama = [n for n in sweeps if n.startswith("llama.cpp")]
    for c in levels:
        plinth = throughput(sweeps, "plinth-bf16", c)
        if c == 1:
            emit(
                "plinth-bf16/llama.cpp-bf16 at 1 stream",
                plinth,
                throughput(sweeps, "llama.cpp-bf16", 1),
                "goal ≥ 1.0×",
            )
            emit("plinth-int4/llama.cpp-q4_1 at 1 stream", throughput(sweeps, "plinth-int4", 1),
                 throughput(sweeps, "llama.cpp-q4_1", 1), "goal ≥ 1.0×")  # fmt: skip
        elif llama:
            best = max((throughput(sweeps, n, c) or 0.0) for n in llama)
            emit(f"plinth-bf16/best llama.cpp at {c} concurrent", plinth, best, "goal ≥ 2.0×")
    for name in [n for n in sweeps if n.startswith("plinth")]:
        hf = "hf" + name.removeprefix("plinth")  # the same precision: plinth-bf16 and hf-bf16
        for c in levels if hf in sweeps else []:
            emit(f"{name}/{hf} throughput at {c} concurrent", throughput(sweeps, name, c),
                 throughput(sweeps, hf, c), f"goal ≥ {GOAL_RATIO:.0f}×")  # fmt: skip
    if "plinth-bf16" in sweeps and "llama.cpp-bf16" in sweeps:
        rss = sweeps["plinth-bf16"].peak_rss_bytes / sweeps["llama.cpp-bf16"].peak_rss_bytes
        out["plinth-bf16/llama.cpp-bf16 peak RSS"] = rss
        print(f"plinth-bf16/llama.cpp-bf16 peak RSS: {rss:.2f}× (goal ≤ 1.5×)")
    return out


def report(args: argparse.Namespace, sweeps: list[Sweep]) -> dict[str, Any]:
    workload = f"input {args.input_len} tokens, output {args.output_len} tokens, {args.device}"
    workload += f", {args.threads} threads"
    for sweep in sweeps:
        print(f"## {sweep.name} — {args.model.name}, {workload}\n")
        print(table(sweep.levels) + "\n")
    print(f"## Summary — {args.model.name}, {workload}, load average {os.getloadavg()[0]:.2f}\n")
    print(summary(sweeps, args.concurrency) + "\n")
    found = ratio_lines({s.name: s for s in sweeps}, args.concurrency)
    return {
        "model": str(args.model), "dtype": args.dtype, "device": args.device,
        "input_len": args.input_len, "output_len": args.output_len, "load_average": os.getloadavg(),
        "engines": {s.name: {"levels": [asdict(lv) for lv in s.levels], "peak_rss_bytes": s.peak_rss_bytes}
                    for s in sweeps},
        "ratios": found,
    }  # fmt: skip
