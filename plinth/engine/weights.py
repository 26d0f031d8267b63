"""Find a checkpoint and stream its tensors, by Hugging Face name, one at a time.

Contract: ``resolve_checkpoint(model)`` turns ``--model`` (a local directory or a hub id) into a local
directory holding ``config.json``; only config, tokenizer and weight files are downloaded, never code.
A ``.gguf`` file, or a directory holding exactly one ``.gguf`` and no ``config.json``, resolves to that
file, and ``iter_weights`` streams it through :mod:`plinth.engine.gguf_weights`, dequantized to
``dtype`` (the model's: never a float32 copy of a bf16 model's tensor).
``iter_weights(path)`` yields ``(hf_name, tensor)`` from ``model.safetensors``, a sharded
``model.safetensors.index.json``, or, only when there are no safetensors, ``pytorch_model.bin``
(``torch.load(weights_only=True)``, which cannot run pickled code). Tensors are read lazily so peak
memory is one tensor, not one checkpoint, on top of the model being filled.

Example::

    >>> path = resolve_checkpoint("Qwen/Qwen2.5-0.5B-Instruct")  # doctest: +SKIP
    >>> model.load_weights(iter_weights(path))  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors import safe_open

from plinth.engine.errors import CheckpointError

__all__ = ["CheckpointError", "has_weights", "is_gguf", "iter_weights", "resolve_checkpoint"]

ALLOW_PATTERNS = ["*.json", "*.safetensors", "tokenizer*", "*.model", "*.txt", "*.jinja"]
_FIX_HINT = (
    "point --model at a local directory, or create one with "
    "`plinth model init-random --arch llama --size small --out DIR`"
)
# (single file, sharded index) pairs, in order of preference.
_FORMATS = (
    ("model.safetensors", "model.safetensors.index.json"),
    ("pytorch_model.bin", "pytorch_model.bin.index.json"),
)


def resolve_checkpoint(model: str, revision: str | None = None) -> Path:
    """Return a local checkpoint for ``model`` (a directory, a ``.gguf`` file or a Hugging Face hub
    id): a directory holding ``config.json``, or a ``.gguf`` file."""
    path = Path(model).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return path
    if path.is_dir():
        return _single_gguf(path) or _require_config(path)
    if path.exists() or looks_like_path(model):
        raise CheckpointError(f"model {model!r} is not a checkpoint directory; {_FIX_HINT}")
    return _require_config(_download(model, revision))


def iter_weights(path: Path, dtype: torch.dtype = torch.float32) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield every ``(hf_name, tensor)`` of the checkpoint in ``path``, loading one tensor at a time;
    GGUF tensors come dequantized to ``dtype``, others as stored."""
    if is_gguf(path):
        from plinth.engine.gguf_checkpoint import open_gguf  # the gguf library only for GGUF files
        from plinth.engine.gguf_weights import iter_gguf_weights

        yield from iter_gguf_weights(open_gguf(Path(path)), dtype)
        return
    files = _weight_files(Path(path))
    if not files:
        raise CheckpointError(
            f"no weights in {path} (looked for model.safetensors[.index.json], pytorch_model.bin); "
            "a config-only checkpoint needs --load-format dummy"
        )
    for file in files:
        yield from _iter_file(file)


def has_weights(path: Path) -> bool:
    """Whether ``path`` holds weight files (random 1b/7b checkpoints ship config and tokenizer only)."""
    return is_gguf(path) or bool(_weight_files(Path(path)))


def is_gguf(path: Path) -> bool:
    """Whether a resolved checkpoint is a GGUF file (else it is a Hugging Face directory)."""
    return Path(path).suffix == ".gguf" and Path(path).is_file()


def _single_gguf(path: Path) -> Path | None:
    """The one ``.gguf`` in a directory without ``config.json`` (llama.cpp-style model folders)."""
    files = sorted(path.glob("*.gguf"))
    if (path / "config.json").is_file() or not files:
        return None
    if len(files) > 1:
        names = ", ".join(f.name for f in files)
        raise CheckpointError(f"{path} holds several GGUF files ({names}); point --model at one of them")
    return files[0]


def _weight_files(path: Path) -> list[Path]:
    for single, index in _FORMATS:
        if (path / index).is_file():
            weight_map = json.loads((path / index).read_text())["weight_map"]
            return [path / name for name in dict.fromkeys(weight_map.values())]
        if (path / single).is_file():
            return [path / single]
    return []


def _iter_file(file: Path) -> Iterator[tuple[str, torch.Tensor]]:
    if file.suffix == ".safetensors":
        with safe_open(str(file), framework="pt", device="cpu") as f:
            for name in f.keys():  # noqa: SIM118 (safe_open is not iterable)
                yield name, f.get_tensor(name)
    else:
        yield from torch.load(file, map_location="cpu", weights_only=True, mmap=True).items()


def _download(model: str, revision: str | None) -> Path:
    from huggingface_hub import snapshot_download  # imported lazily: local paths never need it

    try:
        return Path(snapshot_download(model, revision=revision, allow_patterns=ALLOW_PATTERNS))
    except Exception as exc:  # offline, unknown repo, gated, bad id: all end the same way for the user
        raise CheckpointError(
            f"model {model!r} is not a local directory and downloading it from the Hugging Face hub "
            f"failed ({type(exc).__name__}: {first_line(exc)}); {_FIX_HINT}"
        ) from exc


def _require_config(path: Path) -> Path:
    if not (path / "config.json").is_file():
        raise CheckpointError(
            f"{path} has no config.json, so it is not a Hugging Face checkpoint; {_FIX_HINT}"
        )
    return path


def looks_like_path(model: str) -> bool:
    """Hub ids are ``name`` or ``owner/name``; anything else was meant as a local path."""
    return model.startswith((".", "/", "~")) or model.count("/") > 1 or "\\" in model


def first_line(exc: Exception) -> str:
    """The first line of an error message (library errors can run to pages)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else "no details"
