"""A live Plinth server with demo-like data for the browser tests (no tests here).

:func:`web_server` serves, on a real uvicorn port, an app with:

- ``demo-chat``: a streaming chat model flagged as random weights (the demo's situation); it answers in
  words a few milliseconds apart, and at length when asked for a story, so Stop has something to stop;
- ``analyst``: a scripted model whose replies depend on the prompt -- a cited answer for
  retrieve-and-generate, a ```sql``` block for the cost analyst, the question itself for query rewrites;
- ``tiny-llama``: a real tiny random checkpoint with LoRA slots, so an adapter can be registered;
- a ``movies`` knowledge base of ~150 1990s films (the demo's schema and documents, a small slice),
  embedded by :class:`HashingEmbedder` so it builds in a moment (retrieval quality is tested elsewhere;
  these tests are about the page);
- a ``costs`` dataset: the demo's generated legacy CUR, 1,200 rows.

Models speak ``LocalModel``'s server-facing interface (``encode_chat``, ``stream``, ``sampling_params``...),
like ``server_fakes.ScriptedServedModel``, so the routes run unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import re
import shutil
import zlib
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from live_server import live_server

from plinth.config import Settings
from plinth.control import LOCAL_TENANT, Tenant, create_key, get_or_create_tenant, open_control_plane
from plinth.demo import movies_kb as demo
from plinth.engine import SamplingParams
from plinth.knowledge.chunking import ChunkingConfig
from plinth.knowledge.kb import KnowledgeBaseConfig
from plinth.llm.local import TextDelta
from plinth.llm.scripted_served import EOS, ScriptedServedModel
from plinth.server import create_app

MOVIES = Path(__file__).resolve().parents[2] / "shared" / "data" / "movies"
STORY = " ".join(["Once upon a time a small model wrote a very long story, word after word,"] * 40)
CHAT_REPLY = "Hello! I am a demo model with random weights, so take what I say lightly."
COST_SQL = (
    "SELECT line_item_product_code AS service,\n       ROUND(SUM(line_item_unblended_cost), 2) AS cost\n"
    "FROM cur\nGROUP BY line_item_product_code\nORDER BY cost DESC\nLIMIT 20"
)


class ReplyModel(ScriptedServedModel):
    """A served model whose reply is ``reply(messages)``, streamed word by word ``delay`` seconds apart."""

    def __init__(
        self, name: str, reply: Callable[[list[dict[str, str]]], str], *, is_random: bool = False,
        delay: float = 0.0,
    ) -> None:  # fmt: skip
        super().__init__(name, max_model_len=8192, is_random=is_random, delay=delay)
        self.reply = reply
        self._prompts: dict[int, list[dict[str, str]]] = {}
        self._ids = itertools.count(1000)

    def encode(self, text: str) -> list[int]:
        return self.encode_chat([{"role": "user", "content": text}])

    def encode_chat(self, messages: Sequence[dict[str, str]], tools: Any = None) -> list[int]:
        """Token ids whose second id names the remembered messages (so ``stream`` can script the reply)."""
        key = next(self._ids)
        self._prompts[key] = [dict(m) for m in messages]
        text = "".join(m["content"] for m in messages)
        return [1, key] + [3 + ord(c) % 200 for c in text[:2000]]

    def token_text(self, token_id: int) -> str:
        return "</s>" if token_id == EOS else "?"

    def sampling_params(self, options: Any, prompt_len: int) -> SamplingParams:
        max_tokens = getattr(options, "max_tokens", None) or 1024
        return SamplingParams(max_tokens=max_tokens)

    def stream(
        self,
        prompt_ids: Sequence[int],
        params: SamplingParams,
        stop: Sequence[str] = (),
        request_id: str | None = None,
        adapter: str | None = None,
    ) -> AsyncIterator[TextDelta]:
        messages = self._prompts.pop(prompt_ids[1], [])
        return self._run(self.reply(messages), len(prompt_ids), params.max_tokens)

    async def _run(self, text: str, prompt_len: int, max_tokens: int) -> AsyncIterator[TextDelta]:
        words = [w for w in re.findall(r"\S*\s*", text) if w][:max_tokens]
        reason = "length" if len(re.findall(r"\S+\s*", text)) > max_tokens else "stop"
        for i, word in enumerate(words):
            await asyncio.sleep(self.delay)
            last = i == len(words) - 1
            yield TextDelta(word, [10 + i], None, reason if last else None, prompt_len, i + 1)


def chat_reply(messages: list[dict[str, str]]) -> str:
    last = messages[-1]["content"].lower() if messages else ""
    return STORY if "story" in last else CHAT_REPLY


def analyst_reply(messages: list[dict[str, str]]) -> str:
    """Scripted by what the prompt asks for: a cited answer, SQL, or (a rewrite) the question as is."""
    text = "\n".join(m["content"] for m in messages)
    if '<source id="1">' in text:
        block = text.split('<source id="1">', 1)[1]
        title = re.search(r'"title": "([^"]+)"', block.split("</source>", 1)[0])
        name = title.group(1) if title else "The first source"
        return f"{name} is the best match in the catalog [1]."
    if messages and re.search(r"\bsql\b", messages[0]["content"], re.I):
        return f"Here is the query:\n```sql\n{COST_SQL}\n```"
    return messages[-1]["content"] if messages else ""  # a query rewrite: the question as it stands


class HashingEmbedder:
    """Words hashed into a normalised bag-of-words vector: instant, deterministic, offline."""

    name = "hashing"
    dimensions = 256
    tokenizer = SimpleNamespace(is_fast=False)  # never used: the test KBs chunk with strategy "none"

    def embed(self, texts: list[str]) -> list[list[float]]:
        return [self._vector(t) for t in texts]

    def _vector(self, text: str) -> list[float]:
        vector = [0.0] * self.dimensions
        for word in re.findall(r"[a-z0-9]+", text.lower()):
            vector[zlib.crc32(word.encode()) % self.dimensions] += 1.0
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        return [v / norm for v in vector]


@dataclass
class WebServer:
    url: str
    admin_key: str  # tenant local, admin
    user_key: str  # tenant acme, ordinary
    app: Any
    adapter_dir: Path  # a PEFT adapter for tiny-llama, registrable by path
    shots: Path


def movies_slice(out: Path, count: int = 150) -> Path:
    """A shared-data folder holding ``count`` 1990s films (animated ones first) and the vega ratings."""
    films = json.loads((MOVIES / "wikipedia" / "movies-1990s.json").read_text())
    animated = [f for f in films if "Animated" in f["genres"]]
    chosen = (animated + [f for f in films if f not in animated])[:count]
    (out / "movies" / "wikipedia").mkdir(parents=True)
    (out / "movies" / "wikipedia" / "movies-1990s.json").write_text(json.dumps(chosen))
    shutil.copy(MOVIES / "vega-movies.json", out / "movies" / "vega-movies.json")
    return out


def build_movies_kb(service: Any, tenant: Tenant, root: Path) -> None:
    """The demo's ``movies`` KB (same documents and schema) over a slice, synced before the tests start."""
    records = demo.write_records(movies_slice(root / "shared"), root / "movies.jsonl")
    config = KnowledgeBaseConfig(
        demo.KB_NAME, chunking=ChunkingConfig(strategy="none"), metadata_schema=demo.SCHEMA
    )
    service.create(tenant, config)
    service.add_source(tenant, demo.KB_NAME, {
        "type": "records", "path": str(records), "text_fields": ["text"],
        "metadata_fields": list(demo.SCHEMA), "id_field": "id", "title_field": "title",
    })  # fmt: skip
    job = service.sync_now(tenant, demo.KB_NAME)
    assert job.status == "succeeded", job.error


def register_costs(service: Any, tenant: Tenant, root: Path) -> None:
    """The demo's ``costs`` dataset (a generated legacy CUR), small: 1,200 rows over three months."""
    from plinth.demo.cost_data import COSTS
    from plinth.samples import generate

    folder = generate("cur", root / "cost", rows=1200, months=3, seed=7)
    service.register(tenant, COSTS, str(folder), kind="cur", description="Synthetic CUR, test data.")


def agent_reply(messages: list[dict[str, str]]) -> str:
    """An agent's decisions, scripted by the conversation so far: arithmetic goes to the calculator, a
    booking to the ``book_table`` function, and a tool's result becomes the final answer."""
    last = messages[-1]["content"] if messages else ""
    result = re.match(r"Result of the tool (\w+)[^\n]*\n(.*?)\n\n", last, re.S)
    if result:
        return json.dumps({"final_answer": f"Done with {result.group(1)}: {result.group(2).strip()}"})
    if "book" in last.lower():
        call = {"tool": "book_table", "tool_input": {"people": 2, "time": "19:00"}}
    else:
        call = {"tool": "calculator", "tool_input": {"expression": "17 * 23"}}
    return json.dumps({"thought": "A tool can do this.", **call})


@contextlib.contextmanager
def web_server(root: Path, tiny_llama: Path, adapter_dir: Path, shots: Path) -> Iterator[WebServer]:
    """Build the app over ``root`` and serve it until the block ends."""
    from adapter_fixtures import lora_model

    cp = open_control_plane(f"sqlite:///{root / 'plinth.db'}")
    admin_key = create_key(cp, LOCAL_TENANT, admin=True)
    user_key = create_key(cp, "acme")
    row = get_or_create_tenant(cp, LOCAL_TENANT)
    tiny = lora_model(tiny_llama, name="tiny-llama")
    models = [
        ReplyModel("demo-chat", chat_reply, is_random=True, delay=0.02),
        ReplyModel("analyst", analyst_reply),
        ReplyModel("agent-model", agent_reply),
        tiny,
    ]
    app = create_app(Settings(data_dir=root / "data"), models, cp)
    embedder = HashingEmbedder()
    app.state.knowledge.embedder = lambda config: embedder  # every KB of this server
    local = Tenant(row.id, row.name, is_admin=True)
    build_movies_kb(app.state.knowledge, local, root)
    register_costs(app.state.sql, local, root)
    try:
        with live_server(app) as url:
            yield WebServer(url, admin_key, user_key, app, adapter_dir, shots)
    finally:
        tiny.shutdown()
        cp.close()
