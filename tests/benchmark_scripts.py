"""``benchmarks/*.py`` loaded as modules, for tests of their pieces (the folder is not a package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str) -> ModuleType:
    """``benchmarks/<name>.py``, executed once and registered as module ``name``."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def ratio_as_printed(ratio: str, numerator: str, denominator: str, time_step: float) -> bool:
    """Whether a printed ratio (to 0.01) is the quotient of two printed times (to ``time_step``) within
    what those roundings allow. On a fast host a tiny model's times are a few steps of the last digit,
    so recomputing the quotient from the printed times alone is off by more than 1 % (0.7 / 0.6 ms)."""
    half = time_step / 2
    top, bottom = float(numerator), float(denominator)
    low, high = (top - half) / (bottom + half), (top + half) / max(bottom - half, half / 100)
    return low - 0.005 <= float(ratio) <= high + 0.005
