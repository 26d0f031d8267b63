"""Test doubles for the server tests (no tests here): a fake embedder, knowledge service and an app over
fakes.

The served-model doubles ship in the library: :mod:`plinth.llm.scripted_served`.
"""

from __future__ import annotations

from typing import Any

from plinth.config import Settings
from plinth.control import create_key, open_control_plane
from plinth.control import knowledge as rows
from plinth.knowledge.kb import KnowledgeBaseConfig
from plinth.knowledge.service import NotFoundError
from plinth.knowledge.types import Hit
from plinth.llm.scripted_served import ScriptedServedModel
from plinth.server import create_app


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
    app = create_app(
        settings, models if models is not None else [ScriptedServedModel()], cp, embedder=FakeEmbedder()
    )
    return app, key


class FakeKnowledge:
    """The KnowledgeService surface the route uses, over real KB rows and scripted hits."""

    def __init__(self, cp: Any, hits: list[Hit]) -> None:
        self.cp, self.hits, self.calls = cp, hits, []

    def get(self, tenant: Any, name: str) -> Any:
        if (row := rows.get_kb(self.cp, tenant.id, name)) is None:
            raise NotFoundError(f"The knowledge base '{name}' does not exist.")
        return row

    def config(self, row: Any) -> KnowledgeBaseConfig:
        return KnowledgeBaseConfig.from_json(row.config)

    def retrieve(self, tenant: Any, name: str, query: str, k: int, search_type: str, flt: Any) -> list[Hit]:
        self.calls.append((query, k, search_type, flt))
        return self.hits
