"""Load a PEFT LoRA adapter folder into plain tensors, refusing anything the engine would serve wrongly.

Contract: ``load_adapter(path, name, model, max_rank)`` reads ``adapter_config.json`` and
``adapter_model.safetensors`` (or ``adapter_model.bin``, only through ``torch.load(weights_only=True)``)
and returns a ``LoraAdapter``: float32 CPU ``(A, B, scaling)`` per ``(layer, module)``, with the scaling
PEFT itself would use (``lora_alpha / r``, or ``/ sqrt(r)`` with rsLoRA, ``rank_pattern`` and
``alpha_pattern`` matched by PEFT's own rule). The engine applies ``scaling * B @ A`` unmerged, so
only plain LoRA on the attention and MLP projections is accepted; every other adapter fails here, at
load time, with an ``AdapterError`` that names the adapter and the problem -- never later as wrong
tokens. A wrong base model shows up as A/B shapes that do not fit the base model's projections.

Example::

    >>> adapter = load_adapter(Path("sql-lora"), "sql", model_config, max_rank=64)  # doctest: +SKIP
    >>> adapter.weights[(0, "q_proj")].scaling  # doctest: +SKIP
    2.0
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from plinth.engine.model_config import ModelConfig

__all__ = ["TARGETS", "AdapterError", "LoraAdapter", "LoraWeights", "load_adapter", "projection_shape"]

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
CONFIG_FILE = "adapter_config.json"
WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")

# LoraConfig switches that change the forward pass beyond ``scaling * B @ A`` (or add trainable
# tensors the engine has no place for). Init-time options (PiSSA, EVA, LoftQ...) are fine: after
# training their weights are plain LoRA.
_UNSUPPORTED_FEATURES = {
    "use_dora": "DoRA (use_dora)",
    "lora_bias": "a bias on lora_B (lora_bias)",
    "use_qalora": "QA-LoRA (use_qalora)",
    "layer_replication": "layer replication",
    "target_parameters": "LoRA on raw parameters (target_parameters; how PEFT targets the experts of a "
    "mixture-of-experts model, whose experts adapters cannot reach here: target the attention projections)",
    "alora_invocation_tokens": "activated LoRA (alora_invocation_tokens)",
    "trainable_token_indices": "trainable tokens (trainable_token_indices)",
    "arrow_config": "Arrow routing",
    "monteclora_config": "MonteCLoRA",
    "kasa_config": "KaSA",
    "use_bdlora": "block-diagonal LoRA (use_bdlora)",
}
_EMBEDDING_MODULES = ("embed_tokens", "lm_head")
_MLP_MODULES = ("gate_proj", "up_proj", "down_proj")
_MOE_HINT = "adapters reach only the attention projections (q/k/v/o_proj) and dense MLPs"
# "<path>.lora_A.weight", or "<path>.lora_A.<adapter name>.weight" as some tools save it.
_LORA_KEY = re.compile(r"^(?P<path>.+)\.lora_(?P<ab>[AB])(?:\.\w+)?\.weight$")
_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")
_PEFT_PREFIX = "base_model.model."


class AdapterError(ValueError):
    """An adapter cannot be served; ``str()`` is ``"adapter '<name>': <problem>"``."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(name, problem)
        self.name, self.problem = name, problem

    def __str__(self) -> str:
        return f"adapter '{self.name}': {self.problem}"


@dataclass(slots=True)
class LoraWeights:
    """One adapted projection: ``y += scaling * (x @ a.T) @ b.T``."""

    a: torch.Tensor  # [rank, in_features]  (PEFT lora_A.weight)
    b: torch.Tensor  # [out_features, rank] (PEFT lora_B.weight)
    scaling: float


@dataclass(slots=True)
class LoraAdapter:
    """A validated adapter, ready to be copied into the engine's LoRA slots."""

    name: str
    path: Path
    rank: int
    target_modules: frozenset[str]
    weights: dict[tuple[int, str], LoraWeights]
    base_model: str | None

    @property
    def num_bytes(self) -> int:
        """Memory the tensors take, for the adapter cache's budget."""
        return sum(_nbytes(w.a) + _nbytes(w.b) for w in self.weights.values())


def load_adapter(path: Path, name: str, model: ModelConfig, max_rank: int) -> LoraAdapter:
    """Read and validate the PEFT adapter folder ``path`` for the base model ``model``."""
    path = Path(path)
    config = _read_config(path, name)
    _check_config(config, name)
    pairs = _pair_tensors(_read_tensors(path, name), name)
    weights = {key: _weights(config, key, path_, ab, model, name) for key, (path_, ab) in pairs.items()}
    rank = max(w.a.shape[0] for w in weights.values())
    if rank > max_rank:
        raise AdapterError(
            name, f"rank {rank} exceeds the server's maximum LoRA rank {max_rank} (--max-lora-rank)"
        )
    return LoraAdapter(
        name=name,
        path=path,
        rank=rank,
        target_modules=frozenset(module for _, module in weights),
        weights=weights,
        base_model=config.get("base_model_name_or_path"),
    )


def _read_config(path: Path, name: str) -> dict[str, Any]:
    file = path / CONFIG_FILE
    if not file.is_file():
        raise AdapterError(name, f"{path} has no {CONFIG_FILE}, so it is not a PEFT adapter folder")
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AdapterError(name, f"{file} is not valid JSON ({exc})") from exc
    if not isinstance(config, dict):
        raise AdapterError(name, f"{file} must hold a JSON object")
    return config


def _check_config(config: dict[str, Any], name: str) -> None:
    """Refuse, from the config alone, what the engine cannot apply (tensors are checked again later)."""
    if config.get("peft_type") != "LORA":
        raise AdapterError(name, f"peft_type is {config.get('peft_type')!r}; only LORA adapters are served")
    if config.get("modules_to_save"):
        raise AdapterError(
            name,
            f"modules_to_save {config['modules_to_save']} is not supported: only LoRA A/B weights are served",
        )
    if config.get("bias", "none") != "none":
        raise AdapterError(name, f"bias={config['bias']!r} is not supported; train with bias='none'")
    for key, feature in _UNSUPPORTED_FEATURES.items():
        if config.get(key):
            raise AdapterError(name, f"{feature} is not supported")
    targets = config.get("target_modules")
    if isinstance(targets, list):  # a regex string is checked through the tensor names instead
        for target in targets:
            _check_module(str(target).rsplit(".", 1)[-1], name)
    if not isinstance(config.get("r"), int) or config["r"] <= 0:
        raise AdapterError(name, f"r must be a positive integer, not {config.get('r')!r}")


def _check_module(module: str, name: str) -> None:
    if module in _EMBEDDING_MODULES:
        raise AdapterError(name, f"LoRA on {module} is not supported; only {', '.join(TARGETS)} are")
    if module not in TARGETS:
        raise AdapterError(name, f"target module {module!r} is not supported; only {', '.join(TARGETS)} are")


def _read_tensors(path: Path, name: str) -> dict[str, torch.Tensor]:
    file = next((path / f for f in WEIGHT_FILES if (path / f).is_file()), None)
    if file is None:
        raise AdapterError(name, f"{path} has no weights ({' or '.join(WEIGHT_FILES)})")
    try:
        if file.suffix == ".safetensors":
            tensors = load_file(file, device="cpu")
        else:  # weights_only: a .bin cannot run pickled code
            tensors = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt/truncated files raise library-specific errors; all mean the same
        raise AdapterError(
            name, f"cannot read {file.name}, it looks corrupt ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(tensors, dict) or not all(isinstance(t, torch.Tensor) for t in tensors.values()):
        raise AdapterError(name, f"{file.name} does not hold a name -> tensor mapping")
    return tensors


def _pair_tensors(
    tensors: dict[str, torch.Tensor], name: str
) -> dict[tuple[int, str], tuple[str, dict[str, torch.Tensor]]]:
    """Group tensors as ``(layer, module) -> (module path, {"A": a, "B": b})``; reject any other tensor."""
    pairs: dict[tuple[int, str], tuple[str, dict[str, torch.Tensor]]] = {}
    for key, tensor in tensors.items():
        module_path, ab = _parse_key(key, name)
        layer = _LAYER.search(module_path)
        if layer is None:
            raise AdapterError(name, f"tensor {key!r} is not in a transformer layer (model.layers.<i>)")
        _, found = pairs.setdefault((int(layer.group(1)), module_path.rsplit(".", 1)[-1]), (module_path, {}))
        if ab in found:
            raise AdapterError(name, f"tensor {key!r} duplicates another lora_{ab} of the same module")
        found[ab] = tensor
    if not pairs:
        raise AdapterError(name, "the weights file holds no LoRA tensors")
    return pairs


def _parse_key(key: str, name: str) -> tuple[str, str]:
    """``base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`` -> (module path, "A")."""
    if "lora_magnitude_vector" in key:
        raise AdapterError(name, f"DoRA is not supported (tensor {key!r})")
    if "lora_embedding_" in key or any(f".{m}." in f".{key}" for m in _EMBEDDING_MODULES):
        raise AdapterError(
            name, f"LoRA or saved weights for embed_tokens/lm_head are not supported (tensor {key!r})"
        )
    match = _LORA_KEY.match(key)
    if match is None:
        if ".lora_B" in key and key.endswith(".bias"):
            raise AdapterError(name, f"a bias on lora_B is not supported (tensor {key!r})")
        raise AdapterError(name, f"unexpected tensor {key!r} (only LoRA A/B weights are served)")
    module_path = match.group("path").removeprefix(_PEFT_PREFIX)
    if ".experts." in f".{module_path}.":
        raise AdapterError(
            name, f"LoRA on mixture-of-experts experts is not supported (tensor {key!r}); {_MOE_HINT}"
        )
    _check_module(module_path.rsplit(".", 1)[-1], name)
    return module_path, match.group("ab")


def _weights(
    config: dict[str, Any],
    key: tuple[int, str],
    module_path: str,
    ab: dict[str, torch.Tensor],
    model: ModelConfig,
    name: str,
) -> LoraWeights:
    layer, module = key
    where = f"layer {layer} {module}"
    if layer >= model.num_layers:
        raise AdapterError(name, f"{where}: the base model {model.name!r} has only {model.num_layers} layers")
    if layer in model.sparse_layers and module in _MLP_MODULES:
        raise AdapterError(
            name, f"{where}: layer {layer} of the base model is a mixture of experts; {_MOE_HINT}"
        )
    if set(ab) != {"A", "B"}:
        raise AdapterError(
            name, f"{where}: lora_{'A' if 'B' in ab else 'B'} is missing (each needs both A and B)"
        )
    rank, alpha = _rank_and_alpha(config, module_path, name)
    a, b = ab["A"], ab["B"]
    _check_shapes(a, b, rank, module, model, f"{where}: ", name)
    for label, tensor in (("lora_A", a), ("lora_B", b)):
        if not torch.isfinite(tensor).all():
            raise AdapterError(name, f"{where}: {label} holds NaN or inf values")
    scaling = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
    return LoraWeights(a=_f32(a), b=_f32(b), scaling=float(scaling))


def _rank_and_alpha(config: dict[str, Any], module_path: str, name: str) -> tuple[int, float]:
    """PEFT's rule (``peft.utils.other.get_pattern_key``): the first pattern key, in config order, that
    matches the end of the module path on a dot boundary, as a regex; otherwise ``r`` / ``lora_alpha``."""
    try:
        rank = int(_pattern_value(config.get("rank_pattern") or {}, module_path, config["r"]))
        alpha = float(
            _pattern_value(config.get("alpha_pattern") or {}, module_path, config.get("lora_alpha", 8))
        )
    except (re.error, TypeError, ValueError) as exc:
        raise AdapterError(name, f"rank_pattern/alpha_pattern in {CONFIG_FILE} is invalid ({exc})") from exc
    if rank <= 0:
        raise AdapterError(name, f"{module_path} gets rank {rank} from {CONFIG_FILE}; it must be positive")
    return rank, alpha


def _pattern_value(patterns: dict[str, Any], module_path: str, default: Any) -> Any:
    for pattern, value in patterns.items():
        if re.match(rf"(.*\.)?({pattern})$", module_path):
            return value
    return default


def _check_shapes(
    a: torch.Tensor, b: torch.Tensor, rank: int, module: str, model: ModelConfig, where: str, name: str
) -> None:
    in_features, out_features = projection_shape(model, module)
    expected_a, expected_b = (rank, in_features), (out_features, rank)
    if tuple(a.shape) == expected_a and tuple(b.shape) == expected_b:
        return
    if a.ndim == 2 and b.ndim == 2 and (a.shape[1], b.shape[0]) == (in_features, out_features):
        problem = f"rank {a.shape[0]}/{b.shape[1]} in the weights but r={rank} in {CONFIG_FILE}"
    else:
        problem = "shapes do not fit the base model, so it was probably trained for a different base model"
    raise AdapterError(
        name,
        f"{where}lora_A is {list(a.shape)} and lora_B is {list(b.shape)}, expected {list(expected_a)} and "
        f"{list(expected_b)} for {model.name or 'the base model'}: {problem}",
    )


def projection_shape(model: ModelConfig, module: str) -> tuple[int, int]:
    """``(in_features, out_features)`` of a target projection in ``model``."""
    q_out, kv_out = model.num_heads * model.head_dim, model.num_kv_heads * model.head_dim
    return {
        "q_proj": (model.hidden_size, q_out),
        "k_proj": (model.hidden_size, kv_out),
        "v_proj": (model.hidden_size, kv_out),
        "o_proj": (q_out, model.hidden_size),
        "gate_proj": (model.hidden_size, model.intermediate_size),
        "up_proj": (model.hidden_size, model.intermediate_size),
        "down_proj": (model.intermediate_size, model.hidden_size),
    }[module]


def _f32(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to(device="cpu", dtype=torch.float32).contiguous()


def _nbytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()
