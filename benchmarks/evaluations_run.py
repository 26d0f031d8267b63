"""Run the prepared evaluations (``benchmarks/evals/<name>.jsonl`` + ``<name>.spec.json``) through a
running server's ``/v1/evaluations`` and keep their reports.

    .venv/bin/python benchmarks/evaluations_run.py --url http://127.0.0.1:8765 movies_rag cost_sql

For each name: uploads the dataset (purpose ``evals``), creates the evaluation, prints its progress until
it finishes, then writes ``docs/evals/<name>.html`` (the HTML report) and ``docs/evals/<name>.json`` (the
summary, comparison and every item) and prints the summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
EVALS = ROOT / "benchmarks" / "evals"
DOCS = ROOT / "docs" / "evals"


def run(client: httpx.Client, name: str, timeout_s: float) -> dict:
    data = (EVALS / f"{name}.jsonl").read_bytes()
    file = client.post("/v1/files", data={"purpose": "evals"}, files={"file": (f"{name}.jsonl", data)})
    file.raise_for_status()
    spec = {**json.loads((EVALS / f"{name}.spec.json").read_text()), "dataset": file.json()["id"]}
    created = client.post("/v1/evaluations", json=spec)
    created.raise_for_status()
    ev_id, start = created.json()["id"], time.monotonic()
    while (ev := client.get(f"/v1/evaluations/{ev_id}").json())["status"] not in (
        "succeeded",
        "failed",
        "cancelled",
    ):
        print(
            f"  {name}: {ev['status']} {ev['progress']['done']} done, {time.monotonic() - start:.0f}s",
            flush=True,
        )
        if time.monotonic() - start > timeout_s:
            client.post(f"/v1/evaluations/{ev_id}/cancel")
            raise SystemExit(f"{name}: still running after {timeout_s}s; cancelled")
        time.sleep(10)
    ev["wall_s"] = round(time.monotonic() - start, 1)
    DOCS.mkdir(parents=True, exist_ok=True)
    (DOCS / f"{name}.html").write_text(client.get(f"/v1/evaluations/{ev_id}/report").text, encoding="utf-8")
    results = client.get(f"/v1/evaluations/{ev_id}/results").json()
    (DOCS / f"{name}.json").write_text(
        json.dumps({"evaluation": ev, **results}, indent=1) + "\n", encoding="utf-8"
    )
    return ev


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="+")
    parser.add_argument("--url", default="http://127.0.0.1:8765")
    parser.add_argument("--api-key", help="omit for a --no-auth server")
    parser.add_argument("--timeout", type=float, default=3600)
    args = parser.parse_args()
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    with httpx.Client(base_url=args.url, headers=headers, timeout=60) as client:
        for name in args.names:
            ev = run(client, name, args.timeout)
            print(
                json.dumps(
                    {k: ev[k] for k in ("id", "status", "summary", "comparison", "error", "wall_s")}, indent=1
                )
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
