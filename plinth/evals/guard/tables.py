"""Benign tables, for the prompt-attack head to learn that a table is a document like any other.

Retrieved data is often tabular: a SQL result, a spreadsheet, a wiki table. Without tables in training
the head has never seen rows of pipes and numbers, and held-out tables land anywhere on its scale (the
highest-scoring benign documents of the BIPIA fold were all tables). These are built from open data:
the Wikipedia movie list (title, year, genres, cast), the Vega movies table (grosses, budgets, ratings)
and the FOCUS billing sample, with random columns and rows, in the forms tables reach a model: padded
Markdown pipes with or without a rule under the header, CSV and tab-separated. They are training rows
only, and also hosts for :mod:`~plinth.evals.guard.planted` orders::

    rows = list(tables(Path("../shared/data"), random.Random(0), 300))
"""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Iterator, Sequence
from pathlib import Path

from plinth.evals.guard.texts import movies_with_plots

__all__ = ["tables"]

_MAX_CELL = 40


def tables(data: Path, rng: random.Random, n: int) -> Iterator[str]:
    """``n`` tables, deterministic for ``rng``, each 3-15 rows of 2-6 columns of one source."""
    sources = [_wiki_movies(data), _vega_movies(data), _focus(data)]
    for _ in range(n):
        records = rng.choice(sources)
        columns = _columns(records, rng)
        picked = rng.sample(records, rng.randint(3, 15))
        rows = [[_cell(record.get(column)) for column in columns] for record in picked]
        yield _render([list(columns), *rows], rng)


def _wiki_movies(data: Path) -> list[dict[str, object]]:
    return [
        {
            "Title": m["title"],
            "Year": m["year"],
            "Genres": ", ".join(m.get("genres") or []),
            "Cast": ", ".join(list(m.get("cast") or [])[:3]),
        }
        for m in movies_with_plots(data)
    ]


def _vega_movies(data: Path) -> list[dict[str, object]]:
    return list(json.loads((data / "movies/vega-movies.json").read_text(encoding="utf-8")))


def _focus(data: Path) -> list[dict[str, object]]:
    with (data / "cost/focus_sample.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _columns(records: Sequence[dict[str, object]], rng: random.Random) -> list[str]:
    names = [name for name in records[0] if any(r.get(name) not in (None, "") for r in records[:50])]
    first, rest = names[0], names[1:]
    return [first, *rng.sample(rest, min(len(rest), rng.randint(1, 5)))]


def _cell(value: object) -> str:
    text = "" if value is None else " ".join(str(value).split())
    return text if len(text) <= _MAX_CELL else text[: _MAX_CELL - 1] + "…"


def _render(rows: list[list[str]], rng: random.Random) -> str:
    form = rng.random()
    if form < 0.6:  # padded pipes, as wiki and SQL tables are pasted
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = ["| " + " | ".join(map(str.ljust, row, widths)) + " |" for row in rows]
        if rng.random() < 0.5:
            lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
        return "\n".join(lines)
    out = io.StringIO()
    csv.writer(out, delimiter="," if form < 0.85 else "\t", lineterminator="\n").writerows(rows)
    return out.getvalue().rstrip("\n")
