"""The evaluation job kind: a dataset through one or two targets, scored by metrics and a judge.

It runs **in the server process** (``JobKind.in_server``), not in a spawned worker: its targets and its
judge are the server's served models and adapters (and its knowledge bases and SQL datasets), which a
worker would have to load a second time. The server supplies ``build(job, spec) -> EvalRuntime`` (the
targets and judge for the job's tenant, and a way to run a coroutine on the server's event loop, where
the models live); this module owns the job's files and its resume rule.

Files, under ``<data_dir>/jobs/<job id>/``: ``records.jsonl`` (one line per finished (target, item),
appended as it finishes -- a restarted job skips them), then ``results.json`` (spec, summary and every
record) and ``report.html`` (the self-contained report) once all are done. Cancel is checked between
items.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plinth.control.jobs import JobRow
from plinth.jobs.context import JobContext, JobStopped
from plinth.jobs.files import Checker
from plinth.jobs.kinds import JobKind

__all__ = [
    "KIND",
    "EvalRuntime",
    "file_checkers",
    "kind",
    "read_records",
    "records_path",
    "run",
    "write_outputs",
]

KIND = "evaluation"


@dataclass(slots=True)
class EvalRuntime:
    """What a job evaluates with: targets by label, the judge (or None), and ``run_coroutine(coro,
    should_stop)``, which runs a coroutine on the loop that owns the models and returns its value -- or,
    once ``should_stop()`` (cancel, server shutdown), cancels it and raises ``EvaluationStopped``."""

    targets: dict[str, Any]  # label -> plinth.evals.Target
    judge: Any | None  # plinth.evals.Judge
    run_coroutine: Callable[[Coroutine[Any, Any, Any], Callable[[], bool]], Any]


Build = Callable[[JobRow, Any], EvalRuntime]  # (job, EvalSpec) -> runtime


def kind(build: Build) -> JobKind:
    """The ``evaluation`` kind, run in the server with the runtime ``build`` makes for each job."""
    return JobKind(KIND, "", in_server=lambda ctx: run(ctx, build))


def file_checkers() -> dict[str, Checker]:
    """Uploads with purpose ``evals`` must be evaluation JSONL (see :mod:`plinth.evals.items`)."""
    from plinth.evals import check_items_file

    return {"evals": lambda path: check_items_file(path)}


def run(ctx: JobContext, build: Build) -> dict[str, Any]:
    """Evaluate (or resume) the job; its result is the summary plus the paths of its outputs."""
    from plinth.evals import EvalSpec, EvaluationStopped, load_items, run_evaluation, summarize

    spec = EvalSpec.model_validate(ctx.job.request["spec"])
    items = load_items(ctx.job.request["dataset_path"])[: spec.limit]
    runtime = build(ctx.job, spec)
    log = records_path(ctx.data_dir, ctx.job.id)
    log.parent.mkdir(parents=True, exist_ok=True)
    done = read_records(log)
    if done:
        ctx.event(f"Resuming after {len(done)} finished results")
    total = len(items) * len(spec.targets)

    def record(row: dict[str, Any]) -> None:
        with log.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        done.append(row)
        ctx.metrics(f"{len(done)}/{total} results", step=len(done), total_steps=total)

    coroutine = run_evaluation(
        spec, items, runtime.targets, runtime.judge, done=list(done), on_record=record,
        should_stop=ctx.should_stop,
    )  # fmt: skip
    try:
        records = runtime.run_coroutine(coroutine, ctx.should_stop)
    except EvaluationStopped as exc:
        raise JobStopped from exc
    result = summarize(spec, records)
    title = spec.name or f"Evaluation {ctx.job.id}"
    paths = write_outputs(ctx.work_dir, spec.model_dump(mode="json"), result, records, title)
    return {**result, **paths, "total_items": len(items)}


def write_outputs(
    folder: Path, spec: dict[str, Any], result: dict[str, Any], records: list[dict[str, Any]], title: str
) -> dict[str, str]:
    """``results.json`` and ``report.html`` in ``folder``; their paths as ``results_path``/``report_path``."""
    from plinth.evals import render_report

    folder.mkdir(parents=True, exist_ok=True)
    results, report = folder / "results.json", folder / "report.html"
    results.write_text(json.dumps({"spec": spec, **result, "items": records}, indent=1), encoding="utf-8")
    report.write_text(render_report(result, records, title), encoding="utf-8")
    return {"results_path": str(results), "report_path": str(report)}


def records_path(data_dir: Path, job_id: str) -> Path:
    """Where a job's finished records are appended, one JSON line each."""
    return Path(data_dir) / "jobs" / job_id / "records.jsonl"


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records in ``path`` (none if it does not exist), up to a line a crash cut off."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:  # a line cut off by a crash: that result is simply redone
            break
    return rows
