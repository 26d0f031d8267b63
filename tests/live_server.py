"""A real uvicorn server on a free loopback port, in a thread, for end-to-end tests."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI
from server_fakes import FakeEmbedder

from plinth.config import Settings
from plinth.control import create_key, open_control_plane
from plinth.engine import EngineConfig
from plinth.llm.local import LocalModel
from plinth.server import create_app


@contextlib.contextmanager
def live_server(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` until the block ends; yields its base URL (``http://127.0.0.1:PORT``)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@contextlib.contextmanager
def live_model_server(
    checkpoint: str, data_dir, name: str, max_num_seqs: int | None = None
) -> Iterator[tuple[str, str, LocalModel]]:
    """A live server over one local float32 model on the CPU, with a fresh control plane and an API
    key; yields ``(base URL, key, model)``. The end-to-end tests share it."""
    cfg = EngineConfig(model=checkpoint, device="cpu", dtype="float32")
    cfg.kv_cache_memory_gb = 0.05
    if max_num_seqs is not None:
        cfg.max_num_seqs = max_num_seqs
    model = LocalModel.load(cfg, name=name)
    cp = open_control_plane(f"sqlite:///{data_dir / 'plinth.db'}")
    try:
        key = create_key(cp, "e2e")
        app = create_app(Settings(data_dir=data_dir), [model], cp, embedder=FakeEmbedder())
        with live_server(app) as url:
            yield url, key, model
    finally:
        model.shutdown()
        cp.close()
