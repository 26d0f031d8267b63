"""A step with a short prefill chunk beside running decodes: its tokens attended row by row (Plinth's decode
attention, the whole layer as ``plinth::decode_layer``) against SDPA and the Python layers, in one engine.

Why it matters: a new request's prompt, or a short turn after a cached prefix, joins the decode steps
of the requests already running, and every one of them waits for that step. With ``ROW_WISE_PREFILL``
and ``ROW_WISE_POSITIONS`` (``plinth/engine/attention.py``) the engine lays such a step out row by row:
each prompt token is a query of its own over the context up to itself. Each round adds one request of
``--tokens`` new prompt tokens (after ``--cached`` tokens already in the prefix cache) beside
``--decodes`` running requests and times that step, once row by row and once through SDPA (the limits set to
0: what ran before), alternating which goes first. In bf16, where the operator attends a prompt's rows as a
block, the engine takes every prefill row by row (``prompt_blocks``). ``--requests N`` makes the chunk N
prompts of ``--tokens`` each, as a wave of new requests is prefilled in one step (``ROW_WISE_MEAN_CONTEXT``: a
long prefill whose rows attend over few positions each goes row by row too). The report gives the median step
of each and SDPA's time over the row-by-row one, measured in the same run, and which way the engine sends that
step.

    .venv/bin/python benchmarks/short_prefill.py                                # 4 to 256 new tokens
    .venv/bin/python benchmarks/short_prefill.py --tokens 16,64,256 --cached 1024
    .venv/bin/python benchmarks/short_prefill.py --requests 16 --tokens 64,128 --decodes 0
    .venv/bin/python benchmarks/short_prefill.py --requests 16 --tokens 128 --decodes 0 --against unpruned

``--against unpruned`` times the engine's own way against the same with the last layer running every
row past its attention (``CausalLM.prune_last_layer`` off): what keeping only the sampled rows saves.
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

import plinth.engine.attention as attention
from plinth.engine import EngineConfig, LLMEngine, SamplingParams
from plinth.engine.attention import SeqSpan
from plinth.llm.catalog import resolve


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m-instruct", help="packaged name or checkpoint dir")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--quantization", choices=["int8", "int4"])
    p.add_argument("--tokens", default="4,8,16,32,64,128,256", help="new prompt tokens of the chunk")
    p.add_argument("--cached", type=int, default=0, help="prompt tokens before them, in the prefix cache")
    p.add_argument("--decodes", type=int, default=2, help="running requests the chunk joins")
    p.add_argument("--requests", type=int, default=1, help="prompts of --tokens each in the chunk")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--against", choices=["sdpa", "unpruned"], default="sdpa",
                   help="the other way: SDPA and the Python limits, or the engine's way with the last "
                   "layer running every row (CausalLM.prune_last_layer off)")  # fmt: skip
    return p.parse_args(argv)


def engine_for(args: argparse.Namespace) -> LLMEngine:
    model = resolve(args.model, Path(".bench"))[0]  # a packaged name, or a path as it is
    longest = max(int(t) for t in args.tokens.split(","))
    max_len = args.cached + longest + 64
    budget = max(2048, args.decodes + args.requests * longest)  # the whole chunk in one step
    config = EngineConfig(model=model, dtype=args.dtype, device="cpu", quantization=args.quantization,
                          max_model_len=max(max_len, 256), enable_prefix_caching=True,
                          max_num_batched_tokens=budget)  # fmt: skip
    return LLMEngine(config)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    engine = engine_for(args)
    vocab = min(engine.model_config.vocab_size, 40000)
    rng = random.Random(0)
    prompt = lambda n: [rng.randrange(100, vocab) for _ in range(n)]  # noqa: E731
    length = engine.model_config.max_model_len // 2
    running = SamplingParams(max_tokens=length, temperature=0, ignore_eos=True)
    for _ in range(args.decodes):
        engine.add_request(prompt(8), running)
    for _ in range(3):
        engine.step()
    prefix = prompt(args.cached)
    if args.cached:  # into the prefix cache, its blocks kept by the cache after the request ends
        engine.add_request([*prefix, 1], SamplingParams(max_tokens=1, temperature=0))
        while engine.stats().num_waiting or engine.stats().num_running > args.decodes:
            engine.step()
    limits = attention.ROW_WISE_PREFILL, attention.ROW_WISE_POSITIONS, attention.ROW_WISE_MEAN_CONTEXT
    blocks = engine.runner.prompt_blocks  # every prefill row by row (bf16 on a CPU with the operator)
    print(f"{Path(args.model).name}, {args.dtype}, quantization {args.quantization}, {args.decodes} running "
          f"decodes, {args.requests} prompts a chunk, {args.cached} cached prompt tokens, torch threads "
          f"{torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}; the engine's limits: "
          f"{limits[0]} tokens, {limits[1]} positions, or {limits[2]} positions a token\n")  # fmt: skip
    other = "SDPA" if args.against == "sdpa" else "unpruned"
    print(f"| new tokens | row by row, ms | {other}, ms | {other} / row by row | the engine takes |")
    print("|---:|---:|---:|---:|---|")
    model = engine.runner.model
    for tokens in (int(t) for t in args.tokens.split(",")):
        times: dict[str, list[float]] = {"rows": [], "sdpa": []}
        for round_ in range(args.rounds):
            for way in ("rows", "sdpa") if round_ % 2 else ("sdpa", "rows"):
                unlimited = way == "rows" or args.against == "unpruned"
                model.prune_last_layer = way == "rows" or args.against == "sdpa"
                engine.runner.prompt_blocks = blocks and unlimited
                attention.ROW_WISE_PREFILL = 1 << 30 if unlimited else 0
                attention.ROW_WISE_POSITIONS = 1 << 62 if unlimited else 0
                attention.ROW_WISE_MEAN_CONTEXT = 1 << 30 if unlimited else 0
                once = SamplingParams(max_tokens=1, temperature=0)
                for _ in range(args.requests):
                    engine.add_request([*prefix, *prompt(tokens)], once)
                start = time.perf_counter()
                engine.step()
                times[way].append(time.perf_counter() - start)
                ran, want = engine.stats().last_batch_tokens, args.decodes + args.requests * tokens
                if ran != want:
                    raise SystemExit(f"the step ran {ran} tokens, not {want}: prefix not cached?")
        attention.ROW_WISE_PREFILL, attention.ROW_WISE_POSITIONS, attention.ROW_WISE_MEAN_CONTEXT = limits
        engine.runner.prompt_blocks = blocks
        model.prune_last_layer = True
        rows, sdpa = (1000 * statistics.median(times[w]) for w in ("rows", "sdpa"))
        chunk = [SeqSpan([], args.cached, tokens)] * args.requests
        takes = "row by row" if blocks or attention.row_wise(chunk) else "SDPA"
        print(f"| {tokens} | {rows:.1f} | {sdpa:.1f} | {sdpa / rows:.2f}x | {takes} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
