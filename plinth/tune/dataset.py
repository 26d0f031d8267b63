"""Encoded examples as training and validation sets, and the collator that pads them into batches.

Contract: :func:`encode_all` encodes every example or raises :class:`~plinth.tune.data.TrainingFileError`
naming each line the template cannot mask faithfully or that ``max_length`` cuts before any trained
token. :func:`split_validation` holds out a seeded fraction when no validation file is given (never
for fewer than :data:`MIN_EXAMPLES_TO_SPLIT` examples). :class:`PadCollator` right-pads a batch; padding
is masked out of attention and loss.

Example::

    >>> train, val = split_validation(encoded, fraction=0.1, seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from plinth.tune.data import Example, LineProblem, TrainingFileError
from plinth.tune.encoding import IGNORE_INDEX, EncodedExample, TemplateError, encode_example

__all__ = ["MIN_EXAMPLES_TO_SPLIT", "PadCollator", "encode_all", "split_validation"]

MIN_EXAMPLES_TO_SPLIT = 10


def encode_all(
    tokenizer: Any, examples: Sequence[Example], max_length: int, path: Path
) -> list[EncodedExample]:
    """Every example of the file at ``path`` encoded; all problems raised together."""
    encoded, problems = [], []
    for example in examples:
        try:
            item = encode_example(tokenizer, example, max_length)
        except TemplateError as exc:
            problems.append(LineProblem(example.line, str(exc)))
            continue
        if item.num_trained == 0:
            problems.append(
                LineProblem(
                    example.line, f"max_length={max_length} tokens cuts it before any assistant token"
                )
            )
        encoded.append(item)
    if problems:
        raise TrainingFileError(path, problems)
    return encoded


def split_validation(
    encoded: list[EncodedExample], fraction: float, seed: int
) -> tuple[list[EncodedExample], list[EncodedExample]]:
    """``(train, validation)``: a ``fraction`` of the examples, chosen by ``seed``, held out."""
    count = round(len(encoded) * fraction) if len(encoded) >= MIN_EXAMPLES_TO_SPLIT else 0
    if count == 0:
        return encoded, []
    held = set(random.Random(seed).sample(range(len(encoded)), count))
    return (
        [e for i, e in enumerate(encoded) if i not in held],
        [e for i, e in enumerate(encoded) if i in held],
    )


class PadCollator:
    """``input_ids``, ``attention_mask`` and ``labels`` tensors for a list of encoded examples."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, batch: list[EncodedExample]) -> dict[str, torch.Tensor]:
        width = max(len(e.input_ids) for e in batch)
        ids, mask, labels = [], [], []
        for example in batch:
            padding = width - len(example.input_ids)
            ids.append(example.input_ids + [self.pad_token_id] * padding)
            mask.append([1] * len(example.input_ids) + [0] * padding)
            labels.append(example.labels + [IGNORE_INDEX] * padding)
        return {
            "input_ids": torch.tensor(ids),
            "attention_mask": torch.tensor(mask),
            "labels": torch.tensor(labels),
        }
