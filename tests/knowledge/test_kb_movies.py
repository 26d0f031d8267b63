"""The demo movie catalog, built from the real shared/data files."""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path

import pytest

from plinth.demo.movies import (
    ATTRIBUTION,
    dedupe,
    directors_from_extract,
    movie_documents,
    normalise_title,
)
from plinth.knowledge.types import Document

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.fixture(scope="module")
def built() -> tuple[list[Document], float]:
    start = time.perf_counter()
    documents = movie_documents(DATA)
    return documents, time.perf_counter() - start


@pytest.fixture(scope="module")
def catalog(built) -> dict[str, Document]:
    return {d.doc_id: d for d in built[0]}


def test_size_ids_and_build_time(built, catalog) -> None:
    documents, seconds = built
    assert 35_500 < len(documents) < 36_273  # 36,273 records less re-releases and duplicates
    assert len(catalog) == len(documents)  # doc ids unique
    assert seconds < 30  # a few seconds on one idle core; generous for shared CI


def test_nightmare_before_christmas(catalog) -> None:
    movie = catalog["The Nightmare Before Christmas (1993)"]
    assert movie.metadata["year"] == 1993 and movie.metadata["directors"] == ["Henry Selick"]
    assert movie.metadata["genres"] == ["Animated", "Fantasy", "Musical"]
    assert movie.metadata["source"] == "wikipedia"
    assert movie.location == {
        "type": "WEB",
        "url": "https://en.wikipedia.org/wiki/The_Nightmare_Before_Christmas",
    }
    assert movie.text.startswith(
        "The Nightmare Before Christmas (1993) has genres Animated, Fantasy, Musical, actors Danny Elfman, "
        "Chris Sarandon, Catherine O'Hara, directors Henry Selick, plot: The Nightmare Before Christmas is"
    )


def test_rerelease_entries_are_gone(catalog) -> None:
    titles = Counter(d.title for d in catalog.values())
    assert "The Nightmare Before Christmas (3D re-release)" not in titles
    assert "Donnie Darko (Director's Cut) (re-release)" not in titles
    assert titles["The Nightmare Before Christmas"] == 1 and titles["Donnie Darko"] == 1


def test_no_duplicate_films_but_namesakes_kept(catalog) -> None:
    keys = Counter(
        (normalise_title(d.title), d.metadata["year"], d.location["url"]) for d in catalog.values()
    )
    assert keys.most_common(1)[0][1] == 1
    carmen = [d for d in catalog.values() if d.title == "Carmen" and d.metadata["year"] == 1915]
    assert sorted(d.metadata.get("directors", [""])[0] for d in carmen) == ["Cecil B. DeMille", "Raoul Walsh"]


def test_vega_join_ratings_and_numeric_titles(catalog) -> None:
    assert catalog["300 (2007)"].metadata["rating"] == 7.8
    assert catalog["300 (2007)"].metadata["directors"] == ["Zack Snyder"]
    assert catalog["Titanic (1997)"].metadata["rating"] == 7.4
    assert "rating" not in catalog["Titanic (1996)"].metadata  # the miniseries, not the film a year later
    assert 2000 < sum("rating" in d.metadata for d in catalog.values()) < 3201


def test_cast_has_no_artefacts_and_metadata_types(catalog) -> None:
    for d in catalog.values():
        assert all(re.search(r"\w", name) for name in d.metadata["cast"]), d.doc_id
        assert isinstance(d.metadata["year"], int) and isinstance(d.metadata["genres"], list)
        assert isinstance(d.metadata.get("rating", 0.0), float)


def test_text_format(catalog) -> None:
    pattern = re.compile(r"^.+ \(\d{4}\)( has (genres|actors|directors) .+)?(, plot: .+|\.)$", re.S)
    assert all(pattern.match(d.text) for d in catalog.values())
    assert "CC BY-SA" in ATTRIBUTION and "wikipedia" in ATTRIBUTION.lower()


def test_dedupe_rule_on_records() -> None:
    records = [
        {"title": "Carmen", "year": 1915, "href": "Carmen_(A)", "extract": "One."},
        {"title": "Carmen", "year": 1915, "href": "Carmen_(B)", "extract": "Two."},
        {"title": "The Decoy", "year": 1916, "href": None, "extract": ""},
        {"title": "The Decoy", "year": 1916, "href": "The_Decoy", "extract": "Found."},
        {"title": "Film", "year": 1990, "href": "Film", "extract": "Plot."},
        {"title": "Film (3D re-release)", "year": 2007, "href": "Film_3D", "extract": "Plot."},
        {"title": "Film", "year": 2010, "href": "Film", "extract": "Plot, updated."},
    ]
    kept = dedupe(records)
    assert [(r["title"], r["year"]) for r in kept] == [
        ("Carmen", 1915),
        ("Carmen", 1915),
        ("The Decoy", 1916),
        ("Film", 1990),
    ]
    assert kept[2]["extract"] == "Found." and kept[2]["href"] == "The_Decoy"  # gaps filled


def test_helpers() -> None:
    assert normalise_title("Amélie & Co.") == normalise_title("amelie and co") == "amelie and co"
    assert normalise_title(1776) == "1776"
    lead = "Foo is a 1920 silent film directed by and starring William S. Hart and written by Ann Roe."
    assert directors_from_extract(lead) == ["William S. Hart"]
    assert directors_from_extract("A film directed by Joel Coen, Ethan Coen and Bob Smith, Jr. It") == [
        "Joel Coen",
        "Ethan Coen",
        "Bob Smith, Jr.",
    ]
    assert directors_from_extract("A film with no credit.") == []
