"""The ``local`` provider: the in-process engine plus the checkpoint's own tokenizer and chat template.

The engine sees token ids only; this module owns everything textual around it: chat template -> ids,
ids -> streamed text (:mod:`plinth.llm.detokenizer`), stop strings, and the mapping from
:class:`~plinth.llm.base.ChatOptions` to :class:`~plinth.engine.sampling_params.SamplingParams`.
The HTTP server uses :meth:`LocalModel.stream` directly (it needs ids, logprobs and token counts);
features use the :class:`~plinth.llm.base.ChatModel` view from :meth:`LocalModel.as_chat_model`.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import threading
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from plinth.engine import (
    AsyncLLMEngine,
    EngineConfig,
    EngineStats,
    Grammar,
    PromptTooLongError,
    RequestOutput,
    SamplingParams,
    TokenLogprob,
)
from plinth.engine.allocator import release_freed_memory
from plinth.engine.weights import resolve_checkpoint
from plinth.llm.base import ChatModel, ChatOptions, ChatResult, Message, Usage
from plinth.llm.detokenizer import IncrementalDetokenizer, StopMatcher
from plinth.llm.grammar import GrammarCompiler, GrammarSpec
from plinth.llm.tokenizer import load_tokenizer
from plinth.llm.tool_formats import ToolFormat, detect_tool_format

DEFAULT_MAX_TOKENS = 512  # for ChatOptions.max_tokens=None; capped by the context left after the prompt


class GenerationError(RuntimeError):
    """The engine could not compute this request (other requests were not affected)."""


@dataclass(slots=True)
class TextDelta:
    """One engine step as text: the new ``text`` (may be "" while bytes or a stop string are pending),
    the step's ``token_ids`` and ``logprobs``, and running counts. ``finish_reason`` is set on the last
    delta only: ``"stop"`` (EOS, stop token or stop string), ``"length"`` or ``"abort"``. A request
    whose computation failed in the engine raises :class:`GenerationError` instead."""

    text: str
    token_ids: list[int]
    logprobs: list[TokenLogprob] | None
    finish_reason: str | None
    num_prompt_tokens: int
    num_output_tokens: int
    num_cached_tokens: int = 0


class LocalModel:
    """An engine and its tokenizer. Build one with :meth:`load`; tests pass any engine object that has
    ``generate(ids, params, request_id=)`` (an async iterator of RequestOutput) and ``abort(id)``."""

    def __init__(
        self,
        engine: Any,
        tokenizer: Any,
        *,
        name: str,
        max_model_len: int,
        is_random: bool = False,
        parent: str | None = None,
        defaults: dict[str, Any] | None = None,
    ) -> None:
        self.engine = engine
        self.tokenizer = tokenizer
        self.name = name
        self.max_model_len = max_model_len
        self.is_random = is_random
        self.parent = parent  # set when this serves an adapter merged into ``parent`` (--merge-lora)
        self.defaults = dict(defaults or {})  # the checkpoint's recommended SamplingParams fields
        self._grammars: GrammarCompiler | None = None  # built on first use (reads the vocabulary)
        self._grammars_lock = threading.Lock()

    @classmethod
    def load(cls, config: EngineConfig, name: str | None = None) -> LocalModel:
        """Load the checkpoint named by ``config.model`` (a directory, hub id or ``.gguf``) and start
        the engine's background stepping.

        The tokenizer is loaded first, and the heap trimmed after it: reading it (a GGUF's vocabulary
        and merges converted by transformers) leaves ~25 MB of transient Python objects, which on top
        of a loaded engine were the server's peak RSS (issue 18 compares it with llama.cpp's)."""
        path = resolve_checkpoint(config.model, config.revision)
        tokenizer = load_tokenizer(path)
        gc.collect()
        release_freed_memory()
        resolved = dataclasses.replace(config, model=str(path))
        engine = AsyncLLMEngine.from_config(resolved, name or config.model)
        mc = engine.model_config
        return cls(
            engine,
            tokenizer,
            name=name or mc.name,
            max_model_len=mc.max_model_len,
            is_random=mc.is_random,
            defaults=mc.generation_defaults,
        )

    def shutdown(self) -> None:
        self.engine.shutdown()

    # -- what the server reads (the ServedModel protocol, plinth.llm.served) ------------------------

    @property
    def metrics_label(self) -> str:
        return self.name

    @property
    def eos_token_id(self) -> int | None:
        return getattr(self.tokenizer, "eos_token_id", None)

    @property
    def checkpoint_path(self) -> Path | None:
        return getattr(getattr(self.engine, "model_config", None), "path", None)

    def stats(self) -> EngineStats | None:
        """The engine's queue and KV-cache gauges (None for test engines without them)."""
        stats = getattr(getattr(self.engine, "engine", None), "stats", None)
        return stats() if callable(stats) else None

    # -- adapters (engine-level names; tenancy lives in the server) -------------------------------

    @property
    def lora_enabled(self) -> bool:
        """Whether this model's engine serves adapters (False for fakes and ``enable_lora=False``)."""
        return self.lora_stats() is not None

    def add_adapter(self, name: str, path: Path, preload: bool = True) -> Any:
        """Validate and register a PEFT folder (reads files: call it from a worker thread)."""
        return self.engine.engine.add_lora(name, Path(path), preload)

    def remove_adapter(self, name: str) -> bool:
        """Unregister: running requests finish, new ones for ``name`` fail."""
        return self.engine.engine.remove_lora(name)

    def adapters(self) -> list[str]:
        return self.engine.engine.list_loras()

    def adapter_tier(self, name: str) -> str | None:
        """``"resident"``, ``"cached"`` or ``"disk"`` for a registered adapter (see LoraManager.tier)."""
        lora = getattr(self.engine.engine, "lora", None)
        return None if lora is None else lora.tier(name)

    def lora_stats(self) -> Any | None:
        """The engine's ``LoraStats``, or None when it has no adapter support."""
        lora_stats = getattr(getattr(self.engine, "engine", None), "lora_stats", None)
        return lora_stats() if callable(lora_stats) else None

    # -- text <-> ids ---------------------------------------------------------------------------

    def encode_chat(
        self, messages: Sequence[Message] | Sequence[dict], tools: Sequence[Any] | None = None
    ) -> list[int]:
        """Prompt ids from the checkpoint's own chat template, ending with the assistant's turn start;
        ``tools`` (OpenAI's shape) go to the template as its ``tools``."""
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(f"model {self.name!r} has no chat template; use the completions API")
        text = self.tokenizer.apply_chat_template(
            list(messages), tools=list(tools) if tools else None, add_generation_prompt=True, tokenize=False
        )
        return self.tokenizer.encode(text, add_special_tokens=False)  # the template already has BOS

    @functools.cached_property
    def tool_format(self) -> ToolFormat:
        """The tool-call convention of this checkpoint's chat template (detected once)."""
        return detect_tool_format(self.tokenizer)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=True)

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def token_text(self, token_id: int) -> str:
        """One token's text for logprobs display (byte fragments show as U+FFFD)."""
        return self.tokenizer.decode([token_id], clean_up_tokenization_spaces=False)

    def compile_grammar(self, spec: GrammarSpec) -> Grammar:
        """``spec`` compiled against this model's tokenizer, for ``SamplingParams.grammar`` (cached by
        content; the first call reads the vocabulary). Raises GrammarError when it is unsupported."""
        with self._grammars_lock:
            if self._grammars is None:
                config = getattr(self.engine, "model_config", None)
                vocab = config.vocab_size if config is not None else len(self.tokenizer)
                eos = list(config.eos_token_ids) if config is not None else [self.eos_token_id]
                self._grammars = GrammarCompiler(self.tokenizer, vocab, [e for e in eos if e is not None])
        return self._grammars.compile(spec)

    # -- generation -----------------------------------------------------------------------------

    def stream(
        self,
        prompt_ids: Sequence[int],
        params: SamplingParams,
        stop: Sequence[str] = (),
        request_id: str | None = None,
        adapter: str | None = None,
    ) -> AsyncIterator[TextDelta]:
        """Generate from ``prompt_ids``, one :class:`TextDelta` per engine step.

        ``adapter`` is an engine-level adapter name; an unknown one raises the engine's
        ``UnknownAdapterError`` on the first iteration.

        Raises the engine's ``PromptTooLongError`` *at call time*, before anything is iterated, so the
        server can answer 400 before it starts a streaming response. On a stop string the text is cut
        before it, ``finish_reason`` is ``"stop"`` and the engine request is aborted; leaving the loop
        early (``aclose``, ``break`` then garbage collection, task cancellation) aborts it too.
        """
        self.check_prompt(prompt_ids, params)
        return self._stream(list(prompt_ids), params, stop, request_id or uuid.uuid4().hex, adapter)

    def check_prompt(self, prompt_ids: Sequence[int], params: SamplingParams) -> None:
        """Raise the engine's ``PromptTooLongError`` when prompt + max_tokens exceeds the context
        (the engine's own admission rule, checked here so it fails before a stream starts)."""
        if len(prompt_ids) + params.max_tokens > self.max_model_len:
            raise PromptTooLongError(len(prompt_ids), params.max_tokens, self.max_model_len)

    async def _stream(
        self,
        prompt_ids: list[int],
        params: SamplingParams,
        stop: Sequence[str],
        request_id: str,
        adapter: str | None = None,
    ) -> AsyncIterator[TextDelta]:
        detok = IncrementalDetokenizer(self.tokenizer, prompt_ids)
        matcher = StopMatcher(stop)
        extra = {"adapter": adapter} if adapter is not None else {}  # test engines may not take it
        outputs = self.engine.generate(prompt_ids, params, request_id=request_id, **extra)
        running = True  # the engine request is live; abort it on any early exit
        try:
            async for out in outputs:
                running = not out.finished
                if out.finish_reason == "error":
                    raise GenerationError(f"the model failed while generating request {request_id}")
                delta = _to_delta(out, detok, matcher)
                if running and delta.finish_reason == "stop":  # a stop string: free the engine now
                    running = False
                    await self.engine.abort(request_id)
                yield delta
                if delta.finish_reason is not None:
                    return
            running = False  # the engine ended without a final output: report it as aborted
            yield TextDelta(detok.flush() + matcher.flush(), [], None, "abort", len(prompt_ids), 0)
        finally:
            if running:
                await self.engine.abort(request_id)
            await outputs.aclose()

    # -- the ChatModel view ---------------------------------------------------------------------

    def sampling_params(self, options: ChatOptions | None, prompt_len: int) -> SamplingParams:
        """Map :class:`ChatOptions` onto the engine's params. A setting the request leaves ``None``
        takes the checkpoint's recommended value (``generation_config.json`` or GGUF metadata), else
        the engine default."""
        options = options or ChatOptions()
        room = max(1, self.max_model_len - prompt_len)  # a full context fails later, in check_prompt
        keys = ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty")
        given = {k: v for k in keys if (v := getattr(options, k)) is not None}
        settings: dict[str, Any] = {**self.defaults, **given}
        max_tokens = options.max_tokens or settings.pop("max_tokens", DEFAULT_MAX_TOKENS)
        settings.pop("max_tokens", None)
        if options.response_format is not None:
            settings["grammar"] = self.compile_grammar(options.response_format)
        return SamplingParams(max_tokens=min(max_tokens, room), **settings)

    def stream_chat(
        self, messages: list[Message], options: ChatOptions | None = None
    ) -> AsyncIterator[TextDelta]:
        """Chat messages in, :class:`TextDelta` out (the ChatModel view keeps only the text)."""
        return ChatView(self).deltas(messages, options)

    async def chat(self, messages: list[Message], options: ChatOptions | None = None) -> ChatResult:
        return await ChatView(self).chat(messages, options)

    def as_chat_model(self) -> ChatModel:
        """This model behind the :class:`ChatModel` protocol, for features."""
        return ChatView(self)


class ChatSource(Protocol):
    """What :class:`ChatView` needs of a model: a served model, or the server's metered view of one."""

    name: str

    def encode_chat(self, messages: Sequence[Any], tools: Sequence[Any] | None = None) -> list[int]: ...

    def sampling_params(self, options: ChatOptions | None, prompt_len: int) -> SamplingParams: ...

    def stream(
        self,
        prompt_ids: Sequence[int],
        params: SamplingParams,
        stop: Sequence[str] = (),
        request_id: str | None = None,
    ) -> AsyncIterator[TextDelta]: ...


class ChatView:
    """A served model behind the :class:`ChatModel` protocol: anything with ``name``, ``encode_chat``,
    ``sampling_params`` and an ids-level ``stream`` (a :class:`LocalModel`, the server's view of one
    adapter on it, whose ``stream`` selects the adapter, or the server's metered view of either)."""

    def __init__(self, model: ChatSource) -> None:
        self.model = model
        self.name = model.name

    async def deltas(
        self, messages: list[Message], options: ChatOptions | None = None
    ) -> AsyncIterator[TextDelta]:
        ids = self.model.encode_chat(messages)
        stop = options.stop if options else ()
        async for delta in self.model.stream(ids, self.model.sampling_params(options, len(ids)), stop):
            yield delta

    async def chat(self, messages: list[Message], options: ChatOptions | None = None) -> ChatResult:
        parts: list[str] = []
        last: TextDelta | None = None
        async for last in self.deltas(messages, options):
            parts.append(last.text)
        assert last is not None and last.finish_reason is not None
        usage = Usage(last.num_prompt_tokens, last.num_output_tokens)
        return ChatResult("".join(parts), last.finish_reason, usage)

    async def stream(self, messages: list[Message], options: ChatOptions | None = None) -> AsyncIterator[str]:
        async for delta in self.deltas(messages, options):
            if delta.text:
                yield delta.text


def _to_delta(out: RequestOutput, detok: IncrementalDetokenizer, matcher: StopMatcher) -> TextDelta:
    """Turn one engine output into a delta: detokenize, then cut at a stop string."""
    text = detok.add(out.new_token_ids)
    if out.finished:
        text += detok.flush()
    text, matched = matcher.feed(text)
    finish_reason = "stop" if matched else out.finish_reason if out.finished else None
    if out.finished and not matched:
        text += matcher.flush()
    return TextDelta(
        text,
        list(out.new_token_ids),
        out.new_logprobs,
        finish_reason,
        out.num_prompt_tokens,
        out.num_output_tokens,
        out.num_cached_tokens,
    )
