"""``plinth eval``: evaluation runs (retrieval metrics today)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

eval_app = typer.Typer(help="Evaluations: retrieval metrics on BEIR-format datasets.", no_args_is_help=True)


@eval_app.command("retrieval")
def retrieval(
    dataset: Annotated[Path, typer.Option(help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/test.tsv.")],
    search_types: Annotated[
        str, typer.Option(help="Comma-separated: LEXICAL, SEMANTIC, HYBRID.")
    ] = "LEXICAL,SEMANTIC,HYBRID",
    k: Annotated[int, typer.Option(help="Results retrieved per query.")] = 100,
    hybrid_weight: Annotated[float, typer.Option(help="Weight of the semantic ranking in HYBRID.")] = 0.5,
) -> None:
    """Recall@k, Precision@k, MAP, MRR and nDCG@10 per search type, next to published anchors."""
    from plinth.evals.retrieval import main

    types = [t.strip().upper() for t in search_types.split(",") if t.strip()]
    raise typer.Exit(main(dataset, types, k, hybrid_weight))
