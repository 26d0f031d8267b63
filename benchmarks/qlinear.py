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

import os
from collections.abc import Callable

import torch
from bf16_linear import build, compare, parse_args  # the same linears, timing and table
from torch import nn

from plinth.engine import native
from plinth.engine.quantization import PackedWeight


def packer(kernel: str) -> Callable[[torch.Tensor, bool], PackedWeight]:
    """The layers in int4, the LM head in int8, as ``--quantization int4`` stores them."""
    return lambda weight, head: PackedWeight(weight, "int8" if head else "int4", kernel)


def packed_bytes(linears: list[tuple[int, nn.Module]]) -> int:
    return sum(b.numel() * b.element_size() for _, w in linears for b in w.buffers())


def main() -> None:
    args = parse_args("1,2,4,16,64,256")
    if not native.has("qlinear"):
        raise SystemExit("the native qlinear operator is not available on this CPU (needs AVX2 or AVX-512)")
    kernels = {kernel: build(packer(kernel), args.layers) for kernel in ("aten", "plinth")}
    print(f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}, "
          f"packed weights: aten {packed_bytes(kernels['aten']) / 1e6:.1f} MB, "
          f"plinth {packed_bytes(kernels['plinth']) / 1e6:.1f} MB")  # fmt: skip
    compare("torch", kernels["aten"], kernels["plinth"], packed_bytes(kernels["plinth"]), args)


if __name__ == "__main__":
    main()
