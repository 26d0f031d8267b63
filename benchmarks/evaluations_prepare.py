"""Prepare the real-model evaluations of the README: a small movies knowledge base and the held-out cost
SQL data in a Plinth data dir (as the ``local`` tenant, which ``plinth serve --no-auth`` acts as), and
the evaluation datasets (JSONL) and specs (JSON) under ``benchmarks/evals/``.

    .venv/bin/python benchmarks/evaluations_prepare.py --data-dir .bench/evals-data
    .venv/bin/plinth serve --no-auth --data-dir .bench/evals-data --port 8765 &
    .venv/bin/python benchmarks/evaluations_run.py --url http://127.0.0.1:8765 movies_rag cost_sql

Movies: the ``MOVIES`` most-voted films of the catalogue (``../shared/data/movies``) as the knowledge base
``movies-eval`` (one chunk per film, HYBRID search); 16 questions about 16 of them ("Who directed T
(Y)?" -> the director; "What year was T released?" -> the year), each naming its film as the relevant
document. Cost SQL: the first ``--sql-cases`` held-out questions (``plinth/evals/data/cost_sql_heldout
.yaml``, never trained on) with their gold SQL, over the dataset ``cost-eval`` generated as
:data:`~plinth.evals.sql_accuracy.EVAL_DATA` describes.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from plinth.config import Settings  # noqa: E402
from plinth.control import LOCAL_TENANT, Tenant, get_or_create_tenant, open_control_plane  # noqa: E402

OUT = ROOT / "benchmarks" / "evals"
SHARED = ROOT.parent / "shared" / "data"
MOVIES = 400


def prepare_movies(settings: Settings, tenant: Tenant, cp: object) -> None:
    from plinth.demo.movies import most_rated_first, movie_documents
    from plinth.knowledge import ChunkingConfig, KnowledgeBaseConfig, KnowledgeService

    films = most_rated_first(movie_documents(SHARED))[:MOVIES]
    records = Path(settings.data_dir) / "movies-eval.jsonl"
    records.parent.mkdir(parents=True, exist_ok=True)
    keep = ("title", "year", "genres", "cast", "directors")
    lines = [
        {"id": d.doc_id, "text": d.text, **{k: v for k, v in d.metadata.items() if k in keep}} for d in films
    ]
    records.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    service = KnowledgeService(cp, settings.data_dir, settings)
    try:
        names = {row.name for row in service.list_kbs(tenant)}
        if "movies-eval" not in names:
            schema = {
                "title": "string",
                "year": "number",
                "genres": "string_list",
                "cast": "string_list",
                "directors": "string_list",
            }
            config = KnowledgeBaseConfig(
                "movies-eval", chunking=ChunkingConfig(strategy="none"), metadata_schema=schema
            )
            service.create(
                tenant,
                config.with_source(
                    {
                        "type": "records",
                        "path": str(records.resolve()),
                        "text_fields": ["text"],
                        "metadata_fields": list(schema),
                        "id_field": "id",
                        "title_field": "title",
                    }
                ),
            )
            service.sync_now(tenant, "movies-eval")
    finally:
        service.close()
    rng = random.Random(7)
    with_director = [d for d in films[:150] if len(d.metadata.get("directors", [])) == 1]
    picks = rng.sample(with_director, 16)
    items = []
    for i, film in enumerate(picks):
        title, year = film.metadata["title"], film.metadata["year"]
        if i < 10:
            question, reference = f"Who directed {title} ({year})?", film.metadata["directors"][0]
        else:
            question, reference = f"What year was the film {title} released?", str(year)
        items.append({"id": f"m{i}", "input": question, "reference": reference, "relevant": [film.doc_id]})
    _write("movies_rag.jsonl", items)
    spec = {
        "name": "Movies: retrieve-and-generate vs the bare model (smollm2-135m-instruct)",
        "targets": [
            {"type": "model", "model": "smollm2-135m-instruct", "name": "model only", "max_tokens": 64},
            {
                "type": "knowledge_base",
                "model": "smollm2-135m-instruct",
                "knowledge_base": "movies-eval",
                "name": "RAG over movies-eval",
                "k": 5,
                "search_type": "HYBRID",
            },
        ],
        "metrics": ["contains", "token_f1", "rouge_l", "bleu", "exact_match"],
        "judge": {
            "model": "smollm2-135m-instruct",
            "criteria": ["correctness", "faithfulness"],
            "sampling_rate": 0.5,
            "seed": 0,
        },
        "concurrency": 4,
    }
    (OUT / "movies_rag.spec.json").write_text(json.dumps(spec, indent=1) + "\n", encoding="utf-8")


def prepare_sql(settings: Settings, tenant: Tenant, cp: object, cases: int) -> None:
    from plinth.evals.sql_accuracy import EVAL_DATA, load_cases
    from plinth.samples import generate
    from plinth.sql import SQLService

    spec = EVAL_DATA
    folder = Path(settings.data_dir) / "cost-eval"
    if not (folder / "cur").is_dir():
        generate("cur", folder, rows=spec.rows, months=spec.months, seed=spec.seed, start=spec.start)
    service = SQLService(cp, settings.data_dir, settings)
    try:
        if "cost-eval" not in {d.name for d in service.list_datasets(tenant)}:
            about = "Generated CUR for the held-out SQL questions (EVAL_DATA, seed 13)."
            service.register(
                tenant, "cost-eval", str((folder / "cur").resolve()), kind="cur", description=about
            )
    finally:
        service.close()
    items = [
        {"id": c.id, "input": c.question, "reference_sql": c.sql, "ordered": c.ordered}
        for c in load_cases()[:cases]
    ]
    _write("cost_sql.jsonl", items)
    spec = {
        "name": "Cost SQL: base model vs the packaged cost-sql adapter (held-out questions)",
        "targets": [
            {
                "type": "sql",
                "model": "smollm2-135m-instruct",
                "sql_dataset": "cost-eval",
                "name": "base few-shot",
            },
            {"type": "sql", "model": "cost-sql", "sql_dataset": "cost-eval", "name": "cost-sql adapter"},
        ],
        "metrics": ["sql_execution"],
        "concurrency": 4,
    }
    (OUT / "cost_sql.spec.json").write_text(json.dumps(spec, indent=1) + "\n", encoding="utf-8")


def _write(name: str, items: list[dict]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / name).write_text("".join(json.dumps(i) + "\n" for i in items), encoding="utf-8")
    print(f"wrote {len(items)} items to {OUT / name}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".bench" / "evals-data")
    parser.add_argument("--sql-cases", type=int, default=10)
    args = parser.parse_args()
    settings = Settings(data_dir=args.data_dir)
    assert settings.database_url is not None
    cp = open_control_plane(settings.database_url)
    row = get_or_create_tenant(cp, LOCAL_TENANT)
    tenant = Tenant(row.id, row.name, is_admin=True)
    prepare_sql(settings, tenant, cp, args.sql_cases)
    prepare_movies(settings, tenant, cp)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
