"""SageMaker LMI (DJL Serving, rolling batch) schema: ``POST /invocations`` and ``GET /ping``.

Mirrors LMI's documented request/response shapes so clients written for an LMI container work against
Plinth unchanged::

    {"inputs": "What is Deep Learning?", "parameters": {"max_new_tokens": 64, "details": true}}
    -> {"generated_text": "...", "details": {"finish_reason": "length", "generated_tokens": 64,
                                            "inputs": "What is Deep Learning?", "tokens": [...]}}

Adapters, as in LMI: ``"adapters": "name"`` (every input), or a list with one name per input where
``""`` means the base model; or the header ``X-Amzn-SageMaker-Adapter-Identifier`` (every input; the
body field wins when both are given). An unknown adapter -- or another tenant's -- is a 404.

A list of inputs returns a list of such objects. ``"stream": true`` (top level or in ``parameters``)
answers ``application/jsonlines``: one ``{"token": {"id", "text", "log_prob"}, "generated_text": null}``
per token; the last line carries the full ``generated_text`` (and ``details`` when asked for).
Sampling follows LMI 0.32+: greedy unless ``do_sample`` is true or a sampling parameter is given.
Constrained output, as on the OpenAI routes: ``parameters.response_format`` or one of
``parameters.guided_json`` / ``guided_regex`` / ``guided_choice`` / ``guided_grammar``.

Guardrails (Plinth's extension, as on chat completions): ``"guardrailConfig": {"guardrailIdentifier",
"guardrailVersion"?, "trace"?}``, else the tenant's default guardrail. Each input is checked whole at
input (masked: the masked text is generated from and is what ``details.inputs`` shows; a block anywhere
means no input runs and each output is the policy's message with ``finish_reason: "content_filter"``), and
each output before it leaves (blocked: the message, ``content_filter``; masked or blocked outputs list
no ``tokens``, which would spell out what was withheld). Every output object gains ``guardrail:
{"action", "stage", "assessments"}``. A guarded stream cannot send a line per token -- a token's text may
be what the guard holds back -- so its lines carry checked text, ``{"token": {"id": null, "text",
"log_prob": null}}``, and the last line adds ``guardrail``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from starlette.concurrency import run_in_threadpool

from plinth.engine import Grammar, SamplingParams
from plinth.guard import blocked_events, guard_choices, guard_events, screen_prompts
from plinth.llm import ServedModel
from plinth.server.auth import require_tenant
from plinth.server.errors import APIError, as_api_error, error_body
from plinth.server.generation import Choice, Events, Job, collect, compile_grammar, start
from plinth.server.guard_hooks import RequestGuard, parse_guardrail_config, request_guard
from plinth.server.limits import check_input_count, check_prompt_chars
from plinth.server.schemas import MAX_SEED, GuidedFields, TokenId
from plinth.server.state import get_state
from plinth.server.streaming import ClosingStreamingResponse, json_line

__all__ = ["router"]

router = APIRouter()


class LMIParameters(GuidedFields):
    """LMI's GenerationParameters plus the vLLM-backend extras Plinth's engine supports (among them
    constrained decoding: ``response_format`` or one of ``guided_json/regex/choice/grammar``)."""

    model_config = ConfigDict(extra="ignore")

    max_new_tokens: int = 30
    do_sample: StrictBool | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = Field(default=None, ge=-1, le=2**31 - 1)
    min_p: float | None = None
    repetition_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)
    stop: str | list[str] | None = None
    stop_sequences: list[str] | None = None
    stop_token_ids: list[TokenId] | None = None
    ignore_eos_token: StrictBool = False
    details: StrictBool = False
    decoder_input_details: StrictBool = False
    return_full_text: StrictBool = False
    stream: StrictBool | None = None

    def stop_strings(self) -> tuple[str, ...]:
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return tuple(stop + list(self.stop_sequences or []))

    def sampling_params(self, grammar: Grammar | None = None) -> SamplingParams:
        sampling = ("temperature", "top_p", "top_k", "min_p")
        do_sample = self.do_sample
        if do_sample is None:
            do_sample = any(getattr(self, k) is not None for k in sampling)
        given = {k: v for k in sampling if (v := getattr(self, k)) is not None}
        if not do_sample:
            given = {"temperature": 0.0}
        for k in ("repetition_penalty", "presence_penalty", "frequency_penalty", "seed"):
            if (v := getattr(self, k)) is not None:
                given[k] = v
        return SamplingParams(
            max_tokens=self.max_new_tokens,
            stop_token_ids=tuple(self.stop_token_ids or ()),
            ignore_eos=self.ignore_eos_token,
            logprobs=0,  # every LMI token carries its log_prob
            grammar=grammar,
            **given,
        )


ADAPTER_HEADER = "X-Amzn-SageMaker-Adapter-Identifier"


class LMIRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    inputs: str | list[str] = Field(min_length=1)
    parameters: LMIParameters = Field(default_factory=LMIParameters)
    stream: StrictBool = False
    adapters: str | list[str] | None = None
    guardrailConfig: Any = None  # Plinth's extension: see the module docstring

    def adapter_names(self, header: str | None, num_inputs: int) -> list[str]:
        """One adapter name per input ("" for the base model)."""
        given = self.adapters if self.adapters is not None else header
        if given is None or isinstance(given, str):
            return [given or ""] * num_inputs
        if len(given) != num_inputs:
            raise APIError(
                400, f"adapters has {len(given)} entries for {num_inputs} inputs; give one per input "
                "(\"\" for the base model) or a single name", param="adapters",
            )  # fmt: skip
        return list(given)


@router.get("/ping")
def ping(request: Request) -> dict[str, str]:
    """SageMaker's health check: 200 once a model is loaded (``create_app`` gets loaded models)."""
    if not get_state(request).models:
        raise APIError(503, "No model is loaded.", type="server_error", code="not_ready")
    return {"status": "Healthy"}


@router.post("/invocations", dependencies=[Depends(require_tenant)])
async def invocations(body: LMIRequest, request: Request) -> Any:
    state = get_state(request)
    base = next(iter(state.models.values()), None)
    if base is None:
        raise APIError(503, "No model is loaded.", type="server_error", code="not_ready")
    params = body.parameters
    streaming = body.stream or bool(params.stream)
    inputs = [body.inputs] if isinstance(body.inputs, str) else body.inputs
    if streaming and len(inputs) != 1:
        raise APIError(400, "Streaming takes a single string input.", param="inputs")
    check_input_count(len(inputs), state.settings.max_batch_inputs, "inputs", "max_batch_inputs")
    check_prompt_chars(state.settings, inputs, "inputs")
    names = body.adapter_names(request.headers.get(ADAPTER_HEADER), len(inputs))
    models = [state.model(name, request.state.tenant) if name else base for name in names]
    guard = await request_guard(request, parse_guardrail_config(body.guardrailConfig))
    if guard is not None:
        inputs = await screen_prompts(guard, inputs)
    prompts: list[list[int]] = [[] for _ in inputs]
    if guard is not None and guard.blocked:  # no input runs
        events = blocked_events(guard, len(inputs))
    else:
        jobs = []
        spec = params.grammar_spec()
        for text, model in zip(inputs, models, strict=True):
            ids = await run_in_threadpool(model.encode, text)
            sp = params.sampling_params(await compile_grammar(model, spec))
            jobs.append(Job(model, ids, sp, params.stop_strings(), f"lmi-{uuid.uuid4().hex}"))
        prompts = [job.prompt_ids for job in jobs]
        events = await start(jobs, state.metrics)
        if guard is not None and streaming:
            events = guard_events(guard, events, 1, None)
    if streaming:
        lines = _stream_lines(events, models[0], inputs[0], params, guard)
        return ClosingStreamingResponse(lines, media_type="application/jsonlines")
    choices = await collect(events, len(inputs))
    if guard is not None and not guard.blocked:
        await guard_choices(guard, choices, None)
    outputs = [
        _output(model, text, ids, c, params)
        for text, model, ids, c in zip(inputs, models, prompts, choices, strict=True)
    ]
    if guard is not None:
        outputs = [{**out, "guardrail": guard.field()} for out in outputs]
    return outputs[0] if isinstance(body.inputs, str) else outputs


def _token(model: ServedModel, token_id: int, logprob: float | None) -> dict[str, Any]:
    return {"id": token_id, "text": model.token_text(token_id), "log_prob": logprob}


def _finish_reason(model: ServedModel, choice: Choice) -> str | None:
    """LMI's names: ``length``, ``eos_token`` (the tokenizer's EOS), ``stop_sequence`` (anything else)."""
    if choice.finish_reason != "stop":
        return choice.finish_reason
    eos = model.eos_token_id
    last = choice.token_ids[-1] if choice.token_ids else None
    return "eos_token" if last is not None and last == eos else "stop_sequence"


def _details(model: ServedModel, text: str, choice: Choice, *, with_tokens: bool) -> dict[str, Any]:
    details: dict[str, Any] = {
        "finish_reason": _finish_reason(model, choice),
        "generated_tokens": choice.num_output_tokens,
        "inputs": text,
    }
    if with_tokens:
        logprobs: list[float | None] = [lp.logprob for lp in choice.logprobs] or [None] * len(
            choice.token_ids
        )
        details["tokens"] = [_token(model, t, lp) for t, lp in zip(choice.token_ids, logprobs, strict=False)]
    return details


def _output(
    model: ServedModel, text: str, prompt_ids: list[int], choice: Choice, params: LMIParameters
) -> dict[str, Any]:
    out: dict[str, Any] = {"generated_text": text + choice.text if params.return_full_text else choice.text}
    if params.details:
        out["details"] = _details(model, text, choice, with_tokens=True)
        if params.decoder_input_details:  # prompt logprobs are not computed: ids and text only
            out["details"]["prefill"] = [_token(model, t, None) for t in prompt_ids]
    return out


async def _stream_lines(
    events: Events, model: ServedModel, text: str, params: LMIParameters, guard: RequestGuard | None
) -> AsyncIterator[str]:
    """JSON lines, one per token (under a guard: per checked piece of text). Each line is held back
    until the next arrives, so the last line can carry ``generated_text`` and ``details``, as LMI's
    does (and ``guardrail``)."""
    choice = Choice()
    held: dict[str, Any] | None = None
    try:
        async for _, delta in events:
            choice.add(delta)
            for token in _tokens(model, delta, guarded=guard is not None):
                if held is not None:
                    yield json_line(held)
                held = {"token": token, "generated_text": None}
        last = held or {"token": None}
        last["generated_text"] = text + choice.text if params.return_full_text else choice.text
        if params.details:
            last["details"] = _details(model, text, choice, with_tokens=False)
        if guard is not None:
            last["guardrail"] = guard.field()
        yield json_line(last)
    except Exception as exc:  # the 200 is already sent: report in-band
        yield json_line(error_body(as_api_error(exc)))
    finally:
        await events.aclose()


def _tokens(model: ServedModel, delta: Any, *, guarded: bool) -> list[dict[str, Any]]:
    """The token lines' ``token`` objects for one delta; under a guard, its released text as one."""
    if guarded:
        return [{"id": None, "text": delta.text, "log_prob": None}] if delta.text else []
    logprobs = [lp.logprob for lp in delta.logprobs or []] or [None] * len(delta.token_ids)
    return [_token(model, t, lp) for t, lp in zip(delta.token_ids, logprobs, strict=False)]
