"""How often the judge model is right on answers whose quality is known: correct answers against answers
corrupted in a known way, from the movie catalogue and SciFact.

    .venv/bin/python benchmarks/judge_accuracy.py --build          # (re)write the labelled set
    .venv/bin/python benchmarks/judge_accuracy.py                  # judge it with the default model
    .venv/bin/python benchmarks/judge_accuracy.py --samples 3      # self-consistency (majority of 3)
    .venv/bin/python benchmarks/judge_accuracy.py --master smollm2-135m-instruct   # two layers

The set (seeded, balanced: half correct, half corrupted):
- movies, criterion ``correctness`` against a reference: "Who directed T (Y)?" answered with the film's
  director (correct) or with another film's director (corrupted: swapped director); "What year was T
  released?" answered with its year or a year 3-12 years off (corrupted: shifted year);
- SciFact, criterion ``faithfulness`` to contexts: the first sentences of an abstract as context, answered
  with one of its own sentences (correct) or a sentence of an unrelated abstract (corrupted: foreign claim).
A verdict of 4 or 5 counts as "acceptable"; accuracy is against the label, with 50% the chance baseline
(the set is balanced). Prints accuracy per source, mean scores per label, parse failures, and kappa /
Spearman of the scores against the labels (5 for correct, 1 for corrupted).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from plinth.evals import Judge, JudgeCase, JudgeConfig, agreement  # noqa: E402

SET = ROOT / "benchmarks" / "evals" / "judge_labelled.jsonl"
SHARED = ROOT.parent / "shared" / "data"
PASS = 4


def build(shared: Path, seed: int = 0) -> list[dict[str, Any]]:
    from plinth.demo.movies import most_rated_first, movie_documents

    rng = random.Random(seed)
    docs = [
        d
        for d in most_rated_first(movie_documents(shared))[:300]
        if len(d.metadata.get("directors", [])) == 1
    ]
    films = rng.sample(docs, 20)
    rows: list[dict[str, Any]] = []
    for i, film in enumerate(films[:15]):
        title, year, director = film.metadata["title"], film.metadata["year"], film.metadata["directors"][0]
        other = next(
            f.metadata["directors"][0]
            for f in films[i + 1 :] + films
            if f.metadata["directors"][0] != director
        )
        question = f"Who directed {title} ({year})?"
        rows.append(
            _row(
                f"dir-{i}-ok",
                "movies",
                "correctness",
                question,
                f"{title} was directed by {director}.",
                1,
                reference=director,
            )
        )
        rows.append(
            _row(
                f"dir-{i}-bad",
                "movies",
                "correctness",
                question,
                f"{title} was directed by {other}.",
                0,
                reference=director,
                corruption="swapped director",
            )
        )
    for i, film in enumerate(films[15:]):
        title, year = film.metadata["title"], film.metadata["year"]
        shifted = year + rng.choice([-1, 1]) * rng.randint(3, 12)
        question = f"What year was {title} released?"
        rows.append(
            _row(
                f"year-{i}-ok",
                "movies",
                "correctness",
                question,
                f"It was released in {year}.",
                1,
                reference=str(year),
            )
        )
        rows.append(
            _row(
                f"year-{i}-bad",
                "movies",
                "correctness",
                question,
                f"It was released in {shifted}.",
                0,
                reference=str(year),
                corruption="shifted year",
            )
        )
    rows += _scifact(shared / "beir" / "scifact", rng)
    return rows


def _scifact(folder: Path, rng: random.Random) -> list[dict[str, Any]]:
    corpus = [json.loads(line) for line in (folder / "corpus.jsonl").open(encoding="utf-8")]
    usable = [d for d in corpus if len(_sentences(d["text"])) >= 5]
    picks = rng.sample(usable, 20)
    rows = []
    for i, (doc, foreign) in enumerate(zip(picks[:10], picks[10:], strict=True)):
        sentences = _sentences(doc["text"])
        context = " ".join(sentences[:4])
        question = f'What does the study "{doc["title"]}" report?'
        right = sentences[rng.randint(1, 3)]
        wrong = rng.choice(_sentences(foreign["text"])[1:4])
        rows.append(_row(f"sf-{i}-ok", "scifact", "faithfulness", question, right, 1, contexts=[context]))
        rows.append(
            _row(
                f"sf-{i}-bad",
                "scifact",
                "faithfulness",
                question,
                wrong,
                0,
                contexts=[context],
                corruption="sentence from an unrelated abstract",
            )
        )
    return rows


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", text) if len(s.strip()) > 30]


def _row(
    id: str, source: str, criterion: str, question: str, answer: str, label: int, **extra: Any
) -> dict[str, Any]:
    return {
        "id": id,
        "source": source,
        "criterion": criterion,
        "input": question,
        "answer": answer,
        "label": label,
        **extra,
    }


async def judge_all(
    rows: list[dict[str, Any]], chat: Any, master: Any, config: dict[str, Any], concurrency: int
) -> list[dict[str, Any]]:
    slots = asyncio.Semaphore(concurrency)

    async def one(row: dict[str, Any]) -> dict[str, Any]:
        judge = Judge(chat, JudgeConfig((row["criterion"],), **config), master)
        case = JudgeCase(row["input"], row["answer"], row.get("reference"), tuple(row.get("contexts", ())))
        async with slots:
            [verdict] = (await judge.judge(case)).values()
        print(f"  {row['id']}: label {row['label']}, score {verdict.score}", file=sys.stderr, flush=True)
        return {
            **row,
            "score": verdict.score,
            "votes": verdict.votes,
            "reasoning": verdict.reasoning,
            "first": verdict.first,
        }

    return list(await asyncio.gather(*(one(r) for r in rows)))


def report(results: list[dict[str, Any]]) -> dict[str, Any]:
    def acc(rows: list[dict[str, Any]]) -> float:
        return sum((r["score"] is not None and r["score"] >= PASS) == bool(r["label"]) for r in rows) / len(
            rows
        )

    scored = [r for r in results if r["score"] is not None]
    out: dict[str, Any] = {
        "items": len(results),
        "accuracy": acc(results),
        "unparsed": len(results) - len(scored),
        "by_source": {
            s: acc([r for r in results if r["source"] == s]) for s in sorted({r["source"] for r in results})
        },
        "mean_score_correct": _mean([r["score"] for r in scored if r["label"]]),
        "mean_score_corrupted": _mean([r["score"] for r in scored if not r["label"]]),
        "score_counts": {s: sum(r["score"] == s for r in results) for s in (1, 2, 3, 4, 5, None)},
        "agreement_with_labels": agreement(
            [5.0 if r["label"] else 1.0 for r in scored], [float(r["score"]) for r in scored]
        ),
    }
    return out


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", action="store_true", help="write the labelled set from ../shared/data")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--master", help="a second-layer judge model (two-layer judging)")
    parser.add_argument("--samples", type=int, default=1, help="self-consistency votes per verdict")
    parser.add_argument("--unconstrained", action="store_true", help="no JSON-schema grammar on verdicts")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--pairs", type=int, help="only N (correct, corrupted) pairs, spread over the set")
    parser.add_argument("--out", type=Path, help="write every verdict and the summary as JSON")
    args = parser.parse_args()
    if args.build:
        rows = build(SHARED)
        SET.parent.mkdir(parents=True, exist_ok=True)
        SET.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        print(f"wrote {len(rows)} items to {SET}")
        return 0
    from plinth.config import Settings
    from plinth.llm.loading import load_models

    rows = [json.loads(line) for line in SET.read_text(encoding="utf-8").splitlines()]
    if args.pairs:  # rows come in (correct, corrupted) pairs
        total = len(rows) // 2
        keep = {round(i * total / args.pairs) for i in range(args.pairs)}
        rows = [r for i, r in enumerate(rows) if i // 2 in keep]
    names = [args.model] + ([args.master] if args.master and args.master != args.model else [])
    models = {m.name: m for m in load_models(Settings(models=names))}
    chat = models[args.model].as_chat_model()
    master = models[args.master].as_chat_model() if args.master else None
    config = {"samples": args.samples, "constrained": not args.unconstrained}
    start = time.perf_counter()
    try:
        results = asyncio.run(judge_all(rows, chat, master, config, args.concurrency))
    finally:
        for model in models.values():
            model.shutdown()
    summary = {
        "model": args.model,
        "master": args.master,
        **config,
        **report(results),
        "seconds": round(time.perf_counter() - start, 1),
    }
    print(json.dumps(summary, indent=1))
    if args.out:
        args.out.write_text(json.dumps({"summary": summary, "verdicts": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
