"""How a model family writes function calls: the prompt, the grammar that forces a call, the parser.

Models are trained on one convention, and a prompt or an output in another one confuses them; so the
tools go into the prompt through the checkpoint's own chat template (``apply_chat_template(...,
tools=...)``) wherever the template takes them, and calls are read back in the syntax the template
teaches:

============  ===============================================================  ===================
format        a call, as the model writes it                                   detected by
============  ===============================================================  ===================
``hermes``    ``<tool_call>\\n{"name": "f", "arguments": {...}}\\n</tool_call>``  ``<tool_call>`` in
              (one block per call; Qwen 2.5/3, Hermes, SmolLM3)                the template
``llama3``    ``{"name": "f", "parameters": {...}}`` (one call; Llama 3.1-3.3)  ``ipython``
``mistral``   ``[TOOL_CALLS] [{"name": "f", "arguments": {...}}, ...]``         ``[TOOL_CALLS]``
``plinth``    the hermes syntax, taught by a system message Plinth writes      the template ignores
              (tools listed as JSON schemas; results as ``<tool_response>``     ``tools`` (SmolLM2,
              user turns)                                                      Gemma, ...)
============  ===============================================================  ===================

A template that renders ``tools`` but shows none of these markers gets the hermes syntax, the most
common one. ``required`` and a named ``tool_choice`` are enforced by a Lark grammar (llguidance) whose
call bodies are ``%json`` schemas: ``{"name": <const>, "arguments": <the function's parameters>}``
written compactly in that order, so the arguments always parse and match the function's schema.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from plinth.llm.grammar import JSON_OPTIONS, GrammarSpec
from plinth.llm.tool_calls import ToolCall, ToolChoice, ToolSpec, new_call_id

__all__ = ["ToolFormat", "detect_tool_format", "tool_format_named"]

_PROBE = "plinth_probe_tool"


class ToolFormat:
    """The ``plinth`` default: hermes syntax, taught by a system message, for templates without tools.

    Subclasses override what differs: how the history and tools reach the template (:meth:`render`),
    how one call and a list of calls are written (:meth:`_call_rule`, :meth:`_calls_rule`), and how calls
    are found in text (:meth:`parse`).
    """

    name = "plinth"
    arguments_key = "arguments"
    call_open, call_close, call_separator = "<tool_call>\n", "\n</tool_call>", "\n"
    parallel = True  # whether the format can hold several calls in one turn
    id_length: int | None = None  # Mistral's templates insist on nine alphanumerics

    def __init__(self, special_tokens: Mapping[str, int] | None = None) -> None:
        self._special = dict(special_tokens or {})

    # -- prompt ---------------------------------------------------------------------------------

    def render(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[ToolSpec]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
        """The chat template's ``messages`` and ``tools`` for this history (messages may carry
        ``tool_calls``: a list of :class:`ToolCall`, and ``tool_call_id``/``name`` on tool turns).

        The default writes everything as plain system/user/assistant text, which every template takes:
        the tool list joins the first system message, calls become assistant text in call syntax, and
        consecutive tool results one user turn of ``<tool_response>`` blocks."""
        out: list[dict[str, Any]] = []
        for message in messages:
            role, content = message["role"], message.get("content") or ""
            if role == "assistant" and message.get("tool_calls"):
                calls = self.call_separator.join(self.call_text(c) for c in message["tool_calls"])
                out.append({"role": "assistant", "content": f"{content}\n{calls}".strip()})
            elif role == "tool":
                result = {"name": message.get("name") or "", "content": content}
                block = f"<tool_response>\n{json.dumps(result, ensure_ascii=False)}\n</tool_response>"
                if out and out[-1].get("tool_results"):
                    out[-1]["content"] += "\n" + block
                else:
                    out.append({"role": "user", "content": block, "tool_results": True})
            else:
                out.append({"role": role, "content": content})
        for message in out:
            message.pop("tool_results", None)
        if tools:
            out = _with_system(out, self.instructions(tools))
        return out, None

    def instructions(self, tools: Sequence[ToolSpec]) -> str:
        """The system-message text that teaches the default syntax."""
        listing = "\n".join(json.dumps(t.as_openai()["function"], ensure_ascii=False) for t in tools)
        return (
            "You can call functions. Each line below is one function, its arguments as a JSON schema:\n"
            f"{listing}\n"
            "To call one, reply with only this, one block per call:\n"
            '<tool_call>\n{"name": "<function name>", "arguments": {<arguments>}}\n</tool_call>\n'
            "Results come back inside <tool_response></tool_response>. "
            "When no call is needed, answer in plain text."
        )

    def call_text(self, call: ToolCall) -> str:
        """One call as this format writes it (for assistant turns in the history)."""
        body = {"name": call.name, self.arguments_key: call.arguments_object()}
        return f"{self.call_open}{json.dumps(body, ensure_ascii=False)}{self.call_close}"

    # -- grammar --------------------------------------------------------------------------------

    def grammar(
        self,
        tools: Sequence[ToolSpec],
        choice: ToolChoice,
        parallel: bool = True,
        otherwise: Mapping[str, Any] | bool | None = None,
    ) -> GrammarSpec:
        """A Lark grammar for this turn: calls of the allowed functions (``choice.name`` only, when
        named), one or -- when ``parallel`` and the format can -- several; ``otherwise`` (a JSON schema:
        the request's ``response_format`` under ``tool_choice: auto``) is the alternative to calling."""
        allowed = [t for t in tools if choice.mode != "named" or t.name == choice.name]
        rules = [f"call_{i}: %json {json.dumps(self._call_schema(t))}" for i, t in enumerate(allowed)]
        calls = self._calls_rule(" | ".join(f"call_{i}" for i in range(len(allowed))), parallel)
        start = "start: calls" if otherwise is None else "start: calls | answer"
        lines = [start, f"calls: {calls}", *rules]
        if otherwise is not None:
            schema = otherwise if isinstance(otherwise, bool) else {**otherwise, "x-guidance": JSON_OPTIONS}
            lines.append(f"answer: %json {json.dumps(schema)}")
        return GrammarSpec.ebnf("\n".join(lines) + "\n", param="tool_choice")

    def _call_schema(self, tool: ToolSpec) -> dict[str, Any]:
        """``{"name": <const>, <arguments_key>: <parameters>}``; the arguments object is closed
        (``additionalProperties: false``) unless the schema says otherwise, as OpenAI's strict mode
        requires: a small model otherwise invents extra keys and never closes the object."""
        parameters = {"additionalProperties": False, **tool.parameters}
        return {
            "x-guidance": JSON_OPTIONS,
            "type": "object",
            "properties": {"name": {"const": tool.name}, self.arguments_key: parameters},
            "required": ["name", self.arguments_key],
            "additionalProperties": False,
        }

    def _calls_rule(self, one: str, parallel: bool) -> str:
        block = f"{self._literal(self.call_open)} ({one}) {self._literal(self.call_close)}"
        if parallel and self.parallel:
            return f"{block} ({self._literal(self.call_separator)} {block})*"
        return block

    def _literal(self, text: str) -> str:
        """Lark for ``text``: a special token by id (its text never appears in decoded output), else a
        string."""
        return f"<[{self._special[text]}]>" if text in self._special else json.dumps(text)

    # -- parsing --------------------------------------------------------------------------------

    markers: tuple[str, ...] = ("<tool_call>",)
    anchored = False  # True: calls only count at the start of the output

    def call_start(self, text: str) -> int | None:
        """Where the first call begins in ``text`` (None: none yet); content before it is plain text."""
        if self.anchored:
            head = text.lstrip()
            hit = any(head.startswith(m) for m in self.markers)
            return len(text) - len(head) if hit else None
        found = [i for m in self.markers if (i := text.find(m)) >= 0]
        return min(found) if found else None

    def pending(self, text: str) -> int:
        """How many trailing characters of ``text`` might still become a call marker (held back while
        streaming content)."""
        if self.anchored:
            head = text.lstrip()
            return len(text) if any(m.startswith(head) for m in self.markers) else 0
        longest = 0
        for marker in self.markers:
            for n in range(min(len(marker) - 1, len(text)), 0, -1):
                if marker.startswith(text[-n:]):
                    longest = max(longest, n)
                    break
        return longest

    def parse(self, text: str) -> tuple[str | None, list[ToolCall]]:
        """The plain content (None when empty) and the calls in ``text``; text that does not parse as a
        call stays content, untouched."""
        calls: list[ToolCall] = []
        kept: list[str] = []
        position = 0
        decoder = json.JSONDecoder()
        while (start := text.find("<tool_call>", position)) >= 0:
            body = _skip_space(text, start + len("<tool_call>"))
            try:
                value, end = decoder.raw_decode(text, body)
            except ValueError:
                break
            call = self._call(value)
            if call is None:
                break
            kept.append(text[position:start])
            calls.append(call)
            end = _skip_space(text, end)
            position = end + len("</tool_call>") if text.startswith("</tool_call>", end) else end
        if not calls:
            return (text or None), []
        kept.append(text[position:])
        content = "".join(kept).strip()
        return (content or None), calls

    def _call(self, value: Any) -> ToolCall | None:
        if not isinstance(value, dict) or not isinstance(value.get("name"), str):
            return None
        arguments = value.get(self.arguments_key, value.get("arguments", value.get("parameters", {})))
        if isinstance(arguments, str):  # some models write the arguments as JSON text
            try:
                arguments = json.loads(arguments)
            except ValueError:
                return None
        if not isinstance(arguments, dict):
            return None
        return ToolCall(new_call_id(self.id_length), value["name"], json.dumps(arguments, ensure_ascii=False))


class HermesFormat(ToolFormat):
    """``<tool_call>`` blocks, with tools and history rendered by the model's own template."""

    name = "hermes"

    def render(
        self, messages: Sequence[Mapping[str, Any]], tools: Sequence[ToolSpec]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
        return [_template_message(m) for m in messages], ([t.as_openai() for t in tools] or None)


class Llama3Format(HermesFormat):
    """Llama 3.1+'s JSON tool calling: the whole reply is ``{"name", "parameters"}``, one call a turn."""

    name = "llama3"
    arguments_key = "parameters"
    call_open, call_close, call_separator = "", "", ""
    parallel = False
    markers = ("<|python_tag|>", "{")
    anchored = True

    def parse(self, text: str) -> tuple[str | None, list[ToolCall]]:
        head = text.strip().removeprefix("<|python_tag|>").lstrip()
        try:
            value, end = json.JSONDecoder().raw_decode(head)
        except ValueError:
            return (text or None), []
        call = self._call(value)
        if call is None or head[end:].strip():
            return (text or None), []
        return None, [call]


class MistralFormat(HermesFormat):
    """``[TOOL_CALLS]`` then a JSON list of calls; call ids of nine alphanumerics."""

    name = "mistral"
    call_open, call_close, call_separator = "", "", ", "
    id_length = 9
    markers = ("[TOOL_CALLS]", "[{")
    anchored = True

    def _calls_rule(self, one: str, parallel: bool) -> str:
        head = f'{self._literal("[TOOL_CALLS]")} "["'
        if parallel:
            return f'{head} ({one}) ({json.dumps(self.call_separator)} ({one}))* "]"'
        return f'{head} ({one}) "]"'

    def parse(self, text: str) -> tuple[str | None, list[ToolCall]]:
        head = text.strip().removeprefix("[TOOL_CALLS]").lstrip()
        try:
            value, end = json.JSONDecoder().raw_decode(head)
        except ValueError:
            return (text or None), []
        values = value if isinstance(value, list) else [value]
        calls = [self._call(v) for v in values]
        if not calls or head[end:].strip() or any(c is None for c in calls):
            return (text or None), []
        return None, [c for c in calls if c is not None]


_FORMATS: dict[str, type[ToolFormat]] = {
    f.name: f for f in (ToolFormat, HermesFormat, Llama3Format, MistralFormat)
}


def tool_format_named(name: str, special_tokens: Mapping[str, int] | None = None) -> ToolFormat:
    """A format by name (``plinth``, ``hermes``, ``llama3``, ``mistral``): a setting may pin one."""
    if name not in _FORMATS:
        raise ValueError(f"unknown tool-call format {name!r}; use one of {', '.join(sorted(_FORMATS))}")
    return _FORMATS[name](special_tokens)


def detect_tool_format(tokenizer: Any) -> ToolFormat:
    """The format ``tokenizer``'s chat template teaches (see the module docstring)."""
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):  # named templates: the tool-use one when there is one
        template = template.get("tool_use") or template.get("default") or ""
    special = {
        token: tokenizer.convert_tokens_to_ids(token)
        for token in ("[TOOL_CALLS]",)
        if token in getattr(tokenizer, "all_special_tokens", ()) or token in _added_special(tokenizer)
    }
    if not template or not _renders_tools(tokenizer):
        return ToolFormat(special)
    if "[TOOL_CALLS]" in template:
        return MistralFormat(special)
    if "<tool_call>" not in template and ("ipython" in template or "<|python_tag|>" in template):
        return Llama3Format(special)
    return HermesFormat(special)


def _renders_tools(tokenizer: Any) -> bool:
    """Whether the template writes the ``tools`` it is given into the prompt."""
    probe = ToolSpec(_PROBE, "probe", {"type": "object", "properties": {}}).as_openai()
    try:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "hi"}], tools=[probe], add_generation_prompt=True, tokenize=False
        )
    except Exception:  # a template that raises on tools does not take them
        return False
    return _PROBE in str(text)


def _added_special(tokenizer: Any) -> set[str]:
    decoder = getattr(tokenizer, "added_tokens_decoder", None) or {}
    return {t.content for t in decoder.values() if getattr(t, "special", False)}


def _template_message(message: Mapping[str, Any]) -> dict[str, Any]:
    """A history turn in the shape HF chat templates expect: call arguments as objects."""
    out = {k: v for k, v in message.items() if k != "tool_calls"}
    out["content"] = message.get("content") or ""
    if message.get("tool_calls"):
        out["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments_object()}}
            for c in message["tool_calls"]
        ]
    return out


def _with_system(messages: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    if messages and messages[0]["role"] == "system":
        first = messages[0]
        return [{**first, "content": f"{first['content']}\n\n{text}".lstrip()}, *messages[1:]]
    return [{"role": "system", "content": text}, *messages]


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i
