"""Plinth's bf16 matmul kernel against what the CPU would run without it, on the linears of one SmolLM2-135M
pass: oneDNN's prepacked bf16 kernel where oneDNN has one (AVX512-BF16, AMX), else ATen's float32
matmul (MKL), which ``--dtype auto`` chose on such a CPU (AVX2) before Plinth's kernel served it.

Every configuration runs the model's 121 bf16 linears in order (30 layers of fused QKV, output, fused
gate/up and down projections, then the tied LM head), on ``M`` rows of bf16 activations: one row is a
one-stream decode step, 16 and 64 decode steps of as many streams, 256-1024 prefill chunks. Both
kernels get the same weights (random: the speed does not depend on the values), each in its own layout
(``plinth.engine.prepack``: ``NativeBf16Weight`` and ``OneDnnWeight``; float32 weights as they are), and
the same threads, one after the other; the ratio is taken in the same run.

    .venv/bin/python benchmarks/bf16_linear.py                  # M = 1, 2, 4, 16, 64, 256, 1024
    .venv/bin/python benchmarks/bf16_linear.py --rows 1,16 --repeats 50
    .venv/bin/python benchmarks/bf16_linear.py --baseline tiles --rows 128,256,512,2048
    .venv/bin/python benchmarks/bf16_linear.py --rows 16,64 --shapes   # also Plinth's kernel per layer shape

``--against FILE.cpp`` also builds an older ``bf16_linear.cpp`` beside the current one (``against.py``) and
times the two on the same packed weights, alternated round by round in this process::

    git show HEAD~1:plinth/engine/csrc/bf16_linear.cpp > /tmp/old.cpp
    .venv/bin/python benchmarks/bf16_linear.py --rows 16,64 --against /tmp/old.cpp --rounds 20

``--baseline tiles`` compares Plinth's kernel against itself held to its register tiles at every row
count (``gemm_rows`` past it): on an AVX2 CPU, from 256 rows the kernel multiplies through MKL's
float32 GEMM over the weight converted a panel at a time (``csrc/bf16_linear.cpp``, ``gemm_run``).

The weights (270 MB) exceed this machine's last-level cache, so one pass streams them from memory as a
decode step does; ``GB/s`` is the weight bytes read per second.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from against import build_against
from torch import nn

from plinth.engine import native
from plinth.engine.prepack import NativeBf16Weight, OneDnnWeight, PlainWeight, onednn_bf16

# SmolLM2-135M: hidden 576, 9 heads of 64 with 3 KV heads, MLP 1536, vocabulary 49152
LAYER_SHAPES = ((960, 576), (576, 576), (3072, 576), (576, 1536))
LAYERS = 30
HEAD_SHAPE = (49152, 576)


def float32_weight(weight: torch.Tensor) -> nn.Module:
    return PlainWeight(weight.float())


class RegisterTiles(nn.Module):
    """Plinth's kernel held to its register tiles for any number of rows (no float32 GEMM)."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.packed = NativeBf16Weight(weight).packed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.plinth.bf16_linear(x, self.packed, gemm_rows=1 << 62)


def baseline(kind: str = "auto") -> tuple[str, Callable[[torch.Tensor], nn.Module], torch.dtype]:
    """The kernel, and activations' dtype, a bf16 model's linears would run on this CPU without Plinth's
    (``auto``), or Plinth's own register tiles (``tiles``)."""
    if kind == "tiles":
        return "register tiles", RegisterTiles, torch.bfloat16
    if onednn_bf16():
        return "oneDNN", OneDnnWeight, torch.bfloat16
    return "ATen float32", float32_weight, torch.float32


def build(make: Callable[[torch.Tensor, bool], nn.Module], layers: int) -> list[tuple[int, nn.Module]]:
    """(input features, ``make(bf16 weight, is_head)``) for every linear, in the model's order (the
    same random weights for every kernel: the speed does not depend on the values)."""
    generator = torch.Generator().manual_seed(0)
    shapes = [shape for _ in range(layers) for shape in LAYER_SHAPES] + [HEAD_SHAPE]
    return [
        (shape[1], make(torch.randn(shape, generator=generator).bfloat16(), shape == HEAD_SHAPE))
        for shape in shapes
    ]


def time_pass(
    linears: list[tuple[int, nn.Module]], rows: int, repeats: int, dtype: torch.dtype = torch.bfloat16
) -> float:
    """Median seconds of one pass over all the linears on ``rows`` rows of ``dtype`` activations."""
    xs = {features: torch.randn(rows, features).to(dtype) for features, _ in linears}
    with torch.inference_mode():
        for _ in range(2):
            for features, weight in linears:
                weight(xs[features])
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            for features, weight in linears:
                weight(xs[features])
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def parse_args(default_rows: str, baseline_option: bool = False) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(sys.modules["__main__"].__doc__ or "").split("\n")[0])
    parser.add_argument("--rows", default=default_rows, help="rows of activations (comma-separated)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--layers", type=int, default=LAYERS, help="decoder layers (SmolLM2 has 30)")
    if baseline_option:  # this script's (qlinear.py shares the options above)
        parser.add_argument(
            "--shapes", action="store_true", help="also time Plinth's kernel on each layer shape alone"
        )
        parser.add_argument("--against", type=Path, help="an older bf16_linear.cpp to time beside this one")
        parser.add_argument("--rounds", type=int, default=20, help="alternated rounds with --against")
        parser.add_argument(
            "--baseline",
            choices=("auto", "tiles"),
            default="auto",
            help="auto: what the CPU runs without Plinth's kernel; tiles: Plinth's register tiles only",
        )
    return parser.parse_args()


def compare(
    baseline: str,
    base: list[tuple[int, nn.Module]],
    ours: list[tuple[int, nn.Module]],
    nbytes: int,
    args: argparse.Namespace,
    base_dtype: torch.dtype = torch.bfloat16,
) -> None:
    """The table: both kernels at every row count, one after the other, and Plinth's speed over the
    baseline's (fed ``base_dtype`` activations); ``nbytes`` is what Plinth's pass reads (its GB/s)."""
    print(f"\n| rows | {baseline} ms | Plinth ms | Plinth GB/s | Plinth / {baseline} speed |")
    print("|---:|---:|---:|---:|---:|")
    for rows in (int(r) for r in args.rows.split(",")):
        repeats = max(3, args.repeats // max(1, rows // 16))
        before, after = time_pass(base, rows, repeats, base_dtype), time_pass(ours, rows, repeats)
        rate = nbytes / after / 1e9
        print(f"| {rows} | {before * 1e3:.2f} | {after * 1e3:.2f} | {rate:.1f} | {before / after:.2f}x |")


def per_shape(ours: list[tuple[int, nn.Module]], layers: int, args: argparse.Namespace) -> None:
    """Plinth's kernel on each layer shape's linears alone (all layers' copies, streamed as in the pass):
    where a shape's share of the time exceeds its share of the work, its split over the threads or its
    tiles cost it. The shapes' 64-output groups are what a thread's share was cut into before 2026-12-07."""
    print("\n| rows | shape (out x in) | 64-output groups | ms, all layers | GFLOP/s |")
    print("|---:|---|---:|---:|---:|")
    for rows in (int(r) for r in args.rows.split(",")):
        repeats = max(3, args.repeats // max(1, rows // 16))
        for k, (n, inputs) in enumerate(LAYER_SHAPES):
            linears = ours[k : layers * len(LAYER_SHAPES) : len(LAYER_SHAPES)]
            seconds = time_pass(linears, rows, repeats)
            rate = 2 * rows * n * inputs * layers / seconds / 1e9
            print(f"| {rows} | {n} x {inputs} | {n / 64:g} | {seconds * 1e3:.3f} | {rate:.1f} |")


class Operator(nn.Module):
    """A build's operator over a packed weight of the current layout, called as directly for either build
    (through NativeBf16Weight's checks instead, the current build lost 2-3 % against itself)."""

    def __init__(self, packed: torch.Tensor, op: Any) -> None:
        super().__init__()
        self.packed, self.op = packed, op

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x, self.packed)


def alternate(ours: list[tuple[int, nn.Module]], source: Path, args: argparse.Namespace) -> None:
    """The older source's kernel and the current one on the same weights, one pass each per round, in
    alternating order; the medians, their ratio and the rounds the current one won."""
    op = build_against(source).bf16_linear
    older: list[tuple[int, nn.Module]] = []
    current: list[tuple[int, nn.Module]] = []
    for features, weight in ours:  # NativeBf16Weight's packed layout, which the older source reads too
        assert isinstance(weight.packed, torch.Tensor)
        older.append((features, Operator(weight.packed, op)))
        current.append((features, Operator(weight.packed, torch.ops.plinth.bf16_linear)))
    print("\n| rows | older source ms | Plinth ms | older / Plinth | Plinth faster in rounds | same bits |")
    print("|---:|---:|---:|---:|---:|---|")
    for rows in (int(r) for r in args.rows.split(",")):
        xs = {features: torch.randn(rows, features).bfloat16() for features, _ in ours}
        kernels = {"older": older, "plinth": current}
        times: dict[str, list[float]] = {name: [] for name in kernels}
        with torch.inference_mode():
            same = all(torch.equal(a(xs[f]), b(xs[f])) for (f, a), (_, b) in zip(older, current, strict=True))
            for name in kernels:  # warm up
                for features, weight in kernels[name]:
                    weight(xs[features])
            for r in range(args.rounds):
                for name in ("older", "plinth") if r % 2 == 0 else ("plinth", "older"):
                    start = time.perf_counter()
                    for features, weight in kernels[name]:
                        weight(xs[features])
                    times[name].append(time.perf_counter() - start)
        before, after = statistics.median(times["older"]), statistics.median(times["plinth"])
        won = sum(p < o for p, o in zip(times["plinth"], times["older"], strict=True))
        cells = f"{before * 1e3:.2f} | {after * 1e3:.2f} | {before / after:.3f}x | {won} of {args.rounds}"
        print(f"| {rows} | {cells} | {'yes' if same else 'no'} |")


def main() -> None:
    args = parse_args("1,2,4,16,64,256,1024", baseline_option=True)
    if not native.has("bf16_linear"):
        raise SystemExit(
            "the native bf16_linear operator is not available on this CPU (needs AVX512-BF16 or AVX2)"
        )
    name, make, dtype = baseline(args.baseline)
    base = build(lambda weight, _head: make(weight), args.layers)
    ours = build(lambda weight, _head: NativeBf16Weight(weight), args.layers)
    layer_bytes = sum(2 * rows * cols for rows, cols in LAYER_SHAPES)
    weight_bytes = layer_bytes * args.layers + 2 * HEAD_SHAPE[0] * HEAD_SHAPE[1]
    print(f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}, "
          f"weights {weight_bytes / 1e6:.0f} MB")  # fmt: skip
    compare(name, base, ours, weight_bytes, args, dtype)
    if args.shapes:
        per_shape(ours, args.layers, args)
    if args.against:
        alternate(ours, args.against, args)


if __name__ == "__main__":
    main()
