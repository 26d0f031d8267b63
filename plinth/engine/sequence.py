"""One request as the scheduler sees it: token ids, KV blocks, progress and sampling state."""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass, field

from plinth.engine.sampler import SamplingState
from plinth.engine.sampling_params import SamplingParams

_arrivals = itertools.count()


class Status(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"


@dataclass(eq=False)
class Sequence:
    """A request's tokens (prompt + generated) and how much of them the KV cache already holds.

    ``num_computed`` tokens have K/V in the cache; the rest are computed by the next step(s). After a
    preemption ``num_computed`` drops to 0 and the whole sequence is recomputed (prefix blocks that
    are still cached make that cheap).
    """

    request_id: str
    token_ids: list[int]
    params: SamplingParams
    sampling: SamplingState
    num_prompt_tokens: int = 0
    num_computed: int = 0
    num_cached_tokens: int = 0
    block_table: list[int] = field(default_factory=list)
    status: Status = Status.WAITING
    finish_reason: str | None = None
    arrival: int = field(default_factory=lambda: next(_arrivals))
    lora_key: str | None = None  # generation key of the adapter (see LoraManager), None: base model
    lora_slot: int | None = None  # its compute slot while running
    bypassed: int = 0  # requests admitted ahead of this one while it waited for an adapter slot

    def __post_init__(self) -> None:
        self.num_prompt_tokens = self.num_prompt_tokens or len(self.token_ids)

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def output_token_ids(self) -> list[int]:
        return self.token_ids[self.num_prompt_tokens :]

    @property
    def num_output_tokens(self) -> int:
        return self.num_tokens - self.num_prompt_tokens

    @property
    def is_finished(self) -> bool:
        return self.status is Status.FINISHED

    def append_token(self, token_id: int) -> bool:
        """Append a generated token; False when the request's grammar rejects it."""
        self.token_ids.append(token_id)
        return self.sampling.accept(token_id)
