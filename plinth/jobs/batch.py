"""Batch jobs (OpenAI's Batch API) as files: the input read and checked, results kept line by line.

A batch is a ``kind="batch"`` row in the one jobs table; its status is OpenAI's (``validating``,
``in_progress``, ``finalizing``, ``completed``, ``failed``, ``expired``, ``cancelling``, ``cancelled``)
and its ``result`` holds what the batch object shows (request counts, file ids, timestamps). The lines
themselves run in the server, which owns the engine (:mod:`plinth.server.batch_runner`); here is what
does not need it:

- :func:`read_input` checks the input file's shape: each line a JSON object with a unique string
  ``custom_id``, ``method: "POST"`` and the batch's ``url``. A file that breaks this fails the batch at
  validation, as OpenAI does; a line whose *body* is wrong fails alone later, in the error file.
- :class:`ResultLog` is an append-only JSONL file of finished lines. Each line is written with one
  ``write`` on an ``O_APPEND`` descriptor, so a crash leaves at most a partial last line, which opening
  the log again cuts off; the ``custom_id`` s it holds are the lines already done, so a resumed batch runs
  only the others and never one twice::

    log = ResultLog(work_dir / "output.jsonl")
    if "req-1" not in log.done: log.append({"custom_id": "req-1", "response": {...}, "error": None})
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "ACTIVE",
    "COMPLETION_WINDOWS",
    "ENDPOINTS",
    "FINISHED",
    "InputLine",
    "ResultLog",
    "read_input",
]

ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")
COMPLETION_WINDOWS = {"24h": 24 * 3600}
ACTIVE = ("validating", "in_progress", "finalizing", "cancelling")
FINISHED = ("completed", "failed", "expired", "cancelled")
MAX_LINE_ERRORS = 100  # a broken file reports this many of its bad lines


@dataclass(frozen=True, slots=True)
class InputLine:
    custom_id: str
    body: dict[str, Any]


def read_input(path: Path, endpoint: str) -> tuple[list[InputLine], list[dict[str, Any]]]:
    """The file's lines, and the errors (OpenAI's ``{"code", "message", "param", "line"}``) that fail it."""
    lines: list[InputLine] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    with Path(path).open(encoding="utf-8", errors="replace") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            line, problem = _parse_line(raw, endpoint, seen)
            if problem is not None:
                errors.append({**problem, "line": number})
            elif line is not None:
                seen.add(line.custom_id)
                lines.append(line)
    if not lines and not errors:
        errors.append({"code": "empty_file", "message": "The input file has no requests.", "param": None,
                       "line": None})  # fmt: skip
    return lines, errors[:MAX_LINE_ERRORS]


def _parse_line(raw: str, endpoint: str, seen: set[str]) -> tuple[InputLine | None, dict[str, Any] | None]:
    try:
        item = json.loads(raw)
    except json.JSONDecodeError:
        return None, _problem("invalid_json_line", "This line is not parseable as valid JSON.", None)
    if not isinstance(item, dict):
        return None, _problem("invalid_request", "Each line must be a JSON object.", None)
    custom_id = item.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return None, _problem("missing_required_parameter", "custom_id must be a non-empty string.",
                              "custom_id")  # fmt: skip
    if custom_id in seen:
        return None, _problem("duplicate_custom_id", f"The custom_id {custom_id!r} is used more than once; "
                              "each request needs its own.", "custom_id")  # fmt: skip
    if item.get("method") != "POST":
        return None, _problem("invalid_method", "method must be 'POST'.", "method")
    if item.get("url") != endpoint:
        message = f"url must be the batch's endpoint {endpoint!r}, not {item.get('url')!r}."
        return None, _problem("invalid_url", message, "url")
    body = item.get("body")
    if not isinstance(body, dict):
        return None, _problem("invalid_request", "body must be a JSON object.", "body")
    return InputLine(custom_id, body), None


def _problem(code: str, message: str, param: str | None) -> dict[str, Any]:
    return {"code": code, "message": message, "param": param}


class ResultLog:
    """Finished lines of one batch, one JSON object per line; ``done`` is their ``custom_id`` s."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.done: set[str] = set()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._cut_partial_tail()
        with self.path.open("a+", encoding="utf-8") as f:
            f.seek(0)
            self.done = {json.loads(line)["custom_id"] for line in f if line.strip()}
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)

    def append(self, record: dict[str, Any]) -> None:
        """Record one finished line (a crash leaves it whole or absent)."""
        assert record["custom_id"] not in self.done, "a line is recorded once"
        os.write(self._fd, (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
        self.done.add(record["custom_id"])

    def close(self) -> None:
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1

    def __len__(self) -> int:
        return len(self.done)

    def _cut_partial_tail(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            with self.path.open("r+b") as f:
                f.truncate(data.rfind(b"\n") + 1)
