"""How close the serving workload's phases run to this CPU's arithmetic limit (issue 18's bound).

On a CPU without bf16 dot-product instructions (AVX2 only) a bf16 product is a float32 FMA after a
conversion, so from a few rows on every matmul is bound by arithmetic, not by memory. Then no engine
can serve faster than the workload's floating-point operations divided by the machine's float32 rate,
and a throughput goal can be read as the share of that rate it needs end to end. This script measures
both sides in one run:

1. The baseline: ATen's float32 GEMM (MKL/oneDNN) on ``--gemm-size``-square matrices, best of 5, on the
   engine's thread count; what a tuned library reaches on this machine's FMA units. For a bf16 model
   also ATen's bf16 GEMM, and the faster of the two is the GEMM rate: on an AVX512-BF16 CPU oneDNN's
   bf16 GEMM runs vdpbf16ps at about twice the float32 rate (a Zen 4: 420 against 195 GFLOP/s).
2. The engine in process (no HTTP): the prefill of ``--streams`` prompts of ``--input-len`` random ids
   (median of 3 waves), and the median decode step of that many streams.
3. Each phase's FLOPs from the model's shapes (the linears, attention over its context, the LM head
   for the rows that sample), so its GFLOP/s and its share of the GEMM rate; then, for one wave of the
   serve benchmark's workload (``--streams`` requests, ``--input-len`` in, ``--output-len`` out), the
   throughput the measured phases give, and for ``--target`` tok/s the share of the GEMM rate it needs.

    .venv/bin/python benchmarks/compute_bound.py                           # SmolLM2 bf16, 16 streams
    .venv/bin/python benchmarks/compute_bound.py --streams 64 --target 195  # 2x llama.cpp at 64 streams

Dense decoders only (a mixture of experts' active FLOPs depend on routing).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from plinth.engine import EngineConfig, LLMEngine, SamplingParams
from plinth.engine.model_config import ModelConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from decode_profile import start_decoding, timed_steps  # noqa: E402


@dataclass(frozen=True)
class Flops:
    """Floating-point operations of a dense decoder, from its shapes (a multiply-add is two)."""

    config: ModelConfig

    def linear_per_token(self) -> float:
        c = self.config
        q, kv = c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim
        per_layer = c.hidden_size * (q + 2 * kv) + q * c.hidden_size + 3 * c.hidden_size * c.intermediate_size
        return 2.0 * c.num_layers * per_layer

    def lm_head_per_row(self) -> float:
        return 2.0 * self.config.hidden_size * self.config.vocab_size

    def attention(self, query_context_pairs: float) -> float:
        """QK^T and PV over ``query_context_pairs`` (the sum, over query tokens, of the keys each reads)."""
        c = self.config
        return 4.0 * c.num_layers * c.num_heads * c.head_dim * query_context_pairs

    def prefill(self, streams: int, length: int) -> float:
        causal = streams * length * (length + 1) / 2
        return (
            streams * length * self.linear_per_token()
            + streams * self.lm_head_per_row()
            + self.attention(causal)
        )

    def decode_step(self, streams: int, context: int) -> float:
        per_row = self.linear_per_token() + self.lm_head_per_row()
        return streams * per_row + self.attention(streams * context)


def gemm_peak(size: int, dtype: torch.dtype = torch.float32, repeats: int = 5) -> float:
    """Best GEMM rate in FLOP/s on ``size``-square matrices of ``dtype``."""
    a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    for _ in range(2):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best


def prompts(n: int, length: int, vocab: int, rng: random.Random) -> list[list[int]]:
    return [[rng.randrange(16, vocab) for _ in range(length)] for _ in range(n)]


def time_prefill(engine: LLMEngine, streams: int, length: int, rng: random.Random) -> float:
    """Seconds from adding ``streams`` prompts until every one has its first token (the steps only)."""
    params = SamplingParams(max_tokens=1, temperature=0, ignore_eos=True)
    for prompt in prompts(streams, length, engine.model_config.vocab_size, rng):
        engine.add_request(prompt, params)
    elapsed = 0.0
    while engine.has_unfinished():
        start = time.perf_counter()
        engine.step()
        elapsed += time.perf_counter() - start
    return elapsed


def time_decode(engine: LLMEngine, streams: int, length: int, steps: int, rng: random.Random) -> float:
    """Median seconds of a decode step of ``streams`` streams, after their prefill and 3 warm-up steps."""
    params = SamplingParams(max_tokens=steps + 5, temperature=0, ignore_eos=True)
    start_decoding(engine, prompts(streams, length, engine.model_config.vocab_size, rng), params, warmup=3)
    times = timed_steps(engine, steps)
    while engine.has_unfinished():
        engine.step()
    return statistics.median(times)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m-instruct", help="packaged name, .gguf or checkpoint dir")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--streams", type=int, default=16)
    p.add_argument("--input-len", type=int, default=128)
    p.add_argument("--output-len", type=int, default=64)
    p.add_argument("--steps", type=int, default=20, help="decode steps timed")
    p.add_argument("--gemm-size", type=int, default=2048)
    p.add_argument("--target", type=float, help="output tok/s to read as a share of the GEMM rate")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from plinth.llm.catalog import resolve

    model = resolve(args.model, Path(".bench"))[0]
    max_len = args.input_len + args.output_len + 16
    # plinth serve's step budget (2,048 tokens): a 64-stream prefill takes four steps there, and here
    config = EngineConfig(model=model, dtype=args.dtype, device="cpu", max_model_len=max_len,
                          max_num_seqs=max(args.streams, 64))  # fmt: skip
    engine = LLMEngine(config)
    mc = engine.model_config
    if mc.num_experts:
        print("compute_bound.py: dense decoders only (a mixture of experts' FLOPs depend on routing)")
        return 2
    flops, rng = Flops(mc), random.Random(0)
    peak = gemm_peak(args.gemm_size)
    print(f"{Path(model).name}, {args.dtype}, {torch.get_num_threads()} threads, "
          f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    print(f"baseline: float32 GEMM {args.gemm_size}², best of 5: {peak / 1e9:.1f} GFLOP/s")
    if engine.runner.dtype == torch.bfloat16:
        bf16 = gemm_peak(args.gemm_size, torch.bfloat16)
        print(f"          bfloat16 GEMM {args.gemm_size}², best of 5: {bf16 / 1e9:.1f} GFLOP/s")
        peak = max(peak, bf16)
    print(f"the GEMM rate below: {peak / 1e9:.1f} GFLOP/s\n")

    time_prefill(engine, 1, args.input_len, rng)  # warm-up
    prefill_s = statistics.median(time_prefill(engine, args.streams, args.input_len, rng) for _ in range(3))
    step_s = time_decode(engine, args.streams, args.input_len, args.steps, rng)
    mid_context = args.input_len + args.output_len // 2
    phases = [
        (f"prefill {args.streams} × {args.input_len}", args.streams * args.input_len, prefill_s,
         flops.prefill(args.streams, args.input_len)),
        (f"decode step, {args.streams} streams", args.streams, step_s,
         flops.decode_step(args.streams, args.input_len + 4)),
    ]  # fmt: skip
    print("| phase | rows | ms | GFLOP | GFLOP/s | of the GEMM rate |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, rows, seconds, work in phases:
        rate = work / seconds
        cells = f"{1000 * seconds:.5g} | {work / 1e9:.3g} | {rate / 1e9:.3g} | {rate / peak:.3g}"
        print(f"| {name} | {rows} | {cells} |")

    # The wave's decode steps are counted at their mean context but timed at the prompt's length, where
    # attention is a little cheaper: the projected throughput leans optimistic, never pessimistic.
    tokens = args.streams * args.output_len
    work = flops.prefill(args.streams, args.input_len) + args.output_len * flops.decode_step(
        args.streams, mid_context
    )
    wave_s = prefill_s + args.output_len * step_s
    print(
        f"\none wave: {args.streams} requests of {args.input_len} + {args.output_len} tokens = "
        f"{work / 1e9:.0f} GFLOP; at the measured phases {wave_s:.3g} s, {tokens / wave_s:.1f} tok/s "
        f"(engine steps only, no HTTP), {work / wave_s / peak:.2f} of the GEMM rate end to end"
    )
    print(f"at the full GEMM rate: {work / peak:.3g} s, {tokens / (work / peak):.1f} tok/s")
    if args.target:
        needed = work / (tokens / args.target)
        print(f"target {args.target:.1f} tok/s: {needed / 1e9:.1f} GFLOP/s end to end = "
              f"{needed / peak:.2f} of the GEMM rate")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
