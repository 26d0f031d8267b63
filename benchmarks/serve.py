"""Serving benchmark: Plinth, llama.cpp's ``llama-server`` and transformers ``generate`` on the same model
and workload, one after the other in one run (``--engines``; see benchmarks/README.md).

Method
------
1. For each engine configuration, start its server (``plinth serve`` with a clean ``PLINTH_*`` env and
   a temporary data dir, or ``llama-server`` with 16 slots and continuous batching) and wait for health;
   transformers runs in its own process instead (``serve_hf.py``: static batches of C).
2. For each concurrency level C: C closed-loop clients share a queue of ``--requests-per-level``
   requests (default C, one wave). Each streams a completion of a prompt of ``--input-len`` random
   token ids (seeded; fresh per level, so no prefix is reused; the same for every engine),
   ``--output-len`` tokens, ``ignore_eos``, greedy. Per request: TTFT (send -> first token chunk),
   end-to-end latency, output tokens (reported by the server), per-token latency
   ``(e2e - TTFT) / (tokens - 1)``. Per level: throughput = output tokens / level wall time.
3. Before stopping each engine, read its process's peak RSS (``VmHWM``).
4. Print a table per engine, the summary (tok/s per level and peak RSS per engine) and the goal ratios;
   ``--json FILE`` also writes every number.

Reproduce::

    make bench                                        # builds llama-server once, then the full run
    .venv/bin/python benchmarks/serve.py --threads 1 --engines plinth-bf16,llama.cpp-bf16
    .venv/bin/python benchmarks/serve.py --quick      # tiny model, Plinth + HF; what the test runs
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import random
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import serve_peers as peers  # benchmarks/ is on sys.path when this runs as a script
from serve_report import Level, RequestResult, Sweep, report, summarize

ENGINES = "plinth-bf16,plinth-int8,plinth-int4,llama.cpp-bf16,llama.cpp-q4_1,hf-bf16"
FULL = {"model": "smollm2-135m-instruct", "concurrency": "1,16,64", "input_len": 128, "output_len": 64,
        "hf_baseline_at": "1,16,64", "engines": ENGINES}  # fmt: skip
QUICK = {"model": ".bench/llama-tiny", "concurrency": "1,4", "input_len": 16, "output_len": 8,
         "hf_baseline_at": "4", "engines": "plinth,hf"}  # fmt: skip
BENCH_DIR = Path(".bench")
REPO = Path(__file__).resolve().parents[1]
LLAMA_SLOTS = 16  # llama-server's parallel sequences, as in the measurements
QUANTIZATIONS = ("int8", "int4")
DTYPE_NAMES = {"bf16": "bfloat16", "fp32": "float32", "fp16": "float16"}
SERVER_START_TIMEOUT_S = 300
REQUEST_TIMEOUT_S = 900
MIN_REQUESTS = 4  # a level of one stream measures 4 requests back to back, not one cold one


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- setup -------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help=f"checkpoint dir, .gguf file or packaged name (default {FULL['model']})")
    p.add_argument("--engines", help=f"comma-separated configurations (default {FULL['engines']})")
    p.add_argument("--llama-server", type=Path, default=peers.LLAMA_SERVER, help="llama.cpp server binary")
    p.add_argument("--concurrency", help=f"comma-separated levels (default {FULL['concurrency']})")
    p.add_argument("--input-len", type=int, help=f"prompt tokens (default {FULL['input_len']})")
    p.add_argument("--output-len", type=int, help=f"generated tokens (default {FULL['output_len']})")
    p.add_argument(
        "--requests-per-level",
        type=int,
        help=f"requests per level (default: the concurrency, at least {MIN_REQUESTS})",
    )
    hf_default = FULL["hf_baseline_at"]
    p.add_argument("--hf-baseline-at", help=f"levels that also run HF (default {hf_default}; '' for none)")
    p.add_argument("--dtype", default="auto", help="auto|float32|bfloat16|float16 (both sides)")
    p.add_argument("--device", default="cpu", help="cpu|cuda (both sides)")
    p.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="compute threads of every engine (default: the CPU count; 1 on a busy shared machine)",
    )
    p.add_argument("--port", type=int, default=0, help="server port (0: a free one)")
    p.add_argument(
        "--plinth-flags",
        default="",
        help="more plinth serve flags, one string (e.g. '--kv-cache-policy lean'; default: none, as shipped)",
    )
    p.add_argument("--seed", type=int, default=0, help="prompt seed")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--quick", action="store_true", help="tiny model, levels 1,4, short lengths (CI)")
    args = p.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.engines = [e for e in args.engines.split(",") if e]
    args.concurrency = _levels(args.concurrency)
    args.hf_baseline_at = _levels(args.hf_baseline_at)
    args.plinth_flags = shlex.split(args.plinth_flags)
    return args


def _levels(text: str) -> list[int]:
    levels = [int(x) for x in text.split(",") if x.strip()]
    assert all(c >= 1 for c in levels), f"concurrency levels must be >= 1: {text!r}"
    return levels


def prepare_model(model: str, quick: bool) -> Path:
    """A packaged model's file, ``model`` as is if it holds a checkpoint, else a random llama there."""
    from plinth.llm.catalog import resolve

    path = Path(resolve(model, BENCH_DIR)[0]).resolve()
    if not path.is_file() and not (path / "config.json").is_file():
        from plinth.engine.checkpoint import init_random

        size = "tiny" if quick else "small"
        log(f"writing a random-weight llama {size} checkpoint to {path}")
        init_random("llama", size, path)
    return path


def resolve_dtype(model: Path, name: str, device: str) -> str:
    """The concrete dtype ``--dtype name`` means for this checkpoint, by the engine's own rule."""
    import torch

    from plinth.engine.model_runner import resolve_dtype as engine_rule

    return str(engine_rule(name, torch.device(device), _config(model).torch_dtype)).removeprefix("torch.")


@functools.cache
def _config(model: Path) -> Any:
    from plinth.engine.model_config import ModelConfig

    return ModelConfig.from_pretrained(model)


def make_prompts(n: int, length: int, vocab_size: int, seed: int) -> list[list[int]]:
    """``n`` random prompts of ``length`` ids, skipping the first ids (special tokens in our tokenizers)."""
    rng = random.Random(seed)
    return [[rng.randrange(16, vocab_size) for _ in range(length)] for _ in range(n)]


def level_prompts(args: argparse.Namespace, concurrency: int) -> list[list[int]]:
    """The prompts of one level: fresh per level, the same for Plinth and HF."""
    n = args.requests_per_level or max(concurrency, MIN_REQUESTS)
    return make_prompts(n, args.input_len, _config(args.model).vocab_size, args.seed * 1000 + concurrency)


def warmup_prompt(args: argparse.Namespace) -> list[list[int]]:
    return make_prompts(1, args.input_len, _config(args.model).vocab_size, seed=-1)


# --- one engine's sweep over HTTP ---------------------------------------------------------------------


@dataclass(frozen=True)
class Protocol:
    """How to ask one server for a streamed completion and read its chunks."""

    path: str
    body: Callable[[list[int], int], dict[str, Any]]
    chunk: Callable[[dict[str, Any]], tuple[bool, int | None]]  # (has a token, final token count)


def openai_protocol(model_id: str) -> Protocol:
    def body(prompt: list[int], output_len: int) -> dict[str, Any]:
        return {"model": model_id, "prompt": prompt, "max_tokens": output_len, "ignore_eos": True,
                "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}  # fmt: skip

    def chunk(data: dict[str, Any]) -> tuple[bool, int | None]:
        token = any(c.get("text") or c.get("logprobs") for c in data.get("choices", ()))
        return token, data["usage"]["completion_tokens"] if data.get("usage") else None

    return Protocol("/v1/completions", body, chunk)


LLAMA_PROTOCOL = Protocol("/completion", peers.llama_request, peers.llama_chunk)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def plinth_server(
    model: Path, dtype: str, device: str, port: int, threads: int, extra: list[str]
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Run ``plinth serve`` in a subprocess for the duration of the block; yields its URL and process."""
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLINTH_")}
    env["PLINTH_LOG_LEVEL"] = "warning"  # no access log line per request
    env["PYTHONPATH"] = str(REPO)  # the Plinth this script belongs to, whatever the venv installed
    env["OMP_NUM_THREADS"] = str(threads)  # torch's intra-op pool
    cmd = [sys.executable, "-m", "plinth", "serve", "--model", str(model), "--no-auth", "--port", str(port),
           "--dtype", dtype, "--device", device, *extra]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="plinth-bench-") as tmp:
        cmd += ["--data-dir", tmp]
        with open(Path(tmp) / "server.log", "w+b") as server_log:
            proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=server_log, stderr=subprocess.STDOUT)
            try:
                url = f"http://127.0.0.1:{port}"
                wait_healthy(url, proc, server_log)
                yield url, proc
            finally:
                stop(proc)


def wait_healthy(url: str, proc: subprocess.Popen[bytes], server_log: Any) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            server_log.seek(0)
            tail = server_log.read().decode(errors="replace")[-3000:]
            raise RuntimeError(f"plinth serve exited with {proc.returncode}:\n{tail}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=2).json().get("status") == "ok":
                return
        time.sleep(0.5)
    raise TimeoutError(f"plinth serve was not healthy after {SERVER_START_TIMEOUT_S}s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def stream_completion(
    client: httpx.AsyncClient, protocol: Protocol, prompt: list[int], output_len: int
) -> RequestResult:
    """One streamed completion, timed from send to first token chunk and to the end."""
    start = time.perf_counter()
    ttft, tokens = None, None
    async with client.stream("POST", protocol.path, json=protocol.body(prompt, output_len)) as response:
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {(await response.aread()).decode()[:500]}")
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            has_token, final = protocol.chunk(json.loads(line.removeprefix("data: ")))
            if ttft is None and has_token:
                ttft = time.perf_counter() - start
            tokens = final if final is not None else tokens
    e2e = time.perf_counter() - start
    assert ttft is not None and tokens is not None, "stream had no token chunk or no final count"
    return RequestResult(ttft, e2e, tokens)


async def run_level(
    url: str, protocol: Protocol, prompts: list[list[int]], concurrency: int, output_len: int
) -> Level:
    """``concurrency`` closed-loop clients drain the prompt queue; each sends its next on completion."""
    queue = list(reversed(prompts))
    results: list[RequestResult] = []
    # A fresh connection per request (a fraction of a millisecond on localhost): llama-server closes
    # kept-alive connections on its own schedule, and a request sent on one as it closes was lost.
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=0)

    async with httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT_S, limits=limits) as client:

        async def worker() -> None:
            while queue:
                results.append(await stream_completion(client, protocol, queue.pop(), output_len))

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    return summarize(concurrency, results, wall)


def http_sweep(args: argparse.Namespace, name: str, url: str, protocol: Protocol, pid: int) -> Sweep:
    asyncio.run(run_level(url, protocol, warmup_prompt(args), 1, min(4, args.output_len)))
    levels = []
    for c in args.concurrency:
        levels.append(asyncio.run(run_level(url, protocol, level_prompts(args, c), c, args.output_len)))
        log(f"{name:<16} C={c:<3} {levels[-1].throughput_tok_s:8.1f} tok/s")
    return Sweep(name, levels, peers.peak_rss_bytes(pid))


def context_len(args: argparse.Namespace) -> int:
    """Context per sequence: the workload's prompt and output plus one block of slack."""
    return args.input_len + args.output_len + 16


def plinth_sweep(args: argparse.Namespace, name: str, dtype: str, quantization: str | None) -> Sweep:
    # The context llama.cpp gets per slot, so both size their KV cache for the same need.
    extra = (
        ["--max-model-len", str(context_len(args))]
        + (["--quantization", quantization] if quantization else [])
        + args.plinth_flags
    )
    with plinth_server(args.model, dtype, args.device, args.port, args.threads, extra) as (url, proc):
        model_id = httpx.get(f"{url}/v1/models").json()["data"][0]["id"]
        return http_sweep(args, name, url, openai_protocol(model_id), proc.pid)


def llama_sweep(args: argparse.Namespace, name: str, weights: str) -> Sweep:
    """llama.cpp on the checkpoint's GGUF as shipped (``q4_1``) or rewritten in BF16 (``bf16``)."""
    assert args.model.suffix == ".gguf", "llama.cpp configurations need a .gguf --model"
    model = args.model
    if weights == "bf16":
        model = peers.write_bf16_gguf(args.model, BENCH_DIR / f"{args.model.stem}.bf16.gguf")
    port = args.port or free_port()
    server = peers.llama_server(args.llama_server, model, port, LLAMA_SLOTS, context_len(args), args.threads)
    with server as (url, proc):
        return http_sweep(args, name, url, LLAMA_PROTOCOL, proc.pid)


def hf_sweep(args: argparse.Namespace, name: str, dtype: str) -> Sweep:
    """transformers ``generate`` in its own process (benchmarks/serve_hf.py), at ``--hf-baseline-at``."""
    levels = [(c, level_prompts(args, c)) for c in args.hf_baseline_at]
    job = {"model": str(args.model), "dtype": dtype, "device": args.device, "output_len": args.output_len,
           "warmup": warmup_prompt(args), "levels": levels}  # fmt: skip
    script = Path(__file__).with_name("serve_hf.py")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    run = subprocess.run([sys.executable, str(script)], input=json.dumps(job), capture_output=True, text=True,
                         env=env)  # fmt: skip
    if run.returncode != 0:
        raise RuntimeError(f"transformers baseline failed:\n{run.stderr[-3000:]}")
    out = json.loads(run.stdout)
    levels = []
    for lv in out["levels"]:
        results = [RequestResult(*r) for r in lv["results"]]
        levels.append(summarize(lv["concurrency"], results, lv["wall_s"]))
        log(f"{name:<16} C={lv['concurrency']:<3} {levels[-1].throughput_tok_s:8.1f} tok/s")
    return Sweep(name, levels, out["peak_rss_bytes"])


def run_engine(args: argparse.Namespace, name: str) -> Sweep:
    """``plinth[-DTYPE|-int8|-int4]``, ``hf[-DTYPE]`` or ``llama.cpp-{bf16,q4_1}``."""
    kind, _, variant = name.partition("-")
    if kind == "llama.cpp":
        return llama_sweep(args, name, variant)
    quantization = variant if variant in QUANTIZATIONS else None
    dtype = args.dtype if not variant or quantization else DTYPE_NAMES[variant]
    if kind == "hf":
        return hf_sweep(args, name, dtype)
    return plinth_sweep(args, name, dtype, quantization)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.model = prepare_model(args.model, args.quick)
    args.dtype = resolve_dtype(args.model, args.dtype, args.device)
    log(f"model {args.model}, dtype {args.dtype}, levels {args.concurrency}, engines {args.engines}")
    if args.plinth_flags:
        log(f"plinth serve also gets {' '.join(args.plinth_flags)}")
    load = os.getloadavg()[0]
    log(f"{args.threads} threads per engine, {os.cpu_count()} CPUs, load average {load:.2f} (shared machine)")
    sweeps = [run_engine(args, name) for name in args.engines]
    results = report(args, sweeps)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
