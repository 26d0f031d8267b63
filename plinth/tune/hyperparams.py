"""Fine-tuning hyperparameters, named as OpenAI's fine-tuning API names them, checked before training.

Contract: :class:`Hyperparameters` holds OpenAI's ``n_epochs``, ``batch_size`` (examples per optimizer
step) and ``learning_rate_multiplier`` (times :data:`BASE_LEARNING_RATE`, a usual LoRA rate), the LoRA
shape (``r``, ``alpha``, ``dropout``, ``target_modules``), ``seed`` and ``suffix``, plus what a
CPU run needs: ``micro_batch_size`` (examples per forward pass; ``batch_size / micro_batch_size`` is
the gradient accumulation), ``warmup_ratio`` (linear warm-up, then cosine decay to zero),
``max_length`` (tokens per example) and ``validation_split`` (held out when no validation file is
given). :meth:`Hyperparameters.problems` lists every bad value; :meth:`Hyperparameters.check` raises
:class:`HyperparameterError` with all of them, so a bad job fails before a model is loaded.

Example::

    >>> Hyperparameters(n_epochs=0, r=3).problems()
    ['n_epochs must be an integer from 1 to 50, not 0']
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from plinth.engine.lora import TARGETS

__all__ = ["BASE_LEARNING_RATE", "HyperparameterError", "Hyperparameters"]

BASE_LEARNING_RATE = 2e-4  # learning_rate_multiplier=1.0; a common rate for LoRA on small models
MAX_RANK = 256
_SUFFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class HyperparameterError(ValueError):
    """Hyperparameters that cannot be trained with; ``problems`` lists each one."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("bad hyperparameters: " + "; ".join(problems))


@dataclass(slots=True)
class Hyperparameters:
    n_epochs: int = 3
    batch_size: int = 8
    learning_rate_multiplier: float = 1.0
    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: tuple[str, ...] = TARGETS
    seed: int = 0
    suffix: str | None = None
    micro_batch_size: int | None = None  # None: the whole batch in one forward pass
    warmup_ratio: float = 0.1
    max_length: int = 1024
    validation_split: float = 0.1
    extra: dict[str, Any] = field(default_factory=dict)  # unknown names given by a caller, refused

    @property
    def learning_rate(self) -> float:
        return BASE_LEARNING_RATE * self.learning_rate_multiplier

    @property
    def forward_batch_size(self) -> int:
        return self.micro_batch_size or self.batch_size

    @property
    def gradient_accumulation_steps(self) -> int:
        return self.batch_size // self.forward_batch_size

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Hyperparameters:
        """From JSON (the API's ``hyperparameters`` object); unknown names become problems, not errors."""
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__ and k != "extra"}
        if isinstance(known.get("target_modules"), list):
            known["target_modules"] = tuple(known["target_modules"])
        return cls(**known, extra={k: v for k, v in values.items() if k not in known})

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values.pop("extra")
        values["target_modules"] = list(self.target_modules)
        return values

    def check(self) -> Hyperparameters:
        """``self`` if every value is usable, else :class:`HyperparameterError` listing all problems."""
        if problems := self.problems():
            raise HyperparameterError(problems)
        return self

    def problems(self) -> list[str]:
        found = [f"unknown hyperparameter {name!r}" for name in self.extra]
        found += _int_problem("n_epochs", self.n_epochs, 1, 50)
        found += _int_problem("batch_size", self.batch_size, 1, 1024)
        found += _float_problem("learning_rate_multiplier", self.learning_rate_multiplier, 0, 100)
        found += _int_problem("r", self.r, 1, MAX_RANK)
        found += _int_problem("alpha", self.alpha, 1, 10_000)
        found += _range_problem("dropout", self.dropout, 0, 1)
        found += _range_problem("warmup_ratio", self.warmup_ratio, 0, 1)
        found += _range_problem("validation_split", self.validation_split, 0, 0.5)
        found += _int_problem("max_length", self.max_length, 8, 1_000_000)
        found += _int_problem("seed", self.seed, 0, 2**32 - 1)
        found += self._target_problems() + self._batch_problems()
        if self.suffix is not None and not (isinstance(self.suffix, str) and _SUFFIX.match(self.suffix)):
            found.append(
                "suffix must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
        return found

    def _target_problems(self) -> list[str]:
        targets = self.target_modules
        if isinstance(targets, str) or not targets or not all(isinstance(t, str) for t in targets):
            return [f"target_modules must be a non-empty list of module names from {', '.join(TARGETS)}"]
        if unknown := [t for t in targets if t not in TARGETS]:
            return [f"target_modules {unknown} cannot be served; choose from {', '.join(TARGETS)}"]
        return []

    def _batch_problems(self) -> list[str]:
        micro = self.micro_batch_size
        if micro is None:
            return []
        if _int_problem("micro_batch_size", micro, 1, 1024):
            return _int_problem("micro_batch_size", micro, 1, 1024)
        if isinstance(self.batch_size, int) and self.batch_size % micro:
            return [f"batch_size {self.batch_size} must be a multiple of micro_batch_size {micro}"]
        return []


def _int_problem(name: str, value: Any, low: int, high: int) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return [f"{name} must be an integer from {low} to {high}, not {value!r}"]
    return []


def _float_problem(name: str, value: Any, above: float, high: float) -> list[str]:
    """A number in ``(above, high]``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not above < value <= high:
        return [f"{name} must be a number above {above} and at most {high}, not {value!r}"]
    return []


def _range_problem(name: str, value: Any, low: float, below: float) -> list[str]:
    """A number in ``[low, below)``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value < below:
        return [f"{name} must be a number from {low} up to (not including) {below}, not {value!r}"]
    return []
