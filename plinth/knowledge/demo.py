"""``make demo``'s ``movies`` knowledge base, built from the open movie data in ``shared/data/movies``.

The catalog (one document per movie, see :mod:`plinth.knowledge.movies`) is written once as a JSONL
record file under the data directory and synced like any user's record source, in the background, so
the server answers at once and the knowledge base becomes queryable when its sync job finishes
(``GET /v1/knowledge-bases/movies/jobs/{id}`` shows progress). Nothing is rebuilt on later starts.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from plinth.control import Tenant
from plinth.control import knowledge as rows
from plinth.knowledge.chunking import ChunkingConfig
from plinth.knowledge.kb import KnowledgeBaseConfig
from plinth.knowledge.movies import ATTRIBUTION, movie_documents

log = logging.getLogger(__name__)
KB_NAME = "movies"
SCHEMA = {
    "title": "string",
    "year": "number",
    "genres": "string_list",
    "cast": "string_list",
    "rating": "number",
    "directors": "string_list",
    "url": "string",
}


def prepare_movies_kb(service: Any, tenant: Tenant, shared_data: Path, data_dir: Path) -> str | None:
    """Create and start syncing the ``movies`` KB unless it already holds a good sync; returns a job id."""
    existing = rows.get_kb(service.cp, tenant.id, KB_NAME)
    if existing is not None:
        job = rows.latest_job(service.cp, existing.id)
        if job is not None and job.status in ("succeeded", "queued", "running"):
            return None
        service.delete(tenant, KB_NAME)
    records = write_records(shared_data, Path(data_dir) / "demo" / "movies.jsonl")
    config = KnowledgeBaseConfig(KB_NAME, chunking=ChunkingConfig(strategy="none"), metadata_schema=SCHEMA)
    service.create(tenant, config)
    service.add_source(tenant, KB_NAME, {
        "type": "records", "path": str(records.absolute()), "text_fields": ["text"],
        "metadata_fields": list(SCHEMA), "id_field": "id", "title_field": "title",
    })  # fmt: skip
    job = service.start_sync(tenant, KB_NAME)
    log.info("building the movies knowledge base in the background (job %s). %s", job.id, ATTRIBUTION)
    return str(job.id)


def write_records(shared_data: Path, out: Path) -> Path:
    """The catalog as JSONL: ``id``, ``text`` and the metadata fields (absent ones left out)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as f:
        for doc in movie_documents(shared_data):
            record = {"id": doc.doc_id, "text": doc.text, **doc.metadata}
            if doc.location.get("url"):
                record["url"] = doc.location["url"]
            f.write(json.dumps({k: v for k, v in record.items() if k in {"id", "text", *SCHEMA}}) + "\n")
    return out
