"""The demo movie catalog: Wikipedia movie records (+ IMDb ratings and directors) as ``Document``s.

Inputs (``data_dir`` is ``shared/data``): ``movies/wikipedia/movies-*.json`` (prust/wikipedia-movie-data:
title, year, cast, genres, href, extract) and ``movies/vega-movies.json`` (vega-datasets: IMDb rating
and votes, director, "MMM DD YYYY" release date, some titles stored as numbers). One document per
movie, in the seed's form:
``"<title> (<year>) has genres G1, G2, actors A, B, directors D, plot: <extract>"``; empty parts are
left out.

Licence: the ``extract`` text is from Wikipedia, CC BY-SA; every document built here carries
``source: "wikipedia"`` in its metadata, and a knowledge base built from them must show
:data:`ATTRIBUTION` (the CC BY-SA notice) wherever it shows the text.

Join: vega rows match on normalised title (case, accents, punctuation, "&"/"and" folded) and the year of
their release date; when no row has that exact year, a row one year off is accepted (a film's US release
and its Wikipedia list year often differ by one) unless Wikipedia has a film of that title in that year
(the 1996 "Titanic" miniseries must not take the 1997 film's rating). Directors come from vega when it
has them, else from the extract's "directed by ..." phrase (Wikipedia leads nearly always name them).

Dedupe rule (the earliest record wins; records are read in year order):
1. same film, same year: equal normalised title and year, unless both have hrefs and they differ. Two
   articles with the same title and year are different films (the 1915 DeMille and Walsh "Carmen") and
   both are kept, so (title, year) alone is *not* unique; ``doc_id`` is.
2. re-releases: a later record pointing at the same Wikipedia article (href), or with the same title
   once "(re-release)"-style suffixes are removed and an identical extract, is dropped.
When a dropped duplicate is the same year and has an extract the kept one lacks, its fields fill the gaps.
"""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import datetime
from pathlib import Path
from typing import Any

from plinth.knowledge import Document, content_hash

ATTRIBUTION = (
    "Movie summaries are from Wikipedia (https://en.wikipedia.org), licensed under CC BY-SA 3.0/4.0 "
    "(https://creativecommons.org/licenses/by-sa/4.0/); collected by prust/wikipedia-movie-data (MIT). "
    "Ratings and directors from vega/vega-datasets movies.json (source and licence unstated: teaching data)."
)
WIKI_URL = "https://en.wikipedia.org/wiki/"
_RERELEASE = re.compile(
    r"\s*\((?:[^()]*\b(?:re-?release|release|cut|version|remaster\w*)\b[^()]*)\)\s*$", re.I
)
_DIRECTED_BY = re.compile(r"\bdirected\b[\w ,-]{0,40}?\bby\s+(?:and [a-z-]+ (?:by )?)?")
_PHRASE_END = re.compile(
    r"[;:()\[\]\"]|(?<!\b[A-Z])\.(?:\s|$)|\s(?!(?:and|de|von|van|der|del|da|di|du|le|la)\b)[a-z]"
)
_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_HAS_WORD = re.compile(r"\w")
_FOOTNOTE = re.compile(r"\[\d+\]")
_NAME_SEP = re.compile(r",\s*(?:and\s+)?|\s+(?:and|&)\s+|\s+and$")


def movie_documents(data_dir: Path) -> list[Document]:
    """One document per (deduplicated) Wikipedia movie, joined with vega ratings and directors."""
    movies_dir = Path(data_dir) / "movies"
    records = [r for f in sorted((movies_dir / "wikipedia").glob("movies-*.json")) for r in _load(f)]
    records = [r for r in records if isinstance(r.get("title"), str) and isinstance(r.get("year"), int)]
    records.sort(key=lambda r: r["year"])  # stable: file order within a year
    films = dedupe(records)
    vega = _vega_for(films, _vega_index(movies_dir / "vega-movies.json"))
    documents: dict[str, Document] = {}
    for record in films:
        document = _document(record, vega.get(id(record), {}))
        if document.doc_id in documents:  # another film with this title and year: name its article
            document.doc_id = f"{document.doc_id} [{record.get('href')}]"
        documents.setdefault(document.doc_id, document)
    return list(documents.values())


def most_rated_first(documents: list[Document]) -> list[Document]:
    """Most IMDb votes first, then the films without a vote count, newest first: the order a first build
    embeds them in, so the films people ask about are searchable first (catalogue order breaks ties)."""
    return sorted(documents, key=lambda d: (-d.metadata.get("votes", -1), -d.metadata["year"]))


def normalise_title(title: object) -> str:
    """Lower-case, accents and punctuation removed, "&" as "and", spaces collapsed ("1776" for 1776)."""
    text = unicodedata.normalize("NFKD", str(title)).encode("ascii", "ignore").decode().lower()
    return " ".join(_NON_ALNUM.sub(" ", text.replace("&", " and ")).split())


def dedupe(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Apply the module's dedupe rule to year-sorted records; the earliest record of each film wins."""
    kept: list[dict[str, Any]] = []
    by_title_year: dict[tuple[str, int], list[dict[str, Any]]] = {}
    by_href: set[str] = set()
    by_extract: set[tuple[str, str]] = set()
    for record in records:
        title = normalise_title(record["title"])
        base = normalise_title(_strip_release_suffixes(record["title"]))
        href, extract = record.get("href") or None, (record.get("extract") or "").strip()
        same = _same_film(by_title_year.get((title, record["year"]), []), href)
        if same is not None:
            _fill_gaps(same, record)
        elif not (href and href in by_href) and (base, extract) not in by_extract:
            kept.append(record)
            by_title_year.setdefault((title, record["year"]), []).append(record)
        if href:
            by_href.add(href)
        if extract:
            by_extract.add((base, extract))
    return kept


def _strip_release_suffixes(title: str) -> str:
    """ "Donnie Darko (Director's Cut) (re-release)" -> "Donnie Darko"."""
    while (stripped := _RERELEASE.sub("", title)) != title:
        title = stripped
    return title


def _same_film(candidates: list[dict[str, Any]], href: str | None) -> dict[str, Any] | None:
    """The kept record this one duplicates: same title and year, and no conflicting article."""
    for kept in candidates:
        if not (href and kept.get("href") and kept["href"] != href):
            return kept
    return None


def _fill_gaps(kept: dict[str, Any], duplicate: dict[str, Any]) -> None:
    for key in ("href", "extract", "cast", "genres"):
        if not kept.get(key) and duplicate.get(key):
            kept[key] = duplicate[key]


def _document(record: dict[str, Any], match: dict[str, Any]) -> Document:
    title, year = record["title"].strip(), record["year"]
    extract = (record.get("extract") or "").strip()
    directors = _directors(match.get("Director")) or directors_from_extract(extract)
    metadata: dict[str, Any] = {
        "title": title,
        "year": year,
        "genres": _clean_names(record.get("genres")),
        "cast": _clean_names(record.get("cast")),
        "source": "wikipedia",
    }
    if isinstance(match.get("IMDB Rating"), int | float):
        metadata["rating"] = float(match["IMDB Rating"])
    if isinstance(match.get("IMDB Votes"), int | float):
        metadata["votes"] = int(match["IMDB Votes"])
    if directors:
        metadata["directors"] = directors
    text = movie_text(title, year, metadata["genres"], metadata["cast"], directors, extract)
    href = record.get("href")
    location = {"type": "WEB", "url": WIKI_URL + href} if href else {"type": "WEB", "url": None}
    return Document(
        f"{title} ({year})", text, metadata, location, content_hash(text, metadata, location, title), title
    )


def movie_text(
    title: str, year: int, genres: list[str], cast: list[str], directors: list[str], plot: str
) -> str:
    """The seed's one-line form; empty parts are left out."""
    parts = [f"{label} {', '.join(values)}" for label, values in
             (("genres", genres), ("actors", cast), ("directors", directors)) if values]  # fmt: skip
    text = f"{title} ({year})" + (f" has {', '.join(parts)}" if parts else "")
    return f"{text}, plot: {plot}" if plot else f"{text}."


def directors_from_extract(extract: str) -> list[str]:
    """Names after "directed by" in a Wikipedia lead ("... directed by Henry Selick and produced ...").

    The phrase ends at the first lower-case word that is not a name particle, at a sentence end (a
    period not after an initial), or at ;:() -- good enough for leads, which name directors plainly.
    """
    match = _DIRECTED_BY.search(extract)
    if not match:
        return []
    phrase = _PHRASE_END.split(extract[match.end() : match.end() + 200], maxsplit=1)[0]
    names: list[str] = []
    for name in (n.strip(" ,.") for n in _NAME_SEP.split(phrase)):
        if name in ("Jr", "Sr") and names:
            names[-1] += f", {name}."
        elif name[:1].isupper():
            names.append(name)
    return names


def _clean_names(values: Any) -> list[str]:
    """Strings with at least one letter or digit, stripped; drops artefacts like ")" and "[2]"."""
    if not isinstance(values, list):
        return []
    names = (str(v).strip() for v in values if v is not None)
    return [n for n in names if _HAS_WORD.search(n) and not _FOOTNOTE.fullmatch(n)]


def _directors(value: Any) -> list[str]:
    if not isinstance(value, str) or not value.strip():
        return []
    return [n.strip() for n in _NAME_SEP.split(value) if n.strip()]


def _vega_index(path: Path) -> dict[tuple[str, int], dict[str, Any]]:
    """(normalised title, release year) -> first vega row; rows without a usable date are left out."""
    index: dict[tuple[str, int], dict[str, Any]] = {}
    for row in _load(path) if path.exists() else []:
        year = _release_year(row.get("Release Date"))
        if row.get("Title") is not None and year is not None:
            index.setdefault((normalise_title(row["Title"]), year), row)
    return index


def _vega_for(films: list[dict[str, Any]], vega: dict[tuple[str, int], dict[str, Any]]) -> dict[int, dict]:
    """id(film) -> its vega row: same title and year, else one year off unless that year is another film."""
    keys = {(normalise_title(f["title"]), f["year"]): f for f in films}
    matches: dict[int, dict[str, Any]] = {}
    for (title, year), film in keys.items():
        for candidate in (year, year - 1, year + 1):
            if (title, candidate) in vega and (candidate == year or (title, candidate) not in keys):
                matches[id(film)] = vega[(title, candidate)]
                break
    return matches


def _release_year(value: Any) -> int | None:
    try:
        return datetime.strptime(str(value).strip(), "%b %d %Y").year
    except ValueError:
        return None


def _load(path: Path) -> list[dict[str, Any]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []
