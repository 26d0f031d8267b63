"""Latency of guardrail checks on CPU, with torch's default threads (how the server runs a check: it does
not pin torch's thread pool) and with one thread (what each check gets when every core is busy).

    .venv/bin/python benchmarks/guard.py            # 200 short prompts, 20 documents
    .venv/bin/python benchmarks/guard.py --quick    # a few of each (what the test runs)
    .venv/bin/python benchmarks/guard.py --tuned ~/.cache/plinth/guard-tuned/prompt_attack.safetensors

Measures p50 / p95 of ``PromptAttackDetector.detect`` for short prompts (~20 words, input stage) and
~2,000-token documents (data stage), after a warm-up, with the shipped model and, given ``--tuned PATH``,
the fine-tuned variant in the same run (with the ratio of their p50s), plus PII detection when
``plinth.guard.pii`` is present. The goal line compares the shipped short-prompt p50 with 15 ms.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from plinth.guard import AttackScorer, DetectContext, PromptAttackDetector, TunedClassifier

GOAL_MS = 15.0
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
_WORDS = (  # noqa: SIM905 -- a sentence reads better than a 35-item list
    "the a customer order shipped late please check why invoice total differs from quote and tell me what "
    "changed in march report for region north our team needs summary by friday morning thanks"
).split()


def short_prompts(n: int, rng: random.Random) -> list[str]:
    """~20-word prompts; distinct so no cache anywhere can answer them."""
    return [" ".join(rng.choice(_WORDS) for _ in range(20)) + f" ({i})?" for i in range(n)]


def documents(n: int, rng: random.Random) -> list[str]:
    """~2,000-token documents: movie plots from shared/data joined, else synthetic words."""
    path = DATA / "movies/wikipedia/movies-2000s.json"
    extracts = [m.get("extract") or "" for m in json.loads(path.read_text())] if path.is_file() else []
    extracts = [e for e in extracts if e and len(e) > 300]
    docs = []
    for _ in range(n):
        words: list[str] = []
        while len(words) < 1500:  # ~1.3 tokens per word: ~2,000 tokens
            words += (rng.choice(extracts) if extracts else " ".join(rng.choices(_WORDS, k=200))).split()
        docs.append(" ".join(words[:1500]))
    return docs


def measure(check: Callable[[str], object], texts: list[str], warmup: int) -> tuple[float, float]:
    for text in texts[:warmup]:
        check(text)
    times = []
    for text in texts[warmup:]:
        started = time.perf_counter()
        check(text)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.95 * len(times)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a few texts of each kind")
    parser.add_argument("--short", type=int, default=200)
    parser.add_argument("--docs", type=int, default=20)
    parser.add_argument(
        "--tuned", type=Path, help="also time a fine-tuned variant (plinth guard train --model tuned)"
    )
    args = parser.parse_args()
    n_short, n_docs, warmup = (12, 3, 2) if args.quick else (args.short, args.docs, 5)
    default_threads = torch.get_num_threads()
    both = default_threads > 1 and not args.quick  # quick mode (the test) measures the server's setting
    for threads in (default_threads, 1) if both else (default_threads,):
        torch.set_num_threads(threads)
        run(n_short, n_docs, warmup, threads, goal=threads == default_threads, tuned=args.tuned)


def run(n_short: int, n_docs: int, warmup: int, threads: int, *, goal: bool, tuned: Path | None) -> None:
    rng = random.Random(0)
    prompts, docs = short_prompts(n_short + warmup, rng), documents(n_docs + 1, rng)
    rows = []
    data_ctx = DetectContext(stage="data")
    models: list[tuple[str, AttackScorer | None]] = [("", None)]  # None: the shipped model
    if tuned is not None:  # the fine-tuned variant, measured in the same run
        models.append((" (tuned)", TunedClassifier.load(tuned)))
    for label, model in models:
        input_detector = PromptAttackDetector("MEDIUM", classifier=model)
        data_detector = PromptAttackDetector("MEDIUM", stage="data", classifier=model)
        rows.append(
            (
                f"prompt_attack short prompt{label}",
                *measure(lambda t, d=input_detector: d.detect(t, DetectContext()), prompts, warmup),
            )
        )
        rows.append(
            (
                f"prompt_attack 2k-token doc{label}",
                *measure(lambda t, d=data_detector: d.detect(t, data_ctx), docs, 1),
            )
        )
    try:
        from plinth.guard import SUPPORTED_TYPES, PIIDetector  # helper F's module; may be absent
    except ImportError as error:
        print(f"pii: skipped (plinth.guard.pii not importable: {error})")
    else:
        pii = PIIDetector(SUPPORTED_TYPES)
        rows.append(("pii short prompt", *measure(lambda t: pii.detect(t, DetectContext()), prompts, warmup)))
        rows.append(("pii 2k-token doc", *measure(lambda t: pii.detect(t, data_ctx), docs, 1)))
    header = f"({threads} thread(s), {n_short} short, {n_docs} docs)"
    print(f"{'check':30s} {'p50 ms':>8s} {'p95 ms':>8s}   {header}")
    for name, p50, p95 in rows:
        print(f"{name:30s} {p50:8.1f} {p95:8.1f}")
    short_p50 = rows[0][1]
    if tuned is not None:
        print(
            f"tuned / shipped p50: short prompt {rows[2][1] / short_p50:.2f}x, "
            f"2k-token doc {rows[3][1] / rows[1][1]:.2f}x"
        )
    if goal:
        verdict = "met" if short_p50 < GOAL_MS else "NOT met"
        print(f"goal: short-prompt p50 {short_p50:.1f} ms < {GOAL_MS:.0f} ms with the classifier: {verdict}")


if __name__ == "__main__":
    main()
