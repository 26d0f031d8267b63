"""Batch benchmark: a 1,000-line greedy chat batch on ``plinth serve``, a restart midway, outputs checked
against interactive requests, and interactive TTFT p95 with the batch running against idle, in one run.

Method
------
1. Start ``python -m plinth serve --model DIR --no-auth`` in a subprocess on a data dir kept for the run
   (so a restart finds its batch) and warm it up.
2. Idle: ``--probes`` interactive streamed chat requests, one after another (``--probe-gap-s`` apart),
   each ``max_tokens=--output-len`` greedy; TTFT = send -> first content chunk. p50/p95.
3. Upload ``--lines`` greedy chat lines (distinct questions, ``max_tokens=--output-len``) with
   ``purpose=batch``, create the batch, wait until it is ``in_progress``, and send the same probes
   again while it runs (the run records how many lines finished during the probes: they must overlap).
4. With ``--restart`` (default on): once ``--restart-at`` of the lines are done, stop the server
   (SIGTERM: lines generating then are cut off), start it again on the same data dir, and wait for the
   batch to complete. The output file must hold every ``custom_id`` exactly once, the error file none.
5. Send ``--check`` of the batch's requests (``all`` or a number, a fixed sample) interactively (not
   streamed) and compare each reply's content and finish_reason with the batch's line.
6. Print the table and ``interactive TTFT p95 with a batch running / idle: X.XX× (goal ≤ 1.5×)``;
   ``--json FILE`` also writes every number.

Reproduce (CPU; the ``tiny`` random llama is written under ``.bench/`` on first use)::

    .venv/bin/python benchmarks/batch.py                          # 1,000 lines, restart midway
    .venv/bin/python benchmarks/batch.py --model .bench/llama-small --lines 200
    .venv/bin/python benchmarks/batch.py --model smollm2-135m-instruct --lines 150 --output-len 32
    .venv/bin/python benchmarks/batch.py --quick                  # 60 lines, seconds
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve import free_port, log, prepare_model, stop, wait_healthy  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
GOAL_RATIO = 1.5
MODEL_NAME = "bench"
WORDS = (
    "red",
    "river",
    "seven",
    "lamp",
    "north",
    "cloud",
    "paper",
    "stone",
    "green",
    "tiger",
    "salt",
    "moon",
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=".bench/llama-tiny",
                   help="checkpoint dir, .gguf file or packaged name (smollm2-135m-instruct)")  # fmt: skip
    p.add_argument("--lines", type=int, default=1000)
    p.add_argument("--output-len", type=int, default=16)
    p.add_argument("--probes", type=int, default=40)
    p.add_argument("--probe-gap-s", type=float, default=0.05)
    p.add_argument("--lines-in-flight", type=int, default=16, help="batch_max_lines_in_flight")
    p.add_argument("--lines-in-flight-when-busy", type=int, default=4, help="batch_lines_in_flight_when_busy")
    p.add_argument("--check", default="200", help="'all' or how many lines to compare with interactive")
    p.add_argument("--restart", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--restart-at", type=float, default=0.5, help="fraction of lines done when it restarts")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-invariant", action="store_true", help="serve with PLINTH_BATCH_INVARIANT=1")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="60 lines, 10 probes")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if args.quick:
        args.lines, args.probes, args.check = 60, 10, "all"
    return args


@contextlib.contextmanager
def server(args: argparse.Namespace, data_dir: Path, port: int) -> Iterator[tuple[str, subprocess.Popen]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLINTH_")}
    env |= {
        "PLINTH_LOG_LEVEL": "warning",
        "PLINTH_BATCH_MAX_LINES_IN_FLIGHT": str(args.lines_in_flight),
        "PLINTH_BATCH_LINES_IN_FLIGHT_WHEN_BUSY": str(args.lines_in_flight_when_busy),
        "PLINTH_BATCH_INVARIANT": str(int(args.batch_invariant)),
    }
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])  # this checkout
    cmd = [sys.executable, "-m", "plinth", "serve", "--model", str(args.model), "--no-auth",
           "--port", str(port), "--device", args.device, "--data-dir", str(data_dir)]  # fmt: skip
    with open(data_dir / "server.log", "a+b") as server_log:
        proc = subprocess.Popen(cmd, cwd=data_dir, env=env, stdout=server_log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, proc, server_log)
            yield url, proc
        finally:
            stop(proc)


def chat_body(model: str, question: str, output_len: int, stream: bool = False) -> dict[str, Any]:
    body = {"model": model, "messages": [{"role": "user", "content": question}], "max_tokens": output_len,
            "temperature": 0}  # fmt: skip
    return body | ({"stream": True} if stream else {})


def questions(n: int, seed: int, prefix: str) -> list[str]:
    rng = random.Random(seed)
    return [f"{prefix} {i}: " + " ".join(rng.choice(WORDS) for _ in range(8)) + "?" for i in range(n)]


async def ttft(client: httpx.AsyncClient, body: dict[str, Any]) -> float:
    """Send -> first content chunk; the stream is read to its end (the request runs whole)."""
    start, first = time.perf_counter(), None
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            delta = line.startswith("data: {") and json.loads(line[6:])["choices"][0]["delta"]
            if first is None and delta and delta.get("content"):
                first = time.perf_counter() - start
    if first is None:
        raise RuntimeError("the stream ended without content")
    return first


async def probe(url: str, model: str, args: argparse.Namespace, label: str) -> list[float]:
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:
        times = []
        for q in questions(args.probes, args.seed + 1, f"Probe {label}"):
            times.append(await ttft(client, chat_body(model, q, args.output_len, stream=True)))
            await asyncio.sleep(args.probe_gap_s)
        return times


def batch_status(url: str, batch_id: str) -> dict[str, Any]:
    return httpx.get(f"{url}/v1/batches/{batch_id}", timeout=60).json()


def create_batch(url: str, model: str, args: argparse.Namespace) -> tuple[str, list[dict[str, Any]]]:
    bodies = [chat_body(model, q, args.output_len) for q in questions(args.lines, args.seed, "Line")]
    lines = [{"custom_id": f"line-{i}", "method": "POST", "url": "/v1/chat/completions", "body": b}
             for i, b in enumerate(bodies)]  # fmt: skip
    text = "".join(json.dumps(line) + "\n" for line in lines).encode()
    files = {"file": ("batch.jsonl", text, "application/jsonl")}
    file_id = httpx.post(f"{url}/v1/files", data={"purpose": "batch"}, files=files, timeout=60).json()["id"]
    body = {"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    return httpx.post(f"{url}/v1/batches", json=body, timeout=60).json()["id"], bodies


def wait_until(url: str, batch_id: str, done: Any, timeout_s: float = 7200) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while not done(status := batch_status(url, batch_id)):
        if time.monotonic() > deadline or status["status"] in ("failed", "expired", "cancelled"):
            raise RuntimeError(f"batch did not get there: {status}")
        time.sleep(0.2)
    return status


def finished_lines(status: dict[str, Any]) -> int:
    counts = status["request_counts"]
    return int(counts["completed"] + counts["failed"])


def read_output(url: str, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    text = httpx.get(f"{url}/v1/files/{file_id}/content", timeout=60).text
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def compare(url: str, bodies: list[dict[str, Any]], outputs: dict[str, Any], check: str) -> tuple[int, int]:
    """(checked, identical): interactive replies against the batch's, for a fixed sample of lines."""
    indices = list(range(len(bodies)))
    if check != "all":
        indices = sorted(random.Random(7).sample(indices, min(int(check), len(indices))))
    same = 0
    with httpx.Client(base_url=url, timeout=600) as client:
        for i in indices:
            reply = client.post("/v1/chat/completions", json=bodies[i]).json()["choices"][0]
            batched = outputs[f"line-{i}"]["response"]["body"]["choices"][0]
            same += (reply["message"]["content"], reply["finish_reason"]) == (
                batched["message"]["content"], batched["finish_reason"])  # fmt: skip
    return len(indices), same


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000


def run(args: argparse.Namespace) -> dict[str, Any]:
    args.model = prepare_model(args.model, quick=True)  # absolute: the server runs in its own directory
    report: dict[str, Any] = {"model": str(args.model), "lines": args.lines, "output_len": args.output_len,
                              "batch_invariant": args.batch_invariant,
                              "lines_in_flight": args.lines_in_flight, "device": args.device,
                              "lines_in_flight_when_busy": args.lines_in_flight_when_busy}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="plinth-batch-bench-") as tmp:
        data, port = Path(tmp), free_port()
        with server(args, data, port) as (url, _):
            model = httpx.get(f"{url}/v1/models").json()["data"][0]["id"]
            asyncio.run(probe(url, model, argparse.Namespace(**{**vars(args), "probes": 3}), "warm"))
            log("idle probes")
            idle = asyncio.run(probe(url, model, args, "idle"))
            batch_id, bodies = create_batch(url, model, args)
            started = time.monotonic()
            wait_until(url, batch_id, lambda s: s["status"] == "in_progress")
            before = finished_lines(batch_status(url, batch_id))
            log("probes with the batch running")
            busy = asyncio.run(probe(url, model, args, "busy"))
            during = batch_status(url, batch_id)
            report["lines_done_during_busy_probes"] = finished_lines(during) - before
            report["batch_still_running_after_probes"] = during["status"] == "in_progress"
            if not args.restart:
                finish(url, batch_id, bodies, args, report)
            else:
                at = int(args.lines * args.restart_at)
                status = wait_until(
                    url, batch_id, lambda s: finished_lines(s) >= at or s["status"] == "completed"
                )
                report["lines_done_at_restart"] = finished_lines(status)
                log(f"restarting the server with {finished_lines(status)} of {args.lines} lines done")
        if args.restart:
            with server(args, data, port) as (url, _):
                finish(url, batch_id, bodies, args, report)
    report["batch_wall_s"] = report.pop("_finished_at") - started
    report["ttft_idle_ms"] = {"p50": pct(idle, 50), "p95": pct(idle, 95)}
    report["ttft_busy_ms"] = {"p50": pct(busy, 50), "p95": pct(busy, 95)}
    report["ttft_p95_ratio"] = report["ttft_busy_ms"]["p95"] / report["ttft_idle_ms"]["p95"]
    return report


def finish(url: str, batch_id: str, bodies: list[dict[str, Any]], args: argparse.Namespace,
           report: dict[str, Any]) -> None:  # fmt: skip
    """Wait for the batch, check every line is there once, compare a sample with interactive replies."""
    final = wait_until(url, batch_id, lambda s: s["status"] == "completed")
    report["_finished_at"] = time.monotonic()
    outputs = read_output(url, final["output_file_id"])
    errors = read_output(url, final["error_file_id"])
    ids = [o["custom_id"] for o in outputs + errors]
    report["request_counts"] = final["request_counts"]
    report["output_lines"], report["error_lines"] = len(outputs), len(errors)
    report["completion_tokens"] = sum(o["response"]["body"]["usage"]["completion_tokens"] for o in outputs)
    report["every_line_exactly_once"] = sorted(ids) == sorted(f"line-{i}" for i in range(args.lines))
    log("comparing with interactive requests")
    checked, same = compare(url, bodies, {o["custom_id"]: o for o in outputs}, args.check)
    report["checked"], report["identical"] = checked, same


def print_report(r: dict[str, Any]) -> None:
    print(f"model {r['model']} on {r['device']}; {r['lines']} lines x {r['output_len']} tokens, "
          f"{r['lines_in_flight']} lines in flight ({r['lines_in_flight_when_busy']} while interactive "
          "requests run)")  # fmt: skip
    print("| interactive TTFT | p50 ms | p95 ms |\n|---|---|---|")
    for name, key in (("idle", "ttft_idle_ms"), ("batch running", "ttft_busy_ms")):
        print(f"| {name} | {r[key]['p50']:.1f} | {r[key]['p95']:.1f} |")
    print(f"batch lines finished during the busy probes: {r['lines_done_during_busy_probes']} "
          f"(still running after them: {r['batch_still_running_after_probes']})")  # fmt: skip
    if "lines_done_at_restart" in r:
        print(f"server restarted with {r['lines_done_at_restart']} lines done")
    print(f"batch: {r['request_counts']} in {r['batch_wall_s']:.1f} s; every line exactly once: "
          f"{r['every_line_exactly_once']}")  # fmt: skip
    print(f"batch throughput: {r['completion_tokens'] / r['batch_wall_s']:.1f} completion tokens/s "
          f"(batch_invariant={r['batch_invariant']})")  # fmt: skip
    print(f"identical to interactive (greedy): {r['identical']}/{r['checked']}")
    ratio = r["ttft_p95_ratio"]
    print(f"interactive TTFT p95 with a batch running / idle: {ratio:.2f}x (goal <= {GOAL_RATIO}x)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = run(args)
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0 if report["every_line_exactly_once"] and report["identical"] == report["checked"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
