"""Retrieval metrics against ir-measures (trec_eval), the BEIR loader, and a small SciFact end-to-end."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path

import ir_measures
import pytest
from ir_measures import AP, RR, P, R, nDCG

from plinth.evals.datasets import load_beir
from plinth.evals.retrieval import evaluate, rank_by_score, run_retrieval_eval

SCIFACT = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "beir" / "scifact"

# Graded (q1, q4) and binary (q2, q3, q5) judgements; q3 is never retrieved; q5's relevant doc is
# ranked below every cutoff; q6 is retrieved but unjudged (ignored); q1 and q4 have tied scores (where
# the tie order changes nDCG and AP but not RR, see the random test).
QRELS = {
    "q1": {"a": 2, "b": 1, "c": 0, "d": 1, "e": 2},
    "q2": {"x": 1},
    "q3": {"y": 1, "z": 1},
    "q4": {"m": 3, "n": 1, "o": 2, "p": 0},
    "q5": {"late": 1},
}
SCORES = {
    "q1": {"c": 9.0, "a": 8.0, "b": 8.0, "f": 7.0, "e": 5.0, "g": 4.0, "h": 3.0},
    "q2": {"w": 3.0, "x": 2.0, "v": 1.0},
    "q4": {"n": 1.0, "o": 1.0, "m": 1.0, "q": 0.5, "p": 0.2},
    "q5": {f"d{i:03d}": 200.0 - i for i in range(150)} | {"late": 10.0},
    "q6": {"a": 1.0},
}
REFERENCE = {nDCG @ 10: "nDCG@10", R @ 10: "Recall@10", P @ 5: "P@5", AP @ 100: "MAP@100", RR @ 10: "MRR@10"}


def _ours(qrels: dict, scores: dict) -> dict[str, float]:
    run = {qid: rank_by_score(docs) for qid, docs in scores.items()}
    return evaluate(run, qrels, ks=(5, 10, 100))


def _reference(qrels: dict, scores: dict) -> dict[str, float]:
    return {REFERENCE[m]: v for m, v in ir_measures.calc_aggregate(list(REFERENCE), qrels, scores).items()}


def test_metrics_match_ir_measures() -> None:
    ours, reference = _ours(QRELS, SCORES), _reference(QRELS, SCORES)
    for name, value in reference.items():
        assert ours[name] == pytest.approx(value, abs=1e-9), name


def test_metrics_match_ir_measures_on_random_runs() -> None:
    rng = random.Random(7)
    docs = [f"d{i}" for i in range(40)]
    qrels = {
        f"q{q}": {d: rng.choice([0, 1, 1, 2, 3]) for d in rng.sample(docs, rng.randint(1, 12))}
        for q in range(30)
    }
    # Distinct scores: ir-measures computes RR@k with its msmarco provider, which breaks ties by ascending
    # doc id, while pytrec_eval (nDCG, AP, P, R) breaks them by descending doc id as trec_eval does.
    scores = {f"q{q}": {d: rng.random() for d in rng.sample(docs, rng.randint(0, 30))} for q in range(25)}
    ours, reference = _ours(qrels, scores), _reference(qrels, scores)
    for name, value in reference.items():
        assert ours[name] == pytest.approx(value, abs=1e-9), name


def test_hand_computed_values() -> None:
    run = {"q": ["b", "a", "c"]}
    qrels = {"q": {"a": 1, "c": 1, "z": 1}}
    scores = evaluate(run, qrels, ks=(1, 3))
    assert scores["P@1"] == 0 and scores["P@3"] == pytest.approx(2 / 3)
    assert scores["Recall@3"] == pytest.approx(2 / 3)
    assert scores["MRR@3"] == pytest.approx(1 / 2) and scores["MRR@1"] == 0
    assert scores["MAP@3"] == pytest.approx((1 / 2 + 2 / 3) / 3)


def test_ties_break_by_descending_doc_id_like_trec_eval() -> None:
    assert rank_by_score({"a": 1.0, "c": 1.0, "b": 2.0}) == ["b", "c", "a"]


def _write_beir(root: Path) -> None:
    (root / "qrels").mkdir(parents=True)
    corpus = [
        {"_id": "d1", "title": "Cats", "text": "Cats purr."},
        {"_id": "d2", "title": "", "text": "Dogs bark."},
    ]
    queries = [{"_id": "1", "text": "do cats purr"}, {"_id": "2", "text": "unjudged train claim"}]
    (root / "corpus.jsonl").write_text("".join(json.dumps(row) + "\n" for row in corpus))
    (root / "queries.jsonl").write_text("".join(json.dumps(row) + "\n" for row in queries))
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n1\td1\t1\n1\td2\t0\n")


def test_load_beir_keeps_only_judged_queries(tmp_path: Path) -> None:
    _write_beir(tmp_path)
    data = load_beir(tmp_path)
    assert data.corpus == {"d1": ("Cats", "Cats purr."), "d2": ("", "Dogs bark.")}
    assert data.queries == {"1": "do cats purr"}
    assert data.qrels == {"1": {"d1": 1, "d2": 0}}
    assert data.document_text("d1") == "Cats Cats purr." and data.document_text("d2") == "Dogs bark."


@pytest.mark.slow
def test_scifact_sample_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """~200 SciFact documents through the real embedder and a LanceStore: sane scores for every type."""
    assert (SCIFACT / "corpus.jsonl").is_file(), "SciFact is expected under ../shared/data"
    rows = run_retrieval_eval(SCIFACT, store_dir=tmp_path / "kb", k=10, max_docs=200)
    assert [row.search_type for row in rows] == ["LEXICAL", "SEMANTIC", "HYBRID"]
    for row in rows:  # 100 queries, every relevant document among 200: retrieval is easy
        assert 0.5 < row.scores["nDCG@10"] <= 1 and row.scores["Recall@10"] > 0.6, row
    assert "| HYBRID |" in capsys.readouterr().out


@pytest.mark.slow
def test_retrieval_benchmark_on_a_subset(tmp_path: Path) -> None:
    """``benchmarks/retrieval.py`` end to end on 300 movies (latency only: random document vectors)."""
    data, out = SCIFACT.parents[1], tmp_path / "bench.json"
    assert (data / "movies" / "wikipedia").is_dir(), "the movie catalog is expected under ../shared/data"
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "retrieval.py"
    cmd = [sys.executable, str(script), "--data", str(data), "--limit", "300", "--queries", "10",
           "--embed-sample", "16", "--random-vectors", "--threads", "1", "--json", str(out)]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert re.search(
        r"^hybrid p50: [\d.]+ ms search, [\d.]+ ms measured through retrieve\(\) with the query embedding "
        r"\(goal < 20 ms\)",
        run.stdout,
        re.M,
    )
    report = json.loads(out.read_text())
    assert report["ingestion"]["documents"] == 300
    assert set(report["queries"]) == {"embed", "plinth HYBRID-retrieve"} | {
        f"{s} {t}" for s in ("plinth", "baseline") for t in ("LEXICAL", "SEMANTIC", "HYBRID")
    }
