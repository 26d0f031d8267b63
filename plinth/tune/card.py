"""``training.json``: the data card written beside a trained adapter, saying how it was made.

Contract: :class:`TrainingCard` records the base model, hyperparameters (seed included), the data
(file name and SHA-256, example and token counts), time, tokens/s and the final losses;
:meth:`TrainingCard.write` saves it as ``<adapter>/training.json`` and :func:`read_card` reads it back.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["CARD_FILE", "TrainingCard", "file_sha256", "read_card"]

CARD_FILE = "training.json"


@dataclass(slots=True)
class TrainingCard:
    base_model: str
    base_checkpoint: str
    hyperparameters: dict[str, Any]
    training_file: dict[str, str]  # {"name", "sha256"}
    validation_file: dict[str, str] | None
    train_examples: int
    validation_examples: int
    train_tokens: int  # tokens in the training set (one epoch)
    trained_tokens: int  # tokens that carried loss, times epochs (what OpenAI bills as trained_tokens)
    steps: int
    time_s: float  # the whole run: training, evaluation, checkpoints
    tokens_per_second: float  # input tokens per second of training steps
    final_train_loss: float | None
    final_val_loss: float | None
    val_losses: list[float]
    created_at: str

    def write(self, folder: Path) -> Path:
        path = Path(folder) / CARD_FILE
        path.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        return path


def read_card(folder: Path) -> TrainingCard:
    return TrainingCard(**json.loads((Path(folder) / CARD_FILE).read_text(encoding="utf-8")))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
