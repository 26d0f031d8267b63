"""``plinth guard train``: fit the prompt-attack classifier on ``shared/data`` and ship it with a data card.

The head trains on every attack source and the *train* split of every benign source; the benign *test*
split (never trained on) calibrates the per-stage thresholds of each strength (see
:data:`~plinth.guard.attack.FPR_BY_STRENGTH`). Every window of a text carries the text's label, and
sample weights give each (source, stage) group of a class the same total weight, so 1,100 jailbreak_llms
prompts cannot drown 140 pallms payloads::

    report = train(Path("../shared/data"), DEFAULT_MODEL_PATH)
    print(report.format())
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from plinth.evals.guard.corpus import LICENCES, bare_goal_prompts, load_corpus
from plinth.evals.guard.evaluate import evaluate
from plinth.evals.guard.fit import (
    DEFAULT_CACHE,
    TRAIN_GROUPS,
    TRAIN_WINDOWS,
    C,
    cached_vectorizer,
    fit,
    threshold_at_fpr,
    training_pieces,
)
from plinth.evals.guard.lookalike import evaluate_lookalikes
from plinth.guard import (
    DEFAULT_MODEL_PATH,
    FPR_BY_STRENGTH,
    AttackClassifier,
    SignatureDetector,
    layered_scores,
)
from plinth.llm.embedder import DEFAULT_EMBEDDING_MODEL

__all__ = ["TrainReport", "train", "write_data_card"]


@dataclass
class TrainReport:
    path: Path
    rows: dict[str, int]  # "source/label/stage" -> rows used for training
    calibration: dict[str, int]  # stage -> held-out benign rows the thresholds were set on
    thresholds: dict[str, dict[str, float]]
    windows: int
    seconds: float
    card: Path | None = None
    notes: list[str] = field(default_factory=list)

    def format(self) -> str:
        lines = [f"model: {self.path} ({self.windows} training windows, {self.seconds:.0f} s)"]
        lines += [f"  {key:32s} {count:6d}" for key, count in sorted(self.rows.items())]
        for stage, table in sorted(self.thresholds.items()):
            cells = "  ".join(f"{k}>{v:.3f}" for k, v in table.items())
            lines.append(f"thresholds {stage:5s} (on {self.calibration[stage]} held-out benign): {cells}")
        return "\n".join(lines)


def train(
    shared_data: Path,
    out: Path = DEFAULT_MODEL_PATH,
    *,
    cache: Path | None = DEFAULT_CACHE,
    cap: int = 600,
    eval_summary: str | None = None,
    evaluate_too: bool = True,
) -> TrainReport:
    """Train on all sources, calibrate thresholds, write ``out`` and a ``DATA_CARD.md`` next to it. The
    card carries ``eval_summary``, else (``evaluate_too``) a fresh leave-one-source-out evaluation of this
    very code and data (seconds with the embedding cache warm)."""
    started = time.perf_counter()
    embed = cached_vectorizer(cache)
    rows = load_corpus(shared_data, cap=cap)
    training = [r for r in rows if r.label == 1 or r.split == "train"]
    head = fit(training, embed)
    classifier = AttackClassifier(head.coef, head.intercept, embed=embed)  # scores through the cache
    signatures = SignatureDetector()
    calibration: dict[str, int] = {}
    for stage in ("input", "data"):
        benign = [r.text for r in rows if r.label == 0 and r.split == "test" and r.stage == stage]
        scores = np.array([s.score for s in layered_scores(benign, stage, classifier, signatures)])
        classifier.thresholds[stage] = {k: threshold_at_fpr(scores, f) for k, f in FPR_BY_STRENGTH.items()}
        calibration[stage] = len(benign)
    AttackClassifier(head.coef, head.intercept, classifier.thresholds).save(out)
    lookalikes = evaluate_lookalikes(classifier).format()
    counts = Counter(f"{r.source}/{'attack' if r.label else 'benign'}/{r.stage}" for r in training)
    n_windows = sum(len(training_pieces(r)) for r in training)
    report = TrainReport(out, dict(counts), calibration, classifier.thresholds, n_windows, 0.0)
    bare = bare_goal_prompts(shared_data)
    report.notes.append(
        f"JailbreakBench records left out: {sum(bare.values())} whose `prompt` is the bare harmful `goal` "
        f"with no jailbreak around it ({', '.join(f'{k} {v}' for k, v in sorted(bare.items()))}): a "
        "harmful request is a content-safety matter, not a prompt attack. No other attack row is dropped "
        "or relabelled; sources are capped and deduplicated on a 300-character prefix."
    )
    if eval_summary is None and evaluate_too:
        eval_summary = evaluate(shared_data, cache=cache, cap=cap).format()
    report.seconds = time.perf_counter() - started
    report.card = write_data_card(out.parent / "DATA_CARD.md", report, eval_summary, lookalikes)
    return report


def write_data_card(
    path: Path, report: TrainReport, eval_summary: str | None, lookalikes: str | None = None
) -> Path:
    """A Markdown card: what the model was trained on, under which licences, and how well it does."""
    sources = sorted({key.split("/")[0] for key in report.rows})
    lines = [
        "# Prompt-attack classifier — data card",
        "",
        f"- Trained: {dt.date.today().isoformat()} by `plinth guard train` (`plinth/evals/guard/train.py`).",
        f"- Model: `{path.parent.name}/prompt_attack.npz` — logistic regression (C={C}, source- and "
        f"class-balanced weights) over {DEFAULT_EMBEDDING_MODEL} embeddings of ≤{TRAIN_WINDOWS} windows of "
        "~180 words per text; documents (data stage) also train on groups of two sentences (the "
        f"{TRAIN_GROUPS} evenly spaced groups of a benign document; of a planted attack, the groups holding "
        "the instruction), and the detector scores a document as the max over all its windows and groups; "
        "plain numpy arrays (`coef`, `intercept`, `stages`, `thresholds`, `model_id`).",
        f"- Training windows: {report.windows}.",
        "",
        "## Sources (rows used for training)",
        "",
        "| source / class / stage | rows |",
        "|---|---:|",
        *[f"| {key} | {count} |" for key, count in sorted(report.rows.items())],
        "",
        "Benign *test* splits (30 % of each benign source by text hash) are never trained on; they set the "
        "thresholds below. BIPIA attacks appear only planted in email/table contexts (start/middle/end), and "
        "short deepset/pallms injections are also planted in benign training documents (data stage).",
        "",
        "Hard negatives (`hard_negative`, `plinth/evals/guard/hardneg.py`) are training rows only: prompts "
        "that translate, role-play, quote system prompts, decode a user's base64 or ask to ignore a typo, "
        "from templates filled with SciFact claims, Self-Instruct tasks and movie titles and plots; and "
        "documents full of how-to imperatives (the CUR query library's pages) or movie plots with "
        "editorial notes. The look-alike set below was written separately and is never trained on.",
        "",
        "Benign input-stage text covers serious topics on purpose: BIPIA's real user questions, SciFact "
        "claims (medicine, biology) and movie plots (wars, crimes, horror) pasted into requests "
        '("Summarise this: …", "Who directed the film described here? …"), next to deepset benign '
        "prompts, every Self-Instruct seed task with its input, and a capped GSM8K sample.",
        "",
        *[f"- {note}" for note in report.notes],
        "",
        "## Licences",
        "",
        *[f"- {source}: {LICENCES[source]}" for source in sources],
        "",
        "## Thresholds (layered score: max of classifier, signatures, hidden characters)",
        "",
        "A signature scored ≥ 0.9 (e.g. instruction override) counts as 1.0 in the layered score, so it "
        "flags at every strength: no benign row of the corpus (7,090, both splits and stages) makes such a "
        "move, while the data-stage thresholds sit above 0.95.",
        "",
        "| stage | held-out benign | "
        + " | ".join(f"{k} (≤{f:.1%} FPR)" for k, f in FPR_BY_STRENGTH.items())
        + " |",
        "|---|---:|---:|---:|---:|",
        *[
            f"| {stage} | {report.calibration[stage]} | {t['LOW']:.3f} | {t['MEDIUM']:.3f} "
            f"| {t['HIGH']:.3f} |"
            for stage, t in sorted(report.thresholds.items())
        ],
        "",
        "## False alarms on the look-alike benign set (`plinth guard eval`)",
        "",
        "```",
        lookalikes or "not run with this training",
        "```",
        "",
        "## Evaluation (leave-one-source-out, `plinth guard eval`)",
        "",
        "```",
        eval_summary or "not run with this training; see `plinth guard eval`",
        "```",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
