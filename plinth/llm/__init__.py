"""Text around the engine, and one protocol for every chat-model provider.

Features take a :class:`ChatModel` (``chat`` / ``stream`` over messages) and never learn where the model
runs: :class:`LocalModel` (the in-process engine), :class:`OpenAICompatModel`, :class:`BedrockModel`, or
:class:`ScriptedModel`, the test double. The server calls a :class:`ServedModel` (ids, sampling
params, engine gauges; double: :class:`ScriptedServedModel`). :class:`Embedder` (the sentence-transformers
:class:`SentenceEmbedder`, :class:`OpenAIEmbedder`; :func:`get_embedder`) turns text into vectors.
:class:`GrammarSpec` asks for constrained output (JSON schema, regex, choice, EBNF); a served model's
``compile_grammar`` turns it into the engine's grammar (:class:`GrammarCompiler`, llguidance).
"""

from plinth.llm.base import ChatModel, ChatOptions, ChatResult, Message, ProviderError, Usage
from plinth.llm.bedrock import BedrockModel
from plinth.llm.detokenizer import IncrementalDetokenizer, StopMatcher
from plinth.llm.embedder import DEFAULT_EMBEDDING_MODEL, SentenceEmbedder
from plinth.llm.embedders import get_embedder
from plinth.llm.embedding import Embed, Embedder
from plinth.llm.grammar import GrammarCompiler, GrammarError, GrammarSpec, grammar_definition
from plinth.llm.local import ChatView, GenerationError, LocalModel, TextDelta
from plinth.llm.openai_compat import OpenAICompatModel
from plinth.llm.openai_embedder import OpenAIEmbedder
from plinth.llm.scripted import ScriptedCall, ScriptedModel
from plinth.llm.scripted_served import ScriptedRepliesModel, ScriptedServedModel
from plinth.llm.served import AdapterHost, ServedModel
from plinth.llm.tool_calls import ToolCall, ToolChoice, ToolSpec
from plinth.llm.tool_formats import ToolFormat, detect_tool_format
from plinth.llm.tool_stream import ToolCallStream

__all__ = [
    "DEFAULT_EMBEDDING_MODEL",
    "AdapterHost",
    "BedrockModel",
    "ChatModel",
    "ChatOptions",
    "ChatView",
    "ChatResult",
    "Embed",
    "Embedder",
    "GenerationError",
    "GrammarCompiler",
    "GrammarError",
    "GrammarSpec",
    "IncrementalDetokenizer",
    "LocalModel",
    "Message",
    "OpenAICompatModel",
    "OpenAIEmbedder",
    "ProviderError",
    "ScriptedCall",
    "ScriptedModel",
    "ScriptedRepliesModel",
    "ScriptedServedModel",
    "ServedModel",
    "SentenceEmbedder",
    "StopMatcher",
    "TextDelta",
    "ToolCall",
    "ToolCallStream",
    "ToolChoice",
    "ToolFormat",
    "ToolSpec",
    "Usage",
    "detect_tool_format",
    "get_embedder",
    "grammar_definition",
]
