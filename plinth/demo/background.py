"""``plinth demo``'s sample data, prepared on a background thread so the server answers at once.

Order: the cost datasets first (a few seconds: cost questions work almost at once), then the
``movies`` knowledge base, whose first build runs on its own sync thread and is searchable as it
lands. Shutdown: :func:`stop_background_work` lets the preparation thread finish (it only writes
files, and a half-written Parquet file would be mistaken for a finished one on the next start), then
the knowledge service stops its syncs between batches; the next start resumes the movies build.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from plinth.control import Tenant

__all__ = ["start_demo_preparation", "stop_background_work"]

log = logging.getLogger(__name__)


def start_demo_preparation(
    knowledge: Any, sql: Any, tenant: Tenant, shared_data: Path, data_dir: Path
) -> threading.Thread:
    """Prepare the demo's datasets and start the movies build, on a thread started here."""
    thread = threading.Thread(
        target=_prepare, args=(knowledge, sql, tenant, shared_data, data_dir), name="demo-prep", daemon=True
    )
    thread.start()
    return thread


def stop_background_work(knowledge: Any, demo: threading.Thread | None, timeout: float = 30.0) -> None:
    """Wait for the demo's preparation thread (if any), then stop the knowledge service's running syncs.

    The server calls it on the app's shutdown, not after ``uvicorn.run`` returns: after a SIGTERM
    uvicorn re-raises the signal once the app has shut down, and the process ends there."""
    if demo is not None:
        demo.join(timeout)
    knowledge.close(timeout)


def _prepare(knowledge: Any, sql: Any, tenant: Tenant, shared_data: Path, data_dir: Path) -> None:
    from plinth.demo.cost_data import prepare_cost_dataset
    from plinth.demo.movies_kb import prepare_movies_kb

    try:
        prepare_cost_dataset(sql, tenant, data_dir, shared_data)
        log.info("demo cost datasets ready")
        prepare_movies_kb(knowledge, tenant, shared_data, data_dir)
    except Exception:  # the server keeps serving; the log says what is missing
        log.exception("preparing the demo data failed")
