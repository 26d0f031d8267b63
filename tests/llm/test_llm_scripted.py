"""ScriptedModel, the shipped ChatModel test double."""

import pytest

from plinth.llm import ChatModel, ChatOptions, ScriptedModel

ASK = [{"role": "user", "content": "What is two plus two?"}]


async def test_replies_in_order_and_records_calls():
    model = ScriptedModel(["Four.", "Still four."])
    options = ChatOptions(temperature=0.0)
    assert (await model.chat(ASK, options)).text == "Four."
    assert (await model.chat(ASK)).text == "Still four."
    assert [c.messages for c in model.calls] == [ASK, ASK]
    assert model.calls[0].options is options
    with pytest.raises(RuntimeError, match="2 replies"):
        await model.chat(ASK)


async def test_stream_yields_the_reply_in_several_chunks():
    model = ScriptedModel(["The answer is four, of course."])
    chunks = [c async for c in model.stream(ASK)]
    assert len(chunks) > 1 and "".join(chunks) == "The answer is four, of course."
    assert len(model.calls) == 1


async def test_reply_function_sees_the_messages_and_stop_strings_cut():
    model = ScriptedModel(lambda messages: f"echo: {messages[-1]['content']}\nUser: more")
    result = await model.chat(ASK, ChatOptions(stop=["\nUser:"]))
    assert result.text == "echo: What is two plus two?"
    assert result.finish_reason == "stop" and result.usage.prompt_tokens == 5


def test_is_a_chat_model():
    assert isinstance(ScriptedModel([]), ChatModel)
