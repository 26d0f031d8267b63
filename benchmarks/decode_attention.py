"""Plinth's decode attention operator against torch's path, over a whole model's paged caches.

One decode step of ``--streams`` requests attends 30 times (SmolLM2-135M: 9 query heads, 3 KV heads of
64), each layer over its own cache, so the caches (64 streams x 160 positions: 7.9 MB a layer) come
from memory as they do between a step's matmuls. Per round, each configuration writes the step's K/V
and attends over every layer once; configurations alternate round by round in one process, and the
report gives the median microseconds a layer and each one's speed against torch's path (the index
copies into the cache, then SDPA over the gathered blocks with a mask: what runs where the operator is
not built) measured in the same run. ``--prefill 16x128`` also times prefill waves: 16 prompts of 128
tokens in one step, laid out row by row as the engine lays out a step of short prompts (the operator
attends each prompt's rows as a block there; torch's path is SDPA over the padded prompts).

``--against FILE.cpp`` also builds an older ``decode_attention.cpp`` under another namespace and times it
in the same rounds, to measure a change of the kernel itself::

    .venv/bin/python benchmarks/decode_attention.py        # 1, 16 and 64 streams, a 16 x 128 wave
    git show HEAD~1:plinth/engine/csrc/decode_attention.cpp > /tmp/old.cpp
    .venv/bin/python benchmarks/decode_attention.py --streams 16,64 --against /tmp/old.cpp
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from against import build_against

import plinth.engine.attention as attention
from plinth.engine import native
from plinth.engine.attention import AttentionMetadata, SeqSpan, paged_attention

HEADS, KV_HEADS, DIM, BLOCK, LAYERS = 9, 3, 64, 16, 30


def run(streams: int, context: int, new: int, rounds: int, older: Callable[..., torch.Tensor] | None) -> None:
    """``streams`` requests of ``context`` positions, each with its last ``new`` tokens in the step: 1, a
    decode step; the whole context, a prefill wave (laid out row by row, as the engine steps one)."""
    rng = random.Random(streams)
    blocks = -(-context // BLOCK)
    order = list(range(streams * blocks))
    rng.shuffle(order)  # a served cache's blocks are scattered
    tables = torch.tensor(order).view(streams, blocks)
    spans = [SeqSpan(tables[b].tolist(), start=context - new, num_new=new) for b in range(streams)]
    meta = AttentionMetadata.build(spans, BLOCK, torch.device("cpu"))
    if meta.rows is None or meta.rows.context_lens is None:
        raise SystemExit(f"{streams} x {new} new tokens are not laid out row by row")
    tables, lens = meta.rows.block_tables, meta.rows.context_lens
    slots = meta.slot_mapping
    caches = [
        tuple(torch.randn(streams * blocks * BLOCK, KV_HEADS, DIM).bfloat16() for _ in range(2))
        for _ in range(LAYERS)
    ]
    tokens = streams * new
    q = torch.randn(tokens, HEADS, DIM).bfloat16()
    k, v = (torch.randn(tokens, KV_HEADS, DIM).bfloat16() for _ in range(2))
    scale = 1 / math.sqrt(DIM)

    def torch_path(kc: torch.Tensor, vc: torch.Tensor) -> torch.Tensor:
        native_decode = attention._native_decode
        attention._native_decode = lambda q: False
        try:
            return paged_attention(q, k, v, kc, vc, meta, scale)
        finally:
            attention._native_decode = native_decode

    configs: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {"torch": torch_path}
    if native.has("decode_attention"):
        configs["plinth"] = lambda kc, vc: torch.ops.plinth.decode_attention(
            q, k, v, kc, vc, slots, tables, lens, BLOCK, scale
        )
    if older is not None:
        configs["against"] = lambda kc, vc: older(q, k, v, kc, vc, slots, tables, lens, BLOCK, scale)
    want = configs["torch"](*caches[0])
    for name, fn in configs.items():  # the same result within a bf16 rounding, before any timing
        err = (fn(*caches[0]).float() - want.float()).abs().max().item()
        if err > 2**-6 * want.float().abs().max().item():
            raise SystemExit(f"{name} differs from torch's path by {err}")
    flush = torch.empty(64 << 20, dtype=torch.uint8)
    times: dict[str, list[float]] = {name: [] for name in configs}
    for r in range(rounds):
        for name in list(configs) if r % 2 == 0 else reversed(list(configs)):
            flush.add_(1)  # nothing of the last configuration's caches left in the last-level cache
            start = time.perf_counter()
            for kc, vc in caches:
                configs[name](kc, vc)
            times[name].append((time.perf_counter() - start) / LAYERS * 1e6)
    base = statistics.median(times["torch"])
    cells = " | ".join(
        f"{statistics.median(times[n]):.0f} us ({base / statistics.median(times[n]):.2f}x)" for n in configs
    )
    print(f"| {streams} | {context} | {cells} |" if new == 1 else f"| {streams} | {new} | {cells} |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--streams", default="1,16,64", help="requests a decode step (comma-separated)")
    p.add_argument("--context", type=int, default=160, help="positions each attends over")
    p.add_argument("--rounds", type=int, default=21)
    p.add_argument("--prefill", default="16x128", help="prefill waves, PROMPTSxTOKENS (comma-separated)")
    p.add_argument("--against", type=Path, help="an older decode_attention.cpp to time as well")
    args = p.parse_args(argv)
    waves = [tuple(int(n) for n in w.split("x")) for w in args.prefill.split(",") if w]
    names = (
        ["torch"]
        + (["plinth"] if native.has("decode_attention") else [])
        + (["against"] if args.against else [])
    )
    print(f"torch threads {torch.get_num_threads()}, {LAYERS} layers' bf16 caches, median us a layer "
          f"(speed against torch's path)\n")  # fmt: skip
    print("| streams | context | " + " | ".join(names) + " |")
    print("|---:|---:|" + "---:|" * len(names))
    # built once: every level times the same build
    older = build_against(args.against).decode_attention if args.against else None
    for streams in (int(s) for s in args.streams.split(",")):
        run(streams, args.context, 1, args.rounds, older)
    if waves:
        print("\nA prefill wave, its prompts' tokens in one step:\n")
        print("| prompts | tokens | " + " | ".join(names) + " |")
        print("|---:|---:|" + "---:|" * len(names))
    for prompts, length in waves:
        run(prompts, length, length, args.rounds, older)
    return 0


if __name__ == "__main__":
    sys.exit(main())
