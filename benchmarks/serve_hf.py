"""Hugging Face ``generate`` with static batching, the transformers baseline of ``serve.py``.

Run by ``serve.py`` in its own process (so its peak RSS is transformers' alone); reads a JSON job on
stdin (``model``, ``dtype``, ``device``, ``output_len``, ``warmup`` prompt, ``levels``: concurrency ->
prompts) and writes JSON on stdout: per level the wall time and each request's (TTFT, e2e, tokens), and
the process's peak RSS. A ``.gguf`` model is loaded through transformers' own GGUF reader.

Static batching: batches of C run one after the other, each to completion with
``generate(max_new_tokens = min_new_tokens = output_len, do_sample=False)``. A streamer timestamps the
first decoding step, so TTFT is batch start to the batch's first token (its whole prefill).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM


def load(model: str, dtype: str, device: str) -> Any:
    path = Path(model)
    options: dict[str, Any] = {"dtype": getattr(torch, dtype)}
    if path.suffix == ".gguf":
        options["gguf_file"] = path.name
        path = path.parent
    return AutoModelForCausalLM.from_pretrained(path, **options).to(device).eval()


def generate(model: Any, batch: list[list[int]], output_len: int) -> list[tuple[float, float, int]]:
    """One ``generate`` call; every request in the batch shares its TTFT and end time."""
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
    return [(clock.first_token_at - start, e2e, new_tokens) for _ in batch]


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


def peak_rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def main() -> int:
    job = json.load(sys.stdin)
    model = load(job["model"], job["dtype"], job["device"])
    generate(model, job["warmup"], 2)
    levels = []
    for concurrency, prompts in job["levels"]:
        results: list[tuple[float, float, int]] = []
        start = time.perf_counter()
        for i in range(0, len(prompts), concurrency):
            results += generate(model, prompts[i : i + concurrency], job["output_len"])
        levels.append({"concurrency": concurrency, "wall_s": time.perf_counter() - start, "results": results})
    json.dump({"levels": levels, "peak_rss_bytes": peak_rss_bytes()}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
