"""The seam between the HTTP server and a model it serves: what routes call, typed.

Features see a :class:`~plinth.llm.base.ChatModel` (text in, text out). The server needs more: token ids
(OpenAI logprobs, LMI ``details``), its own sampling params, token counts, engine gauges. That is
:class:`ServedModel`, implemented by :class:`~plinth.llm.local.LocalModel` and by the server's view of
one adapter on a base model. :class:`AdapterHost` is a base model as ``create_app`` receives it: a served
model that can also hold adapters, report adapter-cache numbers and shut down.

The shipped test double is :class:`~plinth.llm.scripted_served.ScriptedServedModel` (as
:class:`~plinth.llm.scripted.ScriptedModel` is ChatModel's)::

    app = create_app(Settings(no_auth=True), [ScriptedServedModel()], control_plane)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from plinth.engine import EngineStats, Grammar, LoraAdapter, LoraStats, SamplingParams
from plinth.llm.base import ChatModel, ChatOptions
from plinth.llm.grammar import GrammarSpec
from plinth.llm.tool_formats import ToolFormat

if TYPE_CHECKING:
    from plinth.llm.local import TextDelta

__all__ = ["AdapterHost", "ServedModel"]


@runtime_checkable
class ServedModel(Protocol):
    """A model the server generates with: text <-> ids, and an ids-level stream of text deltas."""

    name: str  # what clients put in ``model`` (and what responses echo)
    max_model_len: int  # prompt + completion tokens
    is_random: bool  # random weights: labelled as such wherever the model appears
    parent: str | None  # the base model an adapter was merged into (``--merge-lora``), else None

    @property
    def metrics_label(self) -> str:
        """The ``model`` label on ``/metrics``: always a base model's name, never a tenant's adapter."""
        ...

    @property
    def eos_token_id(self) -> int | None:
        """The tokenizer's end-of-sequence id (LMI reports a finish on it as ``eos_token``)."""
        ...

    def encode(self, text: str) -> list[int]:
        """A raw prompt's ids (with the tokenizer's special tokens, e.g. BOS)."""
        ...

    def encode_chat(self, messages: Sequence[Any], tools: Sequence[Any] | None = None) -> list[int]:
        """Prompt ids from the model's chat template (given ``tools`` as the template's ``tools``, in
        OpenAI's shape); ValueError when it has none."""
        ...

    @property
    def tool_format(self) -> ToolFormat:
        """How this model's template writes tools and calls (see :mod:`plinth.llm.tool_formats`)."""
        ...

    def token_text(self, token_id: int) -> str:
        """One token's text, for logprobs and LMI token details."""
        ...

    def sampling_params(self, options: ChatOptions | None, prompt_len: int) -> SamplingParams:
        """Chat options as engine params (the chat view's mapping)."""
        ...

    def compile_grammar(self, spec: GrammarSpec) -> Grammar:
        """A constraint compiled for this model's tokenizer (``SamplingParams.grammar``); raises
        :class:`~plinth.llm.grammar.GrammarError` naming what is unsupported."""
        ...

    def stream(
        self,
        prompt_ids: Sequence[int],
        params: SamplingParams,
        stop: Sequence[str] = (),
        request_id: str | None = None,
    ) -> AsyncIterator[TextDelta]:
        """One delta per engine step; raises PromptTooLongError at call time, before iterating.
        Closing the iterator early aborts the engine request."""
        ...

    def stats(self) -> EngineStats | None:
        """The engine's queue and KV-cache gauges, or None when there is no engine to ask."""
        ...

    def as_chat_model(self) -> ChatModel:
        """This model behind the ChatModel protocol, for features (RAG, SQL ask)."""
        ...


@runtime_checkable
class AdapterHost(ServedModel, Protocol):
    """A base model as ``create_app`` gets it: it serves, holds LoRA adapters by engine-level name
    (tenancy lives in :mod:`plinth.adapters`), and is shut down with the server."""

    @property
    def lora_enabled(self) -> bool:
        """Whether this model's engine serves adapters."""
        ...

    @property
    def checkpoint_path(self) -> Path | None:
        """Where its weights were read from (matched against an adapter's declared base model)."""
        ...

    def stream(
        self,
        prompt_ids: Sequence[int],
        params: SamplingParams,
        stop: Sequence[str] = (),
        request_id: str | None = None,
        adapter: str | None = None,
    ) -> AsyncIterator[TextDelta]:
        """:meth:`ServedModel.stream`, through the engine-level adapter ``adapter`` when given."""
        ...

    def add_adapter(self, name: str, path: Path, preload: bool = True) -> LoraAdapter:
        """Validate and register a PEFT folder under ``name``; raises the engine's AdapterError.
        ``preload``: keep it in host memory now (False: on disk until a request needs it)."""
        ...

    def remove_adapter(self, name: str) -> bool:
        """Unregister: running requests finish, new ones for ``name`` fail."""
        ...

    def adapter_tier(self, name: str) -> str | None:
        """``"resident"``, ``"cached"`` or ``"disk"``; None when the model cannot say."""
        ...

    def lora_stats(self) -> LoraStats | None:
        """Adapter-cache numbers, or None without adapter support."""
        ...

    def shutdown(self) -> None: ...
