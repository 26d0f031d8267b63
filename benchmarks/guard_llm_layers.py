"""The prompt-attack head over the default *generation* model's hidden states instead of (or beside) MiniLM's.

The shipped head reads all-MiniLM-L6-v2, a sentence encoder trained for topic similarity. SmolLM2-135M-
Instruct, the model Plinth serves by default, was trained to follow instructions, so its middle layers may
keep what an injection is (an order, whom it addresses) better than a topic vector. This runs ``plinth guard
eval``'s protocol (leave-one-source-out, the shipped head and recipe,
:func:`~plinth.evals.guard.trainers.logistic`) over the masked mean of SmolLM2's hidden states after layer
L (of 30; each a unit vector), alone (``only8+16``) or beside the shipped features (``8+16``), then trains
one model on everything, calibrates it as ``plinth guard train`` does, and reports its false alarms on the
look-alike benign set::

    PYTHONPATH=$PWD .venv/bin/python benchmarks/guard_llm_layers.py only12 only8+16 16

The model is the packaged GGUF read by transformers (dequantized to float32, the first 16 decoder layers
only); texts are truncated to 256 tokens, as MiniLM truncates them. The means of layers 4, 8, 12 and 16 are
cached in ``~/.cache/plinth/guard-llm-layers.npz`` (float16, ~31 min to fill on 2 cores for ~26k pieces).
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from plinth.evals.guard import load_corpus
from plinth.evals.guard.fit import cache_for, cached_vectorizer
from plinth.evals.guard.trainers import logistic
from plinth.guard import ATTACK_FEATURES, EmbeddingCache, Vectorize

sys.path.insert(0, str(Path(__file__).resolve().parent))
from guard_layers import probe  # noqa: E402

LAYERS = (4, 8, 12, 16)  # decoder layers cached (hidden_states[0] is the embeddings)
CACHE = Path.home() / ".cache" / "plinth" / "guard-llm-layers.npz"
MODEL = "smollm2-135m-instruct"
MODEL_ID = f"{MODEL}#layers4,8,12,16"  # the cache's key prefix
MAX_TOKENS = 256
BATCH_TOKENS = 4096  # padded tokens per forward pass (texts batched longest first)


@functools.cache
def load(model_name: str = MODEL) -> tuple[Any, Any]:
    """The tokenizer and the first ``max(LAYERS)`` decoder layers of ``model_name`` (loaded once, and
    only when a text is not in the cache)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from plinth.llm.catalog import resolve

    gguf = Path(resolve(model_name, Path(".bench"))[0])
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model.model.layers = model.model.layers[: max(LAYERS)]  # the layers above are never read
    return tokenizer, model.eval()


def layer_means(model_name: str = MODEL) -> Vectorize:
    """Per text, the masked mean of the hidden states after each of :data:`LAYERS`, float16, side by side."""

    def embed(texts: list[str]) -> np.ndarray:
        import torch

        tokenizer, model = load(model_name)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        ids = tokenizer(list(texts), truncation=True, max_length=MAX_TOKENS)["input_ids"]
        out = np.empty((len(texts), len(LAYERS) * model.config.hidden_size), dtype=np.float16)
        order = sorted(range(len(texts)), key=lambda i: -len(ids[i]))
        at = 0
        with torch.inference_mode():
            while at < len(order):
                picked = order[at : at + max(1, BATCH_TOKENS // max(1, len(ids[order[at]])))]
                at += len(picked)
                width = max(1, len(ids[picked[0]]))
                batch = torch.full((len(picked), width), pad)
                mask = torch.zeros((len(picked), width), dtype=torch.long)
                for row, i in enumerate(picked):
                    batch[row, : len(ids[i])], mask[row, : len(ids[i])] = torch.tensor(ids[i]), 1
                states = model.model(
                    input_ids=batch, attention_mask=mask, output_hidden_states=True
                ).hidden_states
                weights = mask.unsqueeze(-1).float()
                means = [(states[layer] * weights).sum(1) / weights.sum(1).clamp(min=1) for layer in LAYERS]
                out[picked] = torch.cat(means, dim=1).numpy().astype(np.float16)
        return out

    return embed


class LlmLayers:
    """``[shipped features?, unit mean of each chosen SmolLM2 layer]``: ``only8+16`` is layers 8 and 16
    alone, ``8+16`` the same beside the shipped MiniLM features."""

    def __init__(self, spec: str, cache: Path | None = CACHE, shipped: Vectorize | None = None) -> None:
        self.alone = spec.startswith("only")
        layers = [int(layer) for layer in spec.removeprefix("only").split("+")]
        unknown = set(layers) - set(LAYERS)
        if unknown:
            raise ValueError(f"layers must be among {LAYERS}; got {sorted(unknown)}")
        self.columns = [LAYERS.index(layer) for layer in layers]
        computed = layer_means()
        self.means = EmbeddingCache(cache, computed, model_id=MODEL_ID) if cache else computed
        self.shipped = shipped

    def __call__(self, texts: list[str]) -> np.ndarray:
        stacked = np.asarray(self.means(texts), dtype=np.float32)
        width = stacked.shape[1] // len(LAYERS)
        blocks = [stacked[:, width * c : width * (c + 1)] for c in self.columns]
        blocks = [b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12) for b in blocks]
        if not self.alone:
            shipped = self.shipped or cached_vectorizer(cache_for(ATTACK_FEATURES), ATTACK_FEATURES)
            blocks.insert(0, shipped(texts))
        return np.hstack(blocks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("specs", nargs="*", default=["only12", "only8+16", "16"],
                        help="only8+16: SmolLM2 alone; 8+16: beside the shipped features")  # fmt: skip
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    args = parser.parse_args()
    rows = load_corpus(args.data)
    for spec in args.specs:
        start = time.perf_counter()
        print(f"== SmolLM2 layer(s) {spec}")
        probe(logistic(LlmLayers(spec)), rows, args.data)
        print(f"({time.perf_counter() - start:.0f} s)\n")


if __name__ == "__main__":
    main()
