"""Why a checkpoint cannot be served: raised at load time, before anything is served.

Their own module so that every loader (safetensors, GGUF) raises the same two types without importing
each other.
"""

from __future__ import annotations

__all__ = ["CheckpointError", "UnsupportedModelError"]


class CheckpointError(RuntimeError):
    """A checkpoint could not be found, downloaded or read; the message says how to fix it."""


class UnsupportedModelError(ValueError):
    """The checkpoint is not an architecture (or variant) this engine implements."""
