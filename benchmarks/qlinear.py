"""Plinth's int4/int8 matmul kernel against torch's, on the linears of one SmolLM2-135M forward pass.

Every configuration runs the model's 121 quantized linears in order (30 layers of fused QKV, output,
fused gate/up and down projections in int4, then the LM head in int8, as ``--quantization int4``
stores them), on ``M`` rows of bf16 activations: one row is a one-stream decode step, 16 a decode step
of 16 streams, 256 a prefill chunk. Both kernels get the same weights (random: the speed does not
depend on the values) and the same threads, one after the other, and the ratio is taken in the same run.

    .venv/bin/python benchmarks/qlinear.py                 # M = 1, 2, 4, 16, 64, 256
    .venv/bin/python benchmarks/qlinear.py --rows 1,16 --repeats 50

The weights (~94 MB) exceed this machine's last-level cache, so one pass streams them from memory as a
decode step does; ``GB/s`` is the packed bytes read per second.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from plinth.engine import native
from plinth.engine.quantization import PackedWeight

# SmolLM2-135M: hidden 576, 9 heads of 64 with 3 KV heads, MLP 1536, vocabulary 49152
LAYER_SHAPES = ((960, 576), (576, 576), (3072, 576), (576, 1536))
LAYERS = 30
HEAD_SHAPE = (49152, 576)


def build(kernel: str, layers: int) -> list[PackedWeight]:
    generator = torch.Generator().manual_seed(0)
    weights = []
    for _ in range(layers):
        for shape in LAYER_SHAPES:
            weights.append(PackedWeight(torch.randn(shape, generator=generator).bfloat16(), "int4", kernel))
    weights.append(PackedWeight(torch.randn(HEAD_SHAPE, generator=generator).bfloat16(), "int8", kernel))
    return weights


def packed_bytes(weights: list[PackedWeight]) -> int:
    return sum(b.numel() * b.element_size() for w in weights for b in w.buffers())


def time_pass(weights: list[PackedWeight], rows: int, repeats: int) -> float:
    """Median seconds of one pass over all the linears on ``rows`` rows."""
    xs = {features: torch.randn(rows, features).bfloat16() for features in map(_in_features, weights)}
    with torch.inference_mode():
        for _ in range(2):
            for w in weights:
                w(xs[_in_features(w)])
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            for w in weights:
                w(xs[_in_features(w)])
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def _in_features(w: PackedWeight) -> int:
    if w.kernel == "plinth":
        return w.packed.shape[1] * (4 if w.method == "int4" else 2)
    return w.packed.shape[1] * (2 if w.method == "int4" else 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", default="1,2,4,16,64,256", help="rows of activations (comma-separated)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--layers", type=int, default=LAYERS, help="decoder layers (SmolLM2 has 30)")
    args = parser.parse_args()
    if not native.has("qlinear"):
        raise SystemExit("the native qlinear operator is not available on this CPU (needs AVX512-BF16)")
    kernels = {name: build(name, args.layers) for name in ("aten", "plinth")}
    load = os.getloadavg()[0]
    print(f"torch threads {torch.get_num_threads()}, load average {load:.2f}, "
          f"packed weights: aten {packed_bytes(kernels['aten']) / 1e6:.1f} MB, "
          f"plinth {packed_bytes(kernels['plinth']) / 1e6:.1f} MB")  # fmt: skip
    print("\n| rows | torch ms | Plinth ms | Plinth GB/s | Plinth / torch speed |")
    print("|---:|---:|---:|---:|---:|")
    for rows in (int(r) for r in args.rows.split(",")):
        repeats = max(3, args.repeats // max(1, rows // 16))
        base = time_pass(kernels["aten"], rows, repeats)
        ours = time_pass(kernels["plinth"], rows, repeats)
        rate = packed_bytes(kernels["plinth"]) / ours / 1e9
        print(f"| {rows} | {base * 1e3:.2f} | {ours * 1e3:.2f} | {rate:.1f} | {base / ours:.2f}x |")


if __name__ == "__main__":
    main()
