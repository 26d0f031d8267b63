"""Request bodies of the OpenAI-compatible API, and their mapping onto the engine's SamplingParams.

Only the shapes live here: pydantic checks types (a mistyped field is a 400 naming it), SamplingParams
checks ranges (its ``SamplingParamsError.param`` names the field). Fields OpenAI clients send that Plinth
does not use (``user``, ``tools``...) are accepted and ignored, as OpenAI-compatible servers do.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from plinth.engine import Grammar, SamplingParams
from plinth.llm import GrammarSpec
from plinth.server.errors import APIError

__all__ = [
    "ChatMessage",
    "ChatRequest",
    "CompletionRequest",
    "EmbeddingRequest",
    "GuidedFields",
    "ResponseFormat",
    "StreamOptions",
]


class StreamOptions(BaseModel):
    include_usage: bool = False


class JSONSchemaFormat(BaseModel):
    """OpenAI's ``response_format.json_schema``; a missing ``schema`` means any JSON object."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    name: str
    schema_: dict[str, Any] | bool | None = Field(None, alias="schema")
    strict: bool | None = None
    description: str | None = None


class ResponseFormat(BaseModel):
    """``{"type": "text" | "json_object" | "json_schema", "json_schema": {...}}``."""

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None

    def spec(self) -> GrammarSpec | None:
        if self.type == "text":
            return None
        if self.type == "json_object":
            return GrammarSpec.json_object()
        if self.json_schema is None:
            raise APIError(400, "response_format.json_schema is required for type json_schema.",
                           param="response_format")  # fmt: skip
        schema = self.json_schema.schema_
        return GrammarSpec.json_object() if schema is None else GrammarSpec.json_schema(schema)


class GuidedFields(BaseModel):
    """Constrained decoding: OpenAI's ``response_format`` and vLLM's ``guided_*`` extras (one of them)."""

    response_format: ResponseFormat | None = None
    guided_json: dict[str, Any] | bool | str | None = None
    guided_regex: str | None = None
    guided_choice: list[str] | None = None
    guided_grammar: str | None = None  # EBNF: Lark or llama.cpp GBNF

    def grammar_spec(self) -> GrammarSpec | None:
        """The one constraint asked for (None: free text); a 400 when several are given."""
        specs = [spec for spec in self._specs() if spec is not None]
        if len(specs) > 1:
            names = ", ".join(spec.param for spec in specs)
            raise APIError(400, f"Give at most one output constraint; got {names}.", param=specs[1].param)
        return specs[0] if specs else None

    def _specs(self) -> list[GrammarSpec | None]:
        return [
            self.response_format.spec() if self.response_format is not None else None,
            None if self.guided_json is None else GrammarSpec.json_schema(self.guided_json, "guided_json"),
            None if self.guided_regex is None else GrammarSpec.regex(self.guided_regex),
            None if self.guided_choice is None else GrammarSpec.choice(self.guided_choice),
            None if self.guided_grammar is None else GrammarSpec.ebnf(self.guided_grammar),
        ]


class _SamplingFields(GuidedFields):
    """The generation parameters chat and completions share (OpenAI names, vLLM extras)."""

    model_config = ConfigDict(extra="ignore")

    model: str
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    repetition_penalty: float | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    stop_token_ids: list[int] | None = None
    ignore_eos: bool = False
    min_tokens: int | None = None
    n: int = Field(1, ge=1, le=128)
    stream: bool = False
    stream_options: StreamOptions | None = None

    @property
    def stop_strings(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def sampling_params(
        self,
        *,
        max_tokens: int | None,
        default_max_tokens: int,
        logprobs: int | None,
        index: int,
        grammar: Grammar | None = None,
    ) -> SamplingParams:
        """SamplingParams for choice ``index`` (``seed + index``, so n seeded choices differ), constrained
        by ``grammar`` (the request's :meth:`grammar_spec` compiled for the model) when given.

        Without an explicit ``max_tokens``, ``default_max_tokens`` applies (already capped by the caller
        to the context left after the prompt). Raises ``SamplingParamsError`` on out-of-range values.
        """
        names: tuple[str, ...] = ("temperature", "top_p", "top_k", "min_p", "presence_penalty")
        names += ("frequency_penalty", "repetition_penalty", "min_tokens")
        given: dict[str, Any] = {k: v for k in names if (v := getattr(self, k)) is not None}
        if self.seed is not None:
            given["seed"] = self.seed + index
        return SamplingParams(
            max_tokens=default_max_tokens if max_tokens is None else max_tokens,
            stop_token_ids=tuple(self.stop_token_ids or ()),
            ignore_eos=self.ignore_eos,
            logprobs=logprobs,
            grammar=grammar,
            **given,
        )


class ChatMessage(BaseModel):
    """One turn; ``content`` may be a string or OpenAI's list of parts (only text parts are supported)."""

    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None

    def as_template_message(self) -> dict[str, str]:
        """The ``{"role", "content"}`` dict a chat template expects ("developer" is OpenAI's "system")."""
        role = "system" if self.role == "developer" else self.role
        if self.content is None or isinstance(self.content, str):
            return {"role": role, "content": self.content or ""}
        texts = []
        for part in self.content:
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise APIError(400, "Only text content parts are supported.", param="messages")
            texts.append(part["text"])
        return {"role": role, "content": "".join(texts)}


class ChatRequest(_SamplingFields):
    """``POST /v1/chat/completions``; ``max_completion_tokens`` is OpenAI's newer name for max_tokens."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    guardrailConfig: Any = None  # Plinth's extension, as in Bedrock Converse: see plinth.guard.chat

    @property
    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    @property
    def num_logprobs(self) -> int | None:
        """The engine's ``logprobs`` setting: None (off) or how many alternatives to return."""
        if self.top_logprobs is not None and not self.logprobs:
            raise APIError(400, "top_logprobs requires logprobs to be true.", param="top_logprobs")
        return (self.top_logprobs or 0) if self.logprobs else None


PromptInput = str | list[str] | list[int] | list[list[int]]


class CompletionRequest(_SamplingFields):
    """``POST /v1/completions``: ``prompt`` as a string, strings, token ids, or lists of token ids."""

    prompt: PromptInput
    logprobs: int | None = Field(None, ge=0, le=20)
    echo: bool = False
    guardrailConfig: Any = None  # as on chat completions: see plinth.server.openai_api

    def prompts(self) -> list[str | list[int]]:
        """The prompt as a list of prompts, each text or token ids."""
        p = self.prompt
        if isinstance(p, str):
            return [p]
        if not p:
            raise APIError(400, "prompt must not be empty.", param="prompt")
        if all(isinstance(x, int) for x in p):
            return [list(p)]  # type: ignore[arg-type]
        return list(p)  # type: ignore[arg-type]


class EmbeddingRequest(BaseModel):
    """``POST /v1/embeddings``; ``encoding_format="base64"`` is what the openai SDK sends by default."""

    model_config = ConfigDict(extra="ignore")

    model: str
    input: str | list[str]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None

    def texts(self) -> list[str]:
        texts = [self.input] if isinstance(self.input, str) else list(self.input)
        if not texts:
            raise APIError(400, "input must not be empty.", param="input")
        return texts
