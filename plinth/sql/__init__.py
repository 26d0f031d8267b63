"""Ask your data: questions in plain language -> one vetted, read-only SQL query -> rows, chart, answer.

Public names are imported on first use (``from plinth.sql import SQLService`` loads the service then),
so importing the package or one light submodule does not pull in SQLAlchemy and the query engines.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plinth.sql.ask import AskFailedError, GuardBlockedError, attempts_json
    from plinth.sql.chart import chart_spec
    from plinth.sql.datasets import DatasetError
    from plinth.sql.service import DatasetNotFoundError, SQLService
    from plinth.sql.types import (
        DATASET_KINDS,
        AskResult,
        Dataset,
        QueryFailedError,
        QueryTimeoutError,
        RefusedError,
        UnsafeSQLError,
    )

__all__ = [
    "DATASET_KINDS",
    "AskFailedError",
    "AskResult",
    "Dataset",
    "DatasetError",
    "DatasetNotFoundError",
    "GuardBlockedError",
    "QueryFailedError",
    "QueryTimeoutError",
    "RefusedError",
    "SQLService",
    "UnsafeSQLError",
    "attempts_json",
    "chart_spec",
]

_MODULES = {
    "AskFailedError": "ask",
    "GuardBlockedError": "ask",
    "attempts_json": "ask",
    "chart_spec": "chart",
    "DatasetError": "datasets",
    "DatasetNotFoundError": "service",
    "SQLService": "service",
    "DATASET_KINDS": "types",
    "AskResult": "types",
    "Dataset": "types",
    "QueryFailedError": "types",
    "QueryTimeoutError": "types",
    "RefusedError": "types",
    "UnsafeSQLError": "types",
}


def __getattr__(name: str) -> Any:
    """A public name, imported from its submodule on first use (PEP 562)."""
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_MODULES[name]}"), name)
