"""The demo's set-up: the movie catalogue as knowledge-base documents, the sample cost datasets, and the
background thread that prepares both after ``plinth demo`` starts serving.

It sits above the features (it drives the knowledge and SQL services) and below the server, which only
starts and stops it; the cost data itself comes from :mod:`plinth.samples`.

Exports are lazy: the server imports this package whether or not ``--demo`` is on, and the cost data
pulls in duckdb, pyarrow and sqlglot (about 110 MB of RSS a plain ``plinth serve`` does not need).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plinth.lazy import lazy_exports

if TYPE_CHECKING:
    from plinth.demo.background import start_demo_preparation, stop_background_work
    from plinth.demo.cost_data import prepare_cost_dataset
    from plinth.demo.movies import movie_documents
    from plinth.demo.movies_kb import prepare_movies_kb

__all__ = [
    "movie_documents",
    "prepare_cost_dataset",
    "prepare_movies_kb",
    "start_demo_preparation",
    "stop_background_work",
]

__getattr__ = lazy_exports(
    __name__,
    {
        "movie_documents": "movies",
        "prepare_cost_dataset": "cost_data",
        "prepare_movies_kb": "movies_kb",
        "start_demo_preparation": "background",
        "stop_background_work": "background",
    },
)
