"""Constrained-decoding cost: time per output token with and without a JSON-schema constraint, and
grammar compile time for a large schema.

Method (one run, one engine, ratios against the unconstrained baseline measured in the same run):

1. A random ``small`` llama (``.bench/llama-small``, created on first use) or ``--model``.
2. For each concurrency C in ``--concurrency``: C requests with random prompts (``--input-len``) are
   added at once and stepped to the end, every request constrained by :data:`SCHEMA` (an array of
   six records: ids, names, enums, bounded numbers, booleans -- at least ~150 tokens each), sampled
   with per-request seeds. Time per output token (TPOT) is the median wall time of the decode steps
   in which all C requests were running (each such step gives every request one token), at most
   ``--max-steps`` of them; then the same prompts run unconstrained (``ignore_eos``) for as many
   steps. ``--rounds`` such pairs alternate, so a busy spell of a shared machine hits both sides.
   Ratio = constrained / unconstrained median TPOT (goal <= 1.10). On a shared CPU the two medians
   drift with the neighbours' load, so the grammar's own cost is also timed apart: the sampler and
   postprocess time per step (masks, accepting tokens, termination) constrained minus unconstrained,
   reported as ``grammar ms/step`` and as ``(free + grammar) / free``.
3. Compile time of a large schema (:func:`large_schema`: 120 properties, nested objects, enums,
   patterns, bounded numbers): first compile, cache hit, one matcher copy, and the per-row mask fill
   at the schema's start -- for the checkpoint's tokenizer and, when the packaged SmolLM2 is
   installed, for its real 49k-token vocabulary.

Reproduce::

    .venv/bin/python benchmarks/guided.py                  # small llama, C = 1 and 16
    .venv/bin/python benchmarks/guided.py --quick          # tiny model, seconds
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer

from plinth.engine import EngineConfig, LLMEngine, SamplingParams
from plinth.engine.checkpoint import init_random
from plinth.engine.guided import allocate_bitmask
from plinth.llm import GrammarCompiler, GrammarSpec

RECORD = {
    "type": "object",
    "properties": {
        "id": {"type": "integer", "minimum": 1000, "maximum": 9999},
        "name": {"type": "string", "minLength": 6, "maxLength": 10},
        "level": {"enum": ["low", "medium", "high", "critical"]},
        "score": {"type": "number", "minimum": 0, "maximum": 100, "multipleOf": 0.5},
        "active": {"type": "boolean"},
    },
    "required": ["id", "name", "level", "score", "active"],
    "additionalProperties": False,
}
SCHEMA = {
    "type": "object",
    "properties": {"records": {"type": "array", "items": RECORD, "minItems": 6, "maxItems": 6}},
    "required": ["records"],
    "additionalProperties": False,
}


def large_schema(n: int = 120) -> dict[str, Any]:
    """``n`` properties cycling through nested objects, enums, patterns, bounded numbers and arrays."""
    kinds = [
        {"type": "object", "properties": {"a": {"type": "string", "maxLength": 20}, "b": RECORD}},
        {"enum": [f"value_{i}" for i in range(40)]},
        {"type": "string", "pattern": r"^[A-Z]{3}-[0-9]{4}-[a-z]{2,6}$"},
        {"type": "number", "minimum": -1000, "maximum": 1000},
        {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 500}, "maxItems": 8},
        {"anyOf": [{"type": "string", "format": "date"}, {"type": "null"}]},
    ]
    properties = {f"field_{i}": kinds[i % len(kinds)] for i in range(n)}
    return {"type": "object", "properties": properties, "required": list(properties)[::2]}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="checkpoint (default .bench/llama-small)")
    parser.add_argument("--concurrency", default="1,16")
    parser.add_argument("--input-len", type=int, default=32)
    parser.add_argument("--max-steps", type=int, default=32, help="decode steps measured per round")
    parser.add_argument("--rounds", type=int, default=4, help="constrained/unconstrained rounds")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--load-format", default="auto")
    help_extra = "a tokenizer folder to time compiles with too (default: the packaged SmolLM2's)"
    parser.add_argument("--extra-tokenizer", type=Path, default=None, help=help_extra)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="tiny model, few steps")
    args = parser.parse_args(argv)
    if args.quick:
        args.max_steps, args.rounds = 8, 2
    return args


def checkpoint(args: argparse.Namespace) -> Path:
    if args.model is not None:
        return args.model
    size = "tiny" if args.quick else "small"
    path = Path(".bench") / f"llama-{size}"
    if not (path / "config.json").exists():
        init_random("llama", size, path)
    return path


class SamplingClock:
    """Wraps the engine's sampler and postprocess (where all grammar work happens: masks, accepting
    tokens, termination) to time them apart from the model's forward pass."""

    def __init__(self, engine: LLMEngine) -> None:
        self.seconds = 0.0
        engine.sampler = self._timed(engine.sampler)  # type: ignore[method-assign]
        engine.scheduler.postprocess = self._timed(engine.scheduler.postprocess)  # type: ignore[method-assign]

    def _timed(self, fn: Any) -> Any:
        def call(*args: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args)
            finally:
                self.seconds += time.perf_counter() - start

        return call


def timed_steps(
    engine: LLMEngine, requests: list[tuple[list[int], SamplingParams]], max_steps: int, clock: SamplingClock
) -> tuple[list[float], list[float]]:
    """Wall time of each decode step that had every request running (the first step is the prefill),
    at most ``max_steps`` of them, and the sampling part of each; then what is left is aborted."""
    ids = [engine.add_request(prompt, params) for prompt, params in requests]
    engine.step()
    times: list[float] = []
    sampling: list[float] = []
    while engine.has_unfinished() and len(times) < max_steps:
        start, before = time.perf_counter(), clock.seconds
        engine.step()
        elapsed = time.perf_counter() - start
        if engine.stats().last_batch_size == len(requests) and engine.stats().num_running == len(requests):
            times.append(elapsed)
            sampling.append(clock.seconds - before)
    for rid in ids:
        engine.abort(rid)
    return times, sampling


def tpot(
    engine: LLMEngine, compiler: GrammarCompiler, clock: SamplingClock, c: int, args: argparse.Namespace
) -> dict[str, Any]:
    """Rounds of (constrained, then unconstrained over as many steps), so that a busy spell of a shared
    machine lands on both sides rather than on one."""
    gen = torch.Generator().manual_seed(c)
    high = min(engine.model_config.vocab_size, 1800)
    prompts = [torch.randint(3, high, (args.input_len,), generator=gen).tolist() for _ in range(c)]
    grammar = compiler.compile(GrammarSpec.json_schema(SCHEMA))
    guided: list[float] = []
    free: list[float] = []
    guided_sampling: list[float] = []
    free_sampling: list[float] = []
    for r in range(args.rounds):
        seeds = [r * 1000 + i for i in range(c)]
        guided_params = [SamplingParams(max_tokens=1500, seed=s, grammar=grammar) for s in seeds]
        times, sampling = timed_steps(
            engine, list(zip(prompts, guided_params, strict=True)), args.max_steps, clock
        )
        guided, guided_sampling = guided + times, guided_sampling + sampling
        free_params = [SamplingParams(max_tokens=len(times) + 2, seed=s, ignore_eos=True) for s in seeds]
        times, sampling = timed_steps(engine, list(zip(prompts, free_params, strict=True)), len(times), clock)
        free, free_sampling = free + times, free_sampling + sampling
    free_ms, guided_ms = statistics.median(free) * 1e3, statistics.median(guided) * 1e3
    grammar_ms = (statistics.mean(guided_sampling) - statistics.mean(free_sampling)) * 1e3
    return {"concurrency": c, "steps": len(guided), "free_ms": free_ms, "guided_ms": guided_ms,
            "ratio": guided_ms / free_ms, "grammar_ms": grammar_ms,
            "grammar_ratio": (free_ms + grammar_ms) / free_ms}  # fmt: skip


def compile_costs(tokenizer: Any, vocab: int, eos: list[int], label: str) -> dict[str, Any]:
    compiler = GrammarCompiler(tokenizer, vocab, eos)
    spec = GrammarSpec.json_schema(large_schema())
    start = time.perf_counter()
    grammar = compiler.compile(spec)
    first = time.perf_counter() - start
    start = time.perf_counter()
    compiler.compile(GrammarSpec.json_schema(json.loads(spec.source)))
    hit = time.perf_counter() - start
    start = time.perf_counter()
    matchers = [grammar.new_matcher() for _ in range(16)]
    copy = (time.perf_counter() - start) / 16
    bitmask = allocate_bitmask(16, vocab)
    start = time.perf_counter()
    for row, matcher in enumerate(matchers):
        matcher.fill_bitmask(bitmask, row)
    fill = (time.perf_counter() - start) / 16
    return {
        "tokenizer": label,
        "vocab": vocab,
        "schema_chars": len(spec.source),
        "compile_ms": first * 1e3,
        "cache_hit_us": hit * 1e6,
        "matcher_copy_us": copy * 1e6,
        "mask_fill_us_per_row": fill * 1e6,
    }


def extra_tokenizer(folder: Path | None) -> Any | None:
    """``folder``'s tokenizer, else the packaged SmolLM2's (a real 49k vocabulary), else None."""
    if folder is not None:
        return AutoTokenizer.from_pretrained(str(folder))
    from plinth.llm.catalog import PACKAGED

    path = PACKAGED["smollm2-135m-instruct"].path()
    if path is None:
        return None
    return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    path = checkpoint(args)
    config = EngineConfig(model=str(path), device=args.device, load_format=args.load_format, max_num_seqs=64)
    engine = LLMEngine(config)
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    mc = engine.model_config
    compiler = GrammarCompiler(tokenizer, mc.vocab_size, mc.eos_token_ids)
    print(f"model {path} ({mc.vocab_size} vocab) on {engine.runner.device}, {engine.runner.dtype}")
    clock = SamplingClock(engine)
    rows = [tpot(engine, compiler, clock, int(c), args) for c in args.concurrency.split(",")]
    print(f"{'concurrency':>11} {'steps':>6} {'free ms/tok':>12} {'json ms/tok':>12} {'ratio':>6} "
          f"{'grammar ms/step':>16} {'free+grammar ratio':>19}")  # fmt: skip
    for r in rows:
        times = f"{r['free_ms']:>12.2f} {r['guided_ms']:>12.2f} {r['ratio']:>6.3f}"
        grammar = f"{r['grammar_ms']:>16.2f} {r['grammar_ratio']:>19.3f}"
        print(f"{r['concurrency']:>11} {r['steps']:>6} {times} {grammar}")
    costs = [compile_costs(tokenizer, mc.vocab_size, list(mc.eos_token_ids), "checkpoint")]
    if not args.quick and (extra := extra_tokenizer(args.extra_tokenizer)) is not None:
        costs.append(compile_costs(extra, len(extra), [extra.eos_token_id], f"{len(extra)}-token"))
    for c in costs:
        print(
            f"large schema ({c['schema_chars']} chars), {c['tokenizer']} tokenizer, vocab {c['vocab']}: "
            f"compile {c['compile_ms']:.1f} ms, cache hit {c['cache_hit_us']:.0f} us, matcher copy "
            f"{c['matcher_copy_us']:.1f} us, first mask {c['mask_fill_us_per_row']:.0f} us/row"
        )
    for r in rows:
        print(
            f"json-schema/unconstrained time per output token at {r['concurrency']} concurrent: "
            f"{r['ratio']:.3f}x (goal <= 1.10x); grammar work alone: {r['grammar_ratio']:.3f}x"
        )
    if args.json is not None:
        args.json.write_text(json.dumps({"tpot": rows, "compile": costs}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
