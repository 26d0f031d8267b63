"""One adapter on a base model, served: routes use it exactly like a base model.

``name`` is the adapter's (responses echo what the client asked for); ``metrics_label`` is the base
model's, so tenant adapter names never reach the unauthenticated ``/metrics``. Generation goes through
the base model's engine with the adapter's engine-level name (``"<owner>:<name>"``)::

    model = AdapterModel(base, "sql", "acme:sql")
    model.stream(ids, params)          # == base.stream(ids, params, adapter="acme:sql")
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from plinth.engine import EngineStats, Grammar, SamplingParams
from plinth.llm import GrammarSpec, ToolFormat
from plinth.llm.base import ChatModel, ChatOptions
from plinth.llm.local import ChatView, TextDelta
from plinth.llm.served import AdapterHost

__all__ = ["AdapterModel", "client_name"]


def client_name(engine_name: str) -> str:
    """The name a client uses for the adapter registered in the engine as ``engine_name``."""
    return engine_name.split(":", 1)[-1]


class AdapterModel:
    """A :class:`~plinth.llm.served.ServedModel`: ``base`` seen through the adapter ``engine_name``."""

    def __init__(self, base: AdapterHost, name: str, engine_name: str) -> None:
        self.base, self.name, self.engine_name = base, name, engine_name
        self.max_model_len = base.max_model_len
        self.is_random = base.is_random
        self.parent: str | None = None

    @property
    def metrics_label(self) -> str:
        return self.base.metrics_label

    @property
    def eos_token_id(self) -> int | None:
        return self.base.eos_token_id

    def encode(self, text: str) -> list[int]:
        return self.base.encode(text)

    def encode_chat(self, messages: Sequence[Any], tools: Sequence[Any] | None = None) -> list[int]:
        return self.base.encode_chat(messages, tools)

    @property
    def tool_format(self) -> ToolFormat:
        return self.base.tool_format

    def token_text(self, token_id: int) -> str:
        return self.base.token_text(token_id)

    def sampling_params(self, options: ChatOptions | None, prompt_len: int) -> SamplingParams:
        return self.base.sampling_params(options, prompt_len)

    def compile_grammar(self, spec: GrammarSpec) -> Grammar:
        return self.base.compile_grammar(spec)  # an adapter shares its base's tokenizer

    def stream(
        self,
        prompt_ids: Sequence[int],
        params: SamplingParams,
        stop: Sequence[str] = (),
        request_id: str | None = None,
    ) -> AsyncIterator[TextDelta]:
        return self.base.stream(prompt_ids, params, stop, request_id, adapter=self.engine_name)

    def stats(self) -> EngineStats | None:
        return self.base.stats()

    def as_chat_model(self) -> ChatModel:
        """The chat view drives this object's ``stream`` (which selects the adapter), never the base's."""
        return ChatView(self)


if TYPE_CHECKING:  # mypy proves the adapter view satisfies the seam routes call
    from plinth.llm.served import ServedModel

    _adapter: type[ServedModel] = AdapterModel
