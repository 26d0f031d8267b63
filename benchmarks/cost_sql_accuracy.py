"""Execution accuracy of the ask loop on the held-out CUR questions, for one model (and maybe an adapter).

    .venv/bin/python benchmarks/cost_sql_accuracy.py                                 # the default model
    .venv/bin/python benchmarks/cost_sql_accuracy.py --adapter ./cost-sql            # + the SQL adapter
    .venv/bin/python benchmarks/cost_sql_accuracy.py --grammar                       # under the SQL grammar
    .venv/bin/python benchmarks/cost_sql_accuracy.py --limit 5 --out report.json     # a smoke run

The held-out set is ``plinth/evals/data/cost_sql_heldout.yaml`` (never trained on); its gold SQL runs on
generated CUR data (:data:`plinth.evals.sql_accuracy.EVAL_DATA`, written once into ``.bench/``). The
base model is asked with today's few-shot prompt; an adapter is merged into it (``--merge-lora``) and
asked in the prompt format its data card names (``plinth_task.json``). ``--grammar`` constrains every
reply to the dataset's SELECT grammar (:mod:`plinth.sql.grammar`). Prints the accuracy, the failed
attempts by rule, and one line per question; ``--out`` writes the whole report as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from plinth.config import Settings  # noqa: E402
from plinth.evals.sql_accuracy import EVAL_DATA, AccuracyReport, evaluate_sql, load_cases  # noqa: E402
from plinth.llm.catalog import DEFAULT_MODEL  # noqa: E402
from plinth.llm.loading import load_models  # noqa: E402
from plinth.samples import generate  # noqa: E402
from plinth.sql.adapter_prompt import read_prompt_format  # noqa: E402
from plinth.sql.catalog import Catalog  # noqa: E402
from plinth.sql.engines.duckdb_engine import DuckDBEngine  # noqa: E402
from plinth.sql.runner import QueryRunner  # noqa: E402
from plinth.sql.types import Dataset, TableSource  # noqa: E402

BENCH = ROOT / ".bench" / "cost-sql-eval"


def eval_dataset() -> Dataset:
    """The held-out set's data, generated once (same spec, same bytes)."""
    spec = EVAL_DATA
    folder = BENCH / f"cur-{spec.rows}-{spec.months}-{spec.seed}-{spec.start.isoformat()}"
    if not (folder / "cur").is_dir():
        generate("cur", folder, rows=spec.rows, months=spec.months, seed=spec.seed, start=spec.start)
    return Dataset("cost-sql-eval", "cur", {"cur": TableSource(str(folder / "cur"), "parquet")})


def chat_model(model: str, adapter: Path | None) -> tuple[Any, str | None]:
    """(the loaded model, its SQL prompt format): the base, or the base with ``adapter`` merged in
    (``--merge-lora``: the same weights the unmerged adapter computes, through a stable loading API)."""
    if adapter is None:
        return load_models(Settings(models=[model]))[0], None
    settings = Settings(models=[model], adapters=[adapter.parent], merge_lora=adapter.name)
    return load_models(settings)[0], read_prompt_format(adapter)


def print_report(report: AccuracyReport) -> None:
    for o in report.outcomes:
        mark = "ok  " if o.correct else "MISS"
        detail = o.sql if o.error is None else f"[{o.rule}] {o.sql or ''}"
        print(f"{mark} {o.id:<26} {' '.join((detail or '').split())[:110]}")
    correct = sum(o.correct for o in report.outcomes)
    failed = report.failed_attempts()
    print(f"\n{report.model} (prompt: {report.prompt_format or 'few-shot'}, grammar: "
          f"{'on' if report.grammar else 'off'}): {correct}/{len(report.outcomes)} = {report.accuracy:.1%} "
          f"execution accuracy; {sum(o.attempts for o in report.outcomes)} attempts, "
          f"{sum(failed.values())} failed {failed or ''}")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="catalog name, checkpoint dir or .gguf")
    parser.add_argument("--adapter", type=Path, help="a PEFT adapter folder (with plinth_task.json)")
    parser.add_argument("--prompt-format", help="override the adapter's card (e.g. cost-sql-v1)")
    parser.add_argument("--limit", type=int, help="only the first N questions")
    parser.add_argument("--max-attempts", type=int, default=3, help="the ask loop's attempts per question")
    parser.add_argument("--out", type=Path, help="write the report as JSON here")
    parser.add_argument("--concurrency", type=int, default=8, help="questions asked at once (batched)")
    parser.add_argument("--grammar", action="store_true", help="constrain replies to the SQL grammar")
    args = parser.parse_args()
    cases = load_cases()[: args.limit]
    dataset = eval_dataset()
    engine = DuckDBEngine(dataset, work_dir=BENCH / "engine")
    loaded, prompt_format = chat_model(args.model, args.adapter)
    chat = loaded.as_chat_model()
    try:
        runner = QueryRunner(dataset, engine, max_rows=1000, timeout_s=30)
        catalog = Catalog.for_dataset(dataset, runner.describe())
        report = asyncio.run(
            evaluate_sql(cases, chat, runner=runner, catalog=catalog,
                     prompt_format=args.prompt_format or prompt_format, max_attempts=args.max_attempts,
                     concurrency=args.concurrency, grammar=args.grammar)
        )  # fmt: skip
    finally:
        loaded.shutdown()
        engine.close()
    print_report(report)
    if args.out:
        args.out.write_text(json.dumps(report.as_dict(), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
