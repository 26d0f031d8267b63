"""A fine-tuning job's request, as OpenAI's ``POST /v1/fine_tuning/jobs`` takes it, plus Plinth's ``lora``.

Shapes are checked here; values (ranges, target modules) by the trainer's own
:meth:`plinth.tune.Hyperparameters.problems` before the job is recorded, so a bad hyperparameter is a 400,
never a job that fails later. ``"auto"`` hyperparameters are settled here, from the training file's size, and
the job records the values it will use (as OpenAI shows them on the job)::

    request = FineTuneRequest.model_validate(body)
    hyper = request.resolved_hyperparameters(num_examples=1200)   # {"n_epochs": 3, "batch_size": 8, ...}
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from plinth.engine.lora import TARGETS

__all__ = ["FineTuneRequest", "Hyperparameters", "LoraOptions", "adapter_name"]
_SUFFIX = re.compile(r"[A-Za-z0-9._-]{1,40}")


class Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n_epochs: Literal["auto"] | int = "auto"
    batch_size: Literal["auto"] | int = "auto"
    learning_rate_multiplier: Literal["auto"] | float = "auto"


class _Supervised(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)


class Method(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["supervised"] = "supervised"
    supervised: _Supervised = Field(default_factory=_Supervised)


class LoraOptions(BaseModel):
    """Plinth's extension: the adapter's shape (served unmerged, so ``r`` is capped by the server's
    ``max_lora_rank``)."""

    model_config = ConfigDict(extra="forbid")

    r: int = Field(8, ge=1, le=256)
    alpha: int = Field(16, ge=1, le=10_000)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: list(TARGETS))


class FineTuneRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    training_file: str
    validation_file: str | None = None
    suffix: str | None = None
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    method: Method | None = None
    hyperparameters: Hyperparameters | None = None  # OpenAI's older top-level form
    lora: LoraOptions = LoraOptions.model_construct()  # the defaults; a new copy per request (pydantic)
    metadata: dict[str, str] | None = None

    @field_validator("suffix")
    @classmethod
    def _suffix(cls, value: str | None) -> str | None:
        if value is not None and not _SUFFIX.fullmatch(value):
            raise ValueError("suffix must be 1-40 letters, digits, '.', '_' or '-'")
        return value

    @model_validator(mode="after")
    def _one_hyperparameter_place(self) -> FineTuneRequest:
        if self.method is not None and self.hyperparameters is not None:
            raise ValueError(
                "give hyperparameters in method.supervised.hyperparameters or at the top, not both"
            )
        return self

    def given_hyperparameters(self) -> Hyperparameters:
        if self.method is not None:
            return self.method.supervised.hyperparameters
        return self.hyperparameters or Hyperparameters()

    def resolved_hyperparameters(self, num_examples: int) -> dict[str, Any]:
        """``auto`` settled: about 3 epochs for mid-sized sets (more for tiny ones), batch 8 or less."""
        given = self.given_hyperparameters()
        epochs = given.n_epochs if given.n_epochs != "auto" else 3 if num_examples >= 100 else 6
        batch = given.batch_size if given.batch_size != "auto" else max(1, min(8, num_examples // 10 or 1))
        multiplier = given.learning_rate_multiplier
        return {
            "n_epochs": epochs,
            "batch_size": batch,
            "learning_rate_multiplier": 1.0 if multiplier == "auto" else multiplier,
        }


def adapter_name(base: str, tenant: str, suffix: str | None, job_id: str) -> str:
    """OpenAI's fine-tuned model id shape: ``ft:<base>:<tenant>:<suffix>:<job>`` (empty suffix allowed)."""
    return f"ft:{base}:{tenant}:{suffix or ''}:{job_id.removeprefix('ftjob-')}"
