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
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from plinth.engine import SamplingParams
from plinth.server.auth import require_tenant
from plinth.server.errors import APIError, as_api_error, error_body
from plinth.server.generation import Choice, Events, Job, collect, start
from plinth.server.state import get_state
from plinth.server.streaming import ClosingStreamingResponse, json_line

__all__ = ["router"]

router = APIRouter()


class LMIParameters(BaseModel):
    """LMI's GenerationParameters plus the vLLM-backend extras Plinth's engine supports."""

    model_config = ConfigDict(extra="ignore")

    max_new_tokens: int = 30
    do_sample: bool | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    stop_sequences: list[str] | None = None
    stop_token_ids: list[int] | None = None
    ignore_eos_token: bool = False
    details: bool = False
    decoder_input_details: bool = False
    return_full_text: bool = False
    stream: bool | None = None

    def stop_strings(self) -> tuple[str, ...]:
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return tuple(stop + list(self.stop_sequences or []))

    def sampling_params(self) -> SamplingParams:
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
            **given,
        )


ADAPTER_HEADER = "X-Amzn-SageMaker-Adapter-Identifier"


class LMIRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    inputs: str | list[str] = Field(min_length=1)
    parameters: LMIParameters = Field(default_factory=LMIParameters)
    stream: bool = False
    adapters: str | list[str] | None = None

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
    names = body.adapter_names(request.headers.get(ADAPTER_HEADER), len(inputs))
    models = [state.model(name, request.state.tenant) if name else base for name in names]
    jobs = []
    for text, model in zip(inputs, models, strict=True):
        ids = await run_in_threadpool(model.encode, text)
        sp = params.sampling_params()
        jobs.append(Job(model, ids, sp, params.stop_strings(), f"lmi-{uuid.uuid4().hex}"))
    events = await start(jobs, state.metrics)
    if streaming:
        lines = _stream_lines(events, models[0], inputs[0], params)
        return ClosingStreamingResponse(lines, media_type="application/jsonlines")
    choices = await collect(events, len(jobs))
    outputs = [
        _output(job.model, text, job, c, params) for text, job, c in zip(inputs, jobs, choices, strict=True)
    ]
    return outputs[0] if isinstance(body.inputs, str) else outputs


def _token(model: Any, token_id: int, logprob: float | None) -> dict[str, Any]:
    return {"id": token_id, "text": model.token_text(token_id), "log_prob": logprob}


def _finish_reason(model: Any, choice: Choice) -> str | None:
    """LMI's names: ``length``, ``eos_token`` (the tokenizer's EOS), ``stop_sequence`` (anything else)."""
    if choice.finish_reason != "stop":
        return choice.finish_reason
    eos = getattr(getattr(model, "tokenizer", None), "eos_token_id", None)
    last = choice.token_ids[-1] if choice.token_ids else None
    return "eos_token" if last is not None and last == eos else "stop_sequence"


def _details(model: Any, text: str, choice: Choice, *, with_tokens: bool) -> dict[str, Any]:
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


def _output(model: Any, text: str, job: Job, choice: Choice, params: LMIParameters) -> dict[str, Any]:
    out: dict[str, Any] = {"generated_text": text + choice.text if params.return_full_text else choice.text}
    if params.details:
        out["details"] = _details(model, text, choice, with_tokens=True)
        if params.decoder_input_details:  # prompt logprobs are not computed: ids and text only
            out["details"]["prefill"] = [_token(model, t, None) for t in job.prompt_ids]
    return out


async def _stream_lines(events: Events, model: Any, text: str, params: LMIParameters) -> AsyncIterator[str]:
    """JSON lines, one per token. Each line is held back until the next token arrives, so the last
    token's line can carry ``generated_text`` and ``details``, as LMI's does."""
    choice = Choice()
    held: dict[str, Any] | None = None
    try:
        async for _, delta in events:
            choice.add(delta)
            logprobs = [lp.logprob for lp in delta.logprobs or []] or [None] * len(delta.token_ids)
            for token_id, logprob in zip(delta.token_ids, logprobs, strict=False):
                if held is not None:
                    yield json_line(held)
                held = {"token": _token(model, token_id, logprob), "generated_text": None}
        last = held or {"token": None}
        last["generated_text"] = text + choice.text if params.return_full_text else choice.text
        if params.details:
            last["details"] = _details(model, text, choice, with_tokens=False)
        yield json_line(last)
    except Exception as exc:  # the 200 is already sent: report in-band
        yield json_line(error_body(as_api_error(exc)))
    finally:
        await events.aclose()
