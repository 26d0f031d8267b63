"""Agent tasks with the real default model (smollm2-135m-instruct, packaged, CPU), judged by programmatic
checks, through the real HTTP API (``/v1/agents``) of an in-process server::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/agents.py   # 13 tasks; minutes on an idle CPU
    .venv/bin/python benchmarks/agents.py --kind calculator --out .bench/agents.json

Set-up (under ``--data-dir``, default ``.bench/agents``; built once): a ``movies`` knowledge base of the
``--movies`` most-rated films of the demo catalogue (``shared/data/movies``), the demo ``costs`` dataset
(synthetic CUR), and three agents: ``assistant`` (calculator, search_movies, query_costs and a
``get_weather`` function that returns control), ``math`` (calculator) and ``supervisor`` (the ``math``
agent as a tool).

Each task records whether the model chose the right tool first (``tool``), whether the final answer is
right (``answer``: the number, the director, the top service...), and a task succeeds when both hold.
Function tasks also send the weather back (return control) and check the answer uses it; chained tasks
check that the specialist ran the calculator. Every decision is grammar-constrained, so ``parse errors``
should read 0 whatever the model; the rest measures the model.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fastapi.testclient import TestClient  # noqa: E402

from plinth.config import Settings  # noqa: E402
from plinth.control import LOCAL_TENANT, get_or_create_tenant, open_control_plane  # noqa: E402
from plinth.demo import prepare_cost_dataset  # noqa: E402
from plinth.demo.movies import most_rated_first, movie_documents  # noqa: E402
from plinth.demo.movies_kb import SCHEMA  # noqa: E402
from plinth.knowledge import ChunkingConfig, KnowledgeBaseConfig  # noqa: E402
from plinth.llm.loading import load_models  # noqa: E402
from plinth.server import create_app  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
MODEL = "smollm2-135m-instruct"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get today's weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 40}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
ASSISTANT = {
    "name": "assistant",
    "model": MODEL,
    "instructions": (
        "You are a helpful assistant. Use calculator for arithmetic, search_movies for questions about "
        "films, query_costs for questions about cloud costs and get_weather for the weather. "
        "Then give the final answer in one sentence."
    ),
    "max_steps": 4,
}
MATH = {
    "name": "math",
    "model": MODEL,
    "instructions": "Solve arithmetic with the calculator.",
    "max_steps": 3,
    "tools": [{"type": "calculator"}],
}
SUPERVISOR = {
    "name": "supervisor",
    "model": MODEL,
    "instructions": "You lead a team. Ask the math specialist for any arithmetic, then answer the user.",
    "max_steps": 4,
}


@dataclass
class Task:
    kind: str
    agent: str
    input: str
    tool: str  # the tool the first decision should call
    expect: Callable[[str, dict[str, Any]], bool]  # (final output, context) -> right answer?
    weather: dict[str, Any] | None = None  # function tasks: what the caller returns


@dataclass
class Outcome:
    task: Task
    status: str = ""
    first_tool: str | None = None
    tool_ok: bool = False
    answer_ok: bool = False
    output: str | None = None
    decisions: int = 0
    parse_errors: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return self.tool_ok and self.answer_ok


def has_number(value: float, tolerance: float = 0.01) -> Callable[[str, dict[str, Any]], bool]:
    def check(output: str, _: dict[str, Any]) -> bool:
        numbers = [float(n.replace(",", "")) for n in re.findall(r"-?\d[\d,]*\.?\d*", output or "")]
        return any(abs(n - value) <= tolerance * max(1.0, abs(value)) for n in numbers)

    return check


def mentions(*words: str) -> Callable[[str, dict[str, Any]], bool]:
    return lambda output, _: any(w.lower() in (output or "").lower() for w in words)


def top_service(output: str, context: dict[str, Any]) -> bool:
    return context["top_service"].lower() in (output or "").lower()


def total_cost(output: str, context: dict[str, Any]) -> bool:
    return has_number(context["total_cost"])(output, context)


TASKS = [
    Task("calculator", "assistant", "What is 17 times 23?", "calculator", has_number(391)),
    Task("calculator", "assistant", "What is 1250 divided by 5?", "calculator", has_number(250)),
    Task("calculator", "assistant", "Add 345 and 789.", "calculator", has_number(1134)),
    Task("calculator", "assistant", "What is (12 + 8) * 3?", "calculator", has_number(60)),
    Task(
        "knowledge_base",
        "assistant",
        "Who directed the film Jurassic Park?",
        "search_movies",
        mentions("Spielberg"),
    ),
    Task(
        "knowledge_base", "assistant", "Who directed the movie Inception?", "search_movies", mentions("Nolan")
    ),
    Task(
        "knowledge_base", "assistant", "Who directed the film Titanic?", "search_movies", mentions("Cameron")
    ),
    Task(
        "sql", "assistant", "Which AWS service cost the most in our cloud bill?", "query_costs", top_service
    ),
    Task(
        "sql", "assistant", "What is the total unblended cost in our cloud bill?", "query_costs", total_cost
    ),
    Task(
        "function",
        "assistant",
        "What is the weather in Paris today?",
        "get_weather",
        mentions("18"),
        weather={"city": "Paris", "temperature_c": 18, "sky": "sunny"},
    ),
    Task(
        "function",
        "assistant",
        "Tell me the weather in Tokyo.",
        "get_weather",
        mentions("rain"),
        weather={"city": "Tokyo", "temperature_c": 12, "sky": "rain"},
    ),
    Task("chained", "supervisor", "What is 48 times 12?", "math", has_number(576)),
    Task("chained", "supervisor", "What is 1000 minus 357?", "math", has_number(643)),
]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".bench" / "agents")
    parser.add_argument("--movies", type=int, default=1500, help="most-rated films in the movies KB")
    parser.add_argument("--kind", action="append", help="run only these task kinds")
    parser.add_argument("--out", type=Path, help="write every run (with its trace) here as JSON")
    args = parser.parse_args()
    tasks = [t for t in TASKS if not args.kind or t.kind in args.kind]
    settings = Settings(data_dir=args.data_dir, no_auth=True)
    assert settings.database_url is not None
    started = time.perf_counter()
    [model] = load_models(settings)
    cp = open_control_plane(settings.database_url)
    app = create_app(settings, [model], cp)
    try:
        with TestClient(app) as client:
            context = prepare(app, client, args.data_dir, args.movies)
            print(f"set-up: {time.perf_counter() - started:.0f}s; model {model.name}; {len(tasks)} tasks")
            outcomes, runs = [], []
            for task in tasks:
                outcome, trace = run_task(client, context, task)
                outcomes.append(outcome)
                runs.append({"task": task.input, "kind": task.kind, "runs": trace})
                print(row(outcome), flush=True)
    finally:
        model.shutdown()
        app.state.sql.close()
        cp.close()
    report(outcomes)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(runs, indent=2))


def prepare(app: Any, client: TestClient, data_dir: Path, n_movies: int) -> dict[str, Any]:
    """The movies KB, the costs dataset and the three agents (made once); the expected cost answers."""
    tenant = get_or_create_tenant(app.state.plinth.control_plane, LOCAL_TENANT)
    prepare_cost_dataset(app.state.sql, tenant, data_dir)
    kbs = {kb["id"] for kb in client.get("/v1/knowledge-bases").json()["data"]}
    if "movies" not in kbs:
        records = write_movies(data_dir / "movies.jsonl", n_movies)
        config = KnowledgeBaseConfig(
            "movies", chunking=ChunkingConfig(strategy="none"), metadata_schema=SCHEMA
        )
        source = {"type": "records", "path": str(records), "text_fields": ["text"],
                  "metadata_fields": list(SCHEMA), "id_field": "id", "title_field": "title"}  # fmt: skip
        app.state.knowledge.create(tenant, config.with_source(source))
        job = app.state.knowledge.sync_now(tenant, "movies")
        assert job.status == "succeeded", job
    agents = {a["name"]: a["id"] for a in client.get("/v1/agents").json()["data"]}
    tools = [{"type": "calculator"}, {"type": "knowledge_base", "knowledge_base_id": "movies", "top_k": 3},
             {"type": "sql", "dataset": "costs"}, WEATHER]  # fmt: skip
    for name, body in (("assistant", {**ASSISTANT, "tools": tools}), ("math", MATH)):
        agents.setdefault(name, created(client, body))
    if "supervisor" not in agents:
        tool = {
            "type": "agent",
            "agent_id": agents["math"],
            "description": "The math specialist: ask it arithmetic.",
        }
        agents["supervisor"] = created(client, {**SUPERVISOR, "tools": [tool]})
    return {"agents": agents, **expected_costs(client)}


def created(client: TestClient, body: dict[str, Any]) -> str:
    response = client.post("/v1/agents", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def write_movies(out: Path, n: int) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as f:
        for doc in most_rated_first(movie_documents(SHARED))[:n]:
            record = {"id": doc.doc_id, "text": doc.text, **doc.metadata}
            f.write(json.dumps({k: v for k, v in record.items() if k in {"id", "text", *SCHEMA}}) + "\n")
    return out.resolve()


def expected_costs(client: TestClient) -> dict[str, Any]:
    """The right answers, by vetted SQL the benchmark writes itself."""
    cost = "line_item_unblended_cost"
    top = f"SELECT line_item_product_code, SUM({cost}) FROM cur GROUP BY 1 ORDER BY 2 DESC LIMIT 1"
    total = f"SELECT SUM({cost}) FROM cur"
    rows = [
        client.post("/v1/sql/query", json={"sql": sql, "dataset": "costs"}).json()["rows"]
        for sql in (top, total)
    ]
    return {"top_service": rows[0][0][0], "total_cost": float(rows[1][0][0])}


def run_task(client: TestClient, context: dict[str, Any], task: Task) -> tuple[Outcome, list[dict[str, Any]]]:
    outcome, started = Outcome(task), time.perf_counter()
    agent = context["agents"][task.agent]
    run = invoke(client, agent, {"input": task.input})
    runs = [run]
    if run["status"] == "requires_action" and task.weather is not None:
        [call] = run["required_action"]["calls"]
        outcome.notes.append(f"{call['name']}({json.dumps(call['arguments'])})")
        results = [{"call_id": call["call_id"], "output": json.dumps(task.weather)}]
        run = invoke(client, agent, {"session_id": run["session_id"], "return_control_results": results})
        runs.append(run)
    steps = [s for r in runs for s in r["trace"]]
    decisions = [s for s in steps if s["type"] == "model"]
    outcome.first_tool = next((s.get("tool") for s in decisions if "tool" in s), None)
    outcome.tool_ok = outcome.first_tool == task.tool
    if task.kind == "chained":  # the specialist must have used its calculator
        nested = [n for s in steps for n in s.get("agent_run", {}).get("trace", [])]
        outcome.tool_ok &= any(n.get("tool") == "calculator" and n["type"] == "tool" for n in nested)
    outcome.status, outcome.output = run["status"], run["output"]
    outcome.answer_ok = run["status"] == "completed" and task.expect(run["output"] or "", context)
    outcome.decisions = len(decisions)
    outcome.parse_errors = sum(1 for s in decisions if s.get("error"))
    outcome.seconds = time.perf_counter() - started
    return outcome, runs


def invoke(client: TestClient, agent_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """The run, streamed: each step is printed (to stderr) as it completes."""
    path = f"/v1/agents/{agent_id}/invoke"
    with client.stream("POST", path, json={**body, "stream": True}) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            event = json.loads(line.removeprefix("data: "))
            if event["type"] == "step":
                step = event["step"]
                what = step.get("model_output") or step.get("observation") or step.get("error") or ""
                print(
                    f"   {step['type']:<9} {step['duration_ms'] / 1000:6.1f}s {what[:140]!r}", file=sys.stderr
                )
            elif event["type"] == "error":
                raise RuntimeError(event["error"])
            else:
                return dict(event["run"])
    raise RuntimeError("the stream ended without a run")


def row(o: Outcome) -> str:
    mark = "PASS" if o.success else "fail"
    answer = " ".join((o.output or "").split())[:70]
    return (f"{mark} {o.task.kind:<14} tool={o.first_tool or '-':<13} {'ok ' if o.tool_ok else 'no '} "
            f"answer={'ok ' if o.answer_ok else 'no '} {o.status:<17} {o.decisions} decisions "
            f"{o.seconds:5.1f}s  {o.task.input!r} -> {answer!r}")  # fmt: skip


def report(outcomes: list[Outcome]) -> None:
    print(f"\n{'kind':<16}{'tasks':>6}{'right tool':>12}{'right answer':>14}{'success':>10}")
    for kind in dict.fromkeys(o.task.kind for o in outcomes):
        group = [o for o in outcomes if o.task.kind == kind]
        print(f"{kind:<16}{len(group):>6}{_rate(group, 'tool_ok'):>12}{_rate(group, 'answer_ok'):>14}"
              f"{_rate(group, 'success'):>10}")  # fmt: skip
    print(f"{'all':<16}{len(outcomes):>6}{_rate(outcomes, 'tool_ok'):>12}{_rate(outcomes, 'answer_ok'):>14}"
          f"{_rate(outcomes, 'success'):>10}")  # fmt: skip
    decisions = sum(o.decisions for o in outcomes)
    errors = sum(o.parse_errors for o in outcomes)
    seconds = sum(o.seconds for o in outcomes)
    per = seconds / max(1, decisions)
    print(f"\n{decisions} decisions, {errors} parse errors; {seconds:.0f}s of runs ({per:.1f}s per decision)")


def _rate(group: list[Outcome], attr: str) -> str:
    hits = sum(1 for o in group if getattr(o, attr))
    return f"{hits}/{len(group)}"


if __name__ == "__main__":
    main()
