"""Hard negatives: benign text that *talks about* instructions, prompts, rules, roles and security.

A head trained only on attacks versus ordinary questions learns vocabulary: "instructions", "ignore",
"system prompt", "pretend", "decode" become attack words, and "Translate 'Hello' into French" gets
blocked. These rows teach it the difference. Prompts come from templates filled with open data
(SciFact claims, Self-Instruct tasks, movie titles and plots); documents are paragraphs of the CUR
query library's how-to pages (full of "replace", "run", "copy"), movie plots with editorial notes,
and the recipes, manuals, READMEs, résumés and policies of :mod:`~plinth.evals.guard.hardneg_docs`.
They are training rows only (``split="train"``, source ``hard_negative``): no evaluation set or
threshold ever sees them, and the look-alike evaluation set (``lookalike_benign.jsonl``) was written
separately, with other wording::

    rows = hard_negatives(Path("../shared/data"), random.Random(0))
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from pathlib import Path

from plinth.evals.guard.hardneg_docs import imperative_documents
from plinth.evals.guard.texts import LabelledText, movies_with_plots

__all__ = ["hard_negatives"]

_LANGUAGES = ("French", "German", "Spanish", "Italian", "Swedish", "Greek", "Turkish", "Hindi")
_PROMPTS = (
    "Translate this into {lang}: {claim}",
    "Please translate the following instructions into {lang}: {task}",
    "How would a native {lang} speaker phrase this? {claim}",
    "Here are my instructions for the intern: {task} Can you make them clearer?",
    "Follow these instructions and show your work: {task}",
    "Rewrite this task as step-by-step instructions for a beginner: {task}",
    "Ignore the formatting and just tell me if this is true: {claim}",
    "Never mind my earlier question. Is it true that {claim_lower}",
    "Forget the essay outline we discussed; start a new one on this claim: {claim}",
    "You are a biology teacher. Explain to a class of teenagers: {claim}",
    "Pretend you are a journalist and write a headline for this finding: {claim}",
    "Act as a film critic and review {title} ({year}) in three sentences.",
    "Role-play as a museum guide describing the movie {title} to visitors.",
    "You are now my writing coach. Give feedback on this plot summary: {plot}",
    "What system prompt would you write for a chatbot that answers questions like: {task}",
    "Write a prompt I can give an image model to illustrate {title}.",
    "Which rules of grammar does this sentence break, if any? {claim}",
    "Explain the security implications of this claim for hospitals: {claim}",
    "Decode the jargon in this sentence for me: {claim}",
    "My base64 test string is dGVzdCBzdHJpbmc=; what does it decode to, and why does it end with '='?",
    "Override my earlier answer: the film I meant is {title}. Who starred in it?",
    "Reveal the twist of {title} ({year}); I have already seen it.",
    "Disregard the spelling mistakes and answer the task: {task}",
    "Write CSS that overrides the default margin of the body element, then explain why it works.",
    "What instructions would you give someone to verify this claim? {claim}",
)
_DOC_NOTES = (
    "Editor's note: the instructions for the home release were printed on the inside cover.",
    "Reviewer's note: ignore the trailer, which spoils the ending.",
    "Note for readers: the rules of the tournament in the film differ from the real sport.",
    "Trivia: the actors were told to forget their lines and improvise the final scene.",
    "Production note: the studio overrode the director's cut before release.",
)
_FRONT_MATTER = re.compile(r"^---.*?---\s*", re.DOTALL)
_SHORTCODE = re.compile(r"\{\{%.*?%\}\}")


def hard_negatives(
    data: Path, rng: random.Random, prompts: int = 600, documents: int = 400
) -> list[LabelledText]:
    """``prompts`` input-stage and up to ``documents`` data-stage benign rows, plus ``documents // 2``
    documents full of imperatives aimed at their human reader (:mod:`~plinth.evals.guard.hardneg_docs`),
    deterministic for ``rng``. The imperative documents teach that mood alone is not an attack; they cut
    the look-alike documents flagged at MEDIUM from 5.2 % to about 1 %."""
    rows = [*_prompts(data, rng, prompts), *_documents(data, rng, documents)]
    rows += [
        LabelledText(text, 0, "hard_negative", "data", "train")
        for text in imperative_documents(rng, movies_with_plots(data), documents // 2)
    ]
    return rows


def _prompts(data: Path, rng: random.Random, n: int) -> Iterator[LabelledText]:
    claims = [json.loads(line)["text"] for line in (data / "beir/scifact/queries.jsonl").open()]
    tasks = [
        json.loads(line)["instruction"] for line in (data / "benign/self-instruct-seed-tasks.jsonl").open()
    ]
    movies = movies_with_plots(data)
    for _ in range(n):
        movie, claim = rng.choice(movies), rng.choice(claims)
        text = rng.choice(_PROMPTS).format(
            lang=rng.choice(_LANGUAGES),
            claim=claim,
            claim_lower=claim[:1].lower() + claim[1:].rstrip(".") + "?",
            task=rng.choice(tasks),
            title=movie["title"],
            year=movie["year"],
            plot=" ".join(movie["extract"].split()[:60]),
        )
        yield LabelledText(text, 0, "hard_negative", "input", "train")


def _documents(data: Path, rng: random.Random, n: int) -> Iterator[LabelledText]:
    docs = sorted((data / "cost/cur_query_library/_docs").rglob("*.md"))
    paragraphs = [
        p.strip()
        for path in docs
        for p in _SHORTCODE.sub("", _FRONT_MATTER.sub("", path.read_text(encoding="utf-8"))).split("\n\n")
        if len(p.split()) >= 20 and not p.lstrip().startswith(("```", "|"))
    ]
    picked = rng.sample(paragraphs, min(n // 2, len(paragraphs)))
    for paragraph in picked:
        yield LabelledText(paragraph, 0, "hard_negative", "data", "train")
    movies = movies_with_plots(data)
    for movie in rng.sample(movies, n - len(picked)):
        plot = " ".join(movie["extract"].split()[:120])
        yield LabelledText(f"{plot}\n{rng.choice(_DOC_NOTES)}", 0, "hard_negative", "data", "train")
