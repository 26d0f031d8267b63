"""The official ``openai`` SDK's files and batches calls, unchanged, against a live server on the tiny random
llama: files.create(purpose="batch"), batches.create / retrieve / list / cancel, files.content; and a
greedy 50-line batch whose outputs equal the same requests sent interactively."""

from __future__ import annotations

import json
import time

import openai
import pytest
from live_server import live_server
from server_fakes import FakeEmbedder

from plinth.config import Settings
from plinth.control import create_key, open_control_plane
from plinth.engine import EngineConfig
from plinth.llm.local import LocalModel
from plinth.server import create_app

pytestmark = pytest.mark.slow

MODEL = "tiny-llama"


@pytest.fixture(scope="module")
def server(tiny_checkpoint_factory, tmp_path_factory):
    data = tmp_path_factory.mktemp("batch-e2e")
    cfg = EngineConfig(model=str(tiny_checkpoint_factory("llama")), device="cpu", dtype="float32")
    cfg.kv_cache_memory_gb = 0.05
    model = LocalModel.load(cfg, name=MODEL)
    cp = open_control_plane(f"sqlite:///{data / 'plinth.db'}")
    key = create_key(cp, "e2e")
    settings = Settings(data_dir=data, batch_max_lines_in_flight=8)
    app = create_app(settings, [model], cp, embedder=FakeEmbedder())
    with live_server(app) as url:
        yield openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=120)
    model.shutdown()
    cp.close()


def request(i: int, max_tokens: int = 8) -> dict:
    question = f"Item {i}: name a colour and a number {i * 7 % 13}."
    return {"model": MODEL, "messages": [{"role": "user", "content": question}], "max_tokens": max_tokens,
            "temperature": 0}  # fmt: skip


def batch_file(bodies: list[dict]) -> bytes:
    lines = [
        {"custom_id": f"line-{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}
        for i, body in enumerate(bodies)
    ]
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def wait(client: openai.OpenAI, batch_id: str, statuses: tuple[str, ...]):
    deadline = time.monotonic() + 240
    while (batch := client.batches.retrieve(batch_id)).status not in statuses:
        assert time.monotonic() < deadline, batch
        time.sleep(0.2)
    return batch


def test_a_greedy_batch_equals_interactive_requests_through_the_sdk(server):
    client = server
    bodies = [request(i) for i in range(50)]
    uploaded = client.files.create(file=("batch.jsonl", batch_file(bodies)), purpose="batch")
    assert uploaded.purpose == "batch"
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h",
        metadata={"run": "sdk"},
    )  # fmt: skip
    assert batch.status == "validating" and batch.metadata == {"run": "sdk"}
    done = wait(client, batch.id, ("completed", "failed"))
    assert done.status == "completed", done
    assert done.request_counts is not None and done.request_counts.completed == 50
    assert done.request_counts.failed == 0 and done.error_file_id is None
    assert done.output_file_id is not None
    assert batch.id in [b.id for b in client.batches.list(limit=10).data]
    lines = [json.loads(x) for x in client.files.content(done.output_file_id).text.splitlines()]
    by_id = {line["custom_id"]: line["response"]["body"] for line in lines}
    assert len(by_id) == len(lines) == 50
    for i, body in enumerate(bodies):
        interactive = client.chat.completions.create(**body)
        batched = by_id[f"line-{i}"]
        assert batched["choices"][0]["message"]["content"] == interactive.choices[0].message.content, i
        assert batched["choices"][0]["finish_reason"] == interactive.choices[0].finish_reason
        assert batched["usage"]["completion_tokens"] == interactive.usage.completion_tokens  # type: ignore[union-attr]


def test_the_sdk_cancels_a_running_batch(server):
    client = server
    uploaded = client.files.create(
        file=("long.jsonl", batch_file([request(i, max_tokens=64) for i in range(200)])), purpose="batch"
    )
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    wait(client, batch.id, ("in_progress",))
    cancelled = client.batches.cancel(batch.id)
    assert cancelled.status in ("cancelling", "cancelled")
    final = wait(client, batch.id, ("cancelled",))
    assert final.request_counts is not None and final.request_counts.completed < 200
    assert final.cancelled_at is not None
