"""Whether a device's steps take Plinth's Triton kernels (paged decode attention, multi-LoRA SGMV): a
CUDA device with Triton installed (CUDA builds of torch bring it; a CPU install may lack it).

The engine asks on every step and in every layer, so the package lookup runs once per process."""

from __future__ import annotations

import functools
import importlib.util

import torch

__all__ = ["triton_device"]


@functools.cache
def _installed() -> bool:
    return importlib.util.find_spec("triton") is not None


def triton_device(device: torch.device) -> bool:
    """True for a CUDA ``device`` when Triton is importable."""
    return device.type == "cuda" and _installed()
