"""Constrained decoding through a live server on the tiny random llama: the official openai SDK's
``chat.completions.parse`` with a Pydantic model, streamed JSON, completions with a regex, LMI
``/invocations`` streamed and not, and an unsupported schema as the SDK's BadRequestError."""

from __future__ import annotations

import json
import re
from typing import Annotated, Literal

import httpx
import openai
import pytest
from live_server import live_model_server
from pydantic import BaseModel, Field

from plinth.llm import ChatOptions, GrammarSpec

pytestmark = pytest.mark.slow

MODEL = "tiny-llama"
CHAT = [{"role": "user", "content": "Describe a city."}]


class City(BaseModel):
    name: str = Field(max_length=10)
    population: int = Field(ge=0, le=1000)
    size: Literal["small", "large"]
    tags: list[Annotated[str, Field(max_length=6)]] = Field(max_length=3)


SCHEMA = {
    "type": "object",
    "properties": {"ok": {"type": "boolean"}, "n": {"type": "integer", "minimum": 1, "maximum": 9}},
    "required": ["ok", "n"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def server(tiny_checkpoint_factory, tmp_path_factory):
    data = tmp_path_factory.mktemp("grammar-e2e")
    with live_model_server(str(tiny_checkpoint_factory("llama")), data, MODEL) as (url, key, model):
        yield url, key, model


@pytest.fixture
def client(server) -> openai.OpenAI:
    url, key, _ = server
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=60)


def test_sdk_parse_with_a_pydantic_model(client):
    for seed in range(3):
        completion = client.chat.completions.parse(
            model=MODEL, messages=CHAT, response_format=City, max_tokens=300, seed=seed, temperature=1.0
        )
        choice = completion.choices[0]
        assert choice.finish_reason == "stop"
        city = choice.message.parsed
        assert isinstance(city, City) and 0 <= city.population <= 1000 and len(city.tags) <= 3


def test_streamed_json_schema_is_valid_json(client):
    response_format = {"type": "json_schema", "json_schema": {"name": "s", "schema": SCHEMA, "strict": True}}
    stream = client.chat.completions.create(
        model=MODEL, messages=CHAT, response_format=response_format, max_tokens=100, stream=True, n=2, seed=1
    )
    texts = ["", ""]
    for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
    for text in texts:
        value = json.loads(text)
        assert set(value) == {"ok", "n"} and isinstance(value["ok"], bool) and 1 <= value["n"] <= 9


def test_completions_with_guided_regex(client):
    r = client.completions.create(
        model=MODEL, prompt="Phone:", max_tokens=40, extra_body={"guided_regex": r"\d{3}-\d{4}"}
    )
    assert re.fullmatch(r"\d{3}-\d{4}", r.choices[0].text) and r.choices[0].finish_reason == "stop"


def test_invocations_guided_json_streamed_and_not(server):
    url, key, _ = server
    headers = {"Authorization": f"Bearer {key}"}
    params = {"max_new_tokens": 100, "guided_json": SCHEMA, "do_sample": True, "seed": 4}
    whole = httpx.post(f"{url}/invocations", json={"inputs": "x", "parameters": params}, headers=headers)
    assert whole.status_code == 200 and set(json.loads(whole.json()["generated_text"])) == {"ok", "n"}
    body = {"inputs": "x", "parameters": params, "stream": True}
    with httpx.stream("POST", f"{url}/invocations", json=body, headers=headers, timeout=60) as r:
        lines = [json.loads(line) for line in r.iter_lines() if line]
    assert json.loads(lines[-1]["generated_text"]) == json.loads(whole.json()["generated_text"])


def test_unsupported_schema_is_a_bad_request_naming_it(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model=MODEL, messages=CHAT, extra_body={"guided_json": {"type": "array", "uniqueItems": True}}
        )
    assert err.value.body["param"] == "guided_json" and "uniqueItems" in err.value.body["message"]


async def test_chat_model_view_honours_response_format(server):
    """Features ask for structured output through ChatOptions; the local model enforces it."""
    chat_model = server[2].as_chat_model()
    options = ChatOptions(
        max_tokens=100, temperature=1.0, seed=2, response_format=GrammarSpec.json_schema(SCHEMA)
    )
    result = await chat_model.chat(CHAT, options)
    assert result.finish_reason == "stop" and set(json.loads(result.text)) == {"ok", "n"}
    streamed = "".join([piece async for piece in chat_model.stream(CHAT, options)])
    assert streamed == result.text  # same seed, same constrained output
