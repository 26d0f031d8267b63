"""StreamGuard: values split across deltas are still masked, a canary leak mid-stream blocks with the
policy's message, checks run at boundaries (not per token), and each finding is audited once."""

from __future__ import annotations

from test_guard_check import RegexFake, policy, ssn_fake

from plinth.guard.check import AuditEntry, Guard
from plinth.guard.stream import StreamGuard
from plinth.guard.types import DetectContext, Finding

CANARY = "cnry-5f2a9c1d7e"


class CanaryFake:
    name = "canary"

    def detect(self, text: str, context: DetectContext) -> list[Finding]:
        return [Finding("canary", "CANARY_LEAK", 1.0, text.find(c), text.find(c) + len(c))
                for c in context.canaries if c in text]  # fmt: skip


def stream(sg: StreamGuard, deltas: list[str]) -> tuple[str, str | None]:
    """Feed every delta like a server would; (what the client got, the final block message if any)."""
    sent = []
    for delta in deltas:
        step = sg.feed(delta)
        sent.append(step.text)
        if step.blocked:
            return "".join(sent), step.message
    end = sg.finish()
    return "".join(sent) + end.text, end.message if end.blocked else None


def tokens(text: str, size: int = 3) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def guard_and_audit(*detectors: object) -> tuple[Guard, list[AuditEntry]]:
    entries: list[AuditEntry] = []
    return Guard(audit=entries.append, detectors=lambda _: {"output": list(detectors)}), entries  # type: ignore[arg-type]


def test_pii_split_across_deltas_is_masked_and_audited_once() -> None:
    guard, audit = guard_and_audit(ssn_fake())
    filler = "The customer record was updated yesterday after the call with support. " * 3
    answer = f"{filler}Their number is 123-45-6789 and the case is closed. {filler}"
    deltas = tokens(answer, 3)  # 3-character deltas: the 11-character value arrives in pieces
    sg = StreamGuard(guard, policy("ANONYMIZE"), tenant_id=4)
    sent, blocked = stream(sg, deltas)
    assert blocked is None
    assert sent == answer.replace("123-45-6789", "{US_SOCIAL_SECURITY_NUMBER}")
    assert [(e.rule, e.tenant_id) for e in audit] == [("pii/US_SOCIAL_SECURITY_NUMBER", 4)]
    assert 1 < sg.checks < len(deltas) // 4  # at boundaries every few dozen characters, not per token


def test_text_is_released_before_the_end() -> None:
    guard, _ = guard_and_audit(ssn_fake())
    sg = StreamGuard(guard, policy())
    released = ""
    for delta in tokens("word " * 60, 5):
        released += sg.feed(delta).text
    assert len(released) >= 300 - 64 - 48  # all but the held tail and at most one chunk
    assert released + sg.finish().text == "word " * 60


def test_canary_leak_mid_stream_blocks_with_the_final_message() -> None:
    guard, audit = guard_and_audit(ssn_fake(), CanaryFake())
    before = "Sure, here is the answer you asked for, explained step by step in detail. " * 2
    answer = before + f"My hidden instructions contain {CANARY} which I should not say. " + "More text. " * 20
    sg = StreamGuard(guard, policy(), DetectContext(canaries=[CANARY]))
    sent, message = stream(sg, tokens(answer, 4))
    assert message == "output blocked"
    assert CANARY not in sent and CANARY[:6] not in sent  # not even a prefix of it went out
    assert sent and answer.startswith(sent)  # what left before the leak was the clean prefix
    assert sg.feed("more").blocked and sg.finish().message == "output blocked"
    assert [e.rule for e in audit] == ["canary/CANARY_LEAK"]


def test_grounding_policy_with_sources_holds_everything_until_finish() -> None:
    ungrounded = RegexFake("grounding", "GROUNDING", r"moon is made of cheese", score=0.1)
    guard, _ = guard_and_audit(ungrounded)
    p = policy(contextualGroundingPolicyConfig={"filtersConfig": [{"type": "GROUNDING", "threshold": 0.5}]})
    sg = StreamGuard(guard, p, DetectContext(sources=["The moon is rock."]))
    answer = "Well, according to the sources I have read carefully, the moon is made of cheese. " * 3
    assert all(sg.feed(d).text == "" for d in tokens(answer, 5))
    end = sg.finish()
    assert end.blocked and end.message == "output blocked"


def test_long_run_without_whitespace_is_still_released_in_bounded_memory() -> None:
    guard, _ = guard_and_audit(ssn_fake())
    sg = StreamGuard(guard, policy(), max_pending=256)
    blob = "A" * 1000
    released = "".join(sg.feed(d).text for d in tokens(blob, 10))
    assert released and len(sg.pending) <= 256 + 10
    assert released + sg.finish().text == blob


def test_the_stream_reports_its_own_verdict_without_checking_again() -> None:
    guard, _ = guard_and_audit(ssn_fake())
    answer = "The customer record was updated after the call. Their number is 123-45-6789, case closed. " * 2
    sg = StreamGuard(guard, policy("ANONYMIZE"))
    sent, _ = stream(sg, tokens(answer, 5))
    checks = sg.checks
    verdict = sg.result()
    assert sg.checks == checks  # reporting runs no detector
    assert (verdict.action, verdict.blocked, verdict.text) == ("GUARDRAIL_INTERVENED", False, sent)
    assert [f.type for f in verdict.findings] == ["US_SOCIAL_SECURITY_NUMBER"] * 2
    pii = [e for a in verdict.assessments for e in a["sensitiveInformationPolicy"]["piiEntities"]]
    assert [(e["match"], e["action"]) for e in pii] == [("123-45-6789", "ANONYMIZED")] * 2

    clean = StreamGuard(guard, policy("ANONYMIZE"))
    stream(clean, tokens("Nothing sensitive here at all, just a plain answer. " * 3, 4))
    assert clean.result().action == "NONE" and clean.result().assessments == []
