"""The runner: every item through every target, scored by metrics and (optionally) a judge.

Contract: :func:`run_evaluation` is plain async code over :mod:`plinth.evals.targets` callables and a
:class:`~plinth.evals.judge.Judge`; it knows no server, job or file. Items run one at a time in file
order, each against every target (so two targets are paired item by item); the judge sees the same
seeded sample of items for every target. ``done`` holds records already made (a resumed job) and
``on_record`` receives each new one (the job appends it to disk), so an interrupted run picks up where
it stopped. :func:`summarize` turns records into the report's numbers::

    records = await run_evaluation(spec, items, {"model:qwen": target}, judge)
    result = summarize(spec, records)   # {"summary", "agreement", "comparison"}
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from statistics import mean, median
from typing import Any

from plinth.evals.agreement import agreement
from plinth.evals.compare import paired_bootstrap
from plinth.evals.items import EvalItem
from plinth.evals.judge import Judge, JudgeCase, sampled_indices
from plinth.evals.metrics import TEXT_METRICS, json_valid
from plinth.evals.retrieval import ndcg_at_k, recall_at_k, reciprocal_rank
from plinth.evals.spec import EvalSpec, TargetSpec
from plinth.evals.targets import Target, TargetOutput

__all__ = ["EvaluationStopped", "Record", "item_metrics", "run_evaluation", "summarize"]

Record = dict[str, Any]  # one (target, item) result, JSON-ready
LOWER_IS_BETTER = {"latency_s", "prompt_tokens", "completion_tokens"}


class EvaluationStopped(Exception):
    """``should_stop`` said so between items; the records made so far were all handed to ``on_record``."""


async def run_evaluation(
    spec: EvalSpec,
    items: Sequence[EvalItem],
    targets: Mapping[str, Target],
    judge: Judge | None = None,
    *,
    done: Sequence[Record] = (),
    on_record: Callable[[Record], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[Record]:
    """Records for every (item, target) in item order; ``done`` ones are reused, not rerun. Up to
    ``spec.concurrency`` (item, target) pairs run at once (a batching engine answers several for little
    more than one); ``on_record`` then sees them in the order they finish."""
    previous = {(r["target"], r["id"]): r for r in done}
    judged = sampled_indices(len(items), spec.judge.sampling_rate, spec.judge.seed) if spec.judge else set()
    slots = asyncio.Semaphore(spec.concurrency)

    async def one(index: int, item: EvalItem, target: TargetSpec) -> Record:
        record = previous.get((target.label, item.id))
        if record is not None:
            return record
        async with slots:
            if should_stop is not None and should_stop():
                raise EvaluationStopped
            output = await _call(targets[target.label], item)
            record = _record(target, item, output, spec.metrics_for(target))
            if judge is not None and index in judged and output.error is None:
                await _judge(judge, item, output, record)
        if on_record is not None:
            on_record(record)
        return record

    tasks = [asyncio.ensure_future(one(i, item, t)) for i, item in enumerate(items) for t in spec.targets]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:  # stopped (or failed): abandon the calls still in flight, then re-raise
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def _call(target: Target, item: EvalItem) -> TargetOutput:
    try:
        return await target(item)
    except Exception as exc:  # one failing item is recorded, not the end of the run
        return TargetOutput("", error=f"{type(exc).__name__}: {exc}")


async def _judge(judge: Judge, item: EvalItem, output: TargetOutput, record: Record) -> None:
    """Sets the record's ``judge`` verdicts, or ``judge_error`` when the judge model failed."""
    contexts = output.contexts or item.contexts
    case = JudgeCase(item.input, output.text, item.reference, tuple(contexts))
    try:
        record["judge"] = {name: j.as_dict() for name, j in (await judge.judge(case)).items()}
    except Exception as exc:  # e.g. the case does not fit the judge's context: that item goes unjudged
        record["judge_error"] = f"{type(exc).__name__}: {exc}"


def _record(target: TargetSpec, item: EvalItem, output: TargetOutput, metrics: Sequence[str]) -> Record:
    retrieval_k = target.k if target.type == "knowledge_base" else None
    return {
        "target": target.label,
        "id": item.id,
        "input": item.input,
        "reference": item.reference,
        "output": output.text,
        "error": output.error,
        "contexts": output.contexts,
        "human_score": item.human_score,
        "latency_s": round(output.latency_s, 4),
        "prompt_tokens": output.prompt_tokens,
        "completion_tokens": output.completion_tokens,
        "metrics": item_metrics(item, output, metrics, retrieval_k),
        "extra": output.extra,
    }


def item_metrics(
    item: EvalItem, output: TargetOutput, metrics: Sequence[str], retrieval_k: int | None = None
) -> dict[str, float]:
    """The requested text metrics that apply (they need a reference; ``json_valid`` does not), the
    target's own scores, and -- for a target that retrieves ``retrieval_k`` documents, on an item that
    names its relevant ones -- recall@k, MRR@k and nDCG@10 of what it retrieved."""
    out: dict[str, float] = {}
    for name in metrics:
        if name == "json_valid":
            out[name] = json_valid(output.text)
        elif name in TEXT_METRICS and item.reference is not None:
            out[name] = TEXT_METRICS[name](output.text, item.reference)
    out.update({k: v for k, v in output.scores.items() if k in metrics})
    if item.relevant and retrieval_k is not None:
        judged, k = dict.fromkeys(item.relevant, 1), retrieval_k
        out[f"recall@{k}"] = recall_at_k(output.retrieved, judged, k)
        out[f"mrr@{k}"] = reciprocal_rank(output.retrieved, judged, k)
        out["ndcg@10"] = ndcg_at_k(output.retrieved, judged, 10)
    return out


def scores_of(record: Record) -> dict[str, float]:
    """Every number of one record by metric name: metrics, ``judge.<criterion>`` (1-5), cost."""
    out = dict(record["metrics"])
    for name, verdict in (record.get("judge") or {}).items():
        if verdict.get("score") is not None:
            out[f"judge.{name}"] = float(verdict["score"])
    if not record.get("error"):
        out.update({k: float(record[k]) for k in ("latency_s", "prompt_tokens", "completion_tokens")})
    return out


def summarize(spec: EvalSpec, records: Sequence[Record]) -> dict[str, Any]:
    """Means per target and metric, judge-human agreement, and (two targets) the paired comparison."""
    labels = [t.label for t in spec.targets]
    by_target = {label: [r for r in records if r["target"] == label] for label in labels}
    summary = {label: _means(rows) for label, rows in by_target.items()}
    result: dict[str, Any] = {"summary": summary, "agreement": {n: _agreement(by_target[n]) for n in labels}}
    if len(labels) == 2:
        result["comparison"] = _compare(spec, by_target[labels[0]], by_target[labels[1]])
    return result


def _means(rows: Sequence[Record]) -> dict[str, Any]:
    values: dict[str, list[float]] = {}
    for row in rows:
        for name, value in scores_of(row).items():
            values.setdefault(name, []).append(value)
    out: dict[str, Any] = {name: mean(v) for name, v in sorted(values.items())}
    out["items"] = len(rows)
    out["errors"] = sum(1 for r in rows if r.get("error"))
    if latencies := values.get("latency_s"):
        out["latency_p50_s"] = median(latencies)
    out["judged"] = sum(1 for r in rows if r.get("judge"))
    out["judge_errors"] = sum(1 for r in rows if r.get("judge_error"))
    return out


def _agreement(rows: Sequence[Record]) -> dict[str, Any]:
    pairs: dict[str, tuple[list[float], list[float]]] = {}
    for row in rows:
        if row.get("human_score") is None:
            continue
        for name, verdict in (row.get("judge") or {}).items():
            if verdict.get("score") is not None:
                human, judge = pairs.setdefault(name, ([], []))
                human.append(float(row["human_score"]))
                judge.append(float(verdict["score"]))
    return {name: agreement(h, j) for name, (h, j) in pairs.items()}


def _compare(spec: EvalSpec, a_rows: Sequence[Record], b_rows: Sequence[Record]) -> list[dict[str, Any]]:
    a_scores = {r["id"]: scores_of(r) for r in a_rows}
    b_scores = {r["id"]: scores_of(r) for r in b_rows}
    names = sorted({n for s in a_scores.values() for n in s} & {n for s in b_scores.values() for n in s})
    out = []
    for name in names:
        ids = [i for i in a_scores if name in a_scores[i] and name in b_scores.get(i, {})]
        if not ids:
            continue
        a, b = [a_scores[i][name] for i in ids], [b_scores[i][name] for i in ids]
        stats = paired_bootstrap(a, b, resamples=spec.bootstrap_resamples, seed=spec.seed)
        out.append({"metric": name, "lower_is_better": name in LOWER_IS_BETTER, **stats})
    return out
