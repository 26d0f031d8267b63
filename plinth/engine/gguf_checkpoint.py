"""Open a GGUF checkpoint (llama.cpp's one-file format), check it, and read its metadata.

Contract: ``open_gguf(path)`` parses the file with the ``gguf`` library and refuses it *at load time*,
before anything is served, when it cannot be served: a file that is not GGUF or is truncated
(:class:`CheckpointError`), an architecture other than llama (Llama and Mistral: llama.cpp converts
both to ``llama``), qwen2 or qwen3, a tensor of an unsupported quantization type, or a RoPE variant the
engine does not compute (:class:`UnsupportedModelError`). Every message names the file and the key or
tensor at fault. ``gguf_hf_config(gguf)`` turns the per-architecture keys (``{arch}.block_count``, ...)
into a Hugging Face ``config.json`` dict, so :class:`ModelConfig` reads GGUF and safetensors alike.
``read_gguf_metadata(path)`` is the summary a model catalog lists.

Example::

    >>> read_gguf_metadata("SmolLM2-135M-Instruct.Q4_1.gguf")  # doctest: +SKIP
    GGUFSummary(architecture='llama', parameters=134515008, quantization='Q4_1', license='apache-2.0', ...)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFReader, GGUFValueType

from plinth.engine.errors import CheckpointError, UnsupportedModelError
from plinth.engine.gguf_names import hf_tensor_name

__all__ = [
    "GGUF_ARCHS",
    "SUPPORTED_TYPES",
    "GGUFFile",
    "GGUFSummary",
    "generation_defaults",
    "gguf_hf_config",
    "matrix_type",
    "open_gguf",
    "read_gguf_metadata",
]

GGUF_ARCHS = ("llama", "qwen2", "qwen3")  # llama.cpp writes Mistral as llama
SUPPORTED_TYPES = frozenset(
    GGMLQuantizationType[name]
    for name in ("F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K")
)
_GENERATION_KEYS = {  # llama.cpp's recommended-sampling keys -> SamplingParams fields
    "general.sampling.temp": "temperature",
    "general.sampling.top_p": "top_p",
    "general.sampling.top_k": "top_k",
    "general.sampling.min_p": "min_p",
    "general.sampling.penalty_repeat": "repetition_penalty",
}
_DECODED_STRINGS = 1024  # string arrays up to this long (languages, tags) are decoded as usual


class _EngineReader(GGUFReader):
    """GGUFReader made fast for what the engine reads (measured on SmolLM2: parse 3.8 s -> ~0.1 s).

    Arrays of numbers are one numpy view, not one per element. Long arrays of strings (vocabulary,
    merges: ~100k entries) are stepped over, not split into two numpy views per string: the engine
    needs neither (the tokenizer is loaded above it, from the same file), so such a field keeps only
    its element count (:meth:`GGUFFile.count`). And the file is viewed as a
    plain ndarray, not an ``np.memmap``, whose subclass hooks run on every slice and every numpy
    operation over tensor data.
    """

    @property  # type: ignore[override]
    def data(self) -> np.ndarray:
        return self._plain

    @data.setter
    def data(self, value: np.ndarray) -> None:
        self._plain = value.view(np.ndarray)

    def _get_field_parts(self, orig_offs: int, raw_type: int) -> tuple[int, list[Any], list[int], list[Any]]:
        if raw_type != GGUFValueType.ARRAY:
            return super()._get_field_parts(orig_offs, raw_type)
        item_type, count = self._get(orig_offs, np.uint32), self._get(orig_offs + 4, np.uint64)
        kind = GGUFValueType(int(item_type[0]))
        scalar = self.gguf_scalar_to_np.get(kind)
        if scalar is not None:  # one view for all the numbers (token types, ...), not one per number
            values = self._get(orig_offs + 12, scalar, int(count[0]))
            return 12 + int(values.nbytes), [item_type, count, values], [2], [GGUFValueType.ARRAY, kind]
        if kind != GGUFValueType.STRING or count[0] <= _DECODED_STRINGS:
            return super()._get_field_parts(orig_offs, raw_type)
        view, offs = self.data.data, orig_offs + 12  # a memoryview: cheap slices
        for _ in range(int(count[0])):
            offs += 8 + int.from_bytes(view[offs : offs + 8], "little")
        return offs - orig_offs, [item_type, count], [], [GGUFValueType.ARRAY, GGUFValueType.STRING]

    def _build_tensors(self, start_offs: int, fields: list[Any]) -> None:
        """Name the first tensor whose type is unknown or whose bytes run past the end of the file
        (the library would fail on a reshape without saying which)."""
        for field in fields:
            name = bytes(field.parts[1]).decode("utf-8", "replace")
            try:
                kind = GGMLQuantizationType(int(field.parts[4][0]))
            except ValueError:
                raise UnsupportedModelError(
                    f"tensor {name!r} has ggml type {int(field.parts[4][0])}, unknown to the gguf library"
                ) from None
            block, size = GGML_QUANT_SIZES[kind]
            end = start_offs + int(field.parts[5][0]) + int(np.prod(field.parts[3])) * size // block
            if end > len(self.data):
                raise CheckpointError(
                    f"tensor {name!r} ends at byte {end} but the file has {len(self.data)} bytes: "
                    "the file is truncated"
                )
        super()._build_tensors(start_offs, fields)


@dataclass(slots=True)
class GGUFSummary:
    """What a model list shows about one GGUF file."""

    path: Path
    architecture: str
    name: str
    parameters: int
    quantization: str
    license: str | None
    context_length: int


class GGUFFile:
    """A parsed, checked GGUF file: metadata values by key and tensors by name (memory-mapped)."""

    def __init__(self, path: Path, reader: GGUFReader) -> None:
        self.path, self.reader = path, reader
        self.tensors = {tensor.name: tensor for tensor in reader.tensors}

    def get(self, key: str, default: Any = ...) -> Any:
        """The value of metadata ``key``; a missing required key is a CheckpointError naming it."""
        field = self.reader.fields.get(key)
        assert field is None or field.data or not self.count(key), f"{key} is not decoded (_EngineReader)"
        if field is None:
            if default is ...:
                raise CheckpointError(f"{self.path}: GGUF metadata key {key!r} is missing")
            return default
        return field.contents()

    def count(self, key: str) -> int:
        """Number of elements of an array key (string arrays are not decoded: see _EngineReader)."""
        field = self.reader.fields.get(key)
        if field is None or field.types[0] != GGUFValueType.ARRAY:
            return 0
        return int(field.parts[4][0])

    @property
    def architecture(self) -> str:
        return str(self.get("general.architecture"))


def open_gguf(path: Path) -> GGUFFile:
    """Parse and check ``path``; raise CheckpointError / UnsupportedModelError naming what is wrong."""
    try:
        reader = _EngineReader(path)
    except (CheckpointError, UnsupportedModelError) as exc:
        raise type(exc)(f"{path}: {exc}") from None
    except Exception as exc:  # bad magic, truncated header or tensor data: numpy/struct errors alike
        raise CheckpointError(
            f"{path} is not a readable GGUF file (truncated or corrupt?): {type(exc).__name__}: {exc}"
        ) from exc
    gguf = GGUFFile(Path(path), reader)
    _check_architecture(gguf)
    for tensor in reader.tensors:
        _check_tensor(gguf, tensor)
    return gguf


def _check_architecture(gguf: GGUFFile) -> None:
    arch = gguf.architecture
    if arch not in GGUF_ARCHS:
        raise UnsupportedModelError(
            f"{gguf.path}: general.architecture {arch!r} is not supported; Plinth serves GGUF "
            f"{', '.join(GGUF_ARCHS)} (Mistral is written as llama)"
        )
    experts = gguf.get(f"{arch}.expert_count", 0)
    if experts:  # llama.cpp writes Mixtral as llama with stacked expert tensors
        raise UnsupportedModelError(
            f"{gguf.path}: a mixture-of-experts GGUF ({arch}.expert_count {experts}) is not supported; "
            "serve the Hugging Face checkpoint instead (Mixtral and Qwen3-MoE are supported there)"
        )
    if "rope_freqs.weight" in gguf.tensors:
        raise UnsupportedModelError(
            f"{gguf.path}: tensor 'rope_freqs.weight' (Llama 3.1-style RoPE frequency factors) is not "
            "supported for GGUF; use the Hugging Face checkpoint instead"
        )
    rope = gguf.get(f"{arch}.rope.scaling.type", "none")
    if rope not in ("none", "linear"):
        raise UnsupportedModelError(
            f"{gguf.path}: {arch}.rope.scaling.type {rope!r} is not supported (supported: none, linear)"
        )


def _check_tensor(gguf: GGUFFile, tensor: Any) -> None:
    where = f"{gguf.path}: tensor {tensor.name!r}"
    if tensor.tensor_type not in SUPPORTED_TYPES:
        supported = ", ".join(sorted(t.name for t in SUPPORTED_TYPES))
        raise UnsupportedModelError(
            f"{where} has quantization type {tensor.tensor_type.name}, which is not supported ({supported})"
        )
    if hf_tensor_name(tensor.name) is None:
        raise CheckpointError(f"{where} is not a tensor of a {gguf.architecture} model")


def gguf_hf_config(gguf: GGUFFile) -> dict[str, Any]:
    """A Hugging Face ``config.json`` dict from the GGUF metadata (plus ``generation`` defaults)."""
    arch = gguf.architecture
    heads = int(gguf.get(f"{arch}.attention.head_count"))
    hidden = int(gguf.get(f"{arch}.embedding_length"))
    embed = gguf.tensors.get("token_embd.weight")
    if embed is None:
        raise CheckpointError(f"{gguf.path}: tensor 'token_embd.weight' is missing")
    config: dict[str, Any] = {
        "model_type": arch,
        "hidden_size": hidden,
        "intermediate_size": int(gguf.get(f"{arch}.feed_forward_length")),
        "num_hidden_layers": int(gguf.get(f"{arch}.block_count")),
        "num_attention_heads": heads,
        "num_key_value_heads": int(gguf.get(f"{arch}.attention.head_count_kv", heads)),
        "head_dim": int(gguf.get(f"{arch}.attention.key_length", hidden // heads)),
        "vocab_size": int(embed.shape[1]),  # ggml order: (hidden, vocab)
        "rms_norm_eps": float(gguf.get(f"{arch}.attention.layer_norm_rms_epsilon")),
        "rope_theta": float(gguf.get(f"{arch}.rope.freq_base", 10000.0)),
        "max_position_embeddings": int(gguf.get(f"{arch}.context_length")),
        "tie_word_embeddings": "output.weight" not in gguf.tensors,
        "attention_bias": "blk.0.attn_q.bias" in gguf.tensors,
        "eos_token_id": _stop_ids(gguf),
        "bos_token_id": gguf.get("tokenizer.ggml.bos_token_id", None),
        "torch_dtype": _compute_dtype(gguf),
    }
    if gguf.get(f"{arch}.rope.scaling.type", "none") == "linear":
        config["rope_scaling"] = {
            "rope_type": "linear",
            "factor": float(gguf.get(f"{arch}.rope.scaling.factor")),
        }
    return config


def generation_defaults(gguf: GGUFFile) -> dict[str, Any]:
    """Sampling defaults the file recommends (llama.cpp's ``general.sampling.*`` keys), if any."""
    values = {name: gguf.get(key, None) for key, name in _GENERATION_KEYS.items()}
    return {name: value for name, value in values.items() if value is not None}


def _stop_ids(gguf: GGUFFile) -> list[int]:
    """End of text and end of turn: chat models stop at either (llama.cpp's end-of-generation set)."""
    keys = ("eos_token_id", "eot_token_id", "eom_token_id")
    ids = (gguf.get(f"tokenizer.ggml.{key}", None) for key in keys)
    return list(dict.fromkeys(int(i) for i in ids if i is not None))


def _compute_dtype(gguf: GGUFFile) -> str:
    """Half-precision files compute in their own dtype; quantized ones in bfloat16 where it is fast."""
    counts = Counter(t.tensor_type for t in gguf.reader.tensors if len(t.shape) > 1)
    main = counts.most_common(1)[0][0] if counts else GGMLQuantizationType.F32
    return {GGMLQuantizationType.F32: "float32", GGMLQuantizationType.F16: "float16"}.get(main, "bfloat16")


def matrix_type(gguf: GGUFFile) -> str:
    """The file's quantization: the most common type of its matrices ("Q4_1", "Q8_0", ...)."""
    counts = Counter(t.tensor_type.name for t in gguf.reader.tensors if len(t.shape) > 1)
    return counts.most_common(1)[0][0] if counts else "F32"


def read_gguf_metadata(path: str | Path) -> GGUFSummary:
    """Architecture, parameter count, quantization (most common matrix type) and licence of a GGUF."""
    gguf = open_gguf(Path(path))
    arch = gguf.architecture
    return GGUFSummary(
        path=Path(path),
        architecture=arch,
        name=str(gguf.get("general.name", Path(path).stem)),
        parameters=sum(int(t.n_elements) for t in gguf.reader.tensors),
        quantization=matrix_type(gguf),
        license=gguf.get("general.license", None),
        context_length=int(gguf.get(f"{arch}.context_length")),
    )
