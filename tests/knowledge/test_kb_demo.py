"""The demo's ``movies`` knowledge base: built from the shared movie data, in a background sync, most
rated first, resumed after a stop; and the demo's data prepared on a background thread."""

from __future__ import annotations

import json
import threading

from test_kb_build import GatedEmbedder

from plinth.config import Settings
from plinth.control import LOCAL_TENANT, Tenant, get_or_create_tenant, open_control_plane
from plinth.control import knowledge as rows
from plinth.demo import cost_data as sql_demo
from plinth.demo import movies_kb as demo
from plinth.demo.background import start_demo_preparation, stop_background_work
from plinth.knowledge import sync as sync_module
from plinth.knowledge.service import KnowledgeService
from plinth.llm import get_embedder
from plinth.server import create_app

MOVIES = [
    {"title": "The Nightmare Before Christmas", "year": 1993, "cast": ["Chris Sarandon"],
     "genres": ["Animated", "Musical"], "href": "The_Nightmare_Before_Christmas",
     "extract": "The Nightmare Before Christmas is a 1993 stop-motion film directed by Henry Selick."},
    {"title": "Heat", "year": 1995, "cast": ["Al Pacino", "Robert De Niro"], "genres": ["Crime"],
     "href": "Heat_(1995_film)", "extract": "Heat is a 1995 crime film directed by Michael Mann."},
]  # fmt: skip


VEGA = [
    {"Title": "The Nightmare Before Christmas", "Release Date": "Oct 13 1993", "IMDB Votes": 120_000},
    {"Title": "Heat", "Release Date": "Dec 15 1995", "IMDB Votes": 300_000},
]
UNRATED = {"title": "Jumanji", "year": 1995, "cast": [], "genres": ["Fantasy"], "href": "Jumanji"}


def _shared(tmp_path, movies=MOVIES, vega=()):
    shared = tmp_path / "shared"
    (shared / "movies" / "wikipedia").mkdir(parents=True)
    (shared / "movies" / "wikipedia" / "movies-1990s.json").write_text(json.dumps(list(movies)))
    (shared / "movies" / "vega-movies.json").write_text(json.dumps(list(vega)))
    return shared


def _service(tmp_path, recover: bool = False):
    data = tmp_path / "data"
    cp = open_control_plane(f"sqlite:///{tmp_path / 'plinth.db'}")
    row = get_or_create_tenant(cp, LOCAL_TENANT)
    tenant = Tenant(row.id, row.name, is_admin=True)
    return cp, tenant, KnowledgeService(cp, data, Settings(data_dir=data), recover=recover), data


def test_movies_kb_is_built_once_and_answers_filters(tmp_path):
    shared = _shared(tmp_path)
    cp, tenant, service, data = _service(tmp_path)

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


def test_records_are_written_most_voted_first_then_newest(tmp_path):
    clue = {**UNRATED, "title": "Clue", "year": 1985, "href": "Clue_(film)"}
    shared = _shared(tmp_path, [*MOVIES, UNRATED, clue], VEGA)
    out = demo.write_records(shared, tmp_path / "movies.jsonl")
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["title"], r.get("votes")) for r in records] == [
        ("Heat", 300_000), ("The Nightmare Before Christmas", 120_000), ("Jumanji", None), ("Clue", None),
    ]  # fmt: skip


def test_a_stopped_build_resumes_on_the_next_start(tmp_path, monkeypatch):
    monkeypatch.setattr(sync_module, "DOC_BATCH", 1)
    monkeypatch.setattr(sync_module, "COMMIT_SECONDS", 0.0)
    shared = _shared(tmp_path, [*MOVIES, UNRATED])
    cp, tenant, service, data = _service(tmp_path)
    gated = GatedEmbedder(get_embedder("sentence-transformers/all-MiniLM-L6-v2"))
    monkeypatch.setattr(service, "embedder", lambda config: gated)
    job = demo.prepare_movies_kb(service, tenant, shared, data)
    assert gated.waiting.wait(60)
    closing = threading.Thread(target=service.close, args=(60,))  # the server shuts down mid-build
    closing.start()
    gated.gate.set()
    closing.join(60)
    assert service.job(tenant, job).status == "failed"

    restarted = KnowledgeService(cp, data, Settings(data_dir=data), recover=True)
    resumed = demo.prepare_movies_kb(restarted, tenant, shared, data)
    assert resumed is not None and resumed != job
    restarted.wait(resumed, timeout=120)
    report = restarted.job(tenant, resumed).report
    assert report["status"] == "succeeded" and (report["added"], report["unchanged"]) == (1, 2)
    assert len(restarted.retrieve(tenant, "movies", "film", 5)) == 3
    cp.close()


def test_demo_data_is_prepared_on_a_background_thread(tmp_path, monkeypatch):
    monkeypatch.setattr(sql_demo, "DEMO_ROWS", 2400)  # the shape of the demo, not its size
    shared = _shared(tmp_path)
    cp, tenant, _, data = _service(tmp_path)
    app = create_app(Settings(data_dir=data), [], cp)

    thread = start_demo_preparation(app.state.knowledge, app.state.sql, tenant, shared, data)
    thread.join(120)
    assert app.state.sql.get(tenant, sql_demo.COSTS).name == sql_demo.COSTS
    job = rows.latest_job(cp, app.state.knowledge.get(tenant, "movies").id)
    assert job is not None
    app.state.knowledge.wait(job.id, timeout=120)
    stop_background_work(app.state.knowledge, thread)
    hits = app.state.knowledge.retrieve(tenant, "movies", "Michael Mann crime film", 1)
    assert [h.metadata["title"] for h in hits] == ["Heat"]
    app.state.sql.close()
    cp.close()
