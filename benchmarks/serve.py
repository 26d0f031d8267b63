"""Serving benchmark: a concurrency sweep against ``plinth serve`` over HTTP, and Hugging Face
``generate`` with static batching on the same model and workload, in one run.

Method
------
1. Start ``python -m plinth serve --model DIR --no-auth`` in a subprocess (clean ``PLINTH_*`` env, a
   temporary data dir) and wait for ``GET /health``.
2. For each concurrency level C: C clients share a queue of ``--requests-per-level`` requests (default
   C, i.e. one wave). Each request streams ``POST /v1/completions`` with a prompt of ``--input-len``
   random token ids (seeded; fresh per level, so no prefix is ever reused), ``max_tokens=--output-len``,
   ``ignore_eos``, greedy, ``stream_options.include_usage`` (no logprobs, as most clients). Random
   checkpoints share their tokenizer's vocabulary, so almost every token streams visible text.
   Per request: TTFT (send -> first token chunk), end-to-end latency, output tokens (from ``usage``),
   per-token latency ``(e2e - TTFT) / (tokens - 1)``. Per level: throughput = output tokens / level wall
   time; p50 per-token latency; p50/p95 TTFT.
3. Stop the server (so the two never share cores), load the checkpoint with
   ``AutoModelForCausalLM.from_pretrained`` in the dtype the server used, and, for each level in
   ``--hf-baseline-at``, run the same prompts in static batches of C with
   ``generate(max_new_tokens=min_new_tokens=output_len, do_sample=False)``. A streamer timestamps each
   decoding step, so TTFT there is the time from batch start to the batch's first token (its whole
   prefill) and per-token latency is measured the same way as for Plinth.
4. Print both tables (markdown) and ``plinth/hf throughput at C concurrent: X.XX× (goal ≥ 2×)``;
   ``--json FILE`` also writes every number.

Reproduce (CPU, the ``small`` ~125M llama, created under ``.bench/`` on first use)::

    make bench                                        # full sweep 1..64, HF at 16
    .venv/bin/python benchmarks/serve.py --concurrency 1,4,16 --json bench.json
    .venv/bin/python benchmarks/serve.py --quick      # tiny model, seconds; what the test runs

Only the server's public HTTP API is measured; the checkpoint's ``config.json`` is read for the vocab
size and the dtype that ``--dtype auto`` resolves to (passed explicitly to both sides).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

GOAL_RATIO = 2.0
FULL = {"model": ".bench/llama-small", "concurrency": "1,2,4,8,16,32,64", "input_len": 128, "output_len": 64,
        "hf_baseline_at": "16"}  # fmt: skip
QUICK = {"model": ".bench/llama-tiny", "concurrency": "1,4", "input_len": 16, "output_len": 8,
         "hf_baseline_at": "4"}  # fmt: skip
SERVER_START_TIMEOUT_S = 300
REQUEST_TIMEOUT_S = 900
TABLE_HEADER = (
    "| concurrency | requests | throughput tok/s | latency ms/token p50 | TTFT p50 ms | TTFT p95 ms |"
)


@dataclass
class RequestResult:
    ttft_s: float
    e2e_s: float
    output_tokens: int

    @property
    def per_token_s(self) -> float | None:
        return (self.e2e_s - self.ttft_s) / (self.output_tokens - 1) if self.output_tokens > 1 else None


@dataclass
class Level:
    """One row of a results table."""

    concurrency: int
    requests: int
    output_tokens: int
    wall_s: float
    throughput_tok_s: float
    latency_ms_per_token_p50: float
    ttft_p50_ms: float
    ttft_p95_ms: float


def summarize(concurrency: int, results: list[RequestResult], wall_s: float) -> Level:
    tokens = sum(r.output_tokens for r in results)
    per_token = [r.per_token_s for r in results if r.per_token_s is not None]
    ttft = [r.ttft_s for r in results]
    return Level(
        concurrency=concurrency,
        requests=len(results),
        output_tokens=tokens,
        wall_s=wall_s,
        throughput_tok_s=tokens / wall_s,
        latency_ms_per_token_p50=1000 * float(np.percentile(per_token, 50)) if per_token else float("nan"),
        ttft_p50_ms=1000 * float(np.percentile(ttft, 50)),
        ttft_p95_ms=1000 * float(np.percentile(ttft, 95)),
    )


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- setup -------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help=f"checkpoint dir (default {FULL['model']}, created with random weights)")
    p.add_argument("--concurrency", help=f"comma-separated levels (default {FULL['concurrency']})")
    p.add_argument("--input-len", type=int, help=f"prompt tokens (default {FULL['input_len']})")
    p.add_argument("--output-len", type=int, help=f"generated tokens (default {FULL['output_len']})")
    p.add_argument("--requests-per-level", type=int, help="requests per level (default: the concurrency)")
    hf_default = FULL["hf_baseline_at"]
    p.add_argument("--hf-baseline-at", help=f"levels that also run HF (default {hf_default}; '' for none)")
    p.add_argument("--dtype", default="auto", help="auto|float32|bfloat16|float16 (both sides)")
    p.add_argument("--device", default="cpu", help="cpu|cuda (both sides)")
    p.add_argument("--port", type=int, default=0, help="server port (0: a free one)")
    p.add_argument("--seed", type=int, default=0, help="prompt seed")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--quick", action="store_true", help="tiny model, levels 1,4, short lengths (CI)")
    args = p.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.model = Path(args.model).resolve()
    args.concurrency = _levels(args.concurrency)
    args.hf_baseline_at = _levels(args.hf_baseline_at)
    return args


def _levels(text: str) -> list[int]:
    levels = [int(x) for x in text.split(",") if x.strip()]
    assert all(c >= 1 for c in levels), f"concurrency levels must be >= 1: {text!r}"
    return levels


def prepare_model(path: Path, quick: bool) -> Path:
    """``path`` as is if it holds a checkpoint, else a random llama (tiny with --quick, small) there."""
    if not (path / "config.json").is_file():
        from plinth.engine.checkpoint import init_random

        size = "tiny" if quick else "small"
        log(f"writing a random-weight llama {size} checkpoint to {path}")
        init_random("llama", size, path)
    return path


def resolve_dtype(model: Path, name: str, device: str) -> str:
    """The concrete dtype ``--dtype name`` means for this checkpoint, by the engine's own rule."""
    import torch

    from plinth.engine.model_runner import resolve_dtype as engine_rule

    stored = str(_config(model).get("torch_dtype") or _config(model).get("dtype") or "float32")
    return str(engine_rule(name, torch.device(device), stored)).removeprefix("torch.")


def _config(model: Path) -> dict[str, Any]:
    return json.loads((model / "config.json").read_text())


def make_prompts(n: int, length: int, vocab_size: int, seed: int) -> list[list[int]]:
    """``n`` random prompts of ``length`` ids, skipping the first ids (special tokens in our tokenizers)."""
    rng = random.Random(seed)
    return [[rng.randrange(16, vocab_size) for _ in range(length)] for _ in range(n)]


def level_prompts(args: argparse.Namespace, concurrency: int) -> list[list[int]]:
    """The prompts of one level: fresh per level, the same for Plinth and HF."""
    n = args.requests_per_level or concurrency
    return make_prompts(n, args.input_len, _config(args.model)["vocab_size"], args.seed * 1000 + concurrency)


def warmup_prompt(args: argparse.Namespace) -> list[list[int]]:
    return make_prompts(1, args.input_len, _config(args.model)["vocab_size"], seed=-1)


# --- Plinth over HTTP ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def plinth_server(model: Path, dtype: str, device: str, port: int) -> Iterator[str]:
    """Run ``plinth serve`` in a subprocess for the duration of the block; yields its base URL."""
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLINTH_")}
    env["PLINTH_LOG_LEVEL"] = "warning"  # no access log line per request
    cmd = [sys.executable, "-m", "plinth", "serve", "--model", str(model), "--no-auth", "--port", str(port),
           "--dtype", dtype, "--device", device]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="plinth-bench-") as tmp:
        cmd += ["--data-dir", tmp]
        with open(Path(tmp) / "server.log", "w+b") as server_log:
            proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=server_log, stderr=subprocess.STDOUT)
            try:
                url = f"http://127.0.0.1:{port}"
                wait_healthy(url, proc, server_log)
                yield url
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
    client: httpx.AsyncClient, model_id: str, prompt: list[int], output_len: int
) -> RequestResult:
    """One streamed ``/v1/completions`` request, timed from send to first token chunk and to the end."""
    body = {
        "model": model_id,
        "prompt": prompt,
        "max_tokens": output_len,
        "ignore_eos": True,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    ttft, tokens = None, None
    async with client.stream("POST", "/v1/completions", json=body) as response:
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {(await response.aread()).decode()[:500]}")
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line.removeprefix("data: "))
            if ttft is None and any(c.get("text") or c.get("logprobs") for c in chunk.get("choices", ())):
                ttft = time.perf_counter() - start
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    e2e = time.perf_counter() - start
    assert ttft is not None and tokens is not None, "stream had no token chunk or no usage chunk"
    return RequestResult(ttft, e2e, tokens)


async def run_level(
    url: str, model_id: str, prompts: list[list[int]], concurrency: int, output_len: int
) -> Level:
    """``concurrency`` closed-loop clients drain the prompt queue; each sends its next on completion."""
    queue = list(reversed(prompts))
    results: list[RequestResult] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT_S, limits=limits) as client:

        async def worker() -> None:
            while queue:
                results.append(await stream_completion(client, model_id, queue.pop(), output_len))

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    return summarize(concurrency, results, wall)


def plinth_sweep(args: argparse.Namespace, dtype: str) -> list[Level]:
    with plinth_server(args.model, dtype, args.device, args.port) as url:
        model_id = httpx.get(f"{url}/v1/models").json()["data"][0]["id"]
        asyncio.run(run_level(url, model_id, warmup_prompt(args), 1, min(4, args.output_len)))
        levels = []
        for c in args.concurrency:
            levels.append(asyncio.run(run_level(url, model_id, level_prompts(args, c), c, args.output_len)))
            log(f"plinth  C={c:<3} {levels[-1].throughput_tok_s:8.1f} tok/s")
        return levels


# --- Hugging Face generate, static batching -----------------------------------------------------------


def hf_sweep(args: argparse.Namespace, dtype: str) -> list[Level]:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=getattr(torch, dtype)).to(args.device)
    model.eval()
    hf_generate(model, warmup_prompt(args), 2)
    levels = []
    for c in args.hf_baseline_at:
        levels.append(hf_level(model, level_prompts(args, c), c, args.output_len))
        log(f"hf      C={c:<3} {levels[-1].throughput_tok_s:8.1f} tok/s")
    return levels


def hf_level(model: Any, prompts: list[list[int]], batch_size: int, output_len: int) -> Level:
    """Static batching: batches of ``batch_size`` run one after the other, each to completion."""
    results: list[RequestResult] = []
    start = time.perf_counter()
    for i in range(0, len(prompts), batch_size):
        results += hf_generate(model, prompts[i : i + batch_size], output_len)
    return summarize(batch_size, results, time.perf_counter() - start)


def hf_generate(model: Any, batch: list[list[int]], output_len: int) -> list[RequestResult]:
    """One ``generate`` call; every request in the batch shares its TTFT and end time."""
    import torch

    input_ids = torch.tensor(batch, device=model.device)
    clock = _StepClock()
    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=output_len,
            min_new_tokens=output_len,
            do_sample=False,
            pad_token_id=model.generation_config.pad_token_id or 0,
            streamer=clock,
        )
    e2e = time.perf_counter() - start
    new_tokens = out.shape[1] - input_ids.shape[1]
    assert new_tokens == output_len, (new_tokens, output_len)
    return [RequestResult(clock.first_token_at - start, e2e, new_tokens) for _ in batch]


class _StepClock:
    """A ``generate`` streamer that only notes when the first new tokens arrive (put #2; #1 is the prompt)."""

    def __init__(self) -> None:
        self.puts = 0
        self.first_token_at = float("nan")

    def put(self, value: Any) -> None:
        self.puts += 1
        if self.puts == 2:
            self.first_token_at = time.perf_counter()

    def end(self) -> None:
        pass


# --- report ---------------------------------------------------------------------------------------------


def table(levels: list[Level]) -> str:
    rows = [TABLE_HEADER, "|---:|---:|---:|---:|---:|---:|"]
    for lv in levels:
        latency, ttft50, ttft95 = lv.latency_ms_per_token_p50, lv.ttft_p50_ms, lv.ttft_p95_ms
        cells = [
            lv.concurrency,
            lv.requests,
            f"{lv.throughput_tok_s:.1f}",
            f"{latency:.1f}",
            f"{ttft50:.0f}",
            f"{ttft95:.0f}",
        ]
        rows.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(rows)


def ratios(plinth: list[Level], hf: list[Level]) -> dict[int, float]:
    ours = {lv.concurrency: lv.throughput_tok_s for lv in plinth}
    return {h.concurrency: ours[h.concurrency] / h.throughput_tok_s for h in hf if h.concurrency in ours}


def report(args: argparse.Namespace, dtype: str, plinth: list[Level], hf: list[Level]) -> dict[str, Any]:
    workload = f"input {args.input_len} tokens, output {args.output_len} tokens, dtype {dtype}, {args.device}"
    print(f"## Plinth (`plinth serve`, streaming /v1/completions) — {args.model.name}, {workload}\n")
    print(table(plinth))
    if hf:
        print(f"\n## Hugging Face `generate`, static batching (batch = concurrency) — {workload}\n")
        print(table(hf))
        print("\nHF TTFT = batch start to the batch's first token (the whole batch's prefill); latency/token "
              "= the rest of the batch's time per step.\n")  # fmt: skip
    found = ratios(plinth, hf)
    for c, r in found.items():
        print(f"plinth/hf throughput at {c} concurrent: {r:.2f}× (goal ≥ {GOAL_RATIO:.0f}×)")
    return {
        "model": str(args.model), "dtype": dtype, "device": args.device,
        "input_len": args.input_len, "output_len": args.output_len,
        "plinth": [asdict(lv) for lv in plinth], "hf": [asdict(lv) for lv in hf],
        "ratios": {str(c): r for c, r in found.items()}, "goal_ratio": GOAL_RATIO,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    prepare_model(args.model, args.quick)
    dtype = resolve_dtype(args.model, args.dtype, args.device)
    log(f"model {args.model}, dtype {dtype}, levels {args.concurrency}, HF at {args.hf_baseline_at}")
    log(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} (other load skews the numbers)")
    plinth = plinth_sweep(args, dtype)
    hf = hf_sweep(args, dtype) if args.hf_baseline_at else []
    results = report(args, dtype, plinth, hf)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
