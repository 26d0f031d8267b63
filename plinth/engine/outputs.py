"""What the engine reports after each step: new token ids per request, never text."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class TokenLogprob:
    """The sampled token's log-probability and the ``top`` alternatives (id -> logprob)."""

    token_id: int
    logprob: float
    top: dict[int, float]


@dataclass(slots=True)
class RequestOutput:
    """One request's progress in one engine step.

    ``new_token_ids`` holds the tokens produced since the previous output for this request (one per
    decode step, so callers can stream them). ``finish_reason`` is ``"stop"`` (EOS or a stop token id),
    ``"length"`` (max_tokens or max_model_len), ``"abort"`` or ``"error"`` (its computation failed);
    it is set only when ``finished``.
    """

    request_id: str
    new_token_ids: list[int]
    new_logprobs: list[TokenLogprob] | None
    finished: bool
    finish_reason: str | None
    num_prompt_tokens: int
    num_output_tokens: int
    num_cached_tokens: int = 0
