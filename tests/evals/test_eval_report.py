"""The HTML report: self-contained (no scripts, no fetches), every chart present, data escaped."""

from __future__ import annotations

from plinth.evals import EvalSpec, render_report, summarize


def record(target: str, item: str, output: str, em: float, score: int) -> dict:
    return {"target": target, "id": item, "input": "q <b>", "reference": "r", "output": output, "error": None,
            "contexts": [], "human_score": 5, "latency_s": 0.5, "prompt_tokens": 3, "completion_tokens": 2,
            "metrics": {"exact_match": em}, "extra": {},
            "judge": {"correctness": {"criterion": "correctness", "score": score, "reasoning": "<i>why</i>",
                                      "votes": [score], "first": None}}}  # fmt: skip


def test_report_is_self_contained_and_escaped() -> None:
    spec = EvalSpec.model_validate({"dataset": "x", "targets": [{"model": "a"}, {"model": "b"}]})
    records = [record("model:a", "1", "<script>alert(1)</script>", 1.0, 5),
               record("model:b", "1", "fine", 0.0, 2), record("model:a", "2", "ok", 1.0, 4),
               record("model:b", "2", "meh", 0.0, 1)]  # fmt: skip
    page = render_report(summarize(spec, records), records, "T <x>")
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<title>T &lt;x&gt;</title>" in page and "&lt;i&gt;why&lt;/i&gt;" in page
    assert "src=" not in page and "href=" not in page and "@import" not in page  # nothing fetched
    assert page.count('aria-label="exact_match"') == 2  # its bar chart and its distribution
    assert 'aria-label="judge.correctness"' in page and 'aria-label="comparison"' in page
    assert "Agreement with human scores" in page
