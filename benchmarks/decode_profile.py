"""One decode step, op by op: where the time of a step goes at 1 and 16 streams (torch.profiler).

The engine (in process, no HTTP) prefills N random 128-token prompts, runs a few decode steps to warm
up, then profiles ``--steps`` decode steps (each gives every stream one token) and prints the median
step time, the operator dispatches per step, and the top operators by self CPU time.

    .venv/bin/python benchmarks/decode_profile.py                      # SmolLM2, bf16, 1 and 16 streams
    .venv/bin/python benchmarks/decode_profile.py --quantization int4 --streams 1

The median step time is taken over steps run without the profiler (it inflates every small operator);
the table comes from as many steps again, profiled.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from plinth.engine import EngineConfig, LLMEngine, SamplingParams


def start_decoding(engine: LLMEngine, prompts: list[list[int]], params: SamplingParams, warmup: int) -> None:
    """Add ``prompts`` and step until every one decodes (their prefill done), then ``warmup`` steps more."""
    for prompt in prompts:
        engine.add_request(prompt, params)
    while engine.stats().last_batch_tokens != len(prompts):
        engine.step()
    for _ in range(warmup):
        engine.step()


def timed_steps(engine: LLMEngine, steps: int) -> list[float]:
    """Seconds of each of ``steps`` engine steps."""
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        engine.step()
        times.append(time.perf_counter() - start)
    return times


def decode_steps(engine: LLMEngine, streams: int, warmup: int, steps: int) -> tuple[list[float], profile]:
    """Median-ready times of ``steps`` unprofiled decode steps, then ``steps`` profiled ones."""
    rng = random.Random(streams)
    vocab = min(engine.model_config.vocab_size, 49000)  # SmolLM2's prompts as before; a tiny model's fit
    params = SamplingParams(max_tokens=warmup + 2 * steps + 2, temperature=0, ignore_eos=True)
    prompts = [[rng.randrange(16, vocab) for _ in range(128)] for _ in range(streams)]
    start_decoding(engine, prompts, params, warmup)
    times = timed_steps(engine, steps)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            engine.step()
    while engine.has_unfinished():
        engine.step()
    return times, prof


def top_level_ops(prof: profile) -> int:
    """aten operators called from Python, not the ones they call inside (``matmul`` -> ``mm``): the
    dispatches a fused step saves."""
    return sum(
        1
        for e in prof.events()
        if e.name.startswith("aten::") and not (e.cpu_parent and e.cpu_parent.name.startswith("aten::"))
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--quantization", choices=["int8", "int4"])
    p.add_argument("--streams", default="1,16")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--top", type=int, default=15)
    args = p.parse_args(argv)
    from plinth.llm.catalog import resolve

    model = resolve(args.model, Path(".bench"))[0]
    config = EngineConfig(model=model, dtype=args.dtype, device="cpu", quantization=args.quantization,
                          max_model_len=256, enable_lora=True)  # fmt: skip
    engine = LLMEngine(config)
    print(f"{Path(model).name}, {args.dtype}, quantization {args.quantization}, load average "
          f"{os.getloadavg()[0]:.2f}, torch threads {torch.get_num_threads()}")  # fmt: skip
    for streams in (int(s) for s in args.streams.split(",")):
        times, prof = decode_steps(engine, streams, warmup=3, steps=args.steps)
        dispatches = top_level_ops(prof) / args.steps
        step = statistics.median(times)
        print(f"\n## {streams} streams: median step {1000 * step:.1f} ms "
              f"({streams / step:.0f} tok/s) unprofiled, {dispatches:.0f} aten ops dispatched per step, "
              f"load average {os.getloadavg()[0]:.2f}\n")  # fmt: skip
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top,
                                        max_name_column_width=40))  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
