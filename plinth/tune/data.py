"""Training files: JSONL in OpenAI's fine-tuning format, validated line by line.

Contract: :func:`validate_training_file` returns every problem as a :class:`LineProblem` (1-based line
number and why), never raising for bad content, so the upload API can show them as they are;
:func:`load_training_file` returns the parsed examples or raises :class:`TrainingFileError` listing the
first problems. Each non-blank line is one example, either

- ``{"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}`` (an assistant message
  may carry ``"weight": 0`` to leave it out of the loss, as OpenAI allows), or
- ``{"prompt": "...", "completion": "..."}``,

and one file uses one kind only. Blank lines are skipped.

Example::

    >>> validate_training_file(Path("bad.jsonl"))  # doctest: +SKIP
    [LineProblem(line=3, message='messages[1].role is "bot"; use system, user or assistant')]
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "ChatExample",
    "ChatTurn",
    "CompletionExample",
    "Example",
    "LineProblem",
    "TrainingFileError",
    "load_training_file",
    "validate_training_file",
]

ROLES = ("system", "user", "assistant")
_MESSAGE_KEYS = {"role", "content", "weight", "name"}
_SHOWN_PROBLEMS = 10


@dataclass(frozen=True, slots=True)
class LineProblem:
    """Why line ``line`` (1-based; 0 for the file as a whole) cannot be trained on."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


@dataclass(frozen=True, slots=True)
class ChatTurn:
    role: str
    content: str
    trained: bool = True  # False for an assistant message with ``"weight": 0``


@dataclass(frozen=True, slots=True)
class ChatExample:
    line: int
    messages: tuple[ChatTurn, ...]


@dataclass(frozen=True, slots=True)
class CompletionExample:
    line: int
    prompt: str
    completion: str


Example = ChatExample | CompletionExample


class TrainingFileError(ValueError):
    """A training file with problems; ``problems`` holds them all, ``str()`` the first few."""

    def __init__(self, path: Path, problems: list[LineProblem]) -> None:
        self.path, self.problems = path, problems
        shown = "; ".join(str(p) for p in problems[:_SHOWN_PROBLEMS])
        more = f" (and {len(problems) - _SHOWN_PROBLEMS} more)" if len(problems) > _SHOWN_PROBLEMS else ""
        super().__init__(f"{path}: {len(problems)} problem(s): {shown}{more}")


def validate_training_file(path: Path) -> list[LineProblem]:
    """Every problem in the training file at ``path``; an empty list means it can be trained on."""
    return _parse_file(Path(path))[1]


def load_training_file(path: Path) -> list[Example]:
    """The examples in ``path``, in file order; :class:`TrainingFileError` if any line is bad."""
    examples, problems = _parse_file(Path(path))
    if problems:
        raise TrainingFileError(Path(path), problems)
    return examples


def _parse_file(path: Path) -> tuple[list[Example], list[LineProblem]]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return [], [LineProblem(0, f"the file is not UTF-8 text ({exc.reason} at byte {exc.start})")]
    except OSError as exc:
        return [], [LineProblem(0, f"cannot read the file ({exc.strerror or exc})")]
    examples: list[Example] = []
    problems: list[LineProblem] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        example_or_problem = _parse_line(number, line)
        if isinstance(example_or_problem, LineProblem):
            problems.append(example_or_problem)
        elif examples and type(example_or_problem) is not type(examples[0]):
            problems.append(
                LineProblem(number, f"mixes formats: line {examples[0].line} is {_kind(examples[0])}")
            )
        else:
            examples.append(example_or_problem)
    if not examples and not problems:
        problems.append(LineProblem(0, "the file holds no examples"))
    return examples, problems


def _kind(example: Example) -> str:
    return '{"messages"}' if isinstance(example, ChatExample) else '{"prompt", "completion"}'


def _parse_line(number: int, line: str) -> Example | LineProblem:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        return LineProblem(number, f"not valid JSON ({exc.msg} at column {exc.colno})")
    if not isinstance(row, dict):
        return LineProblem(number, f"must be a JSON object, not {_json_type(row)}")
    try:
        if "messages" in row:
            return ChatExample(number, _messages(row))
        if "prompt" in row or "completion" in row:
            return _completion(number, row)
    except ValueError as exc:
        return LineProblem(number, str(exc))
    return LineProblem(number, 'needs a "messages" list, or "prompt" and "completion" strings')


def _messages(row: dict[str, Any]) -> tuple[ChatTurn, ...]:
    if set(row) != {"messages"}:
        raise ValueError(f"unsupported keys {sorted(set(row) - {'messages'})} beside messages")
    messages = row["messages"]
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages must be a non-empty list")
    turns = tuple(_turn(i, m) for i, m in enumerate(messages))
    if any(t.role == "system" for t in turns[1:]):
        raise ValueError("a system message may only come first")
    if not any(t.role == "assistant" and t.trained for t in turns):
        raise ValueError("has no assistant message to learn from (with weight 1)")
    return turns


def _turn(index: int, message: Any) -> ChatTurn:
    where = f"messages[{index}]"
    if not isinstance(message, dict):
        raise ValueError(f"{where} must be an object, not {_json_type(message)}")
    if unknown := set(message) - _MESSAGE_KEYS:
        raise ValueError(f"{where} has unsupported keys {sorted(unknown)} (tool calls are not trained)")
    role, content = message.get("role"), message.get("content")
    if role not in ROLES:
        raise ValueError(f"{where}.role is {json.dumps(role)}; use system, user or assistant")
    if not isinstance(content, str):
        raise ValueError(f"{where}.content must be a string, not {_json_type(content)}")
    if role == "assistant" and not content.strip():
        raise ValueError(f"{where} is an empty assistant message")
    weight = message.get("weight", 1)
    if "weight" in message and (role != "assistant" or weight not in (0, 1) or isinstance(weight, bool)):
        raise ValueError(f"{where}.weight must be 0 or 1, and only on assistant messages")
    return ChatTurn(role, content, trained=weight == 1)


def _completion(number: int, row: dict[str, Any]) -> CompletionExample:
    if set(row) != {"prompt", "completion"}:
        raise ValueError(f'needs exactly "prompt" and "completion", found {sorted(row)}')
    prompt, completion = row["prompt"], row["completion"]
    if not isinstance(prompt, str) or not isinstance(completion, str):
        raise ValueError("prompt and completion must be strings")
    if not completion.strip():
        raise ValueError("completion is empty")
    return CompletionExample(number, prompt, completion)


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")
