"""Test doubles for the server tests (no tests here): a scripted LocalModel, a fake embedder, an app.

``FakeModel`` speaks LocalModel's server-facing interface (encode, encode_chat, token_text, stream) and
records what happened to each request: ``finished`` when a stream ran to its end, ``aborted`` when it
was closed early — which is how the tests check that disconnects abort engine requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from plinth.config import Settings
from plinth.control import create_key, open_control_plane
from plinth.engine import PromptTooLongError, SamplingParams, TokenLogprob
from plinth.llm.local import TextDelta
from plinth.server import create_app

EOS = 2
SCRIPT = ("Hello", " there", ",", " friend", ".")


@dataclass
class Stats:
    num_running: int = 1
    num_waiting: int = 3
    kv_blocks_used: int = 5
    kv_blocks_total: int = 20
    last_batch_size: int = 1


class FakeModel:
    """Answers every prompt with ``script`` (token ids 10, 11, ...; EOS last when it stops naturally)."""

    def __init__(
        self,
        name: str = "fake-model",
        script: Sequence[str] = SCRIPT,
        max_model_len: int = 64,
        is_random: bool = False,
        delay: float = 0.0,
        cached: int = 0,
    ) -> None:
        self.name, self.script, self.max_model_len = name, list(script), max_model_len
        self.is_random, self.delay, self.cached = is_random, delay, cached
        self.tokenizer = SimpleNamespace(eos_token_id=EOS)
        self.engine = SimpleNamespace(engine=SimpleNamespace(stats=Stats))
        self.calls: list[tuple[list[int], SamplingParams, tuple[str, ...], str | None]] = []
        self.finished: list[str | None] = []
        self.aborted: list[str | None] = []

    def shutdown(self) -> None:
        self.is_shut_down = True

    def encode(self, text: str) -> list[int]:
        return [1] + [3 + (ord(c) % 7) for c in text]

    def encode_chat(self, messages: Sequence[dict[str, str]]) -> list[int]:
        return self.encode("".join(f"<{m['role']}>{m['content']}" for m in messages))

    def token_text(self, token_id: int) -> str:
        if token_id == EOS:
            return "</s>"
        index = token_id - 10
        return self.script[index] if 0 <= index < len(self.script) else f"<{token_id}>"

    def stream(
        self,
        prompt_ids: Sequence[int],
        params: SamplingParams,
        stop: Sequence[str] = (),
        request_id: Any = None,
    ) -> AsyncIterator[TextDelta]:
        if len(prompt_ids) + params.max_tokens > self.max_model_len:
            raise PromptTooLongError(len(prompt_ids), params.max_tokens, self.max_model_len)
        self.calls.append((list(prompt_ids), params, tuple(stop), request_id))
        return self._run(list(prompt_ids), params, request_id)

    async def _run(self, prompt: list[int], params: SamplingParams, rid: Any) -> AsyncIterator[TextDelta]:
        n = min(params.max_tokens, len(self.script))
        reason = "length" if params.max_tokens < len(self.script) else "stop"
        done = False
        try:
            for i in range(n):
                await asyncio.sleep(self.delay)
                last = i == n - 1
                tid = EOS if last and reason == "stop" else 10 + i
                text = "" if tid == EOS else self.script[i]
                lps = None if params.logprobs is None else [_logprob(tid, params.logprobs)]
                finish = reason if last else None
                yield TextDelta(text, [tid], lps, finish, len(prompt), i + 1, self.cached)
            done = True
        finally:
            (self.finished if done else self.aborted).append(rid)


def _logprob(token_id: int, k: int) -> TokenLogprob:
    top = {token_id: -0.25, 50: -1.5, 51: -2.5, 52: -3.5}
    return TokenLogprob(token_id, -0.25, dict(list(top.items())[:k]))


class FakeEmbedder:
    name = "sentence-transformers/all-MiniLM-L6-v2"
    dimensions = 3

    def embed(self, texts: list[str]) -> list[list[float]]:
        return [[1.0, float(len(t)), 0.5] for t in texts]

    def count_tokens(self, texts: list[str]) -> int:
        return sum(len(t.split()) for t in texts)


def build_app(tmp_path: Any, models: list[Any] | None = None, *, no_auth: bool = False) -> tuple[Any, str]:
    """An app over fakes and a real SQLite control plane; returns (app, an API key for tenant 'acme')."""
    settings = Settings(data_dir=tmp_path, no_auth=no_auth)
    cp = open_control_plane(f"sqlite:///{tmp_path / 'plinth.db'}")
    key = create_key(cp, "acme")
    app = create_app(settings, models if models is not None else [FakeModel()], cp, embedder=FakeEmbedder())
    return app, key


class ScriptedChatModel:
    """A served model (LocalModel's chat-facing interface: encode_chat, sampling_params, stream) whose
    replies come from a script, one whole reply per request; ``messages`` records each prompt's
    messages. For routes that drive a model through ``ChatView`` (RAG, SQL ask)."""

    def __init__(self, replies: Sequence[str] = (), name: str = "fake-model") -> None:
        self.name, self.replies = name, list(replies)
        self.messages: list[list[dict[str, str]]] = []
        self.max_model_len, self.is_random = 32768, False

    def encode_chat(self, messages: Sequence[dict[str, str]]) -> list[int]:
        self.messages.append(list(messages))
        return [1, 2, 3]

    def sampling_params(self, options: Any, prompt_len: int) -> SamplingParams:
        return SamplingParams(max_tokens=64)

    def stream(
        self, ids: list[int], params: SamplingParams, stop: Sequence[str] = ()
    ) -> AsyncIterator[TextDelta]:
        text = self.replies.pop(0)

        async def deltas() -> AsyncIterator[TextDelta]:
            yield TextDelta(text, [5], None, "stop", len(ids), 1, 0)

        return deltas()
