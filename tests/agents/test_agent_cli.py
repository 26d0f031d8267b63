"""``plinth agent`` against a live server with a scripted model: create from YAML, list, show, invoke
(streamed and not, continuing a session), delete, and a server refusal as ``Error: ...``."""

from __future__ import annotations

import json

import pytest
from agent_fakes import answer, call
from live_server import live_server
from server_fakes import build_app
from typer.testing import CliRunner

from plinth.cli import app
from plinth.llm.scripted_served import ScriptedRepliesModel

runner = CliRunner()
AGENT_YAML = """\
name: maths
model: fake-model
instructions: Use the calculator for arithmetic.
max_steps: 4
tools:
  - type: calculator
"""


@pytest.fixture
def server(tmp_path):
    model = ScriptedRepliesModel(name="fake-model")
    app_, key = build_app(tmp_path, [model])
    with live_server(app_) as url:
        yield ["--url", url, "--api-key", key], model, tmp_path
    app_.state.sql.close()


def test_agent_commands(server):
    flags, model, tmp_path = server
    spec = tmp_path / "agent.yaml"
    spec.write_text(AGENT_YAML)
    created = runner.invoke(app, ["agent", "create", "--file", str(spec), *flags])
    assert created.exit_code == 0, created.output
    agent_id = json.loads(created.output)["id"]
    listed = runner.invoke(app, ["agent", "list", *flags])
    assert agent_id in listed.output and "calculator" in listed.output
    assert json.loads(runner.invoke(app, ["agent", "show", agent_id, *flags]).output)["name"] == "maths"

    model.replies = [call("calculator", expression="6*7"), answer("It is 42.")]
    ran = runner.invoke(
        app, ["agent", "invoke", agent_id, "What is 6*7?", "--session", "cli-1", "--stream", *flags]
    )
    assert ran.exit_code == 0, ran.output
    lines = ran.output.splitlines()
    assert lines[1].startswith('[1] tool calculator({"expression": "6*7"}) -> 6*7 = 42')
    assert "status: completed  session: cli-1" in ran.output and lines[-1] == "It is 42."

    model.replies = [answer("Still 42.")]
    again = runner.invoke(app, ["agent", "invoke", agent_id, "Sure?", "--session", "cli-1", "--json", *flags])
    assert json.loads(again.output)["output"] == "Still 42."

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "x", "model": "nope", "instructions": "i"}))
    refused = runner.invoke(app, ["agent", "create", "--file", str(bad), *flags])
    assert refused.exit_code == 1 and "does not exist" in refused.output and "(model)" in refused.output

    assert runner.invoke(app, ["agent", "delete", agent_id, *flags]).exit_code == 0
    gone = runner.invoke(app, ["agent", "show", agent_id, *flags])
    assert gone.exit_code == 1 and "404" in gone.output
