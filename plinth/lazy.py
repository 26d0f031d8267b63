"""Lazy package exports: a package names each export's submodule, and the submodule is imported on first
use. Importing a feature package stays cheap even when some exports pull in torch, lancedb or Presidio.

    __getattr__ = lazy_exports(__name__, {"KnowledgeService": "service", ...})
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, sources: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that loads ``name`` from ``package.<sources[name]>`` and caches it."""

    def __getattr__(name: str) -> Any:
        if name not in sources:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{sources[name]}"), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
