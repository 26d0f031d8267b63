"""The public API of plinth.llm is explicit and pinned (changing it is a deliberate act)."""

import plinth.llm
from plinth.llm import BedrockModel, ChatModel, OpenAICompatModel


def test_all_is_pinned():
    assert sorted(plinth.llm.__all__) == [
        "AdapterHost",
        "BedrockModel",
        "ChatModel",
        "ChatOptions",
        "ChatResult",
        "ChatView",
        "DEFAULT_EMBEDDING_MODEL",
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
        "SentenceEmbedder",
        "ServedModel",
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
    assert all(hasattr(plinth.llm, name) for name in plinth.llm.__all__)


def test_remote_providers_are_chat_models():
    assert isinstance(OpenAICompatModel("http://x/v1", "m"), ChatModel)
    assert isinstance(BedrockModel("model-id"), ChatModel)  # boto3 is not imported until a call
