"""``plinth kb …`` on a temporary data dir (real control plane, LanceDB and default embedder)."""

from __future__ import annotations

import sys

import pytest
from test_kb_sync import write_corpus
from typer.testing import CliRunner

from plinth.cli import app

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("clean_env")


def kb(*args: str):
    return runner.invoke(app, ["--data-dir", "data", "kb", *args])


def test_create_add_source_sync_query_list_rm(tmp_path) -> None:
    corpus = write_corpus(tmp_path / "corpus")
    (tmp_path / "people.jsonl").write_text(
        '{"id": "p1", "bio": "Ada Lovelace wrote the first program.", "era": "victorian"}\n'
        '{"id": "p2", "bio": "Grace Hopper built the first compiler.", "era": "modern"}\n'
    )
    created = kb(
        "create", "docs", "--chunking", '{"strategy": "fixed", "max_tokens": 64}', "--store", "lancedb"
    )
    assert created.exit_code == 0, created.output
    assert kb("create", "docs").exit_code == 1  # the name is taken
    assert kb("add-source", "docs", "corpus").exit_code == 0  # relative to the working directory
    records = kb("add-source", "docs", "people.jsonl", "--text-fields", "bio", "--metadata-fields", "era",
                 "--id-field", "id")  # fmt: skip
    assert records.exit_code == 0, records.output
    (corpus / "junk.xyz").write_text("?")

    synced = kb("sync", "docs")
    assert synced.exit_code == 0, synced.output
    assert "succeeded: 5 added, 0 changed, 0 deleted, 0 unchanged" in synced.output
    assert "skipped junk.xyz: unsupported file type '.xyz'" in synced.output
    assert "embedding documents: 5/5" in synced.output
    assert "5 unchanged" in kb("sync", "docs").output

    found = kb("query", "docs", "who built the compiler?", "--k", "1")
    assert found.exit_code == 0, found.output
    assert "Grace Hopper" in found.output and "[2]" not in found.output
    filtered = kb(
        "query", "docs", "first program", "--filter", '{"equals": {"key": "era", "value": "modern"}}'
    )
    assert "Grace Hopper" in filtered.output and "Ada" not in filtered.output
    bad = kb("query", "docs", "x", "--filter", '{"equals": {"key": "nope", "value": 1}}')
    assert bad.exit_code == 1 and "filter.equals" in bad.output

    listed = kb("list")
    assert "docs" in listed.output and "lancedb" in listed.output
    assert kb("rm", "docs").exit_code == 0
    assert kb("query", "docs", "x").exit_code == 1
    assert not (tmp_path / "data" / "knowledge" / "local" / "docs").exists()


def test_generate_without_rag_says_why(tmp_path, monkeypatch) -> None:
    import plinth.knowledge

    assert kb("create", "docs").exit_code == 0
    monkeypatch.setitem(sys.modules, "plinth.knowledge.rag", None)  # import fails
    monkeypatch.delitem(vars(plinth.knowledge), "retrieve_and_generate", raising=False)  # not cached yet
    missing = kb("query", "docs", "x", "--generate")
    assert missing.exit_code == 1 and "plinth.knowledge.rag" in missing.output


def test_generate_without_a_model_uses_the_packaged_default(tmp_path, monkeypatch) -> None:
    from plinth.llm.local import LocalModel

    loaded = []

    def load(config, name=None):
        loaded.append((config.model, name))
        raise OSError("stop here: the model was chosen")

    monkeypatch.setattr(LocalModel, "load", staticmethod(load))
    assert kb("create", "docs").exit_code == 0
    result = kb("query", "docs", "x", "--generate")
    [(checkpoint, name)] = loaded
    assert name == "smollm2-135m-instruct" and checkpoint.endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert result.exit_code != 0


def test_bad_input_exits_with_reason() -> None:
    assert "invalid knowledge base name" in kb("create", "Bad Name").output
    assert kb("create", "pg", "--store", "pgvector").exit_code == 1
    assert "PLINTH_PGVECTOR_DSN" in kb("create", "pg", "--store", "pgvector").output
    assert kb("sync", "missing").exit_code == 1
