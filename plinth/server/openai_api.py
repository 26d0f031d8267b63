"""The OpenAI-compatible API: models, chat completions, completions and embeddings under ``/v1``.

Each generating route turns its request into :class:`~plinth.server.generation.Job` s (one per prompt per
``n``), starts them, then either collects a whole response or streams SSE chunks ending in
``data: [DONE]``. Choice ``index`` is ``prompt_index * n + i``, as in OpenAI's completions API.

Constrained output on both routes: OpenAI's ``response_format`` (``json_object``, ``json_schema``) or
vLLM's ``guided_json`` / ``guided_regex`` / ``guided_choice`` / ``guided_grammar``, compiled once per
request (cached by content) and enforced by the engine; an unsupported feature is a 400 naming it.

Guardrails: a ``guardrailConfig`` field ``{"guardrailIdentifier", "guardrailVersion"?, "trace"?:
"enabled"|"disabled"}`` (Bedrock Converse's), else the tenant's default guardrail, guards chat completions
and completions; with neither, nothing runs. A request blocked at input is still a 200: each choice's
content is the policy's blocked message with ``finish_reason: "content_filter"`` and no tokens are spent;
a reply blocked at output likewise (streamed: its last chunk). Guarded responses carry ``guardrail:
{"action", "stage", "assessments"}`` (top level; in a stream, on each choice's last chunk). See
:mod:`plinth.guard.chat`. On ``/v1/completions`` each string prompt is checked whole at input (a
raw prompt is all user text) and no canary is planted (there is no system prompt to plant it in); a
token-id prompt under a guardrail is a 400 naming ``prompt``: ids are not text a detector can read, and
checking their decoding would let ids that decode innocently but tokenize differently slip through.
"""

from __future__ import annotations

import base64
import json
import struct
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from plinth.adapters import AdapterEntry
from plinth.engine import Grammar
from plinth.guard import (
    blocked_events,
    guard_choices,
    guard_events,
    new_canary,
    screen_messages,
    screen_prompts,
    with_canary,
)
from plinth.llm import GrammarSpec, ServedModel, ToolCall, ToolCallStream, ToolChoice, ToolSpec
from plinth.server import openai_format as fmt
from plinth.server.auth import require_tenant
from plinth.server.errors import APIError, as_api_error, error_body
from plinth.server.generation import Choice, Events, Job, collect, compile_grammar, start
from plinth.server.guard_hooks import RequestGuard, parse_guardrail_config, request_guard
from plinth.server.limits import check_input_count, check_prompt_chars
from plinth.server.schemas import ChatRequest, CompletionRequest, EmbeddingRequest
from plinth.server.state import ServerState, get_state
from plinth.server.streaming import SSE_DONE, ClosingStreamingResponse, sse_event

__all__ = ["router"]

router = APIRouter(prefix="/v1", dependencies=[Depends(require_tenant)])

COMPLETIONS_DEFAULT_MAX_TOKENS = 16  # OpenAI's default for /v1/completions; chat defaults to "all that fits"

Render = Callable[[int, Any, bool], list[dict[str, Any]]]


@router.get("/models")
def list_models(request: Request) -> dict[str, Any]:
    """Served models, then the adapters this tenant may use (``parent``: their base model, ``owned_by``:
    their tenant or "public"); random-weight models say so in ``owned_by`` and ``plinth.random_weights``."""
    state = get_state(request)
    data = [_model_card(state, m) for m in state.models.values()]
    if state.adapters is not None:
        data += [_adapter_card(state, e) for e in state.adapters.visible(request.state.tenant)]
    return {"object": "list", "data": data}


def _model_card(state: ServerState, model: ServedModel) -> dict[str, Any]:
    parent = getattr(model, "parent", None)  # set for a --merge-lora model
    return {
        "id": model.name,
        "object": "model",
        "created": state.created,
        "owned_by": "plinth (random weights)" if model.is_random else "plinth",
        "root": parent or model.name,
        "parent": parent,
        "max_model_len": model.max_model_len,
        "plinth": {"random_weights": bool(model.is_random)},
    }


def _adapter_card(state: ServerState, entry: AdapterEntry) -> dict[str, Any]:
    base = state.models[entry.base_model]
    return {
        "id": entry.name,
        "object": "model",
        "created": int(entry.created_at.timestamp()),
        "owned_by": entry.owner,
        "root": entry.base_model,
        "parent": entry.base_model,
        "max_model_len": base.max_model_len,
        "plinth": {"random_weights": bool(base.is_random), "adapter": True},
    }


@router.post("/chat/completions")
async def chat_completions(body: ChatRequest, request: Request) -> Any:
    state = get_state(request)
    model = state.model(body.model, request.state.tenant)
    messages = [m.as_template_message() for m in body.messages]
    check_prompt_chars(state.settings, (str(m["content"]) for m in messages), "messages")
    tools = _ChatTools.of(body, model)
    k = body.num_logprobs
    guard = await request_guard(request, parse_guardrail_config(body.guardrailConfig))
    canary = new_canary() if guard is not None else ""
    if guard is not None:
        messages = with_canary(await screen_messages(guard, messages), canary)
    rid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    if guard is not None and guard.blocked:  # the model is never called
        events = blocked_events(guard, body.n)
    else:
        prompt, template_tools = tools.render(messages)
        try:
            ids = await run_in_threadpool(model.encode_chat, prompt, template_tools)
        except ValueError as exc:  # e.g. the checkpoint has no chat template
            raise APIError(400, str(exc), param="messages") from exc
        grammar = await compile_grammar(model, tools.grammar_spec(body.grammar_spec()))
        jobs = _jobs(body, model, [ids], k, body.requested_max_tokens, _room(model, ids), grammar)
        events = await start(jobs, state.metrics)
    if not body.stream:
        choices = await collect(events, body.n)
        if guard is not None and not guard.blocked:
            await guard_choices(guard, choices, canary)
        response = fmt.chat_response(rid, model, choices, body.n, k, tools.split if tools.active else None)
        return response if guard is None else {**response, "guardrail": guard.field()}
    if guard is not None and not guard.blocked:
        events = guard_events(guard, events, body.n, canary)
    usage_chunk = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model.name}
    render = _chat_render(rid, created, model, k, guard, tools)
    return _sse(_sse_body(events, body.n, body.n, render, usage_chunk if body.include_usage else None))


class _ChatTools:
    """A chat request's tools as the model sees them: the prompt (in its template's tool format), the
    grammar that forces a call, and its calls read back out of the reply."""

    def __init__(self, model: ServedModel, specs: list[ToolSpec], choice: ToolChoice, parallel: bool) -> None:
        self.format = model.tool_format
        self.specs, self.choice, self.parallel = specs, choice, parallel
        self.active = bool(specs) and choice.mode != "none"  # "none": the tools are not offered at all

    @classmethod
    def of(cls, body: ChatRequest, model: ServedModel) -> _ChatTools:
        specs, choice = body.tool_setup()
        return cls(model, specs, choice, body.parallel_tool_calls)

    def render(self, messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], Any]:
        """The template's messages and ``tools`` (None when the template gets none)."""
        return self.format.render(messages, self.specs if self.active else [])

    def grammar_spec(self, response: GrammarSpec | None) -> GrammarSpec | None:
        """The turn's constraint: calls when one is forced; under ``auto`` with a JSON
        ``response_format``, a call or that JSON; otherwise the request's own constraint."""
        if not self.active or (response is None and not self.choice.forces_call):
            return response
        if self.choice.forces_call:
            return self.format.grammar(self.specs, self.choice, self.parallel)
        assert response is not None
        if response.kind != "json_schema":
            message = (f"{response.param} cannot be combined with tools under tool_choice auto; use "
                       "response_format json_schema, or tool_choice none.")  # fmt: skip
            raise APIError(400, message, param=response.param)
        return self.format.grammar(self.specs, self.choice, self.parallel, json.loads(response.source))

    def split(self, text: str) -> tuple[str | None, list[ToolCall]]:
        return self.format.parse(text)

    def stream(self) -> ToolCallStream:
        return ToolCallStream(self.format, forced=self.choice.forces_call)


def _chat_render(
    rid: str, created: int, model: ServedModel, k: int | None, guard: RequestGuard | None, tools: _ChatTools
) -> Render:
    """Chunks for one delta: the role first, then content, logprobs and finish_reason; under a guard,
    a choice's last chunk carries the ``guardrail`` field as it stands then. With tools offered, text
    passes through a :class:`ToolCallStream` and each call goes out whole as a ``delta.tool_calls``
    entry once the reply ends (``finish_reason: "tool_calls"``)."""
    streams: dict[int, ToolCallStream] = {}

    def render(index: int, delta: Any, first: bool) -> list[dict[str, Any]]:
        chunks = [fmt.chat_chunk(rid, created, model.name, index, {"role": "assistant", "content": ""})]
        finish = delta.finish_reason
        text: str = delta.text
        calls: list[ToolCall] = []
        if tools.active:
            stream = streams.setdefault(index, tools.stream())
            text = stream.feed(text)
            if finish:
                tail, calls = stream.finish()
                text += tail
        extra: dict[str, Any] = {"finish_reason": None if calls else finish}
        if k is not None and delta.logprobs:
            extra["logprobs"] = fmt.chat_logprobs(model, delta.logprobs, k)
        content = {"content": text} if text else {}
        if content or (finish and not calls) or "logprobs" in extra:
            chunks.append(fmt.chat_chunk(rid, created, model.name, index, content, **extra))
        if calls:
            delta_calls = {"tool_calls": [call.as_openai(i) for i, call in enumerate(calls)]}
            chunks.append(fmt.chat_chunk(rid, created, model.name, index, delta_calls))
            reason = "tool_calls" if finish == "stop" else finish
            chunks.append(fmt.chat_chunk(rid, created, model.name, index, {}, finish_reason=reason))
        if guard is not None and finish:
            chunks[-1]["guardrail"] = guard.field()
        return chunks if first else chunks[1:]

    return render


@router.post("/completions")
async def completions(body: CompletionRequest, request: Request) -> Any:
    state = get_state(request)
    model = state.model(body.model, request.state.tenant)
    if body.echo:
        raise APIError(400, "echo is not supported.", param="echo")
    guard = await request_guard(request, parse_guardrail_config(body.guardrailConfig))
    prompts = body.prompts()
    check_input_count(len(prompts), state.settings.max_batch_inputs, "prompt", "max_batch_inputs")
    check_prompt_chars(state.settings, (p for p in prompts if isinstance(p, str)), "prompt")
    if guard is not None:
        prompts = await _screen_prompts(guard, prompts)
    rid, created, k = f"cmpl-{uuid.uuid4().hex}", int(time.time()), body.logprobs
    num_jobs = len(prompts) * body.n
    if guard is not None and guard.blocked:  # the model is never called
        events = blocked_events(guard, num_jobs)
    else:
        ids = [p if isinstance(p, list) else await run_in_threadpool(model.encode, p) for p in prompts]
        room = min(_room(model, p, "prompt") for p in ids)
        default = min(COMPLETIONS_DEFAULT_MAX_TOKENS, room)
        grammar = await compile_grammar(model, body.grammar_spec())
        events = await start(_jobs(body, model, ids, k, body.max_tokens, default, grammar), state.metrics)
    if not body.stream:
        choices = await collect(events, num_jobs)
        if guard is None:
            return fmt.completion_response(rid, model, choices, body.n, k)
        if not guard.blocked:
            await guard_choices(guard, choices, None)
        return {**fmt.completion_response(rid, model, choices, body.n, k), "guardrail": guard.field()}
    if guard is not None and not guard.blocked:
        events = guard_events(guard, events, num_jobs, None)
    usage_chunk = {"id": rid, "object": "text_completion", "created": created, "model": model.name}
    render = _completion_render(rid, created, model, k, num_jobs, guard)
    return _sse(_sse_body(events, num_jobs, body.n, render, usage_chunk if body.include_usage else None))


async def _screen_prompts(guard: RequestGuard, prompts: list[str | list[int]]) -> list[str | list[int]]:
    """The string prompts checked (and masked) at input; token ids cannot be, so they are a 400."""
    texts = [p for p in prompts if isinstance(p, str)]
    if len(texts) != len(prompts):
        message = ("A guardrail applies to this request (guardrailConfig or the tenant's default), and "
                   "token-id prompts cannot be checked by one: send the prompt as text.")  # fmt: skip
        raise APIError(400, message, param="prompt", code="guardrail_needs_text")
    return list(await screen_prompts(guard, texts))


def _completion_render(
    rid: str, created: int, model: ServedModel, k: int | None, num_jobs: int, guard: RequestGuard | None
) -> Render:
    """Chunks for one delta (``text_offset`` counted per choice); under a guard, a choice's last chunk
    carries the ``guardrail`` field as it stands then."""
    offsets = [0] * num_jobs

    def render(index: int, delta: Any, first: bool) -> list[dict[str, Any]]:
        extra: dict[str, Any] = {"finish_reason": delta.finish_reason}
        if k is not None and delta.logprobs:
            extra["logprobs"] = fmt.completion_logprobs(model, delta.logprobs, k, offsets[index])
        offsets[index] += len(delta.text)
        if not (delta.text or delta.finish_reason or "logprobs" in extra):
            return []
        chunk = fmt.completion_chunk(rid, created, model.name, index, delta.text, **extra)
        if guard is not None and delta.finish_reason:
            chunk["guardrail"] = guard.field()
        return [chunk]

    return render


@router.post("/embeddings")
async def embeddings(body: EmbeddingRequest, request: Request) -> dict[str, Any]:
    state = get_state(request)
    if body.model not in state.embedding_model_names():
        names = ", ".join(sorted(state.embedding_model_names()))
        raise APIError(404, f"The embedding model '{body.model}' does not exist. Use one of: {names}.",
                       param="model", code="model_not_found")  # fmt: skip
    texts = body.texts()
    check_input_count(len(texts), state.settings.max_batch_inputs, "input", "max_batch_inputs")
    check_prompt_chars(state.settings, texts, "input")
    embedder = await state.get_embedder()
    dimensions = await run_in_threadpool(lambda: embedder.dimensions)  # the first call loads the weights
    if body.dimensions is not None and body.dimensions != dimensions:
        raise APIError(400, f"dimensions must be {dimensions} for this model.", param="dimensions")
    vectors = await run_in_threadpool(embedder.embed, texts)
    tokens = await run_in_threadpool(embedder.count_tokens, texts)
    data = [
        {"object": "embedding", "index": i, "embedding": _encode_vector(v, body.encoding_format)}
        for i, v in enumerate(vectors)
    ]
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return {"object": "list", "data": data, "model": embedder.name, "usage": usage}


def _encode_vector(vector: Sequence[float], encoding: str) -> list[float] | str:
    """Floats, or OpenAI's base64 of little-endian float32 (the openai SDK's default request)."""
    if encoding == "float":
        return [float(x) for x in vector]
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def _room(model: ServedModel, ids: list[int], param: str = "messages") -> int:
    """Tokens left for the completion; a 400 when the prompt alone fills the context."""
    if not ids:
        raise APIError(400, "The prompt is empty.", param=param)
    if len(ids) >= model.max_model_len:
        raise APIError(
            400,
            f"This model's maximum context length is {model.max_model_len} tokens, "
            f"but the prompt has {len(ids)} tokens.",
            param=param,
            code="context_length_exceeded",
        )
    return model.max_model_len - len(ids)


def _jobs(
    body: Any,
    model: ServedModel,
    prompts: list[list[int]],
    logprobs: int | None,
    max_tokens: int | None,
    default: int,
    grammar: Grammar | None = None,
) -> list[Job]:
    """One job per (prompt, i < n); SamplingParams errors surface here as 400s naming the param. Each job
    gets its own matcher from the shared ``grammar`` when the engine starts it."""
    rid = uuid.uuid4().hex
    return [
        Job(
            model,
            ids,
            body.sampling_params(
                max_tokens=max_tokens, default_max_tokens=default, logprobs=logprobs, index=i, grammar=grammar
            ),
            body.stop_strings,
            f"{rid}-{p}-{i}",
        )
        for p, ids in enumerate(prompts)
        for i in range(body.n)
    ]


def _sse(body: AsyncIterator[str]) -> ClosingStreamingResponse:
    return ClosingStreamingResponse(
        body, media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


async def _sse_body(
    events: Events,
    num_jobs: int,
    n: int,
    render: Render,
    usage_chunk: dict[str, Any] | None,
) -> AsyncIterator[str]:
    """SSE text for ``events``; with ``usage_chunk`` every chunk has ``usage: null`` and a final chunk with
    empty ``choices`` carries the totals (OpenAI's ``stream_options.include_usage``)."""
    choices = [Choice() for _ in range(num_jobs)]
    seen: set[int] = set()
    try:
        async for index, delta in events:
            choices[index].add(delta)
            for chunk in render(index, delta, index not in seen):
                yield sse_event({**chunk, "usage": None} if usage_chunk else chunk)
            seen.add(index)
        if usage_chunk is not None:
            yield sse_event({**usage_chunk, "choices": [], "usage": fmt.usage(choices, n)})
    except Exception as exc:  # headers are sent: report in-band, as OpenAI does
        yield sse_event(error_body(as_api_error(exc)))
    finally:
        await events.aclose()
    yield SSE_DONE
