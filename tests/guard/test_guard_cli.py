"""``plinth guard check|train|eval`` on a temporary data dir (real control plane and PII detector)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from plinth.cli import app
from plinth.control import LOCAL_TENANT, get_or_create_tenant, open_control_plane
from plinth.control.guardrails import create_guardrail

runner = CliRunner()
SSN = "536-22-1843"
BODY = {
    "name": "support",
    "blockedOutputsMessaging": "Output blocked.",
    "sensitiveInformationPolicyConfig": {
        "piiEntitiesConfig": [
            {"type": "US_SOCIAL_SECURITY_NUMBER", "action": "ANONYMIZE", "outputAction": "BLOCK"}
        ]
    },
}


pytestmark = pytest.mark.usefixtures("clean_env")


def guard(*args: str):
    return runner.invoke(app, ["--data-dir", "data", "guard", *args])


def add_guardrail(tmp_path, *, is_default: bool = False) -> str:
    cp = open_control_plane(f"sqlite:///{tmp_path / 'data' / 'plinth.db'}")
    try:
        tenant = get_or_create_tenant(cp, LOCAL_TENANT)
        return create_guardrail(
            cp, tenant_id=tenant.id, name="support", config=BODY, is_default=is_default
        ).id
    finally:
        cp.close()


def test_check_with_a_named_guardrail_masks_input_and_blocks_output(tmp_path) -> None:
    gid = add_guardrail(tmp_path)
    masked = guard("check", f"My SSN is {SSN}.", "--guardrail", "support", "--json")
    assert masked.exit_code == 0, masked.output
    verdict = json.loads(masked.output)
    assert verdict["action"] == "GUARDRAIL_INTERVENED" and verdict["blocked"] is False
    assert verdict["outputs"] == [{"text": "My SSN is {US_SOCIAL_SECURITY_NUMBER}."}]
    assert verdict["guardrail"] == gid

    blocked = guard("check", f"My SSN is {SSN}.", "--guardrail", gid, "--source", "output")
    assert blocked.exit_code == 0, blocked.output
    assert "action: GUARDRAIL_INTERVENED (blocked)" in blocked.output
    assert "output: Output blocked." in blocked.output
    assert "BLOCKED    pii/US_SOCIAL_SECURITY_NUMBER" in blocked.output
    assert SSN not in blocked.output

    clean = guard("check", "What time is it?", "--guardrail", "support")
    assert "action: NONE" in clean.output and "output: What time is it?" in clean.output


def test_default_guardrail_then_builtin_policy(tmp_path) -> None:
    builtin = guard("check", f"My SSN is {SSN}.")
    assert builtin.exit_code == 0, builtin.output
    assert "guardrail: plinth-builtin" in builtin.output
    assert SSN not in builtin.output  # masked, or blocked if the prompt-attack model is unavailable
    gid = add_guardrail(tmp_path, is_default=True)
    defaulted = guard("check", f"My SSN is {SSN}.")
    assert f"guardrail: {gid}" in defaulted.output
    assert "output: My SSN is {US_SOCIAL_SECURITY_NUMBER}." in defaulted.output


def test_errors_exit_nonzero_with_the_reason(tmp_path) -> None:
    missing = guard("check", "hi", "--guardrail", "nope")
    assert missing.exit_code == 1 and "no guardrail 'nope'" in missing.output
    assert guard("check", "hi", "--source", "sideways").exit_code == 2
    for command in ("train", "eval"):
        result = guard(command, "--data", str(tmp_path / "absent"))
        assert result.exit_code == 2 and "no such directory" in result.output
