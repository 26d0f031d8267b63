"""Shared fixtures: tiny random checkpoints, built once per test session.

``tiny_checkpoint_factory(arch)`` returns the directory of a tiny (~1M parameter) random checkpoint
of ``arch`` (llama, mistral, qwen2, qwen3, mixtral, qwen3_moe), written on first use and reused for the
rest of the session. Treat the directories as read-only: other tests share them. Copy one
(``shutil.copytree``) before changing it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from plinth.engine.checkpoint import init_random

# Without a GPU, Triton's kernels (plinth/engine/lora/triton_ops.py) run on its interpreter, on CPU
# tensors; Triton reads the flag when it is first imported, so it is set before any test imports it.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(scope="session")
def tiny_checkpoint_factory(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    root = tmp_path_factory.mktemp("tiny-checkpoints")
    cache: dict[str, Path] = {}

    def make(arch: str) -> Path:
        if arch not in cache:
            cache[arch] = init_random(arch, "tiny", root / arch, seed=0)
        return cache[arch]

    return make


@pytest.fixture(scope="session")
def tiny_llama(tiny_checkpoint_factory: Callable[[str], Path]) -> Path:
    return tiny_checkpoint_factory("llama")


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """A throwaway real PostgreSQL 16 + pgvector (the ``pgserver`` package). Not under pytest's tmp dir:
    run as root, pgserver runs postgres as another user, and pytest resets its base dir to 0700."""
    import pgserver
    import psycopg

    root = Path(tempfile.mkdtemp(prefix="plinth-pg-"))
    server = pgserver.get_server(root / "data", cleanup_mode="delete")
    try:
        dsn = server.get_uri()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        yield dsn
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No PLINTH_* from the developer's shell, and the working directory a fresh temporary one (so no
    ./plinth.toml or ./plinth-data from the repository): what CLI and settings tests start from."""
    for name in list(os.environ):
        if name.startswith("PLINTH_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
