"""Logits error of weight-only quantization (``--quantization int8|int4``) against the unquantized model.

The model (default: the packaged SmolLM2-135M-Instruct GGUF, dequantized at load) reads a few real
English passages teacher-forced, once per configuration; every position's next-token logits are compared
with the reference configuration's (bf16, unquantized):

- max |Δlogit| over all positions and the vocabulary,
- mean KL(reference ‖ quantized) of the next-token distributions,
- top-1 agreement: the share of positions whose argmax token is the same.

The float32 row shows how far bf16 itself is from full precision, for scale.

    .venv/bin/python benchmarks/quantization.py
    .venv/bin/python benchmarks/quantization.py --model path/to/checkpoint --json q.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from plinth.engine import EngineConfig, LLMEngine
from plinth.engine.attention import AttentionMetadata, SeqSpan

PASSAGES = [
    "The history of the printing press begins in the fifteenth century, when Johannes Gutenberg combined "
    "movable metal type, oil-based inks and a screw press adapted from wine making. Books became cheaper, "
    "literacy spread across Europe, and scholars could share identical copies of their work.",
    "To make a simple tomato sauce, warm olive oil in a wide pan, add sliced garlic and cook it until it "
    "smells sweet. Pour in crushed tomatoes, season with salt, and let the sauce simmer for twenty minutes "
    "before stirring in torn basil leaves.",
    "def fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n\n"
    "print([fibonacci(i) for i in range(10)])",
    "User: What is the capital of Australia?\nAssistant: The capital of Australia is Canberra, not Sydney. "
    "It was chosen as a compromise between Sydney and Melbourne and became the seat of government in 1927.",
]
CONFIGS = {"bf16": ("bfloat16", None), "float32": ("float32", None),
           "int8": ("bfloat16", "int8"), "int4": ("bfloat16", "int4")}  # fmt: skip


def all_logits(engine: LLMEngine, ids: list[int]) -> torch.Tensor:
    """Float32 logits at every position of ``ids`` (one prefill, written to cache blocks 0..n)."""
    runner = engine.runner
    blocks = list(range(-(-len(ids) // runner.block_size)))
    meta = AttentionMetadata.build([SeqSpan(blocks, 0, len(ids))], runner.block_size, runner.device)
    with torch.inference_mode():
        hidden = runner.model(torch.tensor(ids), torch.arange(len(ids)), runner.kv_caches, meta)
        return runner.model.compute_logits(hidden).float()


def compare(reference: torch.Tensor, other: torch.Tensor) -> dict[str, float]:
    ref_logp, logp = reference.log_softmax(-1), other.log_softmax(-1)
    kl = (ref_logp.exp() * (ref_logp - logp)).sum(-1)
    return {
        "max_abs_logit_error": float((reference - other).abs().max()),
        "mean_kl": float(kl.mean()),
        "top1_agreement": float((reference.argmax(-1) == other.argmax(-1)).float().mean()),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m-instruct", help="packaged name, checkpoint dir or .gguf")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)
    from plinth.llm.catalog import resolve
    from plinth.llm.tokenizer import load_tokenizer

    model = resolve(args.model, Path(".bench"))[0]
    tokenizer = load_tokenizer(Path(model))
    prompts = [tokenizer.encode(text) for text in PASSAGES]
    logits: dict[str, torch.Tensor] = {}
    for name, (dtype, quantization) in CONFIGS.items():
        config = EngineConfig(model=model, dtype=dtype, device="cpu", quantization=quantization,
                              max_model_len=512, max_num_seqs=1)  # fmt: skip
        engine = LLMEngine(config)
        logits[name] = torch.cat([all_logits(engine, ids) for ids in prompts])
        del engine
    positions = logits["bf16"].shape[0]
    print(f"## Logits error against bf16 (unquantized) — {Path(model).name}, {positions} positions\n")
    print("| weights | max abs Δlogit | mean KL | top-1 agreement |\n|---|---:|---:|---:|")
    results = {}
    for name in ("float32", "int8", "int4"):
        results[name] = compare(logits["bf16"], logits[name])
        r = results[name]
        print(f"| {name} | {r['max_abs_logit_error']:.3f} | {r['mean_kl']:.4f} | {r['top1_agreement']:.1%} |")
    if args.json:
        args.json.write_text(
            json.dumps({"model": model, "positions": positions, "vs_bf16": results}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
