"""Multi-LoRA benchmark: throughput with N distinct adapters in flight, against the base model and PEFT.

Method (one run, one model, one workload):

1. A random ``small`` llama (created under ``.bench/`` on first use) and up to 128 rank-``--rank``
   adapters in PEFT format (``LoraConfig.save_pretrained`` + safetensors with random A and B) for
   ``--targets`` (default q_proj,v_proj: PEFT's default for Llama; ``all`` for every projection).
2. Base: ``R`` greedy requests (``--input-len`` random prompt ids, ``--output-len`` tokens, ignore_eos)
   through the engine with LoRA disabled: throughput = output tokens / wall time.
3. For each N in ``--adapters``: ``R = max(--requests, N)`` requests, request i uses adapter ``i % N``,
   with ``max_loras >= N`` (every adapter resident) and ``max_loras = N // 4`` (forced swapping
   between compute slots and host memory). Each configuration runs ``--rounds`` times, each round
   right after a base run on the same fresh prompts (none is in either engine's prefix cache), and
   is reported as the median of those paired ratios: a shared machine's load moves both runs of a
   pair alike, where one base run for the whole sweep made the ratios swing by 10% or more.
4. PEFT baseline (as users do today: transformers + peft, one adapter active at a time): the same
   requests grouped by adapter, ``set_adapter`` then ``generate`` per group. Only for N in
   ``--peft-at`` (it is slow by design).
5. Cold adapter: time to bring an adapter from host memory into a compute slot.

Reproduce::

    .venv/bin/python benchmarks/lora.py                       # full table (a few minutes on 2 cores)
    .venv/bin/python benchmarks/lora.py --quick               # tiny model, seconds (what the test runs)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import median

import torch
from safetensors.torch import save_file

from plinth.engine import EngineConfig, LLMEngine, SamplingParams
from plinth.engine.checkpoint import init_random
from plinth.engine.model_config import ModelConfig

PEFT_LABEL = "PEFT, one adapter at a time"
ALL_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class Row:
    label: str
    adapters: int
    max_loras: int | None
    requests: int
    tokens_per_s: float
    ratio_to_base: float | None = None


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--model", type=Path, default=None, help="checkpoint dir (default: .bench/llama-small)"
    )
    parser.add_argument("--adapters", default="1,8,32,128", help="N distinct adapters in flight")
    parser.add_argument("--requests", type=int, default=32, help="requests per run (at least N)")
    parser.add_argument("--input-len", type=int, default=64)
    parser.add_argument("--output-len", type=int, default=32)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--targets", default="q_proj,v_proj", help="comma list, or 'all'")
    parser.add_argument("--peft-at", default="32", help="N values that also run the PEFT baseline")
    parser.add_argument("--rounds", type=int, default=3, help="paired base/LoRA runs per configuration")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="tiny model, small sweep (for tests)")
    args = parser.parse_args(argv)
    if args.quick:
        args.adapters, args.requests, args.input_len, args.output_len, args.peft_at = "1,4", 4, 8, 4, "4"
        args.rounds = 1
    return args


def checkpoint(args: argparse.Namespace) -> Path:
    if args.model is not None:
        return args.model
    path = Path(".bench") / ("llama-tiny" if args.quick else "llama-small")
    if not (path / "config.json").exists():
        init_random("llama", "tiny" if args.quick else "small", path)
    return path


def make_adapters(base: Path, out: Path, count: int, rank: int, targets: tuple[str, ...]) -> list[Path]:
    """``count`` PEFT-format adapters with random A and B (B is zero in a fresh PEFT init)."""
    from peft import LoraConfig

    from plinth.engine.lora import projection_shape

    cfg = ModelConfig.from_pretrained(base)
    paths = []
    for i in range(count):
        path = out / f"adapter-{i}"
        config = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=list(targets), task_type="CAUSAL_LM")
        config.base_model_name_or_path = str(base)
        config.save_pretrained(path)
        gen = torch.Generator().manual_seed(i)
        tensors = {}
        for layer in range(cfg.num_layers):
            for module in targets:
                fan_in, fan_out = projection_shape(cfg, module)
                part = "mlp" if module in ("gate_proj", "up_proj", "down_proj") else "self_attn"
                key = f"base_model.model.model.layers.{layer}.{part}.{module}"
                tensors[f"{key}.lora_A.weight"] = torch.randn(rank, fan_in, generator=gen) * 0.02
                tensors[f"{key}.lora_B.weight"] = torch.randn(fan_out, rank, generator=gen) * 0.02
        save_file(tensors, str(path / "adapter_model.safetensors"))
        paths.append(path)
    return paths


def prompts(count: int, length: int, vocab: int, seed: int = 1234) -> list[list[int]]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randint(3, vocab, (length,), generator=gen).tolist() for _ in range(count)]


def run_engine(
    engine: LLMEngine, batch: list[list[int]], adapters: list[str | None], output_len: int
) -> float:
    """Submit every request at once, step to completion; returns output tokens per second."""
    params = SamplingParams(max_tokens=output_len, temperature=0.0, ignore_eos=True)
    start = time.perf_counter()
    for prompt, adapter in zip(batch, adapters, strict=True):
        engine.add_request(prompt, params, adapter=adapter)
    tokens = 0
    while engine.has_unfinished():
        tokens += sum(len(out.new_token_ids) for out in engine.step())
    return tokens / (time.perf_counter() - start)


def engine_for(base: Path, max_num_seqs: int, max_loras: int | None, rank: int) -> LLMEngine:
    config = EngineConfig(model=str(base), max_num_seqs=max_num_seqs, max_num_batched_tokens=8192)
    if max_loras is not None:
        config.enable_lora, config.max_loras, config.max_lora_rank, config.max_cpu_loras = (
            True,
            max_loras,
            rank,
            256,
        )
    return LLMEngine(config)


def warm(engine: LLMEngine, adapter: str | None = None) -> None:
    engine.generate([[5, 6, 7, 8]], SamplingParams(max_tokens=2, temperature=0.0, ignore_eos=True))
    if adapter is not None:
        engine.add_request([5, 6, 7], SamplingParams(max_tokens=2, ignore_eos=True), adapter=adapter)
        while engine.has_unfinished():
            engine.step()


def peft_throughput(base: Path, paths: list[Path], batch: list[list[int]], output_len: int, n: int) -> float:
    """transformers + peft, one adapter active at a time: each adapter's requests as one batch."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    dtype = engine_dtype(base)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype=dtype), paths[0],
                                      adapter_name="a0")  # fmt: skip
    for i in range(1, n):
        model.load_adapter(paths[i], adapter_name=f"a{i}")
    model.eval()
    start, tokens = time.perf_counter(), 0
    with torch.inference_mode():
        for i in range(n):
            group = torch.tensor([p for j, p in enumerate(batch) if j % n == i])
            model.set_adapter(f"a{i}")
            out = model.generate(input_ids=group, attention_mask=torch.ones_like(group), do_sample=False,
                                 max_new_tokens=output_len, min_new_tokens=output_len)  # fmt: skip
            tokens += (out.shape[1] - group.shape[1]) * group.shape[0]
    return tokens / (time.perf_counter() - start)


def engine_dtype(base: Path) -> torch.dtype:
    from plinth.engine.model_runner import resolve_device, resolve_dtype

    cfg = ModelConfig.from_pretrained(base)
    return resolve_dtype("auto", resolve_device("auto"), cfg.torch_dtype)


def cold_slot_load_ms(engine: LLMEngine, names: list[str]) -> float:
    """Mean time to copy an adapter from host memory into a compute slot (evicting another)."""
    manager = engine.lora
    assert manager is not None
    times = []
    for slot, name in enumerate(names[: manager.ctx.num_slots]):
        adapter = manager._ready(manager.key_for(name))
        assert adapter is not None
        start = time.perf_counter()
        manager._fill(slot, f"bench-{name}", adapter)
        times.append(time.perf_counter() - start)
    return 1000 * sum(times) / len(times)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    torch.manual_seed(0)
    base = checkpoint(args)
    targets = ALL_TARGETS if args.targets == "all" else tuple(args.targets.split(","))
    levels = [int(n) for n in args.adapters.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_adapters(base, Path(tmp), max(levels), args.rank, targets)
        rows, cold_ms = sweep(args, base, paths, levels)
    report(rows, cold_ms, args, targets, base)
    if args.json:
        results = {"rows": [asdict(r) for r in rows], "cold_slot_load_ms": cold_ms}
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def sweep(
    args: argparse.Namespace, base: Path, paths: list[Path], levels: list[int]
) -> tuple[list[Row], float | None]:
    """Each N with resident and swapping slots, in rounds paired with a base run; then PEFT."""
    vocab = ModelConfig.from_pretrained(base).vocab_size
    rows: list[Row] = []
    base_engines: dict[int, LLMEngine] = {}
    base_tps: dict[int, list[float]] = {}
    cold_ms = None
    for n in levels:
        requests = max(args.requests, n)
        if requests not in base_engines:
            base_engines[requests] = engine_for(base, requests, None, args.rank)
            warm(base_engines[requests])
        names = [f"a{i}" for i in range(n)]
        adapters: list[str | None] = [names[i % n] for i in range(requests)]
        for max_loras in sorted({n, max(1, n // 4)}, reverse=True):
            engine = engine_for(base, requests, max_loras, args.rank)
            for name, path in zip(names, paths, strict=False):
                engine.add_lora(name, path)
            warm(engine, names[0])
            lora_tps, ratios = [], []
            for _ in range(args.rounds):
                seed = 1234 + len(base_tps.get(requests, []))  # fresh prompts for every pair
                batch = prompts(requests, args.input_len, vocab, seed)
                alone = run_engine(base_engines[requests], batch, [None] * requests, args.output_len)
                base_tps.setdefault(requests, []).append(alone)
                lora_tps.append(run_engine(engine, batch, adapters, args.output_len))
                ratios.append(lora_tps[-1] / alone)
            rows.append(Row("plinth multi-LoRA", n, max_loras, requests, median(lora_tps), median(ratios)))
            if cold_ms is None and n >= 8:
                cold_ms = cold_slot_load_ms(engine, names)
            del engine
        if str(n) in args.peft_at.split(","):
            batch = prompts(requests, args.input_len, vocab)
            tps = peft_throughput(base, paths, batch, args.output_len, n)
            rows.append(Row(PEFT_LABEL, n, None, requests, tps, tps / median(base_tps[requests])))
    base_rows = [Row("base (LoRA off)", 0, None, r, median(tps), 1.0) for r, tps in sorted(base_tps.items())]
    return base_rows + rows, cold_ms


def report(
    rows: list[Row], cold_ms: float | None, args: argparse.Namespace, targets: tuple[str, ...], base: Path
) -> None:
    print(f"\nmodel={base} rank={args.rank} targets={','.join(targets)} "
          f"input={args.input_len} output={args.output_len} threads={torch.get_num_threads()} "
          f"rounds={args.rounds} (medians; × base: median of paired ratios)\n")  # fmt: skip
    print("| run | N adapters | max_loras | requests | tokens/s | × base |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        ratio = "" if r.ratio_to_base is None else f"{r.ratio_to_base:.2f}"
        slots = r.max_loras or ""
        print(f"| {r.label} | {r.adapters} | {slots} | {r.requests} | {r.tokens_per_s:.1f} | {ratio} |")
    by_key = {(r.label, r.adapters, r.max_loras): r for r in rows}
    for n in [r.adapters for r in rows if r.label == PEFT_LABEL]:
        ours = by_key.get(("plinth multi-LoRA", n, n))
        peft = next(r for r in rows if r.label == PEFT_LABEL and r.adapters == n)
        if ours:
            print(f"\nplinth/PEFT throughput with {n} adapters: {ours.tokens_per_s / peft.tokens_per_s:.2f}× "
                  "(goal ≥ 5×)")  # fmt: skip
    resident = by_key.get(("plinth multi-LoRA", 32, 32))
    if resident:
        print(f"plinth with 32 distinct adapters / base: {resident.ratio_to_base:.2f}× (goal ≥ 0.8×)")
    if cold_ms is not None:
        print(f"cold adapter host memory -> compute slot: {cold_ms:.2f} ms")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
