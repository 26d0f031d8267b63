"""LLM-as-judge: a chat model scores an answer 1-5 on a criterion, reasoning first (chain of thought).

Contract: :class:`Judge` takes any :class:`~plinth.llm.base.ChatModel` (a served model, an adapter, a
remote provider, or :class:`~plinth.llm.ScriptedModel` in tests) and returns one :class:`Judgement` per
criterion that applies to the case (correctness needs a reference, faithfulness needs contexts). The
verdict is asked for as ``{"reasoning": str, "score": 1..5}`` under a JSON-schema grammar
(``constrained=True``), so a local model's reply always parses; replies from providers that ignore the
grammar are parsed leniently (:func:`parse_verdict`), and an unparseable one scores ``None``.

- **self-consistency**: ``samples`` > 1 asks n times (temperature ``temperature``, seeds ``seed + i``)
  and keeps the majority score (:func:`majority_vote`: ties go to the lowest tied score, the cautious
  reading);
- **two layers**: with a ``master`` model, the master sees the case, the first judge's score and
  reasoning, and gives the final verdict (the first layer's is kept in ``Judgement.first``);
- **sampling**: :func:`sampled_indices` picks a seeded fraction of the items to judge.

>>> import asyncio; from plinth.llm import ScriptedModel
>>> judge = Judge(ScriptedModel(['{"reasoning": "matches", "score": 5}']), JudgeConfig(("correctness",)))
>>> asyncio.run(judge.judge(JudgeCase("2+2?", "4", reference="4")))["correctness"].score
5
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from plinth.llm.base import ChatModel, ChatOptions, Message
from plinth.llm.grammar import GrammarSpec

__all__ = [
    "CRITERIA",
    "Criterion",
    "Judge",
    "JudgeCase",
    "JudgeConfig",
    "Judgement",
    "Verdict",
    "majority_vote",
    "parse_verdict",
    "sampled_indices",
    "verdict_schema",
]


@dataclass(frozen=True, slots=True)
class Criterion:
    """What the judge scores: ``description`` says what 5 and 1 mean; ``needs`` is the case field it
    cannot do without (``"reference"``, ``"contexts"``) or None."""

    name: str
    description: str
    needs: str | None = None


CRITERIA: dict[str, Criterion] = {
    c.name: c
    for c in (
        Criterion(
            "correctness",
            "Does the answer state the same facts as the reference answer? 5: every fact agrees with the "
            "reference; 3: partly right; 1: wrong or contradicts the reference.",
            "reference",
        ),
        Criterion(
            "faithfulness",
            "Is every claim in the answer supported by the context passages? 5: all supported; 3: some "
            "claims unsupported; 1: contradicts the context or invents facts.",
            "contexts",
        ),
        Criterion(
            "relevance",
            "Does the answer address the question that was asked? 5: directly answers it; 3: partly; "
            "1: off topic.",
        ),
        Criterion(
            "coherence",
            "Is the answer clear, well organised and consistent with itself? 5: clear and consistent; "
            "3: understandable but muddled; 1: incoherent.",
        ),
    )
}


@dataclass(frozen=True, slots=True)
class JudgeCase:
    question: str
    answer: str
    reference: str | None = None
    contexts: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class Verdict:
    score: int | None  # 1..5; None when the reply could not be read
    reasoning: str


@dataclass(slots=True)
class Judgement:
    """The final score (1..5, None if no sample parsed), its reasoning, every sample's score, and with two
    layers the first judge's verdict."""

    criterion: str
    score: int | None
    reasoning: str
    votes: list[int | None] = field(default_factory=list)
    first: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class JudgeConfig:
    """How to judge: criteria by name (see :data:`CRITERIA`) plus custom ``rubrics`` (name ->
    description), ``samples`` votes each, and the generation settings of each judge call."""

    criteria: Sequence[str] = ("correctness", "relevance")
    rubrics: dict[str, str] = field(default_factory=dict)
    samples: int = 1
    temperature: float = 0.7  # used only when samples > 1 (one sample is greedy)
    seed: int = 0
    max_tokens: int = 832
    reasoning_chars: int = 400  # the schema's maxLength: a bounded verdict always completes
    constrained: bool = True

    def resolved(self) -> list[Criterion]:
        unknown = [c for c in self.criteria if c not in CRITERIA]
        assert not unknown, f"unknown criteria {unknown}; known: {sorted(CRITERIA)}"
        return [CRITERIA[c] for c in self.criteria] + [Criterion(n, d) for n, d in self.rubrics.items()]


def verdict_schema(reasoning_chars: int = 400) -> dict[str, Any]:
    """The verdict's JSON schema: reasoning first (the model thinks before it scores), then 1..5."""
    return {
        "type": "object",
        "properties": {
            "reasoning": {"type": "string", "maxLength": reasoning_chars},
            "score": {"enum": [1, 2, 3, 4, 5]},
        },
        "required": ["reasoning", "score"],
        "additionalProperties": False,
    }


_SCORE = re.compile(r"""["']?score["']?\s*[:=]\s*["']?([1-5])\b""", re.IGNORECASE)


def parse_verdict(text: str) -> Verdict:
    """The verdict in ``text``: its JSON object if it has one, else a ``score: N`` anywhere; a score
    outside 1..5 or none at all gives ``Verdict(None, text)``."""
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        try:
            data = json.loads(text[start : end + 1])
        except ValueError:
            data = None
        if isinstance(data, dict):
            score = data.get("score")
            score = (
                int(score) if isinstance(score, int | float | str) and str(score).strip().isdigit() else None
            )
            reasoning = str(data.get("reasoning", ""))
            return Verdict(score if score is not None and 1 <= score <= 5 else None, reasoning)
    match = _SCORE.search(text)
    return Verdict(int(match.group(1)) if match else None, text.strip())


def majority_vote(scores: Sequence[int | None]) -> int | None:
    """The most common score (None values ignored); a tie goes to the lowest tied score."""
    counts = Counter(s for s in scores if s is not None)
    if not counts:
        return None
    top = max(counts.values())
    return min(s for s, c in counts.items() if c == top)


def sampled_indices(n: int, rate: float, seed: int = 0) -> set[int]:
    """A seeded ``rate`` fraction of ``range(n)`` (rounded, at least one item when rate > 0)."""
    assert 0.0 <= rate <= 1.0, rate
    if rate >= 1.0:
        return set(range(n))
    size = min(n, max(1, round(rate * n))) if rate > 0 else 0
    return set(random.Random(seed).sample(range(n), size))


class Judge:
    """Scores cases with ``model``; with ``master``, a second judge reviews each verdict."""

    def __init__(self, model: ChatModel, config: JudgeConfig, master: ChatModel | None = None) -> None:
        self.model, self.config, self.master = model, config, master
        self.criteria = config.resolved()

    @property
    def reasoning_limit(self) -> int:
        """The reasoning's maxLength: short enough that the whole verdict fits in ``max_tokens`` even at
        one character per token with every character escaped (2 each), plus ~32 for the rest of the
        JSON -- so a constrained verdict is never cut off, and always parses."""
        return max(8, min(self.config.reasoning_chars, (self.config.max_tokens - 32) // 2))

    async def judge(self, case: JudgeCase) -> dict[str, Judgement]:
        """One judgement per criterion that applies to ``case`` (judged one after another)."""
        out = {}
        for criterion in self.criteria:
            if criterion.needs == "reference" and not case.reference:
                continue
            if criterion.needs == "contexts" and not case.contexts:
                continue
            out[criterion.name] = await self.judge_one(case, criterion)
        return out

    async def judge_one(self, case: JudgeCase, criterion: Criterion) -> Judgement:
        messages = judge_messages(case, criterion)
        score, reasoning, votes = await self._vote(self.model, messages)
        if self.master is None:
            return Judgement(criterion.name, score, reasoning, votes)
        first = {"score": score, "reasoning": reasoning, "votes": votes}
        review = master_messages(case, criterion, Verdict(score, reasoning))
        final, final_reasoning, final_votes = await self._vote(self.master, review)
        return Judgement(criterion.name, final, final_reasoning, final_votes, first)

    async def _vote(
        self, model: ChatModel, messages: list[Message]
    ) -> tuple[int | None, str, list[int | None]]:
        n = max(1, self.config.samples)
        verdicts = [await self._ask(model, messages, i if n > 1 else None) for i in range(n)]
        votes = [v.score for v in verdicts]
        winner = majority_vote(votes)
        reasoning = next((v.reasoning for v in verdicts if v.score == winner), verdicts[0].reasoning)
        return winner, reasoning, votes

    async def _ask(self, model: ChatModel, messages: list[Message], sample: int | None) -> Verdict:
        cfg = self.config
        options = ChatOptions(
            max_tokens=cfg.max_tokens,
            temperature=0.0 if sample is None else cfg.temperature,
            seed=cfg.seed + (sample or 0),
            response_format=GrammarSpec.json_schema(verdict_schema(self.reasoning_limit))
            if cfg.constrained
            else None,
        )
        reply = await model.chat(messages, options)
        await asyncio.sleep(0)  # let a cancel or the server's other work in between calls
        return parse_verdict(reply.text)


_SYSTEM = (
    "You are a strict, impartial evaluator. Judge only what is asked. Think step by step: write your "
    'reasoning first, then the score. Reply with JSON only: {"reasoning": "...", "score": N} where N is '
    "an integer from 1 (worst) to 5 (best)."
)


def judge_messages(case: JudgeCase, criterion: Criterion) -> list[Message]:
    """The first judge's prompt: the criterion, the case, and the verdict format."""
    return [
        {"role": "system", "content": _SYSTEM},
        {"role": "user", "content": f"{_case_text(case, criterion)}\n\nYour verdict (JSON):"},
    ]


def master_messages(case: JudgeCase, criterion: Criterion, first: Verdict) -> list[Message]:
    """The master judge's prompt: the case plus the first judge's verdict, to confirm or overrule."""
    shown = "none (the first judge's reply could not be read)" if first.score is None else str(first.score)
    review = (
        f"A first judge gave score {shown} with this reasoning:\n<first_judge>\n{first.reasoning}\n"
        "</first_judge>\nCheck the first judge's reasoning against the case. If it is sound keep its score, "
        "otherwise correct it. Give the final verdict (JSON):"
    )
    return [
        {"role": "system", "content": _SYSTEM},
        {"role": "user", "content": f"{_case_text(case, criterion)}\n\n{review}"},
    ]


def _case_text(case: JudgeCase, criterion: Criterion) -> str:
    parts = [f"Criterion ({criterion.name}): {criterion.description}", f"Question:\n{case.question}"]
    custom = criterion.name not in CRITERIA  # a rubric sees everything the case has
    if case.reference and (criterion.needs == "reference" or custom):
        parts.append(f"Reference answer:\n{case.reference}")
    if case.contexts and (criterion.needs == "contexts" or custom):
        passages = "\n".join(f"[{i}] {c}" for i, c in enumerate(case.contexts, start=1))
        parts.append(f"Context passages:\n{passages}")
    parts.append(f"Answer to evaluate:\n{case.answer}")
    return "\n\n".join(parts)
