"""``serve(settings)``: bind check, model loading, the packaged default model when no model is given, and
random weights only when asked for (engine, checkpoint writer and uvicorn replaced by recorders, so this
stays fast)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient

import plinth.engine.checkpoint
from plinth.config import InsecureBindError, Settings
from plinth.llm.local import LocalModel
from plinth.llm.scripted_served import ScriptedServedModel
from plinth.server import serve


@pytest.fixture
def recorded(monkeypatch):
    """Replace LocalModel.load, init_random and uvicorn.run; return what they were called with."""
    calls: dict = {"load": [], "init_random": [], "run": []}

    def load(config, name=None):
        calls["load"].append((config, name))
        return ScriptedServedModel(name or config.model, is_random=name == "random-llama-small")

    def init_random(arch, size, out, seed=0):
        calls["init_random"].append((arch, size, out))
        out.mkdir(parents=True)
        (out / "config.json").write_text(json.dumps({"plinth_random_weights": True}))
        return out

    monkeypatch.setattr(LocalModel, "load", staticmethod(load))
    monkeypatch.setattr(plinth.engine.checkpoint, "init_random", init_random)
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls["run"].append((app, kw)))
    return calls


def test_serve_without_model_serves_the_packaged_default(tmp_path, recorded):
    serve(Settings(data_dir=tmp_path, port=8123))
    [(config, name)] = recorded["load"]
    assert name == "smollm2-135m-instruct"
    assert config.model.endswith("SmolLM2-135M-Instruct.Q4_1.gguf") and Path(config.model).is_file()
    assert recorded["init_random"] == []
    [(app, kwargs)] = recorded["run"]
    assert kwargs["port"] == 8123 and kwargs["host"] == "127.0.0.1"
    client = TestClient(app, raise_server_exceptions=False)
    assert client.get("/v1/models").status_code == 401  # auth is on by default


def test_random_weights_only_when_asked_for(tmp_path, recorded):
    serve(Settings(data_dir=tmp_path, models=["random-llama-small"], no_auth=True))
    [(arch, size, out)] = recorded["init_random"]
    assert (arch, size, out) == ("llama", "small", tmp_path / "models" / "random-llama-small")
    serve(Settings(data_dir=tmp_path, models=["random-llama-small"], no_auth=True))  # created once, reused
    assert len(recorded["init_random"]) == 1
    card = TestClient(recorded["run"][-1][0]).get("/v1/models").json()["data"][0]
    assert card["id"] == "random-llama-small" and card["plinth"]["random_weights"] is True


def test_serve_loads_each_model_with_engine_config(tmp_path, recorded):
    serve(Settings(data_dir=tmp_path, models=["org/a", "./b"], max_num_seqs=3))
    assert [(c.model, c.max_num_seqs) for c, _ in recorded["load"]] == [("org/a", 3), ("./b", 3)]
    assert recorded["init_random"] == []


def test_serve_refuses_no_auth_on_public_host(tmp_path, recorded):
    with pytest.raises(InsecureBindError):
        serve(Settings(data_dir=tmp_path, no_auth=True, host="0.0.0.0"))
    assert recorded["run"] == []
