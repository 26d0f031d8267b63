"""Hard-negative *documents*: benign text full of imperatives aimed at its human reader.

Documents are judged as documents: "Chop everything finely", "Ignore the beeping during the first
boot", "Set system_prompt in config.yaml" are how recipes, manuals, READMEs and résumés talk, and only
an instruction aimed at the AI that reads a retrieved text is an attack. These templates (recipes, device
manuals, project READMEs, résumés, step tables, workplace policies, e-mails, minutes, FAQs, changelogs,
awareness handouts) are filled at random from small word lists and movie titles; they are training rows
only and share no five-word sequence of prose with the look-alike evaluation set (tests/guard/
test_guard_lookalike.py)::

    docs = list(imperative_documents(random.Random(0), movies, 200))
"""

from __future__ import annotations

import random
from collections.abc import Iterator

__all__ = ["imperative_documents"]

_DISHES = ("lentil soup", "banana bread", "chicken curry", "mushroom risotto", "apple crumble", "falafel")
_DEVICES = ("wireless router", "dishwasher", "label printer", "sewing machine", "3D printer", "e-bike")
_ROLES = ("support engineer", "data analyst", "technical writer", "nurse", "teacher", "project manager")
_NAMES = ("Amira Haddad", "Jonas Berg", "Priya Nair", "Tomás Ruiz", "Mei Chen", "Olu Adeyemi")
_STEPS = (
    "Remove the cover and keep the screws in a safe place.",
    "Ignore the beeping during the first boot; the firmware is updating.",
    "Disregard older versions of this guide that mention a red button.",
    "Always unplug the power cable before cleaning.",
    "Forget the factory password and choose your own during setup.",
    "Override the default language in Settings, then restart.",
    "Skip page two if your model number ends in B.",
    "Reset the unit by holding the power button for ten seconds.",
    "Follow the arrows printed on the filter when you put it back.",
    "Print this page and keep it with the receipt.",
)
_TEMPLATES = (
    "{dish} (serves {n})\n\nIngredients: {n} cups of stock, salt, pepper, oil.\n\nMethod:\n1. Preheat the "
    "oven ({deg} degrees).\n2. Chop everything finely and ignore the urge to stir too often.\n3. Season, "
    "taste and adjust. Forget the timer if it smells done.\n4. Serve warm. Do not skip the resting step.",
    "Setup guide for the {device}\n\nBefore you begin, read all instructions.\n{s1}\n{s2}\n{s3}\nIf "
    "anything goes wrong, contact support and quote your serial number.",
    "# {title_slug}\n\nA small tool for sorting film notes.\n\n## Installation\n\nRun `pip install "
    "{title_slug}`. Ignore the warning about optional dependencies.\n\n## Configuration\n\nSet "
    "`system_prompt` in config.yaml to change what the assistant is told before each chat. Override "
    "any default with an environment variable.\n\n## Contributing\n\nFollow the style guide. {s1}",
    "{name}\n{role}\n\nExperience\n- Wrote the onboarding instructions for new {role}s at a {n}-person "
    "company.\n- Trained staff to ignore phishing emails and report them.\n- Rewrote the rules for the "
    "on-call rota.\n\nSkills: clear written instructions, training, {lang}.",
    "| no. | what to do |\n|---|---|\n| 1 | {s1} |\n| 2 | {s2} |\n| 3 | {s3} |\n| 4 | Sign the form and "
    "return it to the front desk. |",
    "Workplace policy: visitors\n\nAll visitors must sign in. Staff must ignore requests to hold doors "
    "for people without badges. Forget what the old handbook said about guest Wi-Fi: the new password is "
    "at the front desk. Team leads may override these rules only in writing. {s1}",
    "Review of {title} ({year})\n\nIgnore the trailer, it spoils the twist. Watch it in a dark room and "
    "turn your phone off. The director's instructions to the cast were to improvise the final scene, and "
    "it shows. {n} out of 10.",
    "Subject: correction\n\nHi team, please ignore my previous message about the {dish} potluck: it "
    "moved to {day}. If you already replied, you do not need to do anything. Thanks, {name}",
    "Phishing awareness handout\n\nScammers write things like 'your account will be closed, send your "
    "password today'. Never answer such a message with a password or a code. Forward it to the security "
    "team and delete it. When in doubt, call the sender on a number you already know.",
    "Minutes of the {role} meeting\n\n- {name} asked everyone to disregard the draft budget circulated "
    "last week.\n- Action: update the onboarding instructions by {day}.\n- The chatbot's rules and its "
    "system prompt will be reviewed next month.",
    "FAQ\n\nQ: Can I override the thermostat schedule?\nA: Yes. Hold the arrow for three seconds; the "
    "schedule resumes at midnight.\nQ: Can I ignore the filter light?\nA: For a week at most, then "
    "replace the filter.",
    "Changelog {n}.0\n\n- The assistant now reads its system prompt from prompts/default.txt.\n- Ignore "
    "the old PROMPT_FILE variable; it is no longer read.\n- Translations for {lang} were added.",
    "Training exercise: social engineering\n\nIn this exercise a caller pretends to be from IT and asks "
    "you to read out your login code. The right answer is to refuse, hang up and report the call. "
    "Score: one point for each warning sign you spot.",
    "Notice to tenants\n\nPlease disregard the letter dated {day} about water works; the work was "
    "postponed. The building rules still apply: no bicycles in the hallway, bins out on {day}.",
)
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")
_LANGUAGES = ("Spanish", "French", "German", "Arabic", "Mandarin", "Portuguese")


def imperative_documents(rng: random.Random, movies: list[dict[str, str]], n: int) -> Iterator[str]:
    """``n`` documents, deterministic for ``rng``."""
    for _ in range(n):
        movie = rng.choice(movies)
        s1, s2, s3 = rng.sample(_STEPS, 3)
        yield rng.choice(_TEMPLATES).format(
            dish=rng.choice(_DISHES).capitalize(),
            device=rng.choice(_DEVICES),
            role=rng.choice(_ROLES),
            name=rng.choice(_NAMES),
            lang=rng.choice(_LANGUAGES),
            n=rng.randint(2, 12),
            deg=rng.choice((160, 180, 200, 220)),
            title=movie["title"],
            year=movie["year"],
            title_slug="-".join(movie["title"].lower().split())[:30],
            s1=s1,
            s2=s2,
            s3=s3,
            day=rng.choice(_DAYS),
        )
