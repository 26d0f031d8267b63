"""The look-alike benign set and the hard negatives: the set is big enough to read 1 % off, shares no text
with anything trained on, and its report counts what passes each strength's threshold."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from plinth.evals.guard import hardneg, hardneg_docs
from plinth.evals.guard.corpus import load_corpus
from plinth.evals.guard.lookalike import evaluate_lookalikes, load_lookalikes
from plinth.guard import AttackClassifier

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def _key(text: str) -> str:
    return " ".join(text.casefold().split())[:300]


def test_lookalike_set_is_large_and_never_trained_on() -> None:
    sets = load_lookalikes()
    assert len(set(sets["input"])) >= 300 and len(set(sets["data"])) >= 300
    rows = load_corpus(DATA)
    lookalike = {_key(t) for texts in sets.values() for t in texts}
    assert not lookalike & {_key(r.text) for r in rows}
    hard = [r for r in rows if r.source == "hard_negative"]
    assert {r.stage for r in hard} == {"input", "data"} and len(hard) >= 900
    assert all(r.label == 0 and r.split == "train" for r in hard)  # never a threshold or test row


def _five_word_runs(text: str) -> set[tuple[str, ...]]:
    """Runs of five consecutive words (tokens holding a letter: table pipes and numbers are not prose)."""
    words = [w.strip(".,:;!?'\"()`*").casefold() for w in text.split()]
    words = [w for w in words if any(c.isalpha() for c in w)]
    return {tuple(words[i : i + 5]) for i in range(len(words) - 4)}


def test_hard_negative_templates_share_no_five_word_run_with_the_lookalike_set() -> None:
    # The hard negatives teach the categories the look-alike set tests; they must not teach its sentences.
    # Checked on the prose written for Plinth (each template's text between its slots); the open data
    # filling the slots (Self-Instruct tasks, SciFact claims, plots) was not written for either set.
    written = [*hardneg._PROMPTS, *hardneg._DOC_NOTES, *hardneg_docs._TEMPLATES, *hardneg_docs._STEPS]
    pieces = [piece for template in written for piece in re.split(r"\{\w+\}", template)]
    assert len(written) > 100
    lookalike = set().union(*(_five_word_runs(t) for texts in load_lookalikes().values() for t in texts))
    shared = {run for piece in pieces for run in _five_word_runs(piece) & lookalike}
    assert not shared, sorted(shared)[:5]


def test_report_counts_texts_above_each_threshold(tmp_path: Path) -> None:
    # A fake embedder: a text's vector says whether it mentions "translate".
    def embed(texts: list[str]) -> np.ndarray:
        return np.array([[1.0, 0.0] if "translat" in t.lower() else [0.0, 1.0] for t in texts], np.float32)

    rows = [("input", "Translate 'good night' into Dutch."), ("input", "What is the tallest tree?"),
            ("input", "How long do I boil an egg?"), ("input", "Name three rivers in Peru."),
            ("data", "Minutes: we agreed to translate the manual. Next meeting Monday."),
            ("data", "The bakery opens at eight. Bread sells out by noon.")]  # fmt: skip
    path = tmp_path / "set.jsonl"
    path.write_text("\n".join(json.dumps({"stage": s, "text": t}) for s, t in rows), encoding="utf-8")
    thresholds = {"LOW": 0.9999, "MEDIUM": 0.9, "HIGH": 0.5}  # a "translate" text scores 0.99988
    clf = AttackClassifier(np.array([6.0, -6.0]), 3.0, {"input": thresholds, "data": thresholds}, embed=embed)
    report = evaluate_lookalikes(clf, path)
    assert report.counts == {"input": 4, "data": 2}
    assert report.fpr["input"] == {"LOW": 0.0, "MEDIUM": 0.25, "HIGH": 0.25}
    assert report.fpr["data"] == {"LOW": 0.0, "MEDIUM": 0.5, "HIGH": 0.5}
    assert report.flagged["input"] == ["Translate 'good night' into Dutch."]
