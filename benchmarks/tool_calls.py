"""Tool-calling quality of a served model: does it pick the right function with the right arguments?

    .venv/bin/python benchmarks/tool_calls.py                 # the default model (SmolLM2-135M-Instruct)
    .venv/bin/python benchmarks/tool_calls.py --url http://127.0.0.1:8000 --model NAME   # a running server

Starts ``plinth serve`` (the default model unless ``--model``) and sends each case of :data:`CASES`
through the OpenAI API with the official ``openai`` SDK, greedy, ``parallel_tool_calls=False``, under
two tool choices:

- ``auto``: the model decides. Scored: a call when one is expected (``call rate``), text when none is
  (``abstain``), the right function, and the right arguments (each expected key equal, case-folded).
- ``required``: a call is forced by the grammar. Scored: valid (the arguments parse and validate
  against the function's JSON schema -- the grammar's promise, so anything under 100% is a bug), the
  right function, and the right arguments.

Prints one line per case and a summary table; ``--out`` writes the report as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jsonschema
import openai

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from serve import plinth_server  # noqa: E402

WEATHER = {"type": "object", "properties": {"city": {"type": "string"},
           "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}  # fmt: skip
MONEY = ["amount", "from_currency", "to_currency"]
CONVERT = {"type": "object", "properties": {"amount": {"type": "number"}, "from_currency": {"type": "string"},
           "to_currency": {"type": "string"}}, "required": MONEY}  # fmt: skip
EMAIL = {"type": "object", "properties": {"to": {"type": "string"}, "subject": {"type": "string"}},
         "required": ["to", "subject"]}  # fmt: skip
MOVIE = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}
SCHEMAS = {"get_weather": WEATHER, "convert_currency": CONVERT, "send_email": EMAIL, "find_movie": MOVIE}
DESCRIPTIONS = {
    "get_weather": "Get the current weather for a city.",
    "convert_currency": "Convert an amount of money from one currency to another (ISO codes like USD).",
    "send_email": "Send an email to an address with a subject line.",
    "find_movie": "Look up a movie by its title: year, director, cast.",
}
TOOLS = [
    {"type": "function", "function": {"name": n, "description": DESCRIPTIONS[n], "parameters": s}}
    for n, s in SCHEMAS.items()
]

# (prompt, expected function or None for "answer in text", expected arguments)
CASES: list[tuple[str, str | None, dict[str, Any]]] = [
    ("What's the weather like in Paris right now?", "get_weather", {"city": "Paris"}),
    ("Is it raining in Tokyo?", "get_weather", {"city": "Tokyo"}),
    ("Tell me the temperature in Berlin in celsius.", "get_weather", {"city": "Berlin", "unit": "celsius"}),
    ("How hot is it in Phoenix, in fahrenheit?", "get_weather", {"city": "Phoenix", "unit": "fahrenheit"}),
    ("Weather forecast for London please.", "get_weather", {"city": "London"}),
    ("Convert 100 USD to EUR.", "convert_currency", dict(zip(MONEY, [100, "USD", "EUR"], strict=True))),
    ("How many yen is 50 dollars? Use JPY and USD.", "convert_currency",
     dict(zip(MONEY, [50, "USD", "JPY"], strict=True))),
    ("Change 20 GBP into USD.", "convert_currency", dict(zip(MONEY, [20, "GBP", "USD"], strict=True))),
    ("Email bob@example.com with the subject 'Lunch'.", "send_email",
     {"to": "bob@example.com", "subject": "Lunch"}),
    ("Send an email to alice@corp.io titled Report.", "send_email",
     {"to": "alice@corp.io", "subject": "Report"}),
    ("Write to ops@plinth.dev, subject: Outage.", "send_email",
     {"to": "ops@plinth.dev", "subject": "Outage"}),
    ("Who directed the movie Inception?", "find_movie", {"title": "Inception"}),
    ("What year did Titanic come out?", "find_movie", {"title": "Titanic"}),
    ("Tell me about the film Home Alone.", "find_movie", {"title": "Home Alone"}),
    ("Who is in the cast of The Matrix?", "find_movie", {"title": "The Matrix"}),
    ("Hi! How are you today?", None, {}),
    ("What is the capital of France?", None, {}),
    ("Write a haiku about autumn.", None, {}),
    ("What is 2 plus 2?", None, {}),
    ("Thanks, that's all for now.", None, {}),
]  # fmt: skip


def _same(value: Any, expected: Any) -> bool:
    if isinstance(expected, str):
        return isinstance(value, str) and value.strip().casefold() == expected.casefold()
    if isinstance(expected, int | float) and not isinstance(expected, bool):
        return isinstance(value, int | float) and float(value) == float(expected)
    return bool(value == expected)


def run_case(
    client: openai.OpenAI, model: str, case: tuple[str, str | None, dict[str, Any]], mode: str
) -> dict:
    prompt, function, arguments = case
    started = time.perf_counter()
    completion = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}], tools=TOOLS, tool_choice=mode,
        parallel_tool_calls=False, temperature=0.0, max_tokens=96,
    )  # fmt: skip
    choice = completion.choices[0]
    calls = choice.message.tool_calls or []
    seconds = round(time.perf_counter() - started, 2)
    row: dict[str, Any] = {"prompt": prompt, "mode": mode, "expected": function, "seconds": seconds}
    row["finish"] = choice.finish_reason
    row["content"] = choice.message.content
    row["calls"] = [{"name": c.function.name, "arguments": c.function.arguments} for c in calls]
    first = calls[0] if calls else None
    valid = False
    args: dict[str, Any] = {}
    if first is not None:
        try:
            args = json.loads(first.function.arguments)
            jsonschema.validate(args, SCHEMAS[first.function.name])
            valid = True
        except (ValueError, KeyError, jsonschema.ValidationError):
            valid = False
    row["valid"] = valid
    row["right_function"] = first is not None and first.function.name == function
    row["right_arguments"] = row["right_function"] and all(
        _same(args.get(k), v) for k, v in arguments.items()
    )
    row["abstained"] = first is None
    return row


def summarize(rows: list[dict]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mode in ("auto", "required"):
        mine = [r for r in rows if r["mode"] == mode]
        calling = [r for r in mine if r["expected"] is not None]
        idle = [r for r in mine if r["expected"] is None]
        out[mode] = {
            "cases": len(mine),
            "call_rate": _rate([not r["abstained"] for r in calling]),
            "valid": _rate([r["valid"] for r in mine if not r["abstained"]]),
            "right_function": _rate([r["right_function"] for r in calling]),
            "right_arguments": _rate([r["right_arguments"] for r in calling]),
            "abstain_when_no_tool_fits": _rate([r["abstained"] for r in idle]) if mode == "auto" else None,
        }
    return out


def _rate(flags: list[bool]) -> str:
    return f"{sum(flags)}/{len(flags)} ({100 * sum(flags) / len(flags):.0f}%)" if flags else "n/a"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="a running Plinth server (else one is started)")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--api-key", default="none")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.url:
        return report(args, args.url)
    with plinth_server(Path(args.model), "auto", "cpu", 0) as url:
        return report(args, url)


def report(args: argparse.Namespace, url: str) -> int:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=args.api_key, max_retries=0, timeout=600)
    jobs = [(case, mode) for mode in ("auto", "required") for case in CASES]
    with ThreadPoolExecutor(args.concurrency) as pool:
        rows = list(pool.map(lambda job: run_case(client, args.model, *job), jobs))
    for r in rows:
        got = r["calls"][0] if r["calls"] else {"text": (r["content"] or "")[:60]}
        ok = r["right_arguments"] or (r["expected"] is None and r["abstained"])
        print(f"{r['mode']:8} {'ok ' if ok else 'BAD'} {r['prompt'][:46]:46} -> {json.dumps(got)[:100]}")
    summary = summarize(rows)
    print(f"\nmodel {args.model}, {len(CASES)} cases, greedy, parallel_tool_calls=false")
    columns = ("tool_choice", "call rate", "valid", "right function", "right args", "abstains")
    print(f"{columns[0]:12}" + "".join(f"{c:>17}" for c in columns[1:]))
    for mode, s in summary.items():
        cells = (s["call_rate"], s["valid"], s["right_function"], s["right_arguments"])
        print(f"{mode:12}" + "".join(f"{c:>17}" for c in (*cells, s["abstain_when_no_tool_fits"] or "-")))
    if args.out:
        args.out.write_text(json.dumps({"summary": summary, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
