"""What a checkpoint is, read from its headers only: architecture, parameters, quantization, size, licence.

``plinth model list`` shows this for every checkpoint on the machine, so it must be cheap: safetensors and
GGUF headers give tensor shapes without reading the weights.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CheckpointInfo", "describe"]

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf")


@dataclass(frozen=True, slots=True)
class CheckpointInfo:
    """One row of ``plinth model list``; ``None`` where the checkpoint does not say."""

    name: str
    source: str  # packaged | data dir | hf cache
    path: Path
    architecture: str | None
    parameters: int | None
    quantization: str | None
    size_bytes: int
    licence: str | None
    random_weights: bool = False


def describe(path: Path, name: str, source: str) -> CheckpointInfo:
    """Read ``path`` (a ``.gguf`` file, a folder holding one, or a Hugging Face checkpoint folder)."""
    gguf = _single_gguf(path)
    if gguf is not None:
        return _describe_gguf(gguf, name, source)
    return _describe_hf(path, name, source)


def _single_gguf(path: Path) -> Path | None:
    if path.is_file():
        return path if path.suffix == ".gguf" else None
    if (path / "config.json").is_file():
        return None
    files = sorted(path.glob("*.gguf"))
    return files[0] if len(files) == 1 else None


def _describe_gguf(path: Path, name: str, source: str) -> CheckpointInfo:
    from plinth.engine import read_gguf_metadata
    from plinth.engine.model_config import UnsupportedModelError
    from plinth.engine.weights import CheckpointError

    try:
        meta = read_gguf_metadata(path)
    except (CheckpointError, UnsupportedModelError) as exc:  # listed all the same, saying why it won't load
        return CheckpointInfo(name, source, path, f"unservable: {exc}", None, None, path.stat().st_size, None)
    return CheckpointInfo(
        name=name,
        source=source,
        path=path,
        architecture=meta.architecture,
        parameters=meta.parameters,
        quantization=meta.quantization,
        size_bytes=path.stat().st_size,
        licence=meta.license,
    )


def _describe_hf(path: Path, name: str, source: str) -> CheckpointInfo:
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    weights = [f for f in path.iterdir() if f.suffix in _WEIGHT_SUFFIXES and f.is_file()]
    return CheckpointInfo(
        name=name,
        source=source,
        path=path,
        architecture=config.get("model_type"),
        parameters=_safetensors_parameters(weights),
        quantization=str(config.get("torch_dtype") or config.get("dtype") or "") or None,
        size_bytes=sum(f.stat().st_size for f in weights),
        licence=_readme_licence(path / "README.md"),
        random_weights=bool(config.get("plinth_random_weights", False)),
    )


def _safetensors_parameters(files: list[Path]) -> int | None:
    from safetensors import safe_open

    shards = [f for f in files if f.suffix == ".safetensors"]
    if not shards:
        return None
    total = 0
    for shard in shards:
        with safe_open(str(shard), framework="numpy") as f:
            total += sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())  # noqa: SIM118
    return total


def _readme_licence(readme: Path) -> str | None:
    """The ``license:`` of a model card's YAML front matter (the hub's convention)."""
    if not readme.is_file():
        return None
    text = readme.read_text(encoding="utf-8", errors="replace")
    front = re.match(r"---\n(.*?)\n---", text, re.DOTALL)
    found = re.search(r"^license:\s*(\S+)", front.group(1), re.MULTILINE) if front else None
    return found.group(1) if found else None
