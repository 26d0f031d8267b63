"""Issue 16 C: a bounded schemathesis run against the OpenAPI document: no request it generates (valid
or not) gets a 5xx, every status is one the document declares, and JSON responses match their schema.

Creating routes that would reach the network or load real models for arbitrary input (adapters from
hub ids, knowledge bases with arbitrary embedders, guardrails with their detectors) are left out; their
4xx paths have their own tests (test_server_limits.py, tests/guard). Marked slow: a few minutes on CPU.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from server_fakes import build_app

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402  (after the importorskip)
from schemathesis.checks import (  # noqa: E402
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

APP, KEY = build_app(Path(tempfile.mkdtemp(prefix="plinth-schemathesis-")))
HEAVY = r"^/v1/(adapters|load_lora_adapter|knowledge-bases|guardrails(/[^/]+)?)$"  # network, model loads
schema = (
    schemathesis.openapi.from_asgi("/openapi.json", APP)
    .exclude(method=["POST", "PUT"], path_regex=HEAVY)
    .exclude(path_regex=r"^/(metrics|health|ping)$")  # not JSON APIs
)

EXAMPLES = int(os.environ.get("PLINTH_FUZZ_EXAMPLES", "5"))  # per operation; raise it to hunt for more
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_api_never_5xx_and_matches_its_document(case):
    case.call_and_validate(
        headers={"Authorization": f"Bearer {KEY}"},
        checks=[not_a_server_error, status_code_conformance, response_schema_conformance],
        timeout=60,
    )
