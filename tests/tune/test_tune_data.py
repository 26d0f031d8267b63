"""The training-file validator: every bad line is reported with its number and why; good files parse."""

from __future__ import annotations

import json

import pytest
from tune_fixtures import chat_rows, write_jsonl

from plinth.tune import (
    ChatExample,
    ChatTurn,
    CompletionExample,
    LineProblem,
    TrainingFileError,
    load_training_file,
    validate_training_file,
)


def test_a_good_chat_file_parses_into_turns(tmp_path) -> None:
    rows = chat_rows(2)
    rows[1]["messages"].append({"role": "user", "content": "And again?"})
    rows[1]["messages"].append({"role": "assistant", "content": "Same.", "weight": 0})
    path = write_jsonl(tmp_path / "train.jsonl", rows)
    assert validate_training_file(path) == []
    examples = load_training_file(path)
    assert examples[0] == ChatExample(
        1,
        (
            ChatTurn("system", "You add numbers."),
            ChatTurn("user", "What is 0 plus 0?"),
            ChatTurn("assistant", "It is 0."),
        ),
    )
    assert examples[1].messages[-1] == ChatTurn("assistant", "Same.", trained=False)


def test_prompt_completion_rows_and_blank_lines(tmp_path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text('{"prompt": "2+2=", "completion": " 4"}\n\n{"prompt": "", "completion": "x"}\n')
    assert load_training_file(path) == [CompletionExample(1, "2+2=", " 4"), CompletionExample(3, "", "x")]


BAD_LINES = [
    ("not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object, not a list"),
    ('{"text": "hi"}', 'needs a "messages" list'),
    ('{"messages": []}', "messages must be a non-empty list"),
    ('{"messages": [{"role": "bot", "content": "x"}]}', 'messages[0].role is "bot"'),
    ('{"messages": [{"role": "user", "content": 3}]}', "messages[0].content must be a string, not a number"),
    ('{"messages": [{"role": "user", "content": "hi"}]}', "has no assistant message"),
    ('{"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "b"},'
     ' {"role": "assistant", "content": "c"}]}', "a system message may only come first"),
    ('{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": " "}]}',
     "messages[1] is an empty assistant message"),
    ('{"messages": [{"role": "user", "content": "a", "weight": 0}, {"role": "assistant", "content": "b"}]}',
     "weight must be 0 or 1, and only on assistant messages"),
    ('{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b", "weight": 0}]}',
     "has no assistant message to learn from"),
    ('{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b",'
     ' "tool_calls": []}]}', "unsupported keys ['tool_calls']"),
    ('{"messages": [{"role": "user", "content": "a"}], "tools": []}', "unsupported keys ['tools']"),
    ('{"prompt": "a"}', 'needs exactly "prompt" and "completion"'),
    ('{"prompt": "a", "completion": 1}', "prompt and completion must be strings"),
    ('{"prompt": "a", "completion": ""}', "completion is empty"),
]  # fmt: skip


@pytest.mark.parametrize(("line", "why"), BAD_LINES)
def test_each_bad_line_is_reported_with_its_number(tmp_path, line: str, why: str) -> None:
    path = tmp_path / "train.jsonl"
    good = '{"prompt": "a", "completion": "b"}' if '"prompt"' in line else chat_rows(1)[0]
    path.write_text(f"{_dump(good)}\n{line}\n{_dump(good)}\n")
    problems = validate_training_file(path)
    assert len(problems) == 1 and problems[0].line == 2, problems
    assert why in problems[0].message


def test_mixed_formats_are_refused_and_the_error_lists_the_first_problems(tmp_path) -> None:
    lines = [_dump(chat_rows(1)[0]), '{"prompt": "a", "completion": "b"}'] + ["oops"] * 12
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(lines) + "\n")
    problems = validate_training_file(path)
    assert problems[0] == LineProblem(2, 'mixes formats: line 1 is {"messages"}')
    assert [p.line for p in problems] == list(range(2, 15))
    with pytest.raises(TrainingFileError) as raised:
        load_training_file(path)
    assert raised.value.problems == problems
    message = str(raised.value)
    assert "13 problem(s)" in message and "line 2: mixes formats" in message and "(and 3 more)" in message


def test_file_level_problems(tmp_path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    assert validate_training_file(empty) == [LineProblem(0, "the file holds no examples")]
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b"\xff\xfe\x00")
    assert "not UTF-8" in validate_training_file(binary)[0].message
    assert "cannot read" in validate_training_file(tmp_path / "missing.jsonl")[0].message


def _dump(row) -> str:
    return row if isinstance(row, str) else json.dumps(row)
