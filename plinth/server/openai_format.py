"""OpenAI response shapes: whole responses, stream chunks, usage and logprobs, built from Choices.

Pure functions of plain data, so each shape can be tested without a server. ``model`` arguments are the
serving model object, used only to turn token ids into token text for logprobs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from plinth.engine import TokenLogprob
from plinth.llm import ServedModel, ToolCall
from plinth.server.generation import Choice

__all__ = [
    "chat_chunk",
    "chat_logprobs",
    "chat_response",
    "completion_chunk",
    "completion_logprobs",
    "completion_response",
    "usage",
]


def usage(choices: Sequence[Choice], n: int) -> dict[str, Any]:
    """Token counts; a prompt shared by ``n`` choices counts once, as in OpenAI's API."""
    prompts = choices[::n]
    prompt = sum(c.num_prompt_tokens for c in prompts)
    completion = sum(c.num_output_tokens for c in choices)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": sum(c.num_cached_tokens for c in prompts)},
    }


def _entry(text: str, logprob: float) -> dict[str, Any]:
    return {"token": text, "logprob": logprob, "bytes": list(text.encode("utf-8"))}


def _top(model: ServedModel, lp: TokenLogprob, k: int) -> list[tuple[str, float]]:
    best = sorted(lp.top.items(), key=lambda kv: kv[1], reverse=True)[:k]
    return [(model.token_text(tid), value) for tid, value in best]


def chat_logprobs(model: ServedModel, logprobs: Sequence[TokenLogprob], k: int) -> dict[str, Any]:
    """``choice.logprobs`` for chat: ``{"content": [{token, logprob, bytes, top_logprobs}]}``."""
    content = []
    for lp in logprobs:
        entry = _entry(model.token_text(lp.token_id), lp.logprob)
        entry["top_logprobs"] = [_entry(text, value) for text, value in _top(model, lp, k)]
        content.append(entry)
    return {"content": content}


def completion_logprobs(
    model: ServedModel, logprobs: Sequence[TokenLogprob], k: int, offset: int = 0
) -> dict[str, Any]:
    """Legacy completions logprobs: parallel lists, ``text_offset`` counted from ``offset``."""
    tokens, offsets, tops = [], [], []
    for lp in logprobs:
        text = model.token_text(lp.token_id)
        tokens.append(text)
        offsets.append(offset)
        offset += len(text)
        tops.append({**dict(_top(model, lp, k)), text: lp.logprob})
    return {
        "tokens": tokens,
        "token_logprobs": [lp.logprob for lp in logprobs],
        "top_logprobs": tops,
        "text_offset": offsets,
    }


def _envelope(rid: str, obj: str, created: int, model_name: str) -> dict[str, Any]:
    return {"id": rid, "object": obj, "created": created, "model": model_name}


def chat_response(
    rid: str,
    model: ServedModel,
    choices: Sequence[Choice],
    n: int,
    k: int | None,
    split_calls: Callable[[str], tuple[str | None, list[ToolCall]]] | None = None,
) -> dict[str, Any]:
    """The whole ``chat.completion`` object; ``k`` is top_logprobs (None: logprobs off).
    ``split_calls`` (tools offered) turns a reply into content and tool calls: a reply with calls has
    ``message.tool_calls`` and ``finish_reason: "tool_calls"``."""
    body = _envelope(rid, "chat.completion", int(time.time()), model.name)
    body["choices"] = [
        {
            "index": i,
            **_chat_message(c, split_calls),
            "logprobs": None if k is None else chat_logprobs(model, c.logprobs, k),
        }
        for i, c in enumerate(choices)
    ]
    body["usage"] = usage(choices, n)
    return body


def _chat_message(
    choice: Choice, split_calls: Callable[[str], tuple[str | None, list[ToolCall]]] | None
) -> dict[str, Any]:
    plain = {"message": {"role": "assistant", "content": choice.text}, "finish_reason": choice.finish_reason}
    if split_calls is None or choice.finish_reason == "content_filter":
        return plain
    content, calls = split_calls(choice.text)
    if not calls:
        return plain
    message = {"role": "assistant", "content": content, "tool_calls": [c.as_openai() for c in calls]}
    reason = "tool_calls" if choice.finish_reason == "stop" else choice.finish_reason
    return {"message": message, "finish_reason": reason}


def completion_response(
    rid: str, model: ServedModel, choices: Sequence[Choice], n: int, k: int | None
) -> dict[str, Any]:
    """The whole ``text_completion`` object; ``k`` is the ``logprobs`` request field."""
    body = _envelope(rid, "text_completion", int(time.time()), model.name)
    body["choices"] = [
        {
            "index": i,
            "text": c.text,
            "logprobs": None if k is None else completion_logprobs(model, c.logprobs, k),
            "finish_reason": c.finish_reason,
        }
        for i, c in enumerate(choices)
    ]
    body["usage"] = usage(choices, n)
    return body


def chat_chunk(
    rid: str, created: int, model_name: str, index: int, delta: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    """One ``chat.completion.chunk`` for choice ``index`` (``extra``: logprobs, finish_reason)."""
    choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": None, **extra}
    return {**_envelope(rid, "chat.completion.chunk", created, model_name), "choices": [choice]}


def completion_chunk(
    rid: str, created: int, model_name: str, index: int, text: str, **extra: Any
) -> dict[str, Any]:
    """One streamed ``text_completion`` object for choice ``index``."""
    choice = {"index": index, "text": text, "logprobs": None, "finish_reason": None, **extra}
    return {**_envelope(rid, "text_completion", created, model_name), "choices": [choice]}
