"""Where does a request's numerics depend on the rest of its batch? Finds the first op that differs.

One prompt is run through the engine's model alone, then inside other step shapes: with other prompts
prefilled beside it (a padded prefill group, more matmul rows), prefilled in two chunks (the second
chunk reads the first's K/V from the cache, as a prefix-cache hit does), and one decode step alone
against one inside a batch of decodes of other lengths. Forward hooks record the prompt's rows at every
module (and every ``paged_attention`` call) in execution order; the report names, per case, the first
op whose rows differ from the alone run, and whether the final logits are bitwise equal. ``--cost``
times the engine with the mode off and on instead.

Reproduce::

    .venv/bin/python benchmarks/invariance_probe.py                          # SmolLM2-135M, mode off
    .venv/bin/python benchmarks/invariance_probe.py --batch-invariant        # mode on
    .venv/bin/python benchmarks/invariance_probe.py --model .bench/llama-tiny --dtype float32
    .venv/bin/python benchmarks/invariance_probe.py --cost                   # the mode's cost, off vs on
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve import prepare_model  # noqa: E402

import plinth.engine.model as model_module  # noqa: E402
from plinth.engine import EngineConfig  # noqa: E402
from plinth.engine.attention import AttentionMetadata, SeqSpan  # noqa: E402
from plinth.engine.model_config import ModelConfig  # noqa: E402
from plinth.engine.model_runner import ModelRunner  # noqa: E402

Trace = list[tuple[str, torch.Tensor]]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--prompt-len", type=int, default=45)
    p.add_argument("--batch-invariant", action="store_true")
    p.add_argument("--cost", action="store_true", help="time the engine with the mode off and on instead")
    return p.parse_args(argv)


def cost(path: Path, dtype: str, rounds: int = 2) -> None:
    """Greedy decode of 16 requests x 64 tokens (prompts of 40) and one 512-token prefill, per mode.

    Both engines live in one process and run alternately, so load from other work hits both alike."""
    from plinth.engine import LLMEngine, SamplingParams

    engines = {
        mode: LLMEngine(
            EngineConfig(
                model=str(path),
                dtype=dtype,
                device="cpu",
                kv_cache_blocks=512,
                enable_lora=False,
                enable_prefix_caching=False,
                batch_invariant=mode,
            )
        )  # fmt: skip
        for mode in (False, True)
    }
    vocab = engines[False].model_config.vocab_size
    prompts = [prompt(40, seed, vocab) for seed in range(16)]
    decode = SamplingParams(max_tokens=64, temperature=0, ignore_eos=True)
    times: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    for _ in range(rounds):
        for mode, engine in engines.items():
            start = time.perf_counter()
            engine.generate(prompts, decode)
            middle = time.perf_counter()
            engine.generate([prompt(512, 99, vocab)], SamplingParams(max_tokens=1, temperature=0))
            times[mode].append((16 * 64 / (middle - start), time.perf_counter() - middle))
    print("| batch_invariant | decode tokens/s (16 x 64, best) | 512-token prefill s (best) |")
    print("|---|---|---|")
    for mode, runs in times.items():
        print(f"| {mode} | {max(r[0] for r in runs):.1f} | {min(r[1] for r in runs):.3f} |")
    off, on = times[False], times[True]
    print(f"decode throughput on/off: {max(r[0] for r in on) / max(r[0] for r in off):.2f}x; "
          f"prefill time on/off: {min(r[1] for r in on) / min(r[1] for r in off):.2f}x")  # fmt: skip


class Probe:
    """Runs spans on one runner and records the rows ``[lo, hi)`` of every op's output."""

    def __init__(self, runner: ModelRunner) -> None:
        self.runner, self.rows, self.trace = runner, (0, 0), []  # type: ignore[var-annotated]
        self.next_block, self.recording = 0, True
        for name, module in runner.model.named_modules():
            if name:
                module.register_forward_hook(self._hook(name))
        inner = model_module.paged_attention

        def attention(*args, **kwargs):  # type: ignore[no-untyped-def]
            out = inner(*args, **kwargs)
            self._record("paged_attention", out)
            return out

        model_module.paged_attention = attention

    def _hook(self, name: str):  # type: ignore[no-untyped-def]
        return lambda _module, _inputs, out: self._record(name, out)

    def _record(self, name: str, out: object) -> None:
        if self.recording and isinstance(out, torch.Tensor) and out.dim() >= 1 and out.shape[0] == self.total:
            self.trace.append((name, out[self.rows[0] : self.rows[1]].detach().clone()))

    def blocks(self, tokens: int) -> list[int]:
        """A fresh block table for ``tokens`` tokens (every case writes to its own cache blocks)."""
        n = -(-tokens // self.runner.block_size)
        self.next_block += n
        return list(range(self.next_block - n, self.next_block))

    @torch.inference_mode()
    def run(self, spans: list[tuple[list[int], SeqSpan]], target: int) -> tuple[Trace, torch.Tensor]:
        """Forward ``spans`` (token ids, span) as one step; trace the rows of span ``target``."""
        ids = [t for tokens, span in spans for t in tokens[span.start : span.start + span.num_new]]
        pos = [p for _, span in spans for p in range(span.start, span.start + span.num_new)]
        lo = sum(span.num_new for _, span in spans[:target])
        self.rows, self.trace, self.total = (lo, lo + spans[target][1].num_new), [], len(ids)
        runner = self.runner
        meta = AttentionMetadata.build([s for _, s in spans], runner.block_size, runner.device,
                                       runner.config.batch_invariant)  # fmt: skip
        hidden = self.runner.model(torch.tensor(ids), torch.tensor(pos), self.runner.kv_caches, meta)
        last, self.recording = self.rows[1] - 1, False
        logits = self.runner.model.compute_logits(hidden[last : last + 1]).float()
        self.recording = True
        return self.trace, logits


def first_difference(alone: Trace, other: Trace) -> str:
    for (name, a), (_, b) in zip(alone, other, strict=True):
        if not torch.equal(a, b):
            diff = (a.float() - b.float()).abs().max().item()
            return f"{name} (max |diff| {diff:.3g})"
    return "none"


def prompt(n: int, seed: int, vocab: int) -> list[int]:
    return torch.randint(3, vocab, (n,), generator=torch.Generator().manual_seed(seed)).tolist()


@contextmanager
def report(case: str) -> Iterator[list[str]]:
    out: list[str] = []
    yield out
    print(f"| {case} | {out[0]} | {out[1]} |")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    path = prepare_model(args.model, quick=True)
    if args.cost:
        cost(path, args.dtype)
        return 0
    config = EngineConfig(model=str(path), dtype=args.dtype, device="cpu", kv_cache_blocks=512,
                          enable_lora=False, batch_invariant=args.batch_invariant)  # fmt: skip
    runner = ModelRunner(ModelConfig.from_pretrained(path, args.model, None), config)
    probe, n, vocab = Probe(runner), args.prompt_len, runner.cfg.vocab_size
    target = prompt(n, 0, vocab)
    others = [prompt(7 + 13 * i, 10 + i, vocab) for i in range(6)]
    print(f"{args.model} ({runner.dtype}), batch_invariant={args.batch_invariant}, prompt {n} tokens")
    print("| case | first op that differs from the prompt alone | logits bitwise equal |\n|---|---|---|")

    def alone_prefill() -> tuple[Trace, torch.Tensor, list[int]]:
        table = probe.blocks(n + 1)
        trace, logits = probe.run([(target, SeqSpan(table, 0, n))], 0)
        return trace, logits, table

    base, base_logits, base_table = alone_prefill()
    for label, count in (("prefill beside 2 other prompts", 2), ("prefill beside 6 other prompts", 6)):
        spans = [(p, SeqSpan(probe.blocks(len(p)), 0, len(p))) for p in others[:count]]
        spans.insert(1, (target, SeqSpan(probe.blocks(n), 0, n)))
        with report(label) as out:
            trace, logits = probe.run(spans, 1)
            out += [first_difference(base, trace), str(torch.equal(logits, base_logits))]
    for split in (16, 32):  # a prefix-cache hit of whole blocks, or a prefill chunked by the budget
        table = probe.blocks(n)
        probe.run([(target, SeqSpan(table, 0, split))], 0)
        with report(f"prefill in two chunks ({split} + {n - split})") as out:
            trace, logits = probe.run([(target, SeqSpan(table, split, n - split))], 0)
            tail = [(name, rows[split:]) for name, rows in base]
            out += [first_difference(tail, trace), str(torch.equal(logits, base_logits))]

    token = int(base_logits.argmax())
    decode_ids = [*target, token]
    alone, alone_logits = probe.run([(decode_ids, SeqSpan(base_table, n, 1))], 0)
    for label, count in (("decode beside 3 other decodes", 3), ("decode beside 6 other decodes", 6)):
        spans = []
        for p in others[:count]:
            table = probe.blocks(len(p) + 1)
            probe.run([(p, SeqSpan(table, 0, len(p)))], 0)
            spans.append(([*p, 5], SeqSpan(table, len(p), 1)))
        spans.insert(1, (decode_ids, SeqSpan(base_table, n, 1)))
        with report(label) as out:
            trace, logits = probe.run(spans, 1)
            out += [first_difference(alone, trace), str(torch.equal(logits, alone_logits))]
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
