"""The two prompt-attack models ``plinth guard train`` and ``plinth guard eval`` can build from labelled rows:
``logistic`` (a head over frozen MiniLM features, :data:`~plinth.guard.ATTACK_FEATURES`;
:mod:`~plinth.evals.guard.fit`), the shipped kind, and
``tuned`` (MiniLM's top layer fine-tuned with a head, :mod:`~plinth.evals.guard.finetune`), a measured
variant that did not beat it on this machine (README, Measured)::

    build = trainer("tuned")
    model = build(rows)        # an AttackScorer; model.thresholds is empty until calibrated
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

from plinth.evals.guard.finetune import DEFAULT_STATES, Recipe, StateCache, finetune
from plinth.evals.guard.fit import INPUT_ONLY_SOURCES, cache_for, cached_vectorizer, fit
from plinth.evals.guard.texts import LabelledText
from plinth.guard import ATTACK_FEATURES, AttackClassifier, AttackEncoder, AttackScorer, Vectorize
from plinth.llm.embedder import DEFAULT_EMBEDDING_MODEL

__all__ = ["MODELS", "ModelKind", "Trainer", "logistic", "trainer", "tuned"]

ModelKind = Literal["logistic", "tuned"]
MODELS: tuple[ModelKind, ...] = ("logistic", "tuned")
Trainer = Callable[[Sequence[LabelledText]], AttackScorer]


def trainer(kind: ModelKind = "logistic", *, cache: bool = True) -> Trainer:
    """A function from training rows to a model of ``kind``, reading frozen features through the on-disk
    caches when ``cache`` (a rerun then computes only new texts)."""
    if kind == "tuned":
        return tuned(StateCache(AttackEncoder.from_base(), DEFAULT_STATES if cache else None))
    return logistic(
        cached_vectorizer(cache_for(ATTACK_FEATURES) if cache else None, ATTACK_FEATURES), ATTACK_FEATURES
    )


def tuned(states: StateCache, recipe: Recipe | None = None) -> Trainer:
    """The fine-tuned variant, never on the input-only sources (it was measured without them; its
    figures come from the corpus without them too: ``--no-augment``)."""
    return lambda rows: finetune(
        [r for r in rows if r.source not in INPUT_ONLY_SOURCES], states, recipe or Recipe()
    )


def logistic(embed: Vectorize, model_id: str = DEFAULT_EMBEDDING_MODEL) -> Trainer:
    """A head over the features ``model_id`` names, computed by ``embed`` (a cache of them, in training).
    Rows of :data:`~plinth.evals.guard.fit.INPUT_ONLY_SOURCES` train the input stage's head only: when
    there are any, the data stage gets a head of its own, fit without them."""

    def build(rows: Sequence[LabelledText]) -> AttackClassifier:
        head = fit(list(rows), embed, model_id=model_id)
        heads = {}
        if any(r.source in INPUT_ONLY_SOURCES for r in rows):
            data = fit([r for r in rows if r.source not in INPUT_ONLY_SOURCES], embed, model_id=model_id)
            heads["data"] = (data.coef, data.intercept)
        return AttackClassifier(head.coef, head.intercept, model_id=model_id, embed=embed, heads=heads)

    return build
