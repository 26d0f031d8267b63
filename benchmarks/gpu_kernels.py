"""Plinth's Triton kernels against the torch paths they replace on a GPU, same inputs, one run.

1. Decode attention (``engine/triton_attention.py``) against the gather-then-SDPA path of
   ``engine/attention.py``: 7B-shaped heads (32 query heads, 8 KV heads of 128), every request's blocks
   scattered over the cache, at each ``--requests`` × ``--context``.
2. Multi-LoRA (``engine/lora/triton_ops.py``) against the torch paths of ``engine/lora/layers.py``
   (dense or gathered for decode tokens, padded for prefill chunks): one 4096 × 4096 projection,
   rank 16, ``--adapters`` distinct adapters; a decode step of 64 tokens and a prefill step of 8
   chunks of 256 rows. The base projection's own matmul is timed beside them for scale.

Each figure is the median of ``--repeats`` timings (CUDA events) after warm-up; the ratio is torch
path / Triton kernel (above 1: the kernel is faster). ``--smoke`` runs tiny shapes on Triton's
interpreter on CPU (``TRITON_INTERPRET=1``, set by this script when there is no GPU), to check the
script, not to time anything.

    .venv/bin/python benchmarks/gpu_kernels.py                 # on a GPU machine
    .venv/bin/python benchmarks/gpu_kernels.py --smoke         # anywhere: does it run
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

if not torch.cuda.is_available():  # before Triton is imported: the interpreter, for --smoke
    os.environ.setdefault("TRITON_INTERPRET", "1")

from plinth.engine import attention, triton_attention  # noqa: E402
from plinth.engine.lora import layers, triton_ops  # noqa: E402
from plinth.engine.lora.layers import LoraBatch, LoraContext, LoraLinear  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", default="1,16,64", help="decode requests per step")
    p.add_argument("--context", default="512,2048", help="context positions per request")
    p.add_argument("--adapters", default="1,16,64", help="distinct LoRA adapters in a step")
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--smoke", action="store_true", help="tiny shapes on CPU (Triton's interpreter)")
    p.add_argument("--json", type=Path)
    return p.parse_args(argv)


def timed(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Median milliseconds of ``fn`` after three warm-up calls."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def attention_rows(args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> list[dict]:
    heads, kv_heads, dim, block_size = (32, 8, 128, 16) if not args.smoke else (4, 2, 32, 16)
    rows = []
    for requests in map(int, args.requests.split(",")):
        for context in map(int, args.context.split(",")):
            per_request = -(-context // block_size)
            blocks = requests * per_request + 1
            order = torch.randperm(blocks - 1, generator=torch.Generator().manual_seed(0)).add(1).tolist()
            tables = [order[r * per_request : (r + 1) * per_request] for r in range(requests)]
            spans = [attention.SeqSpan(table, context - 1, 1) for table in tables]
            meta = attention.AttentionMetadata.build(spans, block_size, device)
            group = meta.groups[0]
            assert group.context_lens is not None
            k_cache = torch.randn(blocks * block_size, kv_heads, dim, device=device, dtype=dtype)
            v_cache = torch.randn_like(k_cache)
            q = torch.randn(requests, heads, dim, device=device, dtype=dtype)
            scale = dim**-0.5
            decode = functools.partial(
                triton_attention.decode, q, k_cache, v_cache, group.block_tables, group.context_lens,
                block_size, scale,
            )  # fmt: skip
            triton_ms = timed(decode, args.repeats, device)
            gather = functools.partial(attention._sdpa, q.unsqueeze(1), k_cache, v_cache, group, scale)
            torch_ms = timed(gather, args.repeats, device)
            kv_bytes = 2 * requests * context * kv_heads * dim * k_cache.element_size()
            rows.append({
                "requests": requests, "context": context, "triton_ms": triton_ms, "torch_ms": torch_ms,
                "ratio": torch_ms / triton_ms, "triton_kv_gb_s": kv_bytes / triton_ms / 1e6,
            })  # fmt: skip
    return rows


def lora_rows(args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> list[dict]:
    width, rank = (4096, 16) if not args.smoke else (64, 8)
    decode_tokens, chunks, chunk_rows = (64, 8, 256) if not args.smoke else (8, 2, 16)
    rows = []
    for adapters in map(int, args.adapters.split(",")):
        ctx = LoraContext(max_rank=rank, num_slots=adapters)
        layer = LoraLinear(width, [width], bias=False, ctx=ctx, names=("q_proj",)).to(device, dtype)
        for slot in range(adapters):
            a = torch.randn(rank, width, device=device, dtype=dtype) / width**0.5
            b = torch.randn(width, rank, device=device, dtype=dtype) / rank**0.5
            layer.set_slot(slot, [(a, b, 1.0)])
        steps = {
            "decode": [(t, 1, t % adapters) for t in range(decode_tokens)],
            "prefill": [(c * chunk_rows, chunk_rows, c % adapters) for c in range(chunks)],
        }
        for step, spans in steps.items():
            x = torch.randn(sum(n for _, n, _ in spans), width, device=device, dtype=dtype)
            grouped = triton_ops.Grouped.build(spans, device)
            paths = {
                "triton": LoraBatch(None, None, [], grouped=grouped),
                "torch": torch_paths(spans, device, dtype),
                "base": None,
            }
            times = {}
            for name, batch in paths.items():
                ctx.batch = batch
                times[name] = timed(functools.partial(layer, x), args.repeats, device)
            ctx.batch = None
            lora_cost = {name: max(times[name] - times["base"], 1e-6) for name in ("triton", "torch")}
            rows.append({
                "adapters": adapters, "step": step, "tokens": x.shape[0], "triton_ms": times["triton"],
                "torch_ms": times["torch"], "base_ms": times["base"],
                "ratio": lora_cost["torch"] / lora_cost["triton"],
            })  # fmt: skip
    return rows


def torch_paths(
    spans: list[tuple[int, int, int | None]], device: torch.device, dtype: torch.dtype
) -> LoraBatch:
    """The batch ``LoraBatch.build`` would give ``device`` if Triton were not there: the torch paths."""
    triton_check = layers._triton
    layers._triton = lambda device: False
    try:
        return LoraBatch.build(spans, device, dtype)
    finally:
        layers._triton = triton_check


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.smoke:
        args.requests, args.context, args.adapters, args.repeats = "1,3", "40", "1,3", 1
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type != "cuda" and not args.smoke:
        print("gpu_kernels.py times GPU kernels: no CUDA device here (--smoke checks the script on CPU)")
        return 2
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32  # the interpreter has no bf16
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU, Triton interpreter (smoke)"
    print(f"# Triton kernels against torch paths — {name}, {dtype}\n")
    attn = attention_rows(args, device, dtype)
    print("| requests | context | Triton ms | gather + SDPA ms | torch / Triton | Triton KV GB/s |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in attn:
        print(f"| {r['requests']} | {r['context']} | {r['triton_ms']:.3f} | {r['torch_ms']:.3f} | "
              f"{r['ratio']:.2f}x | {r['triton_kv_gb_s']:.0f} |")  # fmt: skip
    lora = lora_rows(args, device, dtype)
    print("\n| adapters | step | tokens | base ms | with Triton ms | with torch ms | LoRA torch / Triton |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for r in lora:
        print(f"| {r['adapters']} | {r['step']} | {r['tokens']} | {r['base_ms']:.3f} | "
              f"{r['triton_ms']:.3f} | {r['torch_ms']:.3f} | {r['ratio']:.2f}x |")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"device": name, "attention": attn, "lora": lora}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
