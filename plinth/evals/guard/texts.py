"""A labelled text of the prompt-attack corpus, and the movie catalogue both the corpus and the hard
negatives draw on (its own module so that :mod:`~plinth.evals.guard.hardneg` needs nothing of
:mod:`~plinth.evals.guard.corpus`, which includes its rows)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["LabelledText", "Stage", "movies_with_plots"]

Stage = Literal["input", "data"]


@dataclass(frozen=True, slots=True)
class LabelledText:
    text: str
    label: int  # 1 = attack
    source: str  # the dataset it came from; leave-one-source-out holds out every row of a source
    stage: Stage = "input"  # input: a user prompt; data: a document the model reads
    split: str | None = None  # benign rows: "train" or "test" (fixed by text hash); attacks: None
    payload: str | None = None  # planted rows: the instruction that was planted in the document


def movies_with_plots(data: Path) -> list[dict[str, str]]:
    return [
        movie
        for path in sorted((data / "movies/wikipedia").glob("movies-*.json"))
        for movie in json.loads(path.read_text(encoding="utf-8"))
        if len(movie.get("extract") or "") > 200
    ]
