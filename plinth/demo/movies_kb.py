"""``make demo``'s ``movies`` knowledge base, built from the open movie data in ``shared/data/movies``.

The catalog (one document per movie, see :mod:`plinth.demo.movies`) is written once as a JSONL
record file under the data directory, most-rated films first, and synced like any user's record
source, in the background. Its first build commits as it goes (see :mod:`plinth.knowledge.sync`), so
the popular films are searchable within seconds and the rest land while the server answers
(``GET /v1/knowledge-bases/movies`` shows ``state`` and progress). A good build is never redone on later
starts; a build that was stopped (the server shut down) or failed resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from plinth.control import Tenant
from plinth.control import knowledge as rows
from plinth.demo.movies import ATTRIBUTION, most_rated_first, movie_documents
from plinth.knowledge import ChunkingConfig, KnowledgeBaseConfig

log = logging.getLogger(__name__)
KB_NAME = "movies"
SCHEMA = {
    "title": "string",
    "year": "number",
    "genres": "string_list",
    "cast": "string_list",
    "rating": "number",
    "votes": "number",
    "directors": "string_list",
    "url": "string",
}


def prepare_movies_kb(service: Any, tenant: Tenant, shared_data: Path, data_dir: Path) -> str | None:
    """Start building the ``movies`` KB unless it is built or building; returns the sync job's id.

    A KB left by a stopped or failed build is resumed when its config is today's, else rebuilt."""
    records = Path(data_dir) / "demo" / "movies.jsonl"
    existing = rows.get_kb(service.cp, tenant.id, KB_NAME)
    if existing is not None:
        job = rows.latest_job(service.cp, existing.id)
        if job is not None and job.status in ("succeeded", "queued", "running"):
            return None
        if existing.config != _config(records).to_json() or not records.is_file():
            service.delete(tenant, KB_NAME)
            existing = None
    if existing is None:
        write_records(shared_data, records)
        service.create(tenant, _config(records))
    job = service.start_sync(tenant, KB_NAME)
    log.info("building the movies knowledge base in the background (job %s). %s", job.id, ATTRIBUTION)
    return str(job.id)


def _config(records: Path) -> KnowledgeBaseConfig:
    config = KnowledgeBaseConfig(KB_NAME, chunking=ChunkingConfig(strategy="none"), metadata_schema=SCHEMA)
    return config.with_source({
        "type": "records", "path": str(records.absolute()), "text_fields": ["text"],
        "metadata_fields": list(SCHEMA), "id_field": "id", "title_field": "title",
    })  # fmt: skip


def write_records(shared_data: Path, out: Path) -> Path:
    """The catalog as JSONL, most-rated first: ``id``, ``text`` and the metadata fields (absent ones
    left out). Written beside ``out`` and renamed, so a reader never sees half a file."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with partial.open("w", encoding="utf-8") as f:
        for doc in most_rated_first(movie_documents(shared_data)):
            record = {"id": doc.doc_id, "text": doc.text, **doc.metadata}
            if doc.location.get("url"):
                record["url"] = doc.location["url"]
            f.write(json.dumps({k: v for k, v in record.items() if k in {"id", "text", *SCHEMA}}) + "\n")
    partial.replace(out)
    return out
