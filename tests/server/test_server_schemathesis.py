"""Issue 16 C: a bounded schemathesis run against the OpenAPI document: no request it generates (valid
or not) gets a 5xx, every status is one the document declares, and JSON responses match their schema.

Every route is covered, the creating ones too (adapters, vLLM's load_lora_adapter, knowledge bases,
guardrails, files, batches, fine-tuning, evaluations, datasets): the app runs over the scripted model and
the fake embedder, and the Hugging Face hub is out of reach (its client raises at once, as it does
offline), so a generated hub id or embedder name takes the route's real "not found" path and nothing
leaves the machine.
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
schema = schemathesis.openapi.from_asgi("/openapi.json", APP).exclude(
    path_regex=r"^/(metrics|health|ping)$"  # not JSON APIs
)

EXAMPLES = int(os.environ.get("PLINTH_FUZZ_EXAMPLES", "5"))  # per operation; raise it to hunt for more
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module", autouse=True)
def hub_out_of_reach():
    """The hub client fails as it does offline: adapter downloads and embedder look-ups never leave."""
    import huggingface_hub

    def offline(*args, **kwargs):
        raise OSError("the hub is out of reach in this test")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(huggingface_hub, "snapshot_download", offline)
        patch.setattr(huggingface_hub, "model_info", offline)
        yield


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_api_never_5xx_and_matches_its_document(case):
    case.call_and_validate(
        headers={"Authorization": f"Bearer {KEY}"},
        checks=[not_a_server_error, status_code_conformance, response_schema_conformance],
        timeout=60,
    )
