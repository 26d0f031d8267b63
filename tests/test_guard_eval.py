"""Leave-one-source-out evaluation: the held-out source never reaches training, and the reported
threshold keeps false positives on held-out benign text at or under 1 %."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from plinth.guard.corpus import ATTACK_SOURCES, LabelledText, load_corpus, plant
from plinth.guard.evaluate import evaluate, fold
from plinth.guard.train import threshold_at_fpr

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _corpus() -> list[LabelledText]:
    assert DATA.is_dir(), f"shared data missing at {DATA}"
    return load_corpus(DATA)


def _subset(rows: list[LabelledText]) -> list[LabelledText]:
    """A small, short-text slice of every source so the test embeds a few hundred windows."""
    picked: list[LabelledText] = []
    counts: dict[tuple[str, int, str, str | None], int] = {}
    for row in rows:
        key = (row.source, row.label, row.stage, row.split)
        limit = 20 if row.label else 40
        if len(row.text.split()) <= 120 and counts.get(key, 0) < limit:
            counts[key] = counts.get(key, 0) + 1
            picked.append(row)
    return picked


def test_corpus_has_every_source_and_no_duplicates() -> None:
    rows = _corpus()
    assert {r.source for r in rows if r.label == 1} == set(ATTACK_SOURCES)
    keys = [" ".join(r.text.casefold().split())[:300] for r in rows]
    assert len(keys) == len(set(keys))
    assert all(r.split in ("train", "test") for r in rows if r.label == 0)
    assert load_corpus(DATA) == rows  # deterministic


def test_folds_never_train_on_the_held_out_source_or_the_benign_test_split() -> None:
    rows = _corpus()
    for source in ATTACK_SOURCES:
        split = fold(rows, source)
        assert split.attacks and all(r.source == source and r.label == 1 for r in split.attacks)
        assert not [r for r in split.train if r.source == source]
        assert not [r for r in split.train if r.label == 0 and r.split != "train"]
        trained = {r.text for r in split.train}
        assert not trained & {r.text for r in split.attacks + split.benign}


def test_threshold_at_fpr_flags_at_most_the_allowed_share() -> None:
    scores = np.random.default_rng(0).random(1000)
    for fpr in (0.003, 0.01, 0.03):
        assert (scores > threshold_at_fpr(scores, fpr)).mean() <= fpr
        assert (scores > threshold_at_fpr(scores, fpr)).mean() >= fpr - 0.002  # and not needlessly strict


def test_planting_puts_the_instruction_where_asked() -> None:
    context = "First sentence here. Second sentence here. Third one."
    assert plant("DO X", context, "start").startswith("DO X")
    assert plant("DO X", context, "end").endswith("DO X")
    middle = plant("DO X", context, "middle")
    assert "DO X" in middle and not middle.startswith("DO X") and not middle.endswith("DO X")


def test_leave_one_source_out_on_a_subset(tmp_path: Path) -> None:
    rows = _subset(_corpus())
    report = evaluate(DATA, rows=rows, sources=("pallms", "deepset"), cache=tmp_path / "emb.npz")
    assert {(r.source, r.stage) for r in report.results} == {
        ("pallms", "input"),
        ("pallms", "data"),
        ("deepset", "input"),
        ("deepset", "data"),
    }
    for result in report.results:
        assert result.fpr <= 0.01
        assert 0.0 <= result.tpr <= 1.0 and 0.5 < result.layered_auc <= 1.0
    assert "average" in report.format()
