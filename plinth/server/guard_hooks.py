"""Guardrails as the routes use them: parse the request field, resolve the policy, run checks off the loop,
and report what happened in one ``guardrail`` response field.

Every generating route (chat completions, retrieve-and-generate, SQL ask) follows the same steps, so
they live here once::

    config = parse_guardrail_config(body.get("guardrailConfig"))          # 400 naming the param
    guard = await request_guard(request, config)                          # None: no policy applies
    if guard is not None:
        result = await guard.input(question)                              # blocked / masked / clean
        ...
        response["guardrail"] = guard.field()

``request_guard`` returns None when neither the request nor the tenant's default names a guardrail, so an
unguarded request pays nothing beyond the policy lookup. Checks run in a worker thread (detectors are
CPU work: a classifier, regexes). Detector failures are the policy's business (fail closed unless it
says otherwise), decided inside ``Guard.check``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from fastapi import Request

from plinth.guard import DetectContext, Stage, without_matches
from plinth.server import guardrails_api
from plinth.server.errors import APIError

if TYPE_CHECKING:
    from plinth.guard import GuardrailPolicy, GuardResult

__all__ = [
    "INTERVENED",
    "GuardrailConfig",
    "RequestGuard",
    "guard_data",
    "guard_input",
    "guard_output",
    "guardrail_field",
    "parse_guardrail_config",
    "request_guard",
]

INTERVENED: Final = "GUARDRAIL_INTERVENED"
_TRACES = ("enabled", "disabled")
_MODES = ("sync", "async")


@dataclass(frozen=True, slots=True)
class GuardrailConfig:
    """A request's explicit guardrail (Bedrock Converse's ``guardrailConfig``). ``trace`` (Bedrock's
    ``"enabled"``; off by default, as there) adds the matched text to the reported assessments."""

    identifier: str
    version: str | None = None
    trace: bool = False
    param: str = "guardrailConfig"  # where the request put it, for error messages
    id_key: str = "guardrailIdentifier"

    def as_lookup(self) -> dict[str, str]:
        """The ``{"guardrailIdentifier", "guardrailVersion"?}`` that ``resolve_policy`` takes."""
        lookup = {"guardrailIdentifier": self.identifier}
        return lookup if self.version is None else {**lookup, "guardrailVersion": self.version}


def parse_guardrail_config(
    raw: Any, param: str = "guardrailConfig", *, id_key: str = "guardrailIdentifier"
) -> GuardrailConfig | None:
    """Validate a ``guardrailConfig`` object (``id_key`` is ``guardrailId`` in Bedrock's RetrieveAndGenerate
    shape); a 400 naming the exact field on any mistake. None when ``raw`` is None."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise APIError(400, f"{param} must be an object.", param=param)
    keys = {id_key, "guardrailVersion"}
    keys |= {"trace", "streamProcessingMode"} if id_key == "guardrailIdentifier" else set()
    if unknown := sorted(set(raw) - keys):
        raise APIError(
            400, f"Unknown field(s) in {param}: {', '.join(unknown)}.", param=f"{param}.{unknown[0]}"
        )
    identifier, version, trace = raw.get(id_key), raw.get("guardrailVersion"), raw.get("trace", "disabled")
    if not isinstance(identifier, str) or not identifier:
        raise APIError(400, f"{id_key} is required (a non-empty string).", param=f"{param}.{id_key}")
    if version is not None and (not isinstance(version, str) or not version):
        raise APIError(400, "guardrailVersion must be a non-empty string.", param=f"{param}.guardrailVersion")
    if trace not in _TRACES:
        raise APIError(400, 'trace must be "enabled" or "disabled".', param=f"{param}.trace")
    if raw.get("streamProcessingMode", "sync") not in _MODES:  # streams are always checked before release
        raise APIError(
            400, 'streamProcessingMode must be "sync" or "async".', param=f"{param}.streamProcessingMode"
        )
    return GuardrailConfig(identifier, version, trace == "enabled", param, id_key)


async def request_guard(request: Request, config: GuardrailConfig | None) -> RequestGuard | None:
    """This request's guard: the explicit guardrail, else the tenant's default, else None (no checks)."""
    try:
        policy = await guardrails_api.resolve_policy(request, config.as_lookup() if config else None)
    except APIError as exc:  # its params say "guardrailConfig.guardrailIdentifier": name the field we read
        if config is not None and exc.param:
            exc.param = exc.param.replace("guardrailConfig", config.param).replace(
                "guardrailIdentifier", config.id_key
            )
        raise
    if policy is None:
        return None
    return RequestGuard(request, policy, trace=config.trace if config else False)


async def guard_input(
    request: Request, policy: GuardrailPolicy, text: str, context: DetectContext | None = None
) -> GuardResult:
    """Check what a user sent (prompt attacks, PII, denied topics, words)."""
    return await _check(request, policy, "input", text, context or DetectContext(stage="input"))


async def guard_data(
    request: Request, policy: GuardrailPolicy, texts: Sequence[str], context: DetectContext | None = None
) -> list[GuardResult]:
    """Check untrusted content a feature is about to put in a prompt (retrieved chunks, SQL result text),
    one result per text, in order."""
    return await _check_all(request, policy, "data", texts, context)


async def guard_output(
    request: Request, policy: GuardrailPolicy, text: str, context: DetectContext | None = None
) -> GuardResult:
    """Check what the model said; ``context`` carries the sources and query for grounding and this
    request's canaries."""
    return await _check(request, policy, "output", text, context or DetectContext(stage="output"))


async def _check_all(
    request: Request,
    policy: GuardrailPolicy,
    stage: Stage,
    texts: Sequence[str],
    context: DetectContext | None,
) -> list[GuardResult]:
    ctx = context or DetectContext(stage=stage)
    return list(await asyncio.gather(*(_check(request, policy, stage, t, ctx) for t in texts)))


async def _check(
    request: Request, policy: GuardrailPolicy, stage: Stage, text: str, context: DetectContext
) -> GuardResult:
    guard = guardrails_api.get_guard(request)
    tenant = getattr(request.state, "tenant", None)
    tenant_id = getattr(tenant, "id", None)
    return await asyncio.to_thread(guard.check, stage, text, policy, context, tenant_id=tenant_id)


def guardrail_field(
    results: Sequence[tuple[Stage, GuardResult]], *, trace: bool = False, **extra: Any
) -> dict[str, Any]:
    """The ``guardrail`` extension field of a response: the overall action, the stage that decided (the
    block, else the last intervention; None when nothing intervened) and every check's Bedrock-shaped
    assessments in the order they ran. Without ``trace`` the matched text (Bedrock's ``match``) is left
    out: a masked or blocked value must not come back in the same response that withheld it.
    ``extra`` adds route-specific keys."""
    intervened = [(stage, r) for stage, r in results if r.action == INTERVENED]
    blocks = [stage for stage, r in intervened if r.blocked]
    stage = blocks[0] if blocks else intervened[-1][0] if intervened else None
    assessments = [a for _, r in results for a in r.assessments]
    assessments = assessments if trace else without_matches(assessments)
    return {
        "action": INTERVENED if intervened else "NONE",
        "stage": stage,
        "assessments": assessments,
        **extra,
    }


@dataclass(slots=True)
class RequestGuard:
    """One request's guardrail: its policy, whether to trace, and every check's result so far (what
    :meth:`field` reports, in the order the checks were asked for)."""

    request: Request
    policy: GuardrailPolicy
    trace: bool = False
    results: list[tuple[Stage, GuardResult]] = field(default_factory=list)

    async def input(self, text: str) -> GuardResult:
        return (await self.inputs([text]))[0]

    async def inputs(self, texts: Sequence[str]) -> list[GuardResult]:
        """Check several user texts at once (a conversation's user turns)."""
        return self._record("input", await _check_all(self.request, self.policy, "input", texts, None))

    async def data(self, texts: Sequence[str], context: DetectContext | None = None) -> list[GuardResult]:
        return self._record("data", await guard_data(self.request, self.policy, texts, context))

    async def output(self, text: str, context: DetectContext | None = None) -> GuardResult:
        return (await self.outputs([text], context))[0]

    async def outputs(self, texts: Sequence[str], context: DetectContext | None = None) -> list[GuardResult]:
        """Check several replies (the ``n`` choices of one request) against the same context."""
        return self._record("output", await _check_all(self.request, self.policy, "output", texts, context))

    def record(self, stage: Stage, result: GuardResult) -> None:
        """Add a verdict reached elsewhere (a stream guard's) to what :meth:`field` reports."""
        self.results.append((stage, result))

    def _record(self, stage: Stage, results: list[GuardResult]) -> list[GuardResult]:
        self.results += [(stage, r) for r in results]
        return results

    @property
    def blocked(self) -> bool:
        return any(r.blocked for _, r in self.results)

    def field(self, **extra: Any) -> dict[str, Any]:
        return guardrail_field(self.results, trace=self.trace, **extra)
