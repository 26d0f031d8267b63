"""The engine's part of ``fair_share.py``'s ratio: a quiet request's latency alone against beside a noisy
tenant's closed-loop requests, in one engine in this process, without HTTP, the event loop or the GIL.

``fair_share.py`` serves the quiet tenant's requests while the noisy tenant's admitted ones (2, its
``concurrent_requests``) run beside them; what the quiet request then waits for is partly the engine
(its decode steps carry the noisy rows, and each noisy request's prefill joins one of them) and partly
the server. This measures the first alone. Each round runs the quiet request (``--output-len`` greedy
tokens of the same short prompt) once alone and once beside ``--noisy`` requests that are replaced as
soon as they finish, alternating which goes first; latency is add -> finished. It prints p50/p95 of
both, their ratios, and the median step time by step kind: ``(rows, tokens)``, so ``(3, 3)`` is a
decode step of three requests and ``(3, 9)`` the same with a 7-token prefill in it.

    .venv/bin/python benchmarks/fair_share_engine.py                   # SmolLM2 bf16, 40 rounds
    .venv/bin/python benchmarks/fair_share_engine.py --model .bench/llama-tiny --rounds 100
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from plinth.engine import EngineConfig, LLMEngine, SamplingParams
from plinth.llm.catalog import resolve

PROMPT_TOKENS = 6  # fair_share.py's prompt, "the quick brown fox jumps over", in SmolLM2's tokenizer


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m-instruct", help="packaged name or checkpoint dir")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--noisy", type=int, default=2, help="noisy requests running beside the quiet one")
    p.add_argument("--output-len", type=int, default=16)
    return p.parse_args(argv)


class Phase:
    """One quiet request, alone or beside ``noisy`` requests kept running; times its steps by kind."""

    def __init__(self, engine: LLMEngine, prompt: list[int], params: SamplingParams, steps: dict) -> None:
        self.engine, self.prompt, self.params, self.steps = engine, prompt, params, steps
        self.noisy: set[str] = set()

    def flood(self, count: int) -> None:
        self.noisy = {self.engine.add_request(self.prompt, self.params) for _ in range(count)}
        for _ in range(5):  # under way, staggered by their replacements, before the quiet request
            self.step()

    def step(self) -> list:
        start = time.perf_counter()
        outputs = self.engine.step()
        stats = self.engine.stats()
        self.steps[(stats.last_batch_size, stats.last_batch_tokens)].append(time.perf_counter() - start)
        for out in outputs:
            if out.finished and out.request_id in self.noisy:
                self.noisy.discard(out.request_id)
                self.noisy.add(self.engine.add_request(self.prompt, self.params))
        return outputs

    def quiet(self) -> float:
        start = time.perf_counter()
        quiet = self.engine.add_request(self.prompt, self.params)
        while not any(out.finished and out.request_id == quiet for out in self.step()):
            pass
        elapsed = time.perf_counter() - start
        for request in self.noisy:
            self.engine.abort(request)
        while self.engine.has_unfinished():
            self.engine.step()
        return elapsed


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    model = resolve(args.model, Path(".bench"))[0]  # a packaged name, or a path as it is
    engine = LLMEngine(EngineConfig(model=model, dtype=args.dtype, device="cpu", max_model_len=256))
    prompt = random.Random(0).sample(range(100, min(engine.model_config.vocab_size, 40000)), PROMPT_TOKENS)
    params = SamplingParams(max_tokens=args.output_len, temperature=0, ignore_eos=True)
    latency: dict[str, list[float]] = {"alone": [], "flooded": []}
    steps: dict[str, dict] = {"alone": defaultdict(list), "flooded": defaultdict(list)}
    for round_ in range(args.rounds + 1):  # round 0 warms up
        for mode in ("alone", "flooded") if round_ % 2 == 0 else ("flooded", "alone"):
            phase = Phase(engine, prompt, params, steps[mode] if round_ else defaultdict(list))
            if mode == "flooded":
                phase.flood(args.noisy)
            elapsed = phase.quiet()
            if round_:
                latency[mode].append(elapsed)
    print(f"{Path(args.model).name}, {args.dtype}, a {len(prompt)}-token prompt, {args.output_len} tokens, "
          f"{args.noisy} noisy requests, {args.rounds} rounds\n")  # fmt: skip
    pct = {m: (np.percentile(v, 50) * 1000, np.percentile(v, 95) * 1000) for m, v in latency.items()}
    for mode in ("alone", "flooded"):
        print(f"quiet {mode + ':':9} p50 {pct[mode][0]:7.1f} ms  p95 {pct[mode][1]:7.1f} ms")
    print(f"quiet p50 flooded / alone: {pct['flooded'][0] / pct['alone'][0]:.2f}x")
    ratio = pct["flooded"][1] / pct["alone"][1]
    print(f"quiet p95 flooded / alone: {ratio:.2f}x (fair_share.py's goal: <= 1.5x)")
    print("\n| mode | step (rows, tokens) | steps | median ms |\n|---|---|---:|---:|")
    for mode in ("alone", "flooded"):
        for kind, times in sorted(steps[mode].items()):
            print(f"| {mode} | {kind} | {len(times)} | {1000 * statistics.median(times):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
