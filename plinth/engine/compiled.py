"""The decoder stack compiled with ``torch.compile`` (Inductor's C++ CPU backend): ``compile=True``.

Eagerly, a decode step of a small model spends a quarter of its time dispatching hundreds of small
operators (RMSNorm, rotary, SiLU-and-mul, residual adds, reshapes) between the matmuls. Compiled, each
run of element-wise code between two matmuls becomes one fused C++ loop. The whole stack is one graph:
compiling each layer, or letting the graph break at attention, made the step *slower* than eager, as
every region adds a guard check and a wrapper call (``benchmarks/decode_profile.py``, README "Speed").

What Inductor must not trace is behind custom operators (``torch.library.custom_op``), opaque to it:

- ``plinth::paged_attention``: writes the cache and reads it through the step's block tables, whose
  number and shapes change every step; it reads the step's :class:`AttentionMetadata` from
  :func:`step_metadata` rather than as arguments, so no guard depends on them.
- ``plinth::onednn_linear``: a prepacked oneDNN weight (Inductor's own lowering of that kernel accepts
  only weights it froze itself).
- ``plinth::lora_add_``: the unmerged adapters; which slots a step uses is Python state that changes
  every step, and the slot buffers change when adapters load.

Token counts are dynamic (``dynamic=True``); a one-token step (single-stream decode) is specialised once
more, so a model is compiled twice, at its first prefill and its first one-token step.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch

from plinth.engine.attention import AttentionMetadata, paged_attention

if TYPE_CHECKING:
    from plinth.engine.lora.layers import LoraLinear

_step = threading.local()  # the AttentionMetadata of the step this thread runs
_lora_layers: weakref.WeakValueDictionary[int, LoraLinear] = weakref.WeakValueDictionary()


@contextlib.contextmanager
def step_metadata(meta: AttentionMetadata) -> Iterator[None]:
    """Make ``meta`` the attention metadata that ``plinth::paged_attention`` reads while a step runs."""
    _step.meta = meta
    try:
        yield
    finally:
        _step.meta = None


@torch.library.custom_op("plinth::paged_attention", mutates_args=("k_cache", "v_cache"))
def compiled_paged_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
    scale: float,
) -> torch.Tensor:  # fmt: skip
    """:func:`~plinth.engine.attention.paged_attention` with the step's metadata."""
    meta = getattr(_step, "meta", None)
    assert meta is not None, "plinth::paged_attention runs only inside step_metadata()"
    return paged_attention(q, k, v, k_cache, v_cache, meta, scale)


@compiled_paged_attention.register_fake
def _(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
      scale: float) -> torch.Tensor:  # fmt: skip
    return torch.empty_like(q)


@torch.library.custom_op("plinth::onednn_linear", mutates_args=())
def onednn_linear(x: torch.Tensor, packed: torch.Tensor, out_features: int) -> torch.Tensor:
    """``x @ W.T`` for a 2-D ``x`` and a weight reordered by ``mkldnn._reorder_linear_weight``."""
    return torch.ops.mkldnn._linear_pointwise(x, packed, None, "none", [], "")


@onednn_linear.register_fake
def _(x: torch.Tensor, packed: torch.Tensor, out_features: int) -> torch.Tensor:
    return x.new_empty(x.shape[0], out_features)


def register_lora_layer(layer: LoraLinear) -> int:
    """A key under which ``plinth::lora_add_`` finds ``layer`` (custom operators take no modules)."""
    _lora_layers[id(layer)] = layer
    return id(layer)


@torch.library.custom_op("plinth::lora_add_", mutates_args=("y",))
def lora_add_(x: torch.Tensor, y: torch.Tensor, key: int) -> None:
    """Add the adapters of the current step's tokens to ``y``, the base output of LoRA layer ``key``."""
    _lora_layers[key].add_adapters(x, y)


@lora_add_.register_fake
def _(x: torch.Tensor, y: torch.Tensor, key: int) -> None:
    return None
