"""Programmatic text metrics: one output against one reference, each a float in [0, 1].

Contract: every metric is ``metric(output, reference) -> float`` (``json_valid`` ignores the reference).
Exact match, contains and token F1 compare SQuAD-normalized text (lower case, punctuation and the
articles a/an/the removed, whitespace collapsed). ROUGE-L is Google's ``rouge-score`` (F-measure, no
stemming); BLEU is ``sacrebleu``'s sentence BLEU (default ``exp`` smoothing) divided by 100.

>>> token_f1("The cat sat", "a cat sat down")
0.8
>>> exact_match("Paris.", "paris")
1.0
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from collections.abc import Callable

__all__ = [
    "TEXT_METRICS",
    "bleu",
    "contains",
    "exact_match",
    "json_valid",
    "normalize_text",
    "rouge_l",
    "token_f1",
]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_text(text: str) -> str:
    """SQuAD's answer normalization: lower case, no punctuation, no articles, single spaces."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split())


def exact_match(output: str, reference: str) -> float:
    return float(normalize_text(output) == normalize_text(reference))


def contains(output: str, reference: str) -> float:
    """1.0 when the normalized reference appears in the normalized output (as whole words)."""
    ref = normalize_text(reference)
    return float(bool(ref) and f" {ref} " in f" {normalize_text(output)} ")


def token_f1(output: str, reference: str) -> float:
    """Harmonic mean of token precision and recall over the bag of normalized tokens (SQuAD F1)."""
    out, ref = normalize_text(output).split(), normalize_text(reference).split()
    if not out or not ref:
        return float(out == ref)
    common = sum((Counter(out) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(out), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def rouge_l(output: str, reference: str) -> float:
    """ROUGE-L F-measure (longest common subsequence of tokens), from ``rouge-score``."""
    from rouge_score import rouge_scorer

    return float(rouge_scorer.RougeScorer(["rougeL"]).score(reference, output)["rougeL"].fmeasure)


def bleu(output: str, reference: str) -> float:
    """Sentence BLEU (4-gram, brevity penalty, ``exp`` smoothing) from ``sacrebleu``, in [0, 1]."""
    from sacrebleu.metrics import BLEU

    return min(1.0, BLEU(effective_order=True).sentence_score(output, [reference]).score / 100.0)


def json_valid(output: str, reference: str = "") -> float:
    """1.0 when the output (stripped) parses as JSON."""
    try:
        json.loads(output.strip())
    except ValueError:
        return 0.0
    return 1.0


TEXT_METRICS: dict[str, Callable[[str, str], float]] = {
    "exact_match": exact_match,
    "contains": contains,
    "token_f1": token_f1,
    "rouge_l": rouge_l,
    "bleu": bleu,
    "json_valid": json_valid,
}
