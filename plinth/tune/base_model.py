"""The base model to train on: a catalog name, a GGUF file or a Hugging Face checkpoint, in float32.

Contract: :func:`resolve_base` returns a :class:`BaseCheckpoint` that loads a ``transformers`` causal
LM and its tokenizer (with the checkpoint's own chat template). Catalog names (``smollm2-135m-instruct``)
resolve through :func:`plinth.llm.catalog.resolve`; a ``.gguf`` file (or a folder holding exactly one)
is loaded by transformers' GGUF reader, dequantized to float32, since LoRA trains in float precision
and the adapter is then served on top of the same quantized file. Remote code is never run.

Example::

    >>> base = resolve_base("smollm2-135m-instruct", Path("plinth-data"))  # doctest: +SKIP
    >>> base.load_model().config.model_type
    'llama'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["BaseCheckpoint", "resolve_base"]


@dataclass(frozen=True, slots=True)
class BaseCheckpoint:
    """Where the base model is; loading is separate, so a bad data file fails before the slow part."""

    name: str  # as the user named it (recorded in the adapter and its training card)
    checkpoint: str  # the resolved file, folder or hub id
    source: str  # what ``from_pretrained`` is given
    gguf_file: str | None

    def load_tokenizer(self) -> Any:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(self.source, **self._options())

    def load_model(self) -> Any:
        import torch
        from transformers import AutoModelForCausalLM

        options = self._options()
        if self.gguf_file:
            options["quantization_config"] = _dequantized_gguf(self.gguf_file)
        # use_kernels=False: never fetch compute kernels from the hub (code we would run); offline anyway.
        model = AutoModelForCausalLM.from_pretrained(
            self.source, dtype=torch.float32, use_kernels=False, **options
        )
        quantizer = getattr(model, "hf_quantizer", None)
        if quantizer is not None:
            # Every weight is a dense float32 tensor now; the quantizer's mark would only make the
            # Trainer refuse to train ("GGUF does not support training").
            quantizer.remove_quantization_config(model)
        return model

    def _options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"trust_remote_code": False}
        if self.gguf_file:
            options["gguf_file"] = self.gguf_file
        return options


def resolve_base(name: str, data_dir: Path) -> BaseCheckpoint:
    """Where ``name`` (see the module docstring) is; raises if a catalog model is not installed."""
    from plinth.llm.catalog import resolve

    checkpoint, _ = resolve(name, Path(data_dir))
    folder, gguf_file = _split_gguf(Path(checkpoint))
    source = str(folder) if folder.exists() else checkpoint
    return BaseCheckpoint(name=name, checkpoint=checkpoint, source=source, gguf_file=gguf_file)


def _dequantized_gguf(gguf_file: str) -> Any:
    """Ask transformers to unpack every GGUF weight to dense (it may otherwise keep them packed)."""
    try:
        from transformers import GgufConfig
    except ImportError:  # transformers < 5 always dequantizes GGUF files
        return None
    return GgufConfig(gguf_file=gguf_file, dequantize=True)


def _split_gguf(path: Path) -> tuple[Path, str | None]:
    """``(folder, gguf file name)`` for a GGUF checkpoint, ``(path, None)`` otherwise."""
    if path.suffix == ".gguf":
        return path.parent, path.name
    if path.is_dir() and not (path / "config.json").is_file():
        found = sorted(path.glob("*.gguf"))
        if len(found) == 1:
            return path, found[0].name
        if found:
            raise ValueError(f"{path} holds {len(found)} .gguf files; name one of them")
    return path, None
