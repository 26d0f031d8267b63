"""What an evaluation runs: one typed spec, the body of ``POST /v1/evaluations`` and the YAML file of
``plinth eval run``.

A spec names a dataset (an uploaded ``evals`` file id, or a JSONL path for the CLI), one or two targets
(two are compared item by item), the programmatic metrics, and optionally a judge::

    dataset: movies.jsonl
    targets:
      - {type: knowledge_base, model: smollm2-135m-instruct, knowledge_base: movies}
    metrics: [token_f1, rouge_l, contains]
    judge: {model: smollm2-135m-instruct, criteria: [correctness, faithfulness], samples: 3,
            sampling_rate: 0.5, master: null}
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from plinth.evals.judge import CRITERIA, JudgeConfig
from plinth.evals.metrics import TEXT_METRICS

__all__ = ["METRICS", "EvalSpec", "JudgeSpec", "TargetSpec"]

METRICS = (*TEXT_METRICS, "sql_execution")  # latency, tokens and retrieval metrics are always recorded
DEFAULT_TEXT_METRICS = ["exact_match", "contains", "token_f1", "rouge_l", "bleu"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TargetSpec(_Strict):
    """A served model or adapter (``model``), its retrieve-and-generate over ``knowledge_base``, or its
    ask loop over the SQL dataset ``sql_dataset``.

    ``adapter`` runs ``model`` with a LoRA adapter: through the API, the name of one of the tenant's
    adapters on that base model (the same as naming the adapter as ``model``); with ``plinth eval run``,
    an adapter folder (relative to the spec) or a packaged adapter's name, merged into ``model`` here.
    """

    type: Literal["model", "knowledge_base", "sql"] = "model"
    model: str = Field(min_length=1)
    adapter: str | None = Field(None, min_length=1)
    name: str | None = None  # the label in reports; default "<type>:<model>[+<adapter>]"
    system: str | None = None  # a system prompt (model targets)
    max_tokens: int = Field(256, ge=1, le=8192)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    knowledge_base: str | None = None
    k: int = Field(5, ge=1, le=100)
    search_type: Literal["LEXICAL", "SEMANTIC", "HYBRID"] = "HYBRID"
    sql_dataset: str | None = None

    @model_validator(mode="after")
    def _needs(self) -> TargetSpec:
        if self.type == "knowledge_base" and not self.knowledge_base:
            raise ValueError("a knowledge_base target needs 'knowledge_base' (the knowledge base's name)")
        if self.type == "sql" and not self.sql_dataset:
            raise ValueError("a sql target needs 'sql_dataset' (the SQL dataset's name)")
        return self

    @property
    def label(self) -> str:
        where = {"knowledge_base": self.knowledge_base, "sql": self.sql_dataset}.get(self.type)
        adapter = f"+{self.adapter.rstrip('/').rsplit('/', 1)[-1]}" if self.adapter else ""
        return self.name or f"{self.type}:{self.model}{adapter}" + (f"@{where}" if where else "")


class JudgeSpec(_Strict):
    """The judge: any served model or adapter; ``master`` adds a second layer that reviews its verdicts."""

    model: str = Field(min_length=1)
    master: str | None = None
    criteria: list[str] = Field(default_factory=lambda: ["correctness", "relevance"])
    rubrics: dict[str, str] = Field(default_factory=dict)  # custom criteria: name -> what 5 and 1 mean
    samples: int = Field(1, ge=1, le=15)  # self-consistency: votes per verdict
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    sampling_rate: float = Field(1.0, ge=0.0, le=1.0)  # the seeded fraction of items judged
    seed: int = 0
    max_tokens: int = Field(832, ge=64, le=4096)  # caps the verdict; its reasoning is sized to fit
    constrained: bool = True  # enforce the verdict's JSON schema with a grammar

    @model_validator(mode="after")
    def _known(self) -> JudgeSpec:
        unknown = [c for c in self.criteria if c not in CRITERIA]
        if unknown:
            raise ValueError(f"unknown criteria {unknown}; choose from {sorted(CRITERIA)} or add rubrics")
        if clash := sorted(set(self.rubrics) & set(CRITERIA)):
            raise ValueError(f"rubric names {clash} are built-in criteria; rename them")
        if not self.criteria and not self.rubrics:
            raise ValueError("the judge needs at least one criterion or rubric")
        return self

    def config(self) -> JudgeConfig:
        return JudgeConfig(
            tuple(self.criteria), dict(self.rubrics), self.samples, self.temperature, self.seed,
            self.max_tokens, constrained=self.constrained,
        )  # fmt: skip


class EvalSpec(_Strict):
    name: str | None = Field(None, max_length=200)
    dataset: str = Field(min_length=1, description="An uploaded `evals` file id (API); a JSONL path (CLI).")
    targets: list[TargetSpec] = Field(min_length=1, max_length=2)
    metrics: list[str] | None = None  # default: text metrics (sql targets: sql_execution)
    judge: JudgeSpec | None = None
    limit: int | None = Field(None, ge=1)  # only the first N items
    concurrency: int = Field(1, ge=1, le=64)  # (item, target) pairs in flight at once
    bootstrap_resamples: int = Field(1000, ge=100, le=100_000)
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> EvalSpec:
        if self.metrics is not None and (unknown := [m for m in self.metrics if m not in METRICS]):
            raise ValueError(f"unknown metrics {unknown}; choose from {list(METRICS)}")
        labels = [t.label for t in self.targets]
        if len(set(labels)) != len(labels):
            raise ValueError("the two targets have the same label; give one a 'name'")
        return self

    def metrics_for(self, target: TargetSpec) -> list[str]:
        if self.metrics is not None:
            return self.metrics
        return ["sql_execution"] if target.type == "sql" else DEFAULT_TEXT_METRICS
