"""benchmarks/guard_long_documents.py: documents of six plots from each decade's list, and the share of
them a head's data-stage thresholds flag."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from benchmark_scripts import load

from plinth.guard import DEFAULT_MODEL_PATH, AttackClassifier

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def test_documents_join_six_long_plots_from_each_decade() -> None:
    bench = load("guard_long_documents")
    docs = bench.documents(DATA, 2)
    assert len(docs) == 2 * len(bench.DECADES)
    assert all(len(doc.split()) > 300 for doc in docs)
    assert len(set(docs)) == len(docs)


def test_shares_follow_the_thresholds_and_main_prints_one_row_a_head(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bench = load("guard_long_documents")
    docs = bench.documents(DATA, 1)
    head = AttackClassifier.load(DEFAULT_MODEL_PATH)
    head.thresholds["data"] = {"LOW": 1.1, "MEDIUM": 1.1, "HIGH": -1.0}  # nothing passes 1.1; all pass -1
    shares, median = bench.flagged(head, docs)
    assert shares == {"LOW": 0.0, "MEDIUM": 0.0, "HIGH": 1.0} and 0.0 <= median <= 1.0

    argv = ["guard_long_documents.py", str(DEFAULT_MODEL_PATH), "--data", str(DATA), "--per-decade", "1"]
    monkeypatch.setattr(sys, "argv", argv)
    bench.main()
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("3 documents of 6 plots") and len(out) == 3
    assert out[2].split()[0].endswith("prompt_attack.npz") and len(out[2].split()) == 5
