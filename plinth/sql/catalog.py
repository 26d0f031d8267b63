"""What the model is told about a dataset: tables, documented columns, example question -> SQL pairs.

Each cost kind (``cur``, ``cur2``, ``focus``) ships a doc file, ``catalog_docs/<kind>.yaml``: a table
description, plain-language descriptions of the columns an analyst asks about (unblended vs amortised
vs public on-demand cost, usage dates, accounts, services, ...), the ``key_columns`` nearly every
question needs, and 15-25 example pairs in the DuckDB dialect over the contract table name. Columns
themselves always come from the engine's ``describe()``, so a doc never invents a column a dataset
lacks; an example that uses a missing column is dropped. A ``custom`` dataset gets its columns and no
docs or examples.

:meth:`Catalog.select` keeps the prompt small -- never the whole 100+ column CUR schema:

- examples: the ``k`` nearest to the question by embedding cosine (all-MiniLM-L6-v2 through
  :func:`~plinth.llm.embedders.get_embedder`; example and column vectors are computed once per
  process and cached);
- columns, in priority order up to ``max_columns``: the key columns, those the chosen examples use,
  those whose name words match the question's words (weighted by rarity, so "cost" alone matches
  little), and those whose description is semantically closest to the question;
- tables: those the chosen columns belong to (the main table when nothing points elsewhere); a table
  of at most :data:`SMALL_TABLE` columns is shown whole.

::

    catalog = Catalog.for_dataset(dataset, describe=engine.describe())
    selection = catalog.select("Which services cost the most last month?")
    selection.tables, selection.columns["cur"], selection.examples
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import sqlglot
import yaml
from sqlglot import exp

from plinth.llm.embedder import DEFAULT_EMBEDDING_MODEL
from plinth.llm.embedding import Embedder
from plinth.sql.types import MAIN_TABLES, Dataset

__all__ = ["Catalog", "CatalogSelection", "Column", "Example", "load_docs"]

Describe = dict[str, list[tuple[str, str]]]
MAX_SEMANTIC = 6  # columns added for being close in meaning (on top of examples and word matches)
MAX_LEXICAL = 8
SMALL_TABLE = 15  # columns; a chosen table this narrow is shown with all its columns
MIN_SEMANTIC = 0.25  # all-MiniLM cosine: below this a column's description is about something else
_STOP_WORDS = """a an and are as at be by did do does for from has have how i in is it its last me my of on or
    our per show the their this to total us was we were what which who with give list"""
_STOP = frozenset(_STOP_WORDS.split())  # noqa: SIM905 -- a word list reads better as text

_VECTORS: dict[tuple[str, str], np.ndarray] = {}  # (embedder name, text) -> unit vector
_VECTORS_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class Example:
    question: str
    sql: str
    columns: frozenset[str] = frozenset()  # column names the SQL reads (from its AST)
    tables: frozenset[str] = frozenset()
    indexed: frozenset[str] = frozenset()  # columns read as maps (Tags['team']): a CSV's text Tags cannot


@dataclass(slots=True)
class CatalogSelection:
    """What one question's prompt shows: ``columns`` maps each of ``tables`` to its chosen columns."""

    tables: list[str]
    columns: dict[str, list[Column]]
    examples: list[Example]
    notes: dict[str, str] = field(default_factory=dict)  # table -> description

    def column_names(self) -> set[str]:
        return {c.name for cols in self.columns.values() for c in cols}


@cache
def load_docs(kind: str) -> dict[str, Any]:
    """The packaged doc file for a cost kind (``{}`` for ``custom`` or an unknown kind)."""
    if kind not in MAIN_TABLES:
        return {}
    text = resources.files("plinth.sql").joinpath("catalog_docs", f"{kind}.yaml").read_text("utf-8")
    docs = dict(yaml.safe_load(text))
    assert docs["table"] == MAIN_TABLES[kind], f"{kind}.yaml documents the contract table"
    if parent := docs.get("inherit"):  # CUR 2.0 shares most legacy CUR columns and their meaning
        docs["columns"] = {**load_docs(parent)["columns"], **docs.get("columns", {})}
    return docs


class Catalog:
    """The documented schema and examples of one dataset; :meth:`select` picks what a question needs."""

    def __init__(
        self,
        schema: dict[str, list[Column]],
        main_table: str,
        *,
        examples: list[Example] | None = None,
        key_columns: list[str] | None = None,
        notes: dict[str, str] | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        assert main_table in schema, f"the main table {main_table!r} is in the schema"
        self.schema, self.main_table = schema, main_table
        self.examples = examples or []
        self.key_columns = [c for c in key_columns or [] if c in self._names(main_table)]
        self.notes = notes or {}
        self._embedder = embedder

    @classmethod
    def for_dataset(cls, dataset: Dataset, describe: Describe, embedder: Embedder | None = None) -> Catalog:
        """A catalog over the columns ``describe`` reports, with the kind's docs where they apply."""
        docs = load_docs(dataset.kind)
        main = dataset.main_table
        described = {t: cols for t, cols in describe.items() if t in dataset.tables}
        if main not in described:
            raise ValueError(f"the engine describes no table {main!r} for dataset {dataset.name!r}")
        col_docs: dict[str, str] = docs.get("columns", {})
        schema = {
            table: [Column(n, t, col_docs.get(n, "") if table == main else "") for n, t in cols]
            for table, cols in described.items()
        }
        types = {c.name: c.type.upper() for c in schema[main]}
        usable = [
            e for e in _examples(dataset.kind, main)
            if e.columns <= types.keys() and e.tables <= schema.keys()
            and all(types[c].startswith(("MAP", "STRUCT")) for c in e.indexed)
        ]  # fmt: skip
        notes = {main: docs["description"].strip()} if docs.get("description") else {}
        return cls(
            schema, main, examples=usable, key_columns=docs.get("key_columns"), notes=notes, embedder=embedder
        )

    def select(self, question: str, k_examples: int = 4, max_columns: int = 30) -> CatalogSelection:
        """The tables, columns and examples to show the model for ``question`` (see the module doc)."""
        q_vec = self._vectors([question])[0]
        examples = self._nearest_examples(q_vec, k_examples)
        chosen: list[tuple[str, str]] = [(self.main_table, c) for c in self.key_columns]
        for ex in examples:
            chosen += [(t, c) for t in self._tables_of(ex) for c in sorted(ex.columns) if c in self._names(t)]
        chosen += self._lexical(question)
        chosen += self._semantic(q_vec)
        picked = list(dict.fromkeys(chosen))[:max_columns]
        return self._selection(picked, examples)

    # --- selection parts -------------------------------------------------------------------------

    def _nearest_examples(self, q_vec: np.ndarray, k: int) -> list[Example]:
        if not self.examples or k <= 0:
            return []
        vecs = self._vectors([e.question for e in self.examples])
        order = np.argsort(-(vecs @ q_vec), kind="stable")[:k]
        return [self.examples[i] for i in order]

    def _lexical(self, question: str) -> list[tuple[str, str]]:
        """Columns whose name words match the question's words, rarest matches first."""
        words = _words(question)
        columns = [(t, c.name) for t, cols in self.schema.items() for c in cols]
        parts = {key: set(_name_words(key[1])) | set(_name_words(key[0])) for key in columns}
        df: dict[str, int] = {}
        for ws in parts.values():
            for w in ws:
                df[w] = df.get(w, 0) + 1
        scores = {
            key: sum(math.log(1 + len(columns) / df[w]) for w in words & ws) for key, ws in parts.items()
        }
        ranked = sorted((key for key, score in scores.items() if score > 0), key=lambda key: -scores[key])
        return ranked[:MAX_LEXICAL]

    def _semantic(self, q_vec: np.ndarray) -> list[tuple[str, str]]:
        """Columns whose ``name: description`` is closest in meaning to the question."""
        columns = [(t, c) for t, cols in self.schema.items() for c in cols]
        if not columns:
            return []
        texts = [f"{' '.join(_name_words(c.name))}: {c.description}".strip(": ") for _, c in columns]
        sims = self._vectors(texts) @ q_vec
        order = [i for i in np.argsort(-sims, kind="stable")[:MAX_SEMANTIC] if sims[i] >= MIN_SEMANTIC]
        return [(columns[i][0], columns[i][1].name) for i in order]

    def _selection(self, picked: list[tuple[str, str]], examples: list[Example]) -> CatalogSelection:
        used = {t for t, _ in picked} or {self.main_table}
        tables = [t for t in self.schema if t in used]  # schema order: the main table first
        columns = {}
        for table in tables:
            wanted = {c for t, c in picked if t == table}
            small = len(self.schema[table]) <= SMALL_TABLE  # a narrow table is clearer whole
            columns[table] = [c for c in self.schema[table] if small or c.name in wanted]
        notes = {t: n for t, n in self.notes.items() if t in tables}
        return CatalogSelection(tables, columns, examples, notes)

    # --- helpers ---------------------------------------------------------------------------------

    def _names(self, table: str) -> set[str]:
        return {c.name for c in self.schema.get(table, [])}

    def _tables_of(self, example: Example) -> list[str]:
        return sorted(example.tables & set(self.schema)) or [self.main_table]

    def _vectors(self, texts: list[str]) -> np.ndarray:
        """Unit vectors for ``texts``; each text is embedded once per process and embedder."""
        embedder = self._embedder or _default_embedder()
        name = str(getattr(embedder, "name", type(embedder).__name__))
        with _VECTORS_LOCK:
            missing = [t for t in dict.fromkeys(texts) if (name, t) not in _VECTORS]
        if missing:
            vecs = np.asarray(embedder.embed(missing), dtype=np.float32)
            vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
            with _VECTORS_LOCK:
                _VECTORS.update({(name, t): v for t, v in zip(missing, vecs, strict=True)})
        with _VECTORS_LOCK:
            return np.stack([_VECTORS[(name, t)] for t in texts])


def _default_embedder() -> Embedder:
    from plinth.llm.embedders import get_embedder

    return get_embedder(DEFAULT_EMBEDDING_MODEL)


@cache
def _examples(kind: str, main_table: str) -> tuple[Example, ...]:
    """The kind's examples, parsed once per process (``for_dataset`` runs on every question)."""
    docs = load_docs(kind)
    contract = docs.get("table", main_table)
    return tuple(_example(e["question"], e["sql"], contract, main_table) for e in docs.get("examples", []))


def _example(question: str, sql: str, contract_table: str, main_table: str) -> Example:
    """An example with the columns and tables it reads, its contract table renamed to ``main_table``."""
    tree = sqlglot.parse_one(sql, read="duckdb")
    if main_table != contract_table:
        for table in tree.find_all(exp.Table):
            if table.name == contract_table:
                table.set("this", exp.to_identifier(main_table))
        sql = tree.sql(dialect="duckdb", pretty=True)
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    tables = frozenset(t.name for t in tree.find_all(exp.Table) if t.name not in ctes)
    columns = frozenset(c.name for c in tree.find_all(exp.Column))
    aliases = {a.alias for a in tree.find_all(exp.Alias)}
    indexed = frozenset(b.this.name for b in tree.find_all(exp.Bracket) if isinstance(b.this, exp.Column))
    return Example(question.strip(), sql.strip(), columns - aliases, tables, indexed)


def _words(text: str) -> set[str]:
    words = {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 2 and w not in _STOP}
    return words | {w[:-1] for w in words if w.endswith("s") and len(w) > 3}


def _name_words(name: str) -> list[str]:
    """``line_item_unblended_cost`` -> line, item, unblended, cost; ``BilledCost`` -> billed, cost."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    return [w for w in re.split(r"[^a-z0-9]+", spaced.lower()) if w]
