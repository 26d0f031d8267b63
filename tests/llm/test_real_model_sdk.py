"""The default real model end to end: ``smollm2-135m-instruct`` (the packaged SmolLM2-135M-Instruct GGUF)
served by a live uvicorn server, driven by the official ``openai`` SDK: plain and streamed chat, stop
sequences, and the end-of-turn stop (``<|im_end|>``) that ends a reply before ``max_tokens``; and the
packaged ``cost-sql`` adapter served beside it, answering a cost question with the right SQL."""

from __future__ import annotations

import httpx
import openai
import pytest
from live_server import live_server

from plinth.config import Settings
from plinth.control import create_key, open_control_plane
from plinth.llm.loading import load_models
from plinth.samples import generate
from plinth.server import create_app

pytestmark = pytest.mark.slow

MODEL = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("real-model")
    settings = Settings(data_dir=data, device="cpu", max_num_seqs=8, kv_cache_memory_gb=0.25)
    [model] = load_models(settings)  # no --model: the packaged default
    cp = open_control_plane(f"sqlite:///{data / 'plinth.db'}")
    key, admin = create_key(cp, "sdk"), create_key(cp, "sdk", admin=True)
    app = create_app(settings, [model], cp)
    with live_server(app) as url:
        yield url, key, admin
    model.shutdown()
    app.state.sql.close()
    cp.close()


@pytest.fixture(scope="module")
def client(server):
    url, key, _ = server
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=600)


def ask(client, question: str, **kwargs):
    messages = [{"role": "user", "content": question}]
    return client.chat.completions.create(model=MODEL, messages=messages, temperature=0, **kwargs)


def test_listed_as_a_real_model_with_the_packaged_sql_adapter(client):
    cards = {card.id: card for card in client.models.list().data}
    assert set(cards) == {MODEL, "cost-sql"}
    assert cards[MODEL].model_extra["plinth"] == {"random_weights": False}
    assert cards["cost-sql"].model_extra["parent"] == MODEL


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


def test_the_cost_sql_adapter_answers_a_cost_question(server, tmp_path):
    url, key, admin = server
    folder = generate("cur", tmp_path / "cur", rows=2400, months=2, seed=5).parent
    with httpx.Client(base_url=url, timeout=600) as http:
        made = http.post("/v1/sql/datasets", json={"name": "costs", "path": str(folder)},
                         headers={"Authorization": f"Bearer {admin}"})  # fmt: skip
        assert made.status_code == 201, made.text
        question = {"question": "What did we spend on AmazonEC2?", "dataset": "costs", "model": "cost-sql"}
        answer = http.post("/v1/sql/ask", json=question, headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200, answer.text
    sql = answer.json()["sql"]
    assert "SUM(line_item_unblended_cost)" in sql and "'AmazonEC2'" in sql and answer.json()["attempts"] == 1
