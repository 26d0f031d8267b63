"""The ``cost-sql`` training set: templated CUR questions with gold SQL that ran, as chat JSONL.

Each shape of ``cost_sql_templates.yaml`` is one gold query and several phrasings. Slot values
(services, regions, accounts, months, tag keys and values, charge types, instance types, top-N,
thresholds) are drawn from the dataset itself, so every question names something that exists. Every gold
query goes through Plinth's vetted path (:class:`~plinth.sql.runner.QueryRunner`: safety layer, then the
engine) and is kept only if it runs and returns a non-null row; the rest are counted as dropped. The
output is one ``{"messages": [system, user, assistant]}`` object per line in the prompt format of
:mod:`plinth.sql.adapter_prompt`, reproducible for a given seed and dataset::

    examples, stats = build_training_set(runner, seed=0)
    write_jsonl(examples, "cost-sql/train.jsonl")

``python -m plinth.sql.training_set --out DIR`` generates the dataset (:data:`TRAIN_DATA`), writes
``DIR/train.jsonl`` and ``DIR/plinth_task.json`` (the data card: format, sizes, drops per shape).
"""

from __future__ import annotations

import json
import random
import re
import string
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from plinth.sql.adapter_prompt import adapter_messages, assistant_reply
from plinth.sql.runner import QueryRunner
from plinth.sql.types import SQLError

__all__ = [
    "TRAIN_DATA",
    "DataSpec",
    "Shape",
    "TrainingStats",
    "build_training_set",
    "load_shapes",
    "normalize_question",
    "write_jsonl",
]

PER_SHAPE = 60
TOP_N = (2, 3, 5, 7, 10)
AMOUNTS = (100, 250, 500, 1000, 2500, 5000, 10000)
TAGS = {  # question word -> (column, alias)
    "team": ("resource_tags_user_team", "team"),
    "environment": ("resource_tags_user_environment", "environment"),
    "application": ("resource_tags_user_application", "application"),
    "owner": ("resource_tags_user_owner", "owner"),
    "cost center": ("resource_tags_user_cost_center", "cost_center"),
}
CHARGES = {  # line item type -> how people say it
    "Tax": ("tax", "taxes"),
    "Credit": ("credits",),
    "Refund": ("refunds",),
    "Fee": ("fees",),
    "RIFee": ("RI fees", "reserved instance fees"),
    "EdpDiscount": ("EDP discounts", "enterprise discounts"),
    "SavingsPlanRecurringFee": ("Savings Plan fees",),
}
SHORT_NAMES = {
    "AWSQueueService": ("SQS",),
    "AWSELB": ("ELB", "load balancers"),
    "AmazonRoute53": ("Route 53",),
    "AmazonES": ("OpenSearch",),
}
PREFIXES = ("", "", "", "", "Quick question: ", "Hey, ", "Can you tell me ")


@dataclass(frozen=True, slots=True)
class DataSpec:
    """How a generated CUR dataset is made (:func:`plinth.samples.generate`)."""

    rows: int = 20_000
    months: int = 6
    seed: int = 0
    start: date = date(2025, 7, 1)  # the data covers the ``months`` whole months before this


TRAIN_DATA = DataSpec(seed=0)


@dataclass(frozen=True, slots=True)
class Shape:
    name: str
    sql: str
    questions: tuple[str, ...]


@dataclass(slots=True)
class TrainingStats:
    """What was kept and dropped, per shape (dropped: gold SQL that failed or returned no rows)."""

    kept: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    empty: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {"examples": sum(self.kept.values()), "shapes": len(self.kept),
                "dropped_failed": sum(self.failed.values()), "dropped_empty": sum(self.empty.values()),
                "per_shape": dict(self.kept), "failed_per_shape": dict(self.failed)}  # fmt: skip


@cache
def load_shapes() -> tuple[Shape, ...]:
    """The packaged templates, SQL whitespace normalised to single spaces."""
    text = resources.files("plinth.sql").joinpath("cost_sql_templates.yaml").read_text("utf-8")
    return tuple(
        Shape(s["name"], " ".join(s["sql"].split()), tuple(s["questions"]))
        for s in yaml.safe_load(text)["shapes"]
    )


def build_training_set(
    runner: QueryRunner, *, seed: int = 0, per_shape: int = PER_SHAPE
) -> tuple[list[dict[str, Any]], TrainingStats]:
    """Up to ``per_shape`` distinct questions per shape, each with a gold query that ran (see module),
    in a seeded shuffled order."""
    rng = random.Random(seed)
    values = _DataValues.read(runner)
    stats, examples, results = TrainingStats(), [], _ResultCache(runner)
    for shape in load_shapes():
        seen: set[str] = set()
        for _ in range(per_shape * 4):
            if len(seen) >= per_shape:
                break
            slots = _draw_slots(values, rng)
            question, sql = (
                _surface(rng.choice(shape.questions).format(**slots), rng),
                shape.sql.format(**slots),
            )
            key = normalize_question(question)
            if key in seen:
                continue
            seen.add(key)
            outcome = results.outcome(sql)
            if outcome != "ok":
                (stats.failed if outcome == "failed" else stats.empty)[shape.name] += 1
                continue
            stats.kept[shape.name] += 1
            examples.append({"messages": [*adapter_messages(question), _assistant(sql)]})
    rng.shuffle(examples)  # shapes interleaved, whatever order a trainer reads them in
    return examples, stats


def normalize_question(text: str) -> str:
    """Lower case, punctuation and extra spaces gone: how questions are compared for overlap."""
    text = text.lower().translate(str.maketrans("", "", string.punctuation.replace("=", "")))
    return " ".join(text.split())


def write_jsonl(examples: Iterable[dict[str, Any]], path: str | Path) -> int:
    """Write one JSON object per line; return how many."""
    count = 0
    with Path(path).open("w", encoding="utf-8") as out:
        for example in examples:
            out.write(json.dumps(example, ensure_ascii=False) + "\n")
            count += 1
    return count


# --- internals -----------------------------------------------------------------------------------


@dataclass(slots=True)
class _DataValues:
    """The slot vocabularies, read from the dataset through the runner (sorted: draws are seeded)."""

    services: list[str]
    regions: list[str]
    accounts: list[str]
    months: list[date]
    line_types: list[str]
    instance_types: list[str]
    tags: dict[str, list[str]]

    @classmethod
    def read(cls, runner: QueryRunner) -> _DataValues:
        def distinct(col: str, where: str = "") -> list[str]:
            sql = f"SELECT DISTINCT {col} AS v FROM cur WHERE {col} <> '' {where} ORDER BY 1"
            return [str(r[0]) for r in runner.run(sql)[1].rows if r[0] is not None]

        month = "CAST(date_trunc('month', line_item_usage_start_date) AS DATE)"
        months = [str(r[0]) for r in runner.run(f"SELECT DISTINCT {month} FROM cur ORDER BY 1")[1].rows]
        return cls(
            services=distinct("line_item_product_code"),
            regions=[r for r in distinct("product_region") if r != "global"],
            accounts=distinct("line_item_usage_account_id"),
            months=[date.fromisoformat(m[:10]) for m in months],
            line_types=distinct("line_item_line_item_type"),
            instance_types=distinct("product_instance_type", "AND line_item_product_code = 'AmazonEC2'"),
            tags={col: distinct(col) for col, _ in TAGS.values()},
        )


class _ResultCache:
    """``ok`` / ``failed`` / ``empty`` per gold SQL, each run once through the vetted path."""

    def __init__(self, runner: QueryRunner) -> None:
        self.runner, self.seen = runner, dict[str, str]()

    def outcome(self, sql: str) -> str:
        if sql not in self.seen:
            try:
                rows = self.runner.run(sql)[1].rows
            except SQLError:
                self.seen[sql] = "failed"
            else:
                useful = any(v is not None for row in rows for v in row)
                self.seen[sql] = "ok" if useful else "empty"
        return self.seen[sql]


def _draw_slots(values: _DataValues, rng: random.Random) -> dict[str, Any]:
    """One value for every slot a template may use (unused ones cost nothing)."""
    code = rng.choice(values.services)
    month = rng.choice(values.months)
    tag_key = rng.choice(sorted(TAGS))
    col, alias = TAGS[tag_key]
    line_type = rng.choice([t for t in sorted(CHARGES) if t in values.line_types])
    return {
        "service": rng.choice(_service_names(code)), "service_code": code,
        "month": rng.choice(_month_names(month)), "month_date": month.isoformat(),
        "region": rng.choice(values.regions), "account": rng.choice(values.accounts),
        "instance_type": rng.choice(values.instance_types),
        "tag_key": tag_key, "tag_col": col, "tag_alias": alias, "tag_value": rng.choice(values.tags[col]),
        "charge": rng.choice(CHARGES[line_type]), "line_type": line_type,
        "n": rng.choice(TOP_N), "amount": rng.choice(AMOUNTS),
    }  # fmt: skip


def _assistant(sql: str) -> dict[str, str]:
    return {"role": "assistant", "content": assistant_reply(sql)}


def _service_names(code: str) -> tuple[str, ...]:
    """How people name a service: the code, and the short name (AmazonEC2 -> EC2)."""
    short = SHORT_NAMES.get(code) or (re.sub(r"^(Amazon|AWS)", "", code) or code,)
    return (code, *short, *short)  # the short name twice as often: people rarely type the code


def _month_names(month: date) -> tuple[str, ...]:
    return (month.strftime("%B %Y"), month.strftime("%b %Y"), month.strftime("%Y-%m"))


def _surface(question: str, rng: random.Random) -> str:
    """Casing, closing punctuation and an opener vary as people type them."""
    prefix = rng.choice(PREFIXES)
    if prefix or rng.random() < 0.3:
        first = question.split()[0]
        question = question[0].lower() + question[1:] if first[1:].islower() else question  # not 'EC2'
    question = question.rstrip("?")
    if rng.random() < 0.7 and re.match(r"(what|how|which|in which|on which|on average)\b", question, re.I):
        question += "?"
    return prefix + question


def main(argv: list[str] | None = None) -> int:
    """Generate :data:`TRAIN_DATA`, build the set, write ``train.jsonl`` and the data card."""
    import argparse
    import tempfile

    from plinth.samples import generate
    from plinth.sql.adapter_prompt import CARD_FILE, data_card
    from plinth.sql.engines.duckdb_engine import DuckDBEngine
    from plinth.sql.types import Dataset, TableSource

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0, help="draws (the data's seed is TRAIN_DATA's)")
    parser.add_argument("--per-shape", type=int, default=PER_SHAPE)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    spec = TRAIN_DATA
    with tempfile.TemporaryDirectory() as tmp:
        folder = generate(
            "cur", Path(tmp), rows=spec.rows, months=spec.months, seed=spec.seed, start=spec.start
        )
        dataset = Dataset("train", "cur", {"cur": TableSource(str(folder), "parquet")})
        engine = DuckDBEngine(dataset, work_dir=Path(tmp) / "engine")
        try:
            examples, stats = build_training_set(QueryRunner(dataset, engine), seed=args.seed,
                                                 per_shape=args.per_shape)  # fmt: skip
        finally:
            engine.close()
    write_jsonl(examples, args.out / "train.jsonl")
    facts = {**stats.as_dict(), "seed": args.seed, "data": {"kind": "cur", "rows": spec.rows,
             "months": spec.months, "seed": spec.seed, "start": spec.start.isoformat()}}  # fmt: skip
    (args.out / CARD_FILE).write_text(json.dumps(data_card(**facts), indent=2) + "\n", "utf-8")
    print(json.dumps({k: v for k, v in facts.items() if "per_shape" not in k}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
