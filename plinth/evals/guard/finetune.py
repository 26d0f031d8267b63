"""Fine-tuning the prompt-attack encoder on a 2-core CPU: train only the top layers, over cached states.

The lower layers of :class:`~plinth.guard.encoder.AttackEncoder` are frozen, so their output for a (stage,
piece) pair never changes: :class:`StateCache` computes it once (fp16 in memory, saved to disk) and every
training epoch, every fold of the leave-one-source-out evaluation and every threshold calibration reuses
it. Training runs the upper layers and head only, in batches of similar length, with fixed seeds, a fixed
thread count and deterministic algorithms, so the same rows give the same bytes::

    cache = StateCache(encoder, DEFAULT_STATES)
    model = finetune(rows, cache)                   # a TunedClassifier reading through the cache
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from plinth.evals.guard.texts import LabelledText
from plinth.guard import AttackEncoder, TunedClassifier, pad_states, tuned_windows

__all__ = ["DEFAULT_STATES", "Recipe", "StateCache", "finetune", "training_examples"]

DEFAULT_STATES = Path.home() / ".cache" / "plinth" / "guard-states.safetensors"
TRAIN_WINDOWS = 3  # per text: the first ~200 words of a long jailbreak carry its intent
SAVE_EVERY, SAVE_AT_LEAST = 1000, 100  # pieces computed between saves of the state cache; fewer: no save
THREADS = 2  # fixed: a float sum split over other thread counts rounds differently


@dataclass(frozen=True, slots=True)
class Recipe:
    """How a model is trained; fixed in advance, never tuned on a held-out source."""

    epochs: int = 1
    batch: int = 16
    lr: float = 1e-4  # upper layers
    head_lr: float = 2e-3
    max_examples: int = 3000  # when there are more: those first by hash, so folds share their windows
    lora_rank: int = 0  # 0: train the upper layers fully; r > 0: LoRA of rank r on them (merged after)
    seed: int = 0


class StateCache:
    """The frozen lower part's output per (stage, piece), fp16, keyed by sha256; a ``LowerStates``."""

    def __init__(self, encoder: AttackEncoder, path: Path | None = None) -> None:
        self.encoder, self.path = encoder, path
        self.states: dict[str, torch.Tensor] = {}
        if path is not None and path.is_file():
            self.states = load_file(str(path))

    def __call__(self, pieces: Sequence[str], stage: str) -> list[torch.Tensor]:
        keys = [_key(stage, piece) for piece in pieces]
        missing = sorted({k: p for k, p in zip(keys, pieces, strict=True) if k not in self.states}.items())
        for at in range(0, len(missing), SAVE_EVERY):  # saved as it goes: an interrupted run keeps its work
            chunk = missing[at : at + SAVE_EVERY]
            live = TunedClassifier(self.encoder).live_lower([p for _, p in chunk], stage)
            self.states.update(
                (k, s.to(torch.float16).clone()) for (k, _), s in zip(chunk, live, strict=True)
            )
            if len(chunk) >= SAVE_AT_LEAST:
                self.save()
        return [self.states[k] for k in keys]

    def save(self) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            save_file(self.states, str(tmp))
            tmp.replace(self.path)


def training_examples(rows: Sequence[LabelledText]) -> list[tuple[str, str, int, float]]:
    """(stage, piece, label, weight) per training window. Weights give each (label, source, stage) group
    the same total, so 600 jailbreak_llms prompts cannot drown 140 pallms ones. A planted attack trains
    only on the windows holding its instruction: the rest of it is benign prose."""
    groups = Counter((r.label, r.source, r.stage) for r in rows)
    per_class = Counter(label for label, _, _ in groups)
    out: list[tuple[str, str, int, float]] = []
    for row in rows:
        parts = tuned_windows(row.text, limit=TRAIN_WINDOWS)
        if row.payload is not None:
            mark = " ".join(row.payload.split()[:8])
            parts = [p for p in parts if mark in p] or parts
        share = 1.0 / (per_class[row.label] * groups[(row.label, row.source, row.stage)] * len(parts))
        out += [(row.stage, part, row.label, share) for part in parts]
    return out


def finetune(
    rows: Sequence[LabelledText], cache: StateCache, recipe: Recipe = Recipe(), log: bool = False
) -> TunedClassifier:
    """A fresh encoder's upper layers and head trained on ``rows``; reads lower states from ``cache``."""
    torch.manual_seed(recipe.seed)
    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(True)
    examples = training_examples(rows)
    rng = random.Random(recipe.seed)
    examples = sorted(examples, key=lambda e: _key(e[0], e[1]))[: recipe.max_examples]
    total = sum(w for *_, w in examples)
    states = {stage: cache([e[1] for e in examples if e[0] == stage], stage) for stage in ("input", "data")}
    seq = iter(states["input"]), iter(states["data"])
    items = [(next(seq[e[0] == "data"]), e[2], e[3] * len(examples) / total) for e in examples]
    encoder = AttackEncoder.from_base(cache.encoder.source, len(cache.encoder.upper_layers))
    trainable = _prepare(encoder, recipe)
    optimiser = torch.optim.AdamW(
        [{"params": trainable, "lr": recipe.lr}, {"params": encoder.head.parameters(), "lr": recipe.head_lr}],
        weight_decay=0.01,
    )
    batches = _batches(items, recipe, rng)
    steps = len(batches) * recipe.epochs
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: _warmup_decay(step, steps))
    encoder.train()
    for step in range(steps):
        if step and step % len(batches) == 0:
            batches = _batches(items, recipe, rng)
        chunk = batches[step % len(batches)]
        padded, mask = pad_states([items[i][0] for i in chunk])
        labels = torch.tensor([float(items[i][1]) for i in chunk])
        weights = torch.tensor([items[i][2] for i in chunk])
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            encoder.upper(padded, mask), labels, weight=weights
        )
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_([*trainable, *encoder.head.parameters()], 1.0)
        optimiser.step()
        schedule.step()
        if log and step % 50 == 0:
            print(f"  step {step}/{steps} loss {loss.item():.4f}", flush=True)
    return TunedClassifier(_finish(encoder, recipe), lower=cache)


def _prepare(encoder: AttackEncoder, recipe: Recipe) -> list[torch.nn.Parameter]:
    """The parameters to train: the upper layers, or LoRA adapters injected into their linear maps."""
    if not recipe.lora_rank:
        return [p for layer in encoder.upper_layers for p in layer.parameters()]
    from peft import LoraConfig, inject_adapter_in_model

    for layer in encoder.upper_layers:
        for parameter in layer.parameters():
            parameter.requires_grad = False
    config = LoraConfig(
        r=recipe.lora_rank,
        lora_alpha=2 * recipe.lora_rank,
        target_modules=["query", "key", "value", "dense"],
        layers_to_transform=list(range(encoder.split, len(encoder.base.encoder.layer))),
        layers_pattern="layer",
    )
    inject_adapter_in_model(config, encoder.base)
    return [p for n, p in encoder.base.named_parameters() if "lora_" in n]


def _finish(encoder: AttackEncoder, recipe: Recipe) -> AttackEncoder:
    """Back to plain layers (LoRA merged into the weights), so every recipe ships the same tensors."""
    encoder.eval()
    if recipe.lora_rank:
        from peft.tuners.lora import LoraLayer

        for name, module in list(encoder.base.named_modules()):
            if isinstance(module, LoraLayer):
                module.merge()
                parent, _, child = name.rpartition(".")
                setattr(encoder.base.get_submodule(parent), child, module.get_base_layer())
    return encoder


def _batches(
    items: list[tuple[torch.Tensor, int, float]], recipe: Recipe, rng: random.Random
) -> list[list[int]]:
    """Batches of similar length (little padding), in a seeded random order."""
    order = sorted(range(len(items)), key=lambda i: (items[i][0].shape[0], rng.random()))
    batches = [order[at : at + recipe.batch] for at in range(0, len(order), recipe.batch)]
    rng.shuffle(batches)
    return batches


def _warmup_decay(step: int, steps: int) -> float:
    warm = max(1, steps // 10)
    return (step + 1) / warm if step < warm else max(0.0, (steps - step) / max(1, steps - warm))


def _key(stage: str, piece: str) -> str:
    return hashlib.sha256(f"{stage}\n{piece}".encode()).hexdigest()
