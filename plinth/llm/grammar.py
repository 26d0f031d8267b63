"""Constrained decoding above the engine: what to constrain output to, compiled for one tokenizer.

A :class:`GrammarSpec` says what the output must be -- a JSON schema, a regex, one of a list of strings,
or an EBNF/Lark grammar -- as plain data (features build one for ``ChatOptions.response_format``; the
server builds one from ``response_format`` / ``guided_*``). :class:`GrammarCompiler` turns it into the
engine's :class:`~plinth.engine.guided.Grammar` with llguidance, for one served model's tokenizer::

    compiler = GrammarCompiler(tokenizer, vocab_size=1820, eos_token_ids=[2])
    grammar = compiler.compile(GrammarSpec.json_schema({"type": "object", "properties": {...}}))
    SamplingParams(max_tokens=256, grammar=grammar)

Why llguidance: it has no dependencies (xgrammar pulls triton and pins torch), it takes JSON schema,
regex and Lark/GBNF, it computes each step's mask lazily (no per-grammar precomputation over the
vocabulary: a large schema compiles in milliseconds), and it *refuses* schema keywords it cannot
enforce (``uniqueItems``, ``not``...), which becomes a 400 naming them instead of output that silently
ignores part of the schema.

JSON is generated compactly with fixed separators (``", "`` and ``": "``, as ``json.dumps`` writes):
free whitespace would let a model -- a random-weight one certainly -- pad forever before the closing
brace. Compiled grammars are cached by content (kind + canonical source), so a schema sent with every
request is compiled once; each request gets a cheap copy of the compiled matcher.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["GrammarCompiler", "GrammarError", "GrammarSpec", "grammar_definition"]

JSON_OPTIONS = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
_KINDS = ("json_schema", "regex", "choice", "grammar")


class GrammarError(ValueError):
    """A constraint Plinth cannot enforce (an unsupported schema keyword, an invalid regex or grammar);
    ``param`` names the request field it came from, so the server answers a 400 naming it."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


@dataclass(frozen=True, slots=True)
class GrammarSpec:
    """What constrained output must match. ``source`` is canonical text (JSON sorted by key for schemas
    and choices), so equal constraints compare -- and cache -- equal; ``param`` is for error messages.

    >>> GrammarSpec.json_schema({"b": 1, "a": 2}) == GrammarSpec.json_schema({"a": 2, "b": 1})
    True
    """

    kind: str  # one of json_schema, regex, choice, grammar
    source: str
    param: str = field(default="response_format", compare=False)

    def __post_init__(self) -> None:
        assert self.kind in _KINDS, self.kind

    @classmethod
    def json_schema(
        cls, schema: Mapping[str, Any] | bool | str, param: str = "response_format"
    ) -> GrammarSpec:
        """Output is JSON valid against ``schema`` (a dict, a bool schema, or its JSON text)."""
        if isinstance(schema, str):
            try:
                schema = json.loads(schema)
            except ValueError as exc:
                raise GrammarError(param, f"the JSON schema is not valid JSON: {exc}") from exc
        if not isinstance(schema, Mapping | bool):
            raise GrammarError(param, "a JSON schema must be an object (or true/false)")
        return cls("json_schema", json.dumps(schema, sort_keys=True, separators=(",", ":")), param)

    @classmethod
    def json_object(cls, param: str = "response_format") -> GrammarSpec:
        """Any JSON object (OpenAI's ``{"type": "json_object"}``)."""
        return cls.json_schema({"type": "object"}, param)

    @classmethod
    def regex(cls, pattern: str, param: str = "guided_regex") -> GrammarSpec:
        """The whole output matches ``pattern`` (Rust ``regex`` syntax: no look-around, no backrefs)."""
        return cls("regex", pattern, param)

    @classmethod
    def choice(cls, options: Sequence[str], param: str = "guided_choice") -> GrammarSpec:
        """The output is exactly one of ``options``."""
        if not options or not all(isinstance(o, str) and o for o in options):
            raise GrammarError(param, "choices must be a non-empty list of non-empty strings")
        return cls("choice", json.dumps(list(options)), param)

    @classmethod
    def ebnf(cls, text: str, param: str = "guided_grammar") -> GrammarSpec:
        """A context-free grammar in Lark syntax or llama.cpp's GBNF (``root ::= ...``)."""
        return cls("grammar", text, param)

    def request_fields(self) -> dict[str, Any]:
        """This constraint as fields of an OpenAI-compatible request: ``response_format`` for a schema
        (what OpenAI itself takes), vLLM's ``guided_*`` extras (Plinth's too) for the rest."""
        if self.kind == "json_schema":
            schema = {"name": "response", "schema": json.loads(self.source), "strict": True}
            return {"response_format": {"type": "json_schema", "json_schema": schema}}
        if self.kind == "choice":
            return {"guided_choice": json.loads(self.source)}
        return {"guided_regex" if self.kind == "regex" else "guided_grammar": self.source}


def grammar_definition(spec: GrammarSpec) -> str:
    """The llguidance grammar for ``spec``, checked without a tokenizer; GrammarError when unsupported."""
    import llguidance

    matcher = llguidance.LLMatcher
    try:
        if spec.kind == "json_schema":
            text = matcher.grammar_from_json_schema(spec.source, defaults=JSON_OPTIONS)  # type: ignore[arg-type]
        elif spec.kind == "regex":
            text = matcher.grammar_from_regex(spec.source)
        elif spec.kind == "choice":
            text = llguidance.grammar_from("choice", spec.source)
        else:
            text = llguidance.grammar_from("grammar", spec.source)
    except ValueError as exc:
        raise GrammarError(spec.param, str(exc)) from exc
    is_error, messages = matcher.validate_grammar_with_warnings(text)
    if is_error:
        raise GrammarError(spec.param, _unsupported(spec, messages[0]))
    return text


def _unsupported(spec: GrammarSpec, detail: str) -> str:
    what = {"json_schema": "JSON schema", "regex": "regex", "choice": "choice list", "grammar": "grammar"}
    return f"{spec.param}: this {what[spec.kind]} is not supported for constrained decoding: {detail}"


class GrammarCompiler:
    """Compiles specs for one tokenizer (and the model's vocabulary size, which may exceed it), with an
    LRU cache of ``cache_size`` compiled grammars. Thread-safe: the server compiles in worker threads."""

    def __init__(
        self, tokenizer: Any, vocab_size: int, eos_token_ids: Sequence[int], cache_size: int = 256
    ) -> None:
        import llguidance.hf

        eos = list(eos_token_ids) or None
        self._tokenizer = llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab_size, eos_token=eos)
        self._cache: OrderedDict[GrammarSpec, CompiledGrammar] = OrderedDict()
        self._lock = threading.Lock()
        self.cache_size = cache_size

    def compile(self, spec: GrammarSpec) -> CompiledGrammar:
        """The engine's grammar for ``spec`` (cached by content); GrammarError when unsupported."""
        with self._lock:
            if (hit := self._cache.get(spec)) is not None:
                self._cache.move_to_end(spec)
                return hit
        compiled = self._build(spec)
        with self._lock:
            self._cache[spec] = compiled
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return compiled

    def _build(self, spec: GrammarSpec) -> CompiledGrammar:
        import llguidance

        template = llguidance.LLMatcher(self._tokenizer, grammar_definition(spec), log_level=0)
        if template.is_error():  # e.g. an unknown string format, found once the lexer is built
            raise GrammarError(spec.param, _unsupported(spec, template.get_error()))
        return CompiledGrammar(template)


class CompiledGrammar:
    """A :class:`~plinth.engine.guided.Grammar`: a pristine llguidance matcher, copied per request."""

    def __init__(self, template: Any) -> None:
        self._template = template

    def new_matcher(self) -> GuidedMatcher:
        return GuidedMatcher(self._template.deep_copy())


class GuidedMatcher:
    """A :class:`~plinth.engine.guided.TokenMatcher` over one llguidance matcher."""

    def __init__(self, matcher: Any) -> None:
        self._matcher = matcher

    def fill_bitmask(self, bitmask: torch.Tensor, row: int) -> None:
        words = bitmask[row]
        assert bitmask.dtype == torch.int32 and words.is_contiguous() and not words.is_cuda
        self._matcher.unsafe_compute_mask_ptr(words.data_ptr(), words.numel() * 4)

    def accept_token(self, token_id: int) -> bool:
        return bool(self._matcher.consume_token(token_id))

    def is_terminated(self) -> bool:
        return bool(self._matcher.is_stopped()) and not self._matcher.is_error()
