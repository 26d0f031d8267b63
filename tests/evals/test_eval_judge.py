"""The judge machinery with a scripted judge: parsing, votes, two layers, sampling, the runner around it."""

from __future__ import annotations

import asyncio
import json
import math
import re

import pytest

from plinth.evals import (
    EvalItem,
    EvalSpec,
    EvaluationStopped,
    Judge,
    JudgeCase,
    JudgeConfig,
    TargetOutput,
    model_target,
    parse_verdict,
    run_evaluation,
    summarize,
)
from plinth.evals.judge import majority_vote, sampled_indices, verdict_schema
from plinth.llm import ScriptedModel


def verdict(score: int, reasoning: str = "because") -> str:
    return json.dumps({"reasoning": reasoning, "score": score})


def run(coro):
    return asyncio.run(coro)


def test_parse_verdict_json_prose_and_failures() -> None:
    assert parse_verdict(verdict(4, "ok")) == parse_verdict('Sure! {"reasoning": "ok", "score": 4} done')
    assert parse_verdict(verdict(4, "ok")).score == 4 and parse_verdict(verdict(4, "ok")).reasoning == "ok"
    assert parse_verdict('{"reasoning": "x", "score": "5"}').score == 5
    assert parse_verdict("The answer is right.\nScore: 3").score == 3
    assert parse_verdict(verdict(7)).score is None  # out of range
    assert parse_verdict('{"reasoning": "x", "score": 2.5}').score is None
    assert parse_verdict("no idea").score is None


def test_majority_vote_ties_go_low() -> None:
    assert majority_vote([4, 4, 2]) == 4
    assert majority_vote([2, 4]) == 2
    assert majority_vote([None, 3, None]) == 3
    assert majority_vote([None, None]) is None


def test_sampled_indices_is_a_seeded_fraction() -> None:
    half = sampled_indices(10, 0.5, seed=0)
    assert len(half) == 5 and half == sampled_indices(10, 0.5, seed=0) and half <= set(range(10))
    assert half != sampled_indices(10, 0.5, seed=1)
    assert sampled_indices(10, 1.0) == set(range(10)) and sampled_indices(10, 0.0) == set()
    assert len(sampled_indices(3, 0.01)) == 1  # a positive rate judges at least one item


def test_single_judge_is_greedy_and_grammar_constrained() -> None:
    model = ScriptedModel([verdict(5, "same facts")])
    judge = Judge(model, JudgeConfig(("correctness",)))
    out = run(judge.judge(JudgeCase("Who directed Alien?", "Ridley Scott", reference="Ridley Scott")))
    assert out["correctness"].score == 5 and out["correctness"].reasoning == "same facts"
    assert out["correctness"].votes == [5] and out["correctness"].first is None
    options = model.calls[0].options
    assert options.temperature == 0.0 and options.response_format is not None
    assert json.loads(options.response_format.source) == verdict_schema(400)
    prompt = model.calls[0].messages[-1]["content"]
    assert "Reference answer:\nRidley Scott" in prompt and "Answer to evaluate:\nRidley Scott" in prompt


def test_self_consistency_majority_of_samples() -> None:
    model = ScriptedModel([verdict(4, "a"), verdict(2, "b"), verdict(4, "c")])
    judge = Judge(model, JudgeConfig(("relevance",), samples=3, temperature=0.9, seed=10))
    result = run(judge.judge(JudgeCase("q", "a")))["relevance"]
    assert result.score == 4 and result.votes == [4, 2, 4] and result.reasoning == "a"
    assert [c.options.seed for c in model.calls] == [10, 11, 12]
    assert {c.options.temperature for c in model.calls} == {0.9}


def test_two_layer_master_reviews_first_verdict() -> None:
    first = ScriptedModel([verdict(2, "the dates differ")])
    master = ScriptedModel([verdict(5, "the first judge misread the year")])
    judge = Judge(first, JudgeConfig(("correctness",)), master=master)
    result = run(judge.judge(JudgeCase("When?", "1979", reference="1979")))["correctness"]
    assert result.score == 5 and result.reasoning == "the first judge misread the year"
    assert result.first == {"score": 2, "reasoning": "the dates differ", "votes": [2]}
    review = master.calls[0].messages[-1]["content"]
    assert "A first judge gave score 2" in review and "the dates differ" in review


def test_criteria_apply_only_with_their_inputs_and_rubrics_join() -> None:
    model = ScriptedModel(lambda messages: verdict(3))
    config = JudgeConfig(("correctness", "faithfulness", "coherence"), rubrics={"polite": "Is it polite?"})
    judge = Judge(model, config)
    assert set(run(judge.judge(JudgeCase("q", "a")))) == {"coherence", "polite"}
    full = JudgeCase("q", "a", reference="r", contexts=("passage one",))
    assert set(run(judge.judge(full))) == {"correctness", "faithfulness", "coherence", "polite"}
    faithfulness_prompt = model.calls[-3].messages[-1]["content"]
    assert "[1] passage one" in faithfulness_prompt


def test_unparseable_reply_scores_none() -> None:
    judge = Judge(ScriptedModel(["I think it is fine"]), JudgeConfig(("coherence",), constrained=False))
    result = run(judge.judge(JudgeCase("q", "a")))["coherence"]
    assert result.score is None and result.votes == [None]


# -- the runner ---------------------------------------------------------------------------------------


def items(n: int) -> list[EvalItem]:
    return [EvalItem(f"q{i}", f"question {i}", reference="paris", human_score=1 + i % 5) for i in range(n)]


def spec(**judge) -> EvalSpec:
    body = {
        "dataset": "x",
        "targets": [{"model": "a"}, {"model": "b"}],
        "metrics": ["exact_match", "token_f1"],
    }
    if judge:
        body["judge"] = {"model": "j", "criteria": ["correctness"], **judge}
    return EvalSpec.model_validate(body)


def test_runner_scores_judges_a_sample_and_compares() -> None:
    s = spec(sampling_rate=0.5, seed=4)
    asked = []

    def judge_reply(messages):
        asked.append(re.search(r"Question:\n(.*)", messages[-1]["content"]).group(1))
        return verdict(5 if "Answer to evaluate:\nParis" in messages[-1]["content"] else 1)

    targets = {"model:a": model_target(ScriptedModel(lambda m: "Paris")),
               "model:b": model_target(ScriptedModel(lambda m: "Lyon"))}  # fmt: skip
    records = run(run_evaluation(s, items(8), targets, Judge(ScriptedModel(judge_reply), s.judge.config())))
    assert len(records) == 16 and [r["target"] for r in records[:2]] == ["model:a", "model:b"]
    judged = sorted({r["id"] for r in records if r.get("judge")})
    assert len(judged) == 4 and len(asked) == 8  # the same 4 items judged for both targets
    assert judged == sorted(f"q{i}" for i in sampled_indices(8, 0.5, 4))
    result = summarize(s, records)
    a, b = result["summary"]["model:a"], result["summary"]["model:b"]
    assert (a["exact_match"], b["exact_match"], a["judge.correctness"], b["judge.correctness"]) == (
        1,
        0,
        5,
        1,
    )
    assert a["judged"] == 4 and a["items"] == 8 and a["errors"] == 0
    em = next(c for c in result["comparison"] if c["metric"] == "exact_match")
    assert (em["a"], em["b"], em["diff"], em["n"]) == (1.0, 0.0, -1.0, 8)
    assert set(result["agreement"]["model:a"]) == {"correctness"}
    assert result["agreement"]["model:a"]["correctness"]["n"] == 4


def test_runner_resumes_from_done_records_and_stops_between_items() -> None:
    s = spec()
    model = ScriptedModel(lambda m: "paris")
    targets = {"model:a": model_target(model), "model:b": model_target(model)}
    seen = []
    first = run(run_evaluation(s, items(2), targets, on_record=seen.append))
    assert len(model.calls) == 4 and seen == first
    again = run(run_evaluation(s, items(3), targets, done=first))
    assert len(model.calls) == 6 and again[:4] == first  # only item q2 ran
    with pytest.raises(EvaluationStopped):
        run(run_evaluation(s, items(3), targets, should_stop=lambda: True))


def test_failing_target_is_recorded_not_judged() -> None:
    s = EvalSpec.model_validate({"dataset": "x", "targets": [{"model": "a"}], "judge": {"model": "j"}})

    async def broken(item: EvalItem) -> TargetOutput:
        raise RuntimeError("engine exploded")

    records = run(
        run_evaluation(s, items(1), {"model:a": broken}, Judge(ScriptedModel([]), s.judge.config()))
    )
    assert records[0]["error"] == "RuntimeError: engine exploded" and "judge" not in records[0]
    assert summarize(s, records)["summary"]["model:a"]["errors"] == 1


def test_retrieval_and_target_scores_become_metrics() -> None:
    from plinth.evals.run import item_metrics

    item = EvalItem("q", "?", reference="x", relevant=["d2"])
    out = TargetOutput("x", retrieved=["d1", "d2", "d3"], scores={"sql_execution": 1.0})
    assert item_metrics(item, out, ["exact_match"]) == {"exact_match": 1.0}  # a target that does not retrieve
    metrics = item_metrics(item, out, ["exact_match", "sql_execution"], retrieval_k=3)
    assert metrics == {"exact_match": 1.0, "sql_execution": 1.0, "recall@3": 1.0, "mrr@3": 0.5,
                       "ndcg@10": pytest.approx(1 / math.log2(3))}  # fmt: skip


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"targets": [{"model": "a"}]}, "dataset"),
        ({"dataset": "x", "targets": []}, "targets"),
        ({"dataset": "x", "targets": [{"model": "a"}], "metrics": ["nope"]}, "unknown metrics"),
        ({"dataset": "x", "targets": [{"type": "sql", "model": "a"}]}, "sql_dataset"),
        (
            {"dataset": "x", "targets": [{"model": "a"}], "judge": {"model": "j", "criteria": ["vibes"]}},
            "vibes",
        ),
        ({"dataset": "x", "targets": [{"model": "a"}, {"model": "a"}]}, "same label"),
        (
            {"dataset": "x", "targets": [{"model": "a"}], "judge": {"model": "j", "sampling_rate": 2}},
            "sampling",
        ),
    ],
)
def test_spec_rejects(body, message) -> None:
    with pytest.raises(ValueError, match=message):
        EvalSpec.model_validate(body)


def test_a_failing_judge_leaves_the_item_unjudged() -> None:
    s = EvalSpec.model_validate({"dataset": "x", "targets": [{"model": "a"}], "judge": {"model": "j"}})

    def explode(messages):
        raise RuntimeError("context too long")

    target = {"model:a": model_target(ScriptedModel(lambda m: "paris"))}
    [record] = run(run_evaluation(s, items(1), target, Judge(ScriptedModel(explode), s.judge.config())))
    assert record["judge_error"] == "RuntimeError: context too long" and "judge" not in record
    assert summarize(s, [record])["summary"]["model:a"]["judge_errors"] == 1


def test_reasoning_is_sized_to_fit_max_tokens() -> None:
    # 64 tokens: at worst one escaped character (2 tokens) per reasoning character, ~32 for the rest
    model = ScriptedModel([verdict(3)])
    judge = Judge(model, JudgeConfig(("coherence",), max_tokens=64))
    assert judge.reasoning_limit == 16
    run(judge.judge(JudgeCase("q", "a")))
    assert json.loads(model.calls[0].options.response_format.source) == verdict_schema(16)
    assert Judge(model, JudgeConfig()).reasoning_limit == 400


def test_concurrent_runs_keep_item_order() -> None:
    s = EvalSpec.model_validate({"dataset": "x", "targets": [{"model": "a"}], "concurrency": 4})

    async def slow_first(item: EvalItem) -> TargetOutput:
        await asyncio.sleep(0.05 if item.id == "q0" else 0)
        return TargetOutput(item.input)

    finished: list[str] = []
    records = run(
        run_evaluation(s, items(6), {"model:a": slow_first}, on_record=lambda r: finished.append(r["id"]))
    )
    assert [r["id"] for r in records] == [f"q{i}" for i in range(6)]
    assert finished[-1] == "q0"  # it ran alongside the others and finished last
