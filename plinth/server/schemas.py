"""Request bodies of the OpenAI-compatible API, and their mapping onto the engine's SamplingParams.

Only the shapes live here: pydantic checks types (a mistyped field is a 400 naming it), SamplingParams
checks ranges (its ``SamplingParamsError.param`` names the field). Fields OpenAI clients send that Plinth
does not use (``user``, ``metadata``...) are accepted and ignored, as OpenAI-compatible servers do.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from plinth.engine import Grammar, SamplingParams
from plinth.llm import GrammarError, GrammarSpec, ToolCall, ToolChoice, ToolSpec, grammar_definition
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


MAX_SEED = 2**63 - 1  # the engine seeds torch generators: a signed 64-bit value
TokenId = Annotated[int, Field(ge=0, le=2**31 - 1)]


class StreamOptions(BaseModel):
    include_usage: StrictBool = False


class JSONSchemaFormat(BaseModel):
    """OpenAI's ``response_format.json_schema``; a missing ``schema`` means any JSON object."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    name: str
    schema_: dict[str, Any] | bool | None = Field(None, alias="schema")
    strict: StrictBool | None = None
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
    top_k: int | None = Field(None, ge=-1, le=2**31 - 1)
    min_p: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    repetition_penalty: float | None = None
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    stop: str | list[str] | None = None
    stop_token_ids: list[TokenId] | None = None
    ignore_eos: StrictBool = False
    min_tokens: int | None = None
    n: int = Field(1, ge=1, le=128)
    stream: StrictBool = False
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
            given["seed"] = (self.seed + index) % (MAX_SEED + 1)  # n seeded choices stay in range
        return SamplingParams(
            max_tokens=default_max_tokens if max_tokens is None else max_tokens,
            stop_token_ids=tuple(self.stop_token_ids or ()),
            ignore_eos=self.ignore_eos,
            logprobs=logprobs,
            grammar=grammar,
            **given,
        )


class FunctionCallIn(BaseModel):
    name: str
    arguments: str


class ToolCallIn(BaseModel):
    """A call in an assistant turn of the history, as the API returned it."""

    id: str
    type: Literal["function"] = "function"
    function: FunctionCallIn


class ChatMessage(BaseModel):
    """One turn; ``content`` may be a string or OpenAI's list of parts (only text parts are supported).
    An assistant turn may carry ``tool_calls``; a ``tool`` turn answers one by ``tool_call_id``."""

    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None
    name: str | None = None

    @model_validator(mode="after")
    def _has_content(self) -> ChatMessage:
        """Every turn needs ``content``, except an assistant turn that carries ``tool_calls``."""
        if self.content is None and not (self.role == "assistant" and self.tool_calls):
            who = "An assistant message without tool_calls" if self.role == "assistant" else "A message"
            raise ValueError(f"{who} needs content (role {self.role!r}).")
        return self

    def as_template_message(self) -> dict[str, Any]:
        """The ``{"role", "content"}`` dict a chat template expects ("developer" is OpenAI's "system"),
        with ``tool_calls`` (as :class:`~plinth.llm.ToolCall` s) and ``tool_call_id`` where given."""
        role = "system" if self.role == "developer" else self.role
        message: dict[str, Any] = {"role": role, "content": self._text()}
        if self.tool_calls:
            if role != "assistant":
                raise APIError(400, "Only assistant messages may have tool_calls.", param="messages")
            message["tool_calls"] = [_tool_call(c) for c in self.tool_calls]
        if role == "tool":
            if not self.tool_call_id:
                raise APIError(400, "A tool message needs the tool_call_id it answers.", param="messages")
            message["tool_call_id"] = self.tool_call_id
        if self.name is not None and role == "tool":
            message["name"] = self.name
        return message

    def _text(self) -> str:
        if self.content is None or isinstance(self.content, str):
            return self.content or ""
        texts = []
        for part in self.content:
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise APIError(400, "Only text content parts are supported.", param="messages")
            texts.append(part["text"])
        return "".join(texts)


def _tool_call(call: ToolCallIn) -> ToolCall:
    parsed = ToolCall(call.id, call.function.name, call.function.arguments)
    try:
        parsed.arguments_object()
    except ValueError as exc:
        message = f"tool call {call.id!r} has arguments that are not a JSON object: {exc}"
        raise APIError(400, message, param="messages") from exc
    return parsed


class FunctionDefinition(BaseModel):
    """OpenAI's ``tools[].function``; ``parameters`` is a JSON schema (none: no arguments)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolDefinition(BaseModel):
    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(BaseModel):
    name: str


class NamedToolChoice(BaseModel):
    """``{"type": "function", "function": {"name": ...}}``: call exactly this function."""

    type: Literal["function"]
    function: NamedFunction


class ChatRequest(_SamplingFields):
    """``POST /v1/chat/completions``; ``max_completion_tokens`` is OpenAI's newer name for max_tokens."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = None
    logprobs: StrictBool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    guardrailConfig: Any = None  # Plinth's extension, as in Bedrock Converse: see plinth.guard.chat
    tools: list[ToolDefinition] | None = None
    tool_choice: NamedToolChoice | str | None = None  # "none" | "auto" | "required" | a function
    parallel_tool_calls: StrictBool = True

    def tool_setup(self) -> tuple[list[ToolSpec], ToolChoice]:
        """The offered functions and what the model must do with them; 400s name the field at fault
        (OpenAI's rules: a ``tool_choice`` needs ``tools``, a named one must be among them)."""
        if not self.tools:
            if self.tool_choice not in (None, "none", "auto"):
                raise APIError(400, "tool_choice is only allowed when tools are given.", param="tool_choice")
            return [], ToolChoice("none")
        specs: list[ToolSpec] = []
        for i, tool in enumerate(self.tools):
            parameters = tool.function.parameters or {"type": "object", "properties": {}}
            if parameters.get("type", "object") != "object":
                raise APIError(400, "Function parameters must be a JSON schema of type object.",
                               param=f"tools[{i}].function.parameters")  # fmt: skip
            try:
                grammar_definition(GrammarSpec.json_schema(parameters, f"tools[{i}].function.parameters"))
            except GrammarError as exc:
                raise APIError(400, exc.message, param=exc.param) from exc
            if any(s.name == tool.function.name for s in specs):
                raise APIError(400, f"Two tools are named {tool.function.name!r}.", param=f"tools[{i}]")
            specs.append(ToolSpec(tool.function.name, tool.function.description or "", parameters))
        choice = self.tool_choice
        if isinstance(choice, NamedToolChoice):
            if all(s.name != choice.function.name for s in specs):
                raise APIError(400, f"tool_choice names {choice.function.name!r}, which is not in tools.",
                               param="tool_choice")  # fmt: skip
            return specs, ToolChoice("named", choice.function.name)
        try:
            return specs, ToolChoice.parse(choice)
        except ValueError as exc:
            raise APIError(400, f"{exc}.", param="tool_choice") from exc

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
    echo: StrictBool = False
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
