"""BedrockModel over botocore's Stubber (no network, no credentials needed)."""

import boto3
import pytest
from botocore.stub import Stubber

from plinth.llm import BedrockModel, ChatOptions, ProviderError

MODEL_ID = "anthropic.claude-3-haiku-20240307-v1:0"
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


@pytest.fixture
def stubbed():
    client = boto3.client(
        "bedrock-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stubber:
        yield BedrockModel(MODEL_ID, client=client), stubber
        stubber.assert_no_pending_responses()


async def test_chat_maps_messages_options_and_reply(stubbed):
    model, stubber = stubbed
    response = {
        "output": {"message": {"role": "assistant", "content": [{"text": "Hello"}, {"text": " there"}]}},
        "stopReason": "max_tokens",
        "usage": {"inputTokens": 7, "outputTokens": 2, "totalTokens": 9},
        "metrics": {"latencyMs": 10},
    }
    expected = {
        "modelId": MODEL_ID,
        "system": [{"text": "Be brief."}],
        "messages": [{"role": "user", "content": [{"text": "Hi"}]}],
        "inferenceConfig": {"maxTokens": 2, "temperature": 0.5, "stopSequences": ["END"]},
    }
    stubber.add_response("converse", response, expected)
    result = await model.chat(MESSAGES, ChatOptions(max_tokens=2, temperature=0.5, stop=["END"], seed=1))
    assert (result.text, result.finish_reason) == ("Hello there", "length")
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (7, 2)


async def test_service_error_becomes_provider_error(stubbed):
    model, stubber = stubbed
    stubber.add_client_error(
        "converse",
        service_error_code="ValidationException",
        service_message="bad model",
        http_status_code=400,
    )
    with pytest.raises(ProviderError, match="ValidationException: bad model") as info:
        await model.chat(MESSAGES)
    assert info.value.status == 400


async def test_stream_yields_text_deltas():
    class FakeClient:  # converse_stream returns an event stream, which Stubber cannot build
        def converse_stream(self, **request):
            self.request = request
            events = [
                {"messageStart": {"role": "assistant"}},
                {"contentBlockDelta": {"delta": {"text": "Hel"}, "contentBlockIndex": 0}},
                {"contentBlockDelta": {"delta": {"text": "lo"}, "contentBlockIndex": 0}},
                {"messageStop": {"stopReason": "end_turn"}},
            ]
            return {"stream": iter(events)}

    client = FakeClient()
    chunks = [c async for c in BedrockModel(MODEL_ID, client=client).stream(MESSAGES)]
    assert chunks == ["Hel", "lo"]
    assert client.request["messages"] == [{"role": "user", "content": [{"text": "Hi"}]}]
