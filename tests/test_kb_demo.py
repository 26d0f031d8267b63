"""The demo's ``movies`` knowledge base: built from the shared movie data, in a background sync."""

from __future__ import annotations

import json

from plinth.config import Settings
from plinth.control import LOCAL_TENANT, Tenant, get_or_create_tenant, open_control_plane
from plinth.knowledge import demo
from plinth.knowledge.service import KnowledgeService

MOVIES = [
    {"title": "The Nightmare Before Christmas", "year": 1993, "cast": ["Chris Sarandon"],
     "genres": ["Animated", "Musical"], "href": "The_Nightmare_Before_Christmas",
     "extract": "The Nightmare Before Christmas is a 1993 stop-motion film directed by Henry Selick."},
    {"title": "Heat", "year": 1995, "cast": ["Al Pacino", "Robert De Niro"], "genres": ["Crime"],
     "href": "Heat_(1995_film)", "extract": "Heat is a 1995 crime film directed by Michael Mann."},
]  # fmt: skip


def test_movies_kb_is_built_once_and_answers_filters(tmp_path):
    shared = tmp_path / "shared"
    (shared / "movies" / "wikipedia").mkdir(parents=True)
    (shared / "movies" / "wikipedia" / "movies-1990s.json").write_text(json.dumps(MOVIES))
    (shared / "movies" / "vega-movies.json").write_text("[]")
    data = tmp_path / "data"
    settings = Settings(data_dir=data)
    cp = open_control_plane(f"sqlite:///{tmp_path / 'plinth.db'}")
    row = get_or_create_tenant(cp, LOCAL_TENANT)
    tenant = Tenant(row.id, row.name, is_admin=True)
    service = KnowledgeService(cp, data, settings)

    job = demo.prepare_movies_kb(service, tenant, shared, data)
    assert job is not None
    service.wait(job, timeout=120)
    assert service.job(tenant, job).status == "succeeded"
    assert demo.prepare_movies_kb(service, tenant, shared, data) is None  # not rebuilt

    hits = service.retrieve(tenant, "movies", "who directed the Christmas stop-motion film?", 1)
    assert hits[0].metadata["title"] == "The Nightmare Before Christmas"
    assert hits[0].metadata["directors"] == ["Henry Selick"]
    crime = service.retrieve(
        tenant, "movies", "film", 5, "HYBRID", {"greaterThan": {"key": "year", "value": 1994}}
    )
    assert [h.metadata["title"] for h in crime] == ["Heat"]
    cp.close()
