"""The default real model end to end: ``smollm2-135m-instruct`` (the packaged SmolLM2-135M-Instruct GGUF)
served by a live uvicorn server, driven by the official ``openai`` SDK: plain and streamed chat, stop
sequences, and the end-of-turn stop (``<|im_end|>``) that ends a reply before ``max_tokens``."""

from __future__ import annotations

import openai
import pytest
from live_server import live_server

from plinth.config import Settings
from plinth.control import create_key, open_control_plane
from plinth.llm.loading import load_models
from plinth.server import create_app

pytestmark = pytest.mark.slow

MODEL = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    data = tmp_path_factory.mktemp("real-model")
    settings = Settings(data_dir=data, device="cpu", max_num_seqs=8, kv_cache_memory_gb=0.25)
    [model] = load_models(settings)  # no --model: the packaged default
    cp = open_control_plane(f"sqlite:///{data / 'plinth.db'}")
    key = create_key(cp, "sdk")
    app = create_app(settings, [model], cp)
    with live_server(app) as url:
        yield openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=600)
    model.shutdown()
    cp.close()


def ask(client, question: str, **kwargs):
    messages = [{"role": "user", "content": question}]
    return client.chat.completions.create(model=MODEL, messages=messages, temperature=0, **kwargs)


def test_listed_as_a_real_model(client):
    [card] = client.models.list().data
    assert card.id == MODEL and card.model_extra["plinth"] == {"random_weights": False}


def test_answers_a_factual_question_and_ends_its_turn(client):
    reply = ask(client, "What is the capital of France? Answer in one sentence.", max_tokens=200)
    choice = reply.choices[0]
    assert "Paris" in choice.message.content
    assert choice.finish_reason == "stop" and reply.usage.completion_tokens < 200  # stopped at <|im_end|>
    assert "<|im_end|>" not in choice.message.content and "<|im_start|>" not in choice.message.content


def test_stream_matches_the_plain_reply(client):
    question = "Name three primary colours."
    plain = ask(client, question, max_tokens=30).choices[0].message.content
    chunks = list(ask(client, question, max_tokens=30, stream=True))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == plain and len(chunks) > 3
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")


def test_stop_sequence_cuts_the_reply(client):
    question = "Count from 1 to 10, separated by commas."
    full = ask(client, question, max_tokens=40).choices[0].message.content
    assert "4" in full, full
    cut = ask(client, question, max_tokens=40, stop=["4"]).choices[0]
    assert cut.finish_reason == "stop" and "4" not in cut.message.content
    assert full.startswith(cut.message.content)
