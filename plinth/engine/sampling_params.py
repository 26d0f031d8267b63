"""Per-request sampling settings, validated once when a request is created.

The engine sees token ids only: stop *strings* are matched above it (``plinth.llm``), which aborts
the request when one appears, and a ``grammar`` (constrained decoding) arrives compiled against the
tokenizer (see :mod:`plinth.engine.guided`). Everything here is about ids and probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from plinth.engine.guided import Grammar


INTERACTIVE_PRIORITY, BATCH_PRIORITY = 0, 1  # the priority classes the server uses


class SamplingParamsError(ValueError):
    """An out-of-range setting; ``param`` names it so the server can answer a precise 400."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param


@dataclass(slots=True)
class SamplingParams:
    """How to pick each next token of one request (OpenAI/vLLM semantics).

    >>> SamplingParams(max_tokens=8, temperature=0.0).is_greedy
    True
    """

    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0 (or -1) turns it off
    min_p: float = 0.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    seed: int | None = None
    stop_token_ids: tuple[int, ...] = field(default_factory=tuple)
    ignore_eos: bool = False
    min_tokens: int = 0
    logprobs: int | None = None  # None: off; N >= 0: the sampled token's logprob plus the top N
    grammar: Grammar | None = None  # constrained decoding: only tokens the grammar allows are sampled
    priority: int = (
        0  # priority class: lower runs first (INTERACTIVE_PRIORITY), BATCH_PRIORITY yields (see Scheduler)
    )
    share_group: str | None = None  # fair-share group (the server passes the tenant): admitted round-robin

    def __post_init__(self) -> None:
        self.stop_token_ids = tuple(self.stop_token_ids)
        if self.top_k == -1:
            self.top_k = 0
        _check(self.max_tokens >= 1, "max_tokens", f"must be at least 1, got {self.max_tokens}")
        _check(0.0 <= self.temperature <= 2.0, "temperature", f"must be in [0, 2], got {self.temperature}")
        _check(0.0 < self.top_p <= 1.0, "top_p", f"must be in (0, 1], got {self.top_p}")
        _check(self.top_k >= 0, "top_k", f"must be -1, 0 or positive, got {self.top_k}")
        _check(0.0 <= self.min_p <= 1.0, "min_p", f"must be in [0, 1], got {self.min_p}")
        for name in ("presence_penalty", "frequency_penalty"):
            value = getattr(self, name)
            _check(-2.0 <= value <= 2.0, name, f"must be in [-2, 2], got {value}")
        _check(
            0.0 < self.repetition_penalty <= 2.0,
            "repetition_penalty",
            f"must be in (0, 2], got {self.repetition_penalty}",
        )
        _check(0 <= self.min_tokens <= self.max_tokens, "min_tokens", "must be in [0, max_tokens]")
        _check(self.priority >= 0, "priority", f"must be 0 or more, got {self.priority}")
        seed_ok = self.seed is None or 0 <= self.seed < 2**63  # a torch generator's seed
        _check(seed_ok, "seed", f"must be in [0, 2**63 - 1], got {self.seed}")
        _check(all(t >= 0 for t in self.stop_token_ids), "stop_token_ids", "must be token ids (>= 0)")
        if self.logprobs is not None:
            _check(0 <= self.logprobs <= 20, "logprobs", f"must be in [0, 20], got {self.logprobs}")

    @property
    def is_greedy(self) -> bool:
        return self.temperature == 0.0


def _check(ok: bool, param: str, message: str) -> None:
    if not ok:
        raise SamplingParamsError(param, message)
