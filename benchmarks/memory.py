"""Where ``plinth serve``'s resident memory goes: RSS by stage of start-up, and the peak (``VmHWM``).

Peak RSS is what issue 18's goal compares with llama.cpp (``benchmarks/serve.py`` reads ``VmHWM``), and
a transient peak while loading counts as much as what stays. This script goes through the server's
start-up in one process and prints, after each stage, the resident set (``VmRSS``) and the peak so far:

1. the interpreter, ``import torch``, then ``plinth.server.app`` (everything the server imports; the
   heavy optional packages it pulled in are listed);
2. the engine for ``--model`` as ``plinth serve`` builds it (on a thread), split by wrapping the
   runner's steps: the model skeleton, the weights read and converted (GGUF: dequantized), the heap
   trimmed, the bf16 prepack, the heap trimmed again, the KV cache allocated;
3. with ``--streams N``, serving: N requests of ``--prompt-len`` random tokens and ``--output-len`` greedy
   tokens at once on the engine's thread, with RSS after the first step (the prefill's transient) and at
   the end (N sequences' KV cache written), under the step budget ``--max-num-batched-tokens``.

Run: ``python benchmarks/memory.py [--model smollm2-135m-instruct] [--dtype auto]
[--quantization int4|int8] [--max-model-len 208] [--streams 64 --max-num-batched-tokens 512]``.
The peak is per process: one budget per run.
RSS does not depend on load, so no lock is needed. ``--max-model-len 208`` is what ``benchmarks/serve.py``
gives both servers (128 + 64 + 16 tokens).
"""

from __future__ import annotations

import argparse
import functools
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

MB = 1 << 20
HEAVY = ("transformers", "tokenizers", "lancedb", "pyarrow", "duckdb", "sqlglot", "sentence_transformers")
HEAVY += ("ray", "pandas", "sklearn", "scipy", "numba", "datasets", "peft", "huggingface_hub", "gguf")
_rows: list[tuple[str, int, int, int, float]] = []
_start = time.perf_counter()


def status() -> tuple[int, int, int]:
    """(VmRSS, VmHWM, RssFile: mapped file pages such as a GGUF's) of this process in bytes."""
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssFile"):
            values[key] = int(rest.split()[0]) * 1024
    return values["VmRSS"], values["VmHWM"], values["RssFile"]


def mark(stage: str) -> None:
    _rows.append((stage, *status(), time.perf_counter() - _start))


def wrap(owner: Any, name: str, stage: str) -> None:
    """Record RSS after ``owner.name`` returns (the runner's steps, as they run inside the engine)."""
    inner: Callable[..., Any] = getattr(owner, name)

    @functools.wraps(inner)
    def measured(*args: Any, **kwargs: Any) -> Any:
        result = inner(*args, **kwargs)
        mark(stage)
        return result

    setattr(owner, name, measured)


def serve(engine: Any, args: argparse.Namespace) -> None:
    """``args.streams`` requests at once, stepped to the end; RSS after the first step and at the end."""
    import random

    from plinth.engine import SamplingParams

    rng = random.Random(0)
    vocab = engine.model_config.vocab_size
    params = SamplingParams(max_tokens=args.output_len, temperature=0.0, ignore_eos=True)
    for _ in range(args.streams):
        engine.add_request([rng.randrange(3, vocab) for _ in range(args.prompt_len)], params)
    engine.step()
    budget = engine.scheduler.max_num_batched_tokens
    mark(f"{args.streams} streams: first step (prefill, budget {budget} tokens)")
    while engine.has_unfinished():
        engine.step()
    mark(f"{args.streams} streams: all {args.output_len} tokens each")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--quantization", choices=["int8", "int4"], help="weight-only, as the server's")
    p.add_argument("--max-model-len", type=int, default=208)
    p.add_argument("--streams", type=int, default=0, help="then serve this many requests at once")
    p.add_argument("--prompt-len", type=int, default=128)
    p.add_argument("--output-len", type=int, default=64)
    p.add_argument("--max-num-batched-tokens", type=int, default=None, help="the step budget (the engine's)")
    args = p.parse_args()

    mark("python started")
    import torch  # noqa: F401

    mark("import torch")
    import plinth.server.app  # noqa: F401

    mark("import plinth.server.app")
    heavy = sorted(name for name in HEAVY if name in sys.modules)

    from plinth.config import Settings
    from plinth.engine import model_runner
    from plinth.engine.llm_engine import LLMEngine
    from plinth.llm.catalog import resolve

    runner = model_runner.ModelRunner
    wrap(model_runner, "CausalLM", "model skeleton (empty)")
    wrap(runner, "_load_weights", "weights read + converted")
    wrap(model_runner, "prepack_linears", "bf16 prepack")
    wrap(runner, "_quantize", f"{args.quantization} quantization")
    wrap(model_runner, "release_freed_memory", "malloc_trim")
    wrap(runner, "_num_kv_blocks", "(KV size computed)")
    path, _ = resolve(args.model, Path("plinth-data"))
    settings = Settings(
        dtype=args.dtype, device="cpu", max_model_len=args.max_model_len, quantization=args.quantization
    )
    # Built on a thread of its own, as AsyncLLMEngine does in the server: glibc serves that thread
    # from a separate malloc arena, whose peak differs from the main thread's.
    built: list[LLMEngine] = []
    config = settings.engine_config(path)
    config.max_num_batched_tokens = args.max_num_batched_tokens or config.max_num_batched_tokens
    thread = threading.Thread(target=lambda: built.append(LLMEngine(config)))
    thread.start(), thread.join()
    engine = built[0]
    mark("KV cache allocated (engine built)")
    if args.streams:  # on a thread of its own again, as the server's engine steps
        thread = threading.Thread(target=serve, args=(engine, args))
        thread.start(), thread.join()
    kv = sum(k.nbytes + v.nbytes for k, v in engine.runner.kv_caches)

    print(f"model {args.model} dtype {engine.runner.dtype} quantization {args.quantization} "
          f"max_model_len {args.max_model_len}")  # fmt: skip
    print(f"heavy packages imported by the server: {', '.join(heavy) or 'none'}")
    print(f"KV cache: {engine.runner.num_blocks} blocks, {kv / MB:.1f} MB mapped (resident as written)")
    print("| stage | VmRSS MB | +MB | of which files MB | VmHWM MB | s |\n|---|---:|---:|---:|---:|---:|")
    previous = 0
    for stage, rss, hwm, files, seconds in _rows:
        change = f"{(rss - previous) / MB:+.0f}"
        print(f"| {stage} | {rss / MB:.0f} | {change} | {files / MB:.0f} | {hwm / MB:.0f} | {seconds:.1f} |")
        previous = rss


if __name__ == "__main__":
    main()
