"""Quotas on what a tenant holds: adapters, knowledge-base documents, SQL datasets, unfinished jobs.

The routes that create such a thing call :func:`check_quota` first (in a worker thread: it reads the
control plane). At or over the tenant's limit (``PUT /v1/admin/tenants/{tenant}/limits``,
``plinth tenants limits``) the request is a 429 ``rate_limit_exceeded`` with ``Retry-After`` — the
issue's contract for every exceeded limit, so clients that already handle rate limits handle quotas
too; the message names the quota, its limit and how to free room. Nothing is created. Refusals are
counted in ``plinth_tenant_quota_refusals_total{tenant_id, quota}``.

Usage is counted from the rows (deleting frees room at once). Two creates racing at the limit may
both pass; the quota is a ceiling on steady use, not a lock. Knowledge-base documents are known once a
sync ran, so a sync is refused when the tenant already holds its limit; the sync that crosses it
completes.
"""

from __future__ import annotations

from fastapi import Request

from plinth.control import Tenant
from plinth.control.jobs import FINISHED as JOB_FINISHED
from plinth.control.tenant_usage import usage
from plinth.jobs.batch import FINISHED as BATCH_FINISHED
from plinth.server.errors import APIError
from plinth.server.state import get_state

__all__ = ["JOB_KINDS", "RETRY_AFTER_S", "check_quota"]

JOB_KINDS = ("fine_tune", "batch", "evaluation")  # what a tenant starts; async inference is per request
RETRY_AFTER_S = 60  # room frees when the tenant deletes something, a job ends or an admin lifts the limit
_FREE = {
    "adapters": "delete an adapter",
    "knowledge_base_documents": "delete a knowledge base or documents from its sources",
    "datasets": "delete a dataset",
    "concurrent_jobs": "wait for a job to finish or cancel one",
}


def check_quota(request: Request, quota: str) -> None:
    """Raise the 429 when the request's tenant holds ``quota``'s limit already (sync: run in a thread)."""
    state, tenant = get_state(request), request.state.tenant
    assert isinstance(tenant, Tenant) and quota in _FREE
    if state.quotas is None:
        return
    limit = getattr(state.quotas.limits(tenant.id), quota)
    if limit is None:
        return
    held = usage(state.control_plane, tenant.id, quota, job_kinds=JOB_KINDS,
                 finished=(*JOB_FINISHED, *BATCH_FINISHED))  # fmt: skip
    if held < limit:
        return
    state.quotas.quota_refusals.labels(str(tenant.id), quota).inc()
    message = f"Quota reached: {held} of {limit} {quota.replace('_', ' ')}; {_FREE[quota]}, or ask an admin."
    raise APIError(429, message, type="rate_limit_error", code="rate_limit_exceeded",
                   headers={"Retry-After": str(RETRY_AFTER_S)})  # fmt: skip
