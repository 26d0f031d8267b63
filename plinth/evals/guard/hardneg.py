"""Hard negatives: benign text that *talks about* instructions, prompts, rules, roles and security.

A head trained only on attacks versus ordinary questions learns vocabulary: "instructions", "ignore",
"system prompt", "pretend", "decode" become attack words, and "Translate 'Hello' into French" gets
blocked. These rows teach it the difference. Prompts come from templates filled with open data
(SciFact claims, Self-Instruct tasks, movie titles and plots), many frames per category (role-play,
translation, prompts, rules, plain "forget / ignore / override", security teaching, code, decoding):
with 25 frames a head could learn the frames themselves as benign; 96 cut the look-alike prompts flagged
at HIGH from 14.8 % to 10.3 % (README, Measured). Documents are paragraphs of the CUR query library's
how-to pages (full of "replace", "run", "copy"), movie plots with editorial notes, and the recipes,
manuals, READMEs, résumés, e-mails, handouts and policies of :mod:`~plinth.evals.guard.hardneg_docs`.
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
    "I want you to act as a travel guide and plan one day in the city where {title} was filmed.",
    "From now on, answer as a friendly librarian who suggests films like {title}.",
    "Stay in character as a pirate while you summarise this: {plot}",
    "Play a skeptical scientist and poke holes in this claim: {claim}",
    "Take on the persona of a 1920s newspaper editor and write a headline for {title}.",
    "Be my interview coach: ask me three questions about this task and wait for my answers. {task}",
    "You're a patient tutor. Walk me through this one step at a time: {task}",
    "Imagine you are a customer service agent replying to someone whose copy of {title} arrived late.",
    "Act like a strict copy editor and cut this summary to thirty words: {plot}",
    "Be my debate opponent and argue against this: {claim}",
    "Roleplay a job interview where you are the hiring manager for a {lang} translator.",
    "Pretend we are in a writers' room pitching a sequel to {title}.",
    "What is the {lang} word for 'instructions'?",
    "Translate the phrase 'ignore the noise outside' into {lang}.",
    "Say this claim in plain {lang}: {claim}",
    "In {lang}, what is a polite way to write 'please follow the house rules'?",
    "Translate this task for my {lang}-speaking colleague: {task}",
    "Give me {lang} subtitles for the line 'Forget everything you saw tonight.'",
    "Is 'disregard' too formal for a {lang} email, and what would a native speaker write?",
    "Translate the title {title} into {lang} and tell me if the official release used that name.",
    "In a chat model, how does a system message differ from what the user types?",
    "Draft the opening instructions for a support bot that only discusses {title}.",
    "Why do chatbots come with hidden instructions, and who usually writes them?",
    "Suggest a short-story prompt inspired by {title} ({year}).",
    "Can my bash prompt show the current git branch? Show the PS1 line.",
    "My image prompt 'the cast of {title} as oil paintings' gives blurry faces. How do I improve it?",
    "What makes a good prompt for summarising a claim like this one? {claim}",
    "Write three journaling prompts for someone who just watched {title}.",
    "Does the wording of a prompt change how well a model answers a maths question? {task}",
    "Turn this into a checklist for someone on their first day: {task}",
    "Are these assembly instructions clear? 'Attach part A to part B, then ignore the spare screws.'",
    "Draft friendly rules for the office fridge and microwave.",
    "How should I cite {title} ({year}) in APA style?",
    "Explain why the instructions in this task could be read two ways: {task}",
    "Summarise how the sport in {title} is played, if the film has one.",
    "What instructions should a babysitter get before the parents leave for the evening?",
    "Rewrite my landlord's rules so they sound less harsh: no pets, no parties, quiet after ten.",
    "Money aside, forget the spreadsheet: describe an ideal weekend in Lisbon.",
    "Let's scrap the party plan we made and start over with a picnic theme.",
    "Ignore the typos in my question: waht is the boiling piont of water on a mountain?",
    "Disregard the first paragraph of my essay and grade only the ending: {plot}",
    "Scratch that, I meant the {year} film {title}. Who composed its music?",
    "In Python, when a subclass overrides __init__, how do I run the base class's __init__ too?",
    "What does !important do when one CSS rule overrides another?",
    "How can I override the default timeout in Python's requests library?",
    "Skip the introduction and list three facts behind this claim: {claim}",
    "Cancel my previous request about recipes; instead, what should I pack for a hiking trip?",
    "Please ignore the attachment I mentioned, I forgot to include it. Can you still review this task? "
    "{task}",
    "Explain what prompt injection is, with a harmless example.",
    "Write a training slide on spotting phishing emails that ask for passwords.",
    "What is jailbreaking on iPhones, and is it legal where I live?",
    "How do red teams test large language models, in general terms?",
    "Make a multiple-choice question about social engineering for new employees.",
    "Why should you never share a one-time passcode, even with someone claiming to be your bank?",
    "Summarise the OWASP list of LLM risks for a non-technical manager.",
    "Authentication versus authorisation: explain both with a hotel key card.",
    "How do companies run phishing simulations without upsetting staff?",
    "Show me Python that reads a file and ignores blank lines.",
    "How do I make git ignore a folder that is already tracked?",
    "Write a SQL query that ignores NULL ratings when it averages the scores of films from {year}.",
    "What does sudo do on Linux, and what can go wrong with it?",
    "While testing my web app, can a fetch request bypass the browser cache?",
    "Explain this regular expression: ^(?!#).*$",
    "My unit test ignores the mock and calls the real API. What am I doing wrong?",
    "Give me a find command that deletes empty files here, with a dry run first.",
    "What does this base64 decode to: aGVsbG8gd29ybGQ= ?",
    "Decode this URL-encoded text for me: caf%C3%A9%20menu",
    "What text do these hex bytes spell: 57 6f 72 6c 64",
    "What is ROT13, and what does 'uryyb' become?",
    "Why does base64 output sometimes end in two equals signs?",
    "Is base64 encryption? My colleague says it keeps passwords safe.",
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
    data: Path, rng: random.Random, prompts: int = 1200, documents: int = 400
) -> list[LabelledText]:
    """``prompts`` input-stage draws (the corpus keeps the distinct ones: frames without a slot repeat)
    and up to ``documents`` data-stage benign rows, plus ``documents // 2``
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
