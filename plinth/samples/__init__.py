"""Sample data Plinth generates for demos, tests and benchmarks: synthetic AWS cost data (legacy CUR,
CUR 2.0, FOCUS 1.0) with price tables kept as data (``cost_catalog.json``). Imports nothing else of
Plinth, so any layer may use it::

    folder = generate("focus", Path("cost-sample"), rows=10_000, months=3, seed=0)
"""

from plinth.samples.costgen import KINDS, Kind, generate, load_schema

__all__ = ["KINDS", "Kind", "generate", "load_schema"]
