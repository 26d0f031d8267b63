"""The shipped test double for :class:`~plinth.llm.served.ServedModel` (as httpx ships MockTransport).

Server routes are tested against it without an engine. :class:`ScriptedServedModel` answers every
prompt with the same token script and records what happened to each request -- ``finished`` when its
stream ran to the end, ``aborted`` when it was closed early (how tests check that a client disconnect
aborts the engine request). :class:`ScriptedRepliesModel` answers each request with the next whole reply
of a list, for routes that drive a model through its chat view (RAG, SQL ask)::

    model = ScriptedServedModel()                   # "Hello there, friend." then EOS, ids 10, 11, ...
    app = create_app(Settings(no_auth=True), [model], control_plane)
    model.finished, model.aborted                   # request ids, after the requests ran
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from plinth.engine import (
    AdapterError,
    EngineStats,
    Grammar,
    LoraAdapter,
    LoraStats,
    PromptTooLongError,
    SamplingParams,
    TokenLogprob,
)
from plinth.llm.base import ChatModel, ChatOptions
from plinth.llm.grammar import GrammarSpec, grammar_definition
from plinth.llm.local import ChatView, TextDelta
from plinth.llm.tool_formats import ToolFormat

__all__ = ["EOS", "SCRIPT", "ScriptedGrammar", "ScriptedRepliesModel", "ScriptedServedModel"]

EOS = 2  # the double's end-of-sequence id; script tokens are 10, 11, ...
SCRIPT = ("Hello", " there", ",", " friend", ".")


class ScriptedServedModel:
    """Answers every prompt with ``script`` (token ids 10, 11, ...; EOS last when it stops naturally).

    A base model without adapter support (``lora_enabled`` is False). ``engine_stats`` is what
    :meth:`stats` reports (None: no engine to ask). ``calls`` records ``(prompt_ids, params, stop,
    request_id)`` per stream.
    """

    def __init__(
        self,
        name: str = "fake-model",
        script: Sequence[str] = SCRIPT,
        max_model_len: int = 64,
        is_random: bool = False,
        delay: float = 0.0,
        cached: int = 0,
    ) -> None:
        self.name, self.script, self.max_model_len = name, list(script), max_model_len
        self.is_random, self.delay, self.cached = is_random, delay, cached
        self.parent: str | None = None
        self.engine_stats: EngineStats | None = EngineStats(
            num_running=1, num_waiting=3, kv_blocks_used=5, kv_blocks_total=20, last_batch_size=1,
            last_batch_tokens=1, num_preemptions=0,
        )  # fmt: skip
        self.calls: list[tuple[list[int], SamplingParams, tuple[str, ...], str | None]] = []
        self.tools_seen: list[Any] = []  # the ``tools`` the last chat prompt was rendered with
        self.finished: list[str | None] = []
        self.aborted: list[str | None] = []
        self.is_shut_down = False

    # -- ServedModel ----------------------------------------------------------------------------

    @property
    def metrics_label(self) -> str:
        return self.name

    @property
    def eos_token_id(self) -> int | None:
        return EOS

    def encode(self, text: str) -> list[int]:
        return [1] + [3 + (ord(c) % 7) for c in text]

    def encode_chat(self, messages: Sequence[Any], tools: Sequence[Any] | None = None) -> list[int]:
        self.tools_seen = list(tools or [])
        return self.encode("".join(f"<{m['role']}>{m['content']}" for m in messages))

    @property
    def tool_format(self) -> ToolFormat:
        """Plinth's default format (the scripted text is the reply, whatever the prompt says)."""
        return ToolFormat()

    def token_text(self, token_id: int) -> str:
        if token_id == EOS:
            return "</s>"
        index = token_id - 10
        return self.script[index] if 0 <= index < len(self.script) else f"<{token_id}>"

    def sampling_params(self, options: ChatOptions | None, prompt_len: int) -> SamplingParams:
        max_tokens = options.max_tokens if options is not None and options.max_tokens else 64
        return SamplingParams(max_tokens=max_tokens)

    def compile_grammar(self, spec: GrammarSpec) -> Grammar:
        """Checks ``spec`` as the real model does (GrammarError when unsupported); the script ignores it."""
        grammar_definition(spec)
        return ScriptedGrammar(spec)

    def stream(
        self,
        prompt_ids: Sequence[int],
        params: SamplingParams,
        stop: Sequence[str] = (),
        request_id: str | None = None,
        adapter: str | None = None,
    ) -> AsyncIterator[TextDelta]:
        if len(prompt_ids) + params.max_tokens > self.max_model_len:
            raise PromptTooLongError(len(prompt_ids), params.max_tokens, self.max_model_len)
        self.calls.append((list(prompt_ids), params, tuple(stop), request_id))
        return self._run(list(prompt_ids), params, request_id)

    def stats(self) -> EngineStats | None:
        return self.engine_stats

    def as_chat_model(self) -> ChatModel:
        return ChatView(self)

    # -- AdapterHost (no adapter support) ---------------------------------------------------------

    @property
    def lora_enabled(self) -> bool:
        return False

    @property
    def checkpoint_path(self) -> Path | None:
        return None

    def add_adapter(self, name: str, path: Path, preload: bool = True) -> LoraAdapter:
        raise AdapterError(name, "this model does not serve adapters")

    def remove_adapter(self, name: str) -> bool:
        return False

    def adapter_tier(self, name: str) -> str | None:
        return None

    def lora_stats(self) -> LoraStats | None:
        return None

    def shutdown(self) -> None:
        self.is_shut_down = True

    # -- the script -------------------------------------------------------------------------------

    async def _run(self, prompt: list[int], params: SamplingParams, rid: Any) -> AsyncIterator[TextDelta]:
        n = min(params.max_tokens, len(self.script))
        reason = "length" if params.max_tokens < len(self.script) else "stop"
        done = False
        try:
            for i in range(n):
                await asyncio.sleep(self.delay)
                last = i == n - 1
                tid = EOS if last and reason == "stop" else 10 + i
                text = "" if tid == EOS else self.script[i]
                lps = None if params.logprobs is None else [_logprob(tid, params.logprobs)]
                finish = reason if last else None
                yield TextDelta(text, [tid], lps, finish, len(prompt), i + 1, self.cached)
            done = True
        finally:
            (self.finished if done else self.aborted).append(rid)


class ScriptedGrammar:
    """What the double's ``compile_grammar`` returns: the spec, for tests to inspect in ``calls``."""

    def __init__(self, spec: GrammarSpec) -> None:
        self.spec = spec

    def new_matcher(self) -> Any:
        raise NotImplementedError("the scripted model does not run grammars")


def _logprob(token_id: int, k: int) -> TokenLogprob:
    top = {token_id: -0.25, 50: -1.5, 51: -2.5, 52: -3.5}
    return TokenLogprob(token_id, -0.25, dict(list(top.items())[:k]))


class ScriptedRepliesModel(ScriptedServedModel):
    """Answers each request with the next of ``replies``: whole in one delta, or in pieces of
    ``chunk_size`` characters as an engine streams it. ``messages`` records each chat prompt's
    messages and ``calls`` each request. Running out of replies is an error (an unexpected extra
    call)."""

    def __init__(
        self, replies: Sequence[str] = (), name: str = "fake-model", chunk_size: int | None = None
    ) -> None:
        super().__init__(name, max_model_len=32768)
        self.replies = list(replies)
        self.chunk_size = chunk_size
        self.messages: list[list[dict[str, str]]] = []

    def encode_chat(self, messages: Sequence[Any], tools: Sequence[Any] | None = None) -> list[int]:
        self.messages.append(list(messages))
        self.tools_seen = list(tools or [])
        return [1, 2, 3]

    def stream(
        self,
        prompt_ids: Sequence[int],
        params: SamplingParams,
        stop: Sequence[str] = (),
        request_id: str | None = None,
        adapter: str | None = None,
    ) -> AsyncIterator[TextDelta]:
        if not self.replies:
            raise RuntimeError("ScriptedRepliesModel ran out of replies")
        self.calls.append((list(prompt_ids), params, tuple(stop), request_id))
        text, prompt_len = self.replies.pop(0), len(prompt_ids)
        size = self.chunk_size or max(len(text), 1)
        pieces = [text[i : i + size] for i in range(0, len(text), size)] or [""]

        async def deltas() -> AsyncIterator[TextDelta]:
            for i, piece in enumerate(pieces):
                last = i == len(pieces) - 1
                yield TextDelta(piece, [5], None, "stop" if last else None, prompt_len, i + 1, 0)

        return deltas()


if TYPE_CHECKING:  # mypy proves the engine's model and this double both satisfy the seam
    from plinth.llm.local import LocalModel
    from plinth.llm.served import AdapterHost

    _local: type[AdapterHost] = LocalModel
    _double: type[AdapterHost] = ScriptedServedModel
    _replies: type[AdapterHost] = ScriptedRepliesModel
