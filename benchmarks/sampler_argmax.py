"""The sampler's argmax: ``plinth::argmax`` against ATen's ``max(dim=-1).indices``, alone and in decode steps.

Greedy decoding picks each stream's token as the argmax of its logits (SmolLM2: 49,152 a row), and the
sampler's exponential race is an argmax too. Two tables, both ratios taken in this run:

1. the operator alone on ``[rows, vocabulary]`` float32 logits (the runner's dtype), median of
   ``--repeats`` calls each way;
2. decode steps of the engine at each stream count, the two argmaxes alternated step by step in the
   same engine (so the host's drift falls on both alike), median step time each way.

    .venv/bin/python benchmarks/sampler_argmax.py                       # SmolLM2, 1, 16 and 64 streams
    .venv/bin/python benchmarks/sampler_argmax.py --streams 16 --steps 80
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

import plinth.engine.sampler as sampler
from plinth.engine import EngineConfig, LLMEngine, SamplingParams, native


def median_us(fn: Callable[[], object], repeats: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def operator_table(vocab: int, rows: list[int], repeats: int) -> None:
    print("\n| rows | ATen max(dim=-1) us | plinth::argmax us | ATen / plinth |\n|---:|---:|---:|---:|")
    for n in rows:
        x = torch.randn(n, vocab, generator=torch.Generator().manual_seed(n))
        assert torch.equal(torch.ops.plinth.argmax(x), x.max(dim=-1).indices)
        aten = median_us(lambda x=x: x.max(dim=-1).indices, repeats)
        ours = median_us(lambda x=x: torch.ops.plinth.argmax(x), repeats)
        print(f"| {n} | {aten:.1f} | {ours:.1f} | {aten / ours:.2f}x |")


def step_table(engine: LLMEngine, streams: list[int], steps: int) -> None:
    """Each stream count's requests decode; even steps take the operator, odd ones ATen's max."""
    has = native.has
    without = lambda op: op != "argmax" and has(op)  # noqa: E731
    vocab = min(engine.model_config.vocab_size, 49000)
    print("\n| streams | step with ATen's max ms | with plinth::argmax ms | ATen / plinth |")
    print("|---:|---:|---:|---:|")
    for n in streams:
        rng = random.Random(n)
        params = SamplingParams(max_tokens=steps + 8, temperature=0, ignore_eos=True)
        for _ in range(n):
            engine.add_request([rng.randrange(16, vocab) for _ in range(128)], params)
        while engine.stats().last_batch_tokens != n:  # until every prompt is in, then one step more
            engine.step()
        times: dict[bool, list[float]] = {True: [], False: []}
        try:
            for step in range(steps):
                ours = step % 2 == 0
                sampler.native.has = has if ours else without  # type: ignore[method-assign]
                start = time.perf_counter()
                engine.step()
                times[ours].append(time.perf_counter() - start)
        finally:
            sampler.native.has = has  # type: ignore[method-assign]
        while engine.has_unfinished():
            engine.step()
        aten, ours_ms = (statistics.median(times[k]) * 1e3 for k in (False, True))
        print(f"| {n} | {aten:.2f} | {ours_ms:.2f} | {aten / ours_ms:.3f}x |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--streams", default="1,16,64")
    p.add_argument("--steps", type=int, default=60, help="decode steps per stream count (half each way)")
    p.add_argument("--repeats", type=int, default=200, help="operator calls each way")
    args = p.parse_args(argv)
    if not native.has("argmax"):
        print("plinth::argmax is not built here (no AVX2 or AVX512-BF16): nothing to compare")
        return 1
    from plinth.llm.catalog import resolve

    model = resolve(args.model, Path(".bench"))[0]
    config = EngineConfig(model=model, dtype="bfloat16", device="cpu", max_model_len=args.steps + 200)
    engine = LLMEngine(config)
    streams = [int(s) for s in args.streams.split(",")]
    vocab = engine.model_config.vocab_size
    print(f"{Path(model).name}, vocabulary {vocab}, torch threads {torch.get_num_threads()}")
    operator_table(vocab, streams, args.repeats)
    step_table(engine, streams, args.steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
