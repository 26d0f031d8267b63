"""Ask your data: questions in plain language -> one vetted, read-only SQL query -> rows, chart, answer.

The server and CLI call :class:`SQLService` (datasets per tenant, ``ask`` and ``query``); errors are
:class:`SQLError` subclasses carrying the rule that refused or failed.

Every name below is exported here; its module is imported on first use, so importing the package (or
one light submodule) stays cheap: some exports pull in torch, lancedb, scikit-learn or Presidio.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plinth.lazy import lazy_exports

if TYPE_CHECKING:
    from plinth.sql.adapter_prompt import read_prompt_format
    from plinth.sql.ask import AskFailedError, GuardBlockedError, attempts_json
    from plinth.sql.catalog import Catalog
    from plinth.sql.chart import chart_spec
    from plinth.sql.runner import QueryRunner
    from plinth.sql.service import SQLService
    from plinth.sql.training_set import DataSpec
    from plinth.sql.types import (
        DATASET_KINDS,
        AskResult,
        Dataset,
        DatasetError,
        DatasetNotFoundError,
        QueryFailedError,
        QueryTimeoutError,
        RefusedError,
        SQLError,
        UnsafeSQLError,
    )

__all__ = [
    "DATASET_KINDS",
    "AskFailedError",
    "AskResult",
    "Catalog",
    "DataSpec",
    "Dataset",
    "DatasetError",
    "DatasetNotFoundError",
    "GuardBlockedError",
    "QueryFailedError",
    "QueryRunner",
    "QueryTimeoutError",
    "RefusedError",
    "SQLError",
    "SQLService",
    "UnsafeSQLError",
    "attempts_json",
    "chart_spec",
    "read_prompt_format",
]

_SOURCES = {
    "Catalog": "catalog",
    "QueryRunner": "runner",
    "DataSpec": "training_set",
    "read_prompt_format": "adapter_prompt",
    "AskFailedError": "ask",
    "GuardBlockedError": "ask",
    "attempts_json": "ask",
    "chart_spec": "chart",
    "DatasetError": "types",
    "DatasetNotFoundError": "types",
    "SQLService": "service",
    "DATASET_KINDS": "types",
    "AskResult": "types",
    "Dataset": "types",
    "QueryFailedError": "types",
    "QueryTimeoutError": "types",
    "RefusedError": "types",
    "SQLError": "types",
    "UnsafeSQLError": "types",
}


__getattr__ = lazy_exports(__name__, _SOURCES)
