"""A guardrail policy: Bedrock's CreateGuardrail body, validated into one immutable value.

The policy says *what* to look for and what each finding means (block, anonymize, only report); the
detectors (``plinth.guard.{attack,pii,topics,words,grounding,canary}``) do the looking, and
:mod:`plinth.guard.check` combines the two. ``from_bedrock`` accepts Bedrock's request shape, so a body
written for ``bedrock.create_guardrail(**body)`` works here unchanged, as long as it only uses what Plinth
can enforce; anything else is a :class:`~plinth.guard.policy_fields.PolicyError` naming the field
(``param``), never silently ignored::

    policy = GuardrailPolicy.from_bedrock({
        "name": "support-bot",
        "contentPolicyConfig": {"filtersConfig": [{"type": "PROMPT_ATTACK", "inputStrength": "HIGH"}]},
        "sensitiveInformationPolicyConfig": {"piiEntitiesConfig": [{"type": "EMAIL", "action": "ANONYMIZE"}]},
    })
    assert GuardrailPolicy.from_bedrock(policy.to_bedrock()) == policy

Plinth's extensions to Bedrock's shape (each optional, each round-trips through :meth:`to_bedrock`):

- ``contentPolicyConfig.filtersConfig[PROMPT_ATTACK].dataStrength``: the strength used on untrusted data
  (retrieved chunks, SQL result text, tool output); defaults to ``inputStrength``.
- ``detectorFailureMode``: ``"CLOSED"`` (default: a detector that cannot run blocks) or ``"OPEN"``.
- ``blockedInputMessaging`` / ``blockedOutputsMessaging`` are optional (Bedrock requires them); the default
  is :data:`DEFAULT_BLOCKED_MESSAGE`.
- ``outputStrength`` of PROMPT_ATTACK may be left out (it must be ``NONE``, as in Bedrock).

``isDefault`` belongs to the stored guardrail, not the policy: the API layer takes it out of the body.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import regex

from plinth.guard.policy_fields import (
    PolicyError,
    choice,
    json_object,
    list_items,
    optional_section,
    required,
    text,
)

__all__ = [
    "DEFAULT_BLOCKED_MESSAGE",
    "PII_ACTIONS",
    "STRENGTHS",
    "GuardrailPolicy",
    "PIIEntity",
    "PromptAttackFilter",
    "RegexRule",
    "Topic",
    "builtin_policy",
]

Strength = Literal["NONE", "LOW", "MEDIUM", "HIGH"]
PIIAction = Literal["BLOCK", "ANONYMIZE", "NONE"]
FailureMode = Literal["CLOSED", "OPEN"]

STRENGTHS: tuple[str, ...] = ("NONE", "LOW", "MEDIUM", "HIGH")
PII_ACTIONS: tuple[str, ...] = ("BLOCK", "ANONYMIZE", "NONE")
DEFAULT_BLOCKED_MESSAGE = "Sorry, the model cannot answer this question."
MAX_THRESHOLD = 0.99  # Bedrock's bound: a threshold of 1.0 would block every answer

_NAME = re.compile(r"^[0-9a-zA-Z_-]+$")
_TOPIC_NAME = re.compile(r"^[0-9a-zA-Z_ !?.-]+$")
_TOP_KEYS = (
    "name", "description", "blockedInputMessaging", "blockedOutputsMessaging", "contentPolicyConfig",
    "topicPolicyConfig", "wordPolicyConfig", "sensitiveInformationPolicyConfig",
    "contextualGroundingPolicyConfig", "detectorFailureMode",
)  # fmt: skip
_REGEX_KEYS = ("name", "description", "pattern", "action", "inputAction", "outputAction")


@dataclass(frozen=True, slots=True)
class PromptAttackFilter:
    input_strength: Strength
    data_strength: Strength


@dataclass(frozen=True, slots=True)
class PIIEntity:
    """One PII type and what to do with it when the user sends it (input) or the model says it (output)."""

    type: str
    input_action: PIIAction
    output_action: PIIAction
    strict: bool = False  # "validation": "STRICT": checksum and issuance rules too, not the shape alone


@dataclass(frozen=True, slots=True)
class RegexRule:
    name: str
    pattern: str
    input_action: PIIAction
    output_action: PIIAction
    description: str = ""


@dataclass(frozen=True, slots=True)
class Topic:
    name: str
    definition: str
    examples: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class GuardrailPolicy:
    """Everything a check needs, immutable and hashable (the guard caches detectors per policy).

    ``guardrail_id`` and ``version`` say which stored guardrail this came from (audit entries name it);
    they are not part of the Bedrock body."""

    name: str
    description: str = ""
    blocked_input_messaging: str = DEFAULT_BLOCKED_MESSAGE
    blocked_outputs_messaging: str = DEFAULT_BLOCKED_MESSAGE
    prompt_attack: PromptAttackFilter | None = None
    pii: tuple[PIIEntity, ...] = ()
    regexes: tuple[RegexRule, ...] = ()
    topics: tuple[Topic, ...] = ()
    words: tuple[str, ...] = ()
    managed_word_lists: tuple[str, ...] = ()
    grounding_threshold: float | None = None
    relevance_threshold: float | None = None
    failure_mode: FailureMode = "CLOSED"
    guardrail_id: str | None = field(default=None, compare=False)
    version: int | None = field(default=None, compare=False)

    @property
    def label(self) -> str:
        """How audit entries and logs name the policy: its guardrailId, else its name."""
        return self.guardrail_id or self.name

    @classmethod
    def from_bedrock(cls, body: Any) -> GuardrailPolicy:
        """Validate a CreateGuardrail-shaped body; raises :class:`PolicyError` naming the bad field."""
        body = json_object(body, None, _TOP_KEYS)
        attack, pii, regexes = _content(body), *_sensitive(body)
        words, managed = _words(body)
        grounding, relevance = _grounding(body)
        return cls(
            name=text(body.get("name"), "name", 1, 50, _NAME),
            description=text(body.get("description", ""), "description", 0, 200),
            blocked_input_messaging=_message(body, "blockedInputMessaging"),
            blocked_outputs_messaging=_message(body, "blockedOutputsMessaging"),
            prompt_attack=attack,
            pii=pii,
            regexes=regexes,
            topics=_topics(body),
            words=words,
            managed_word_lists=managed,
            grounding_threshold=grounding,
            relevance_threshold=relevance,
            failure_mode=cast(
                FailureMode, choice(body.get("detectorFailureMode", "CLOSED"), "detectorFailureMode",
                                     ("CLOSED", "OPEN"))
            ),
        )  # fmt: skip

    def to_bedrock(self) -> dict[str, Any]:
        """The CreateGuardrail body (with Plinth's extensions) that :meth:`from_bedrock` turns back into
        this policy; what ``GET /v1/guardrails/{id}`` shows, so a client can edit it and PUT it back."""
        body: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "blockedInputMessaging": self.blocked_input_messaging,
            "blockedOutputsMessaging": self.blocked_outputs_messaging,
            "detectorFailureMode": self.failure_mode,
        }
        if self.prompt_attack:
            attack = {"type": "PROMPT_ATTACK", "inputStrength": self.prompt_attack.input_strength,
                      "outputStrength": "NONE", "dataStrength": self.prompt_attack.data_strength}  # fmt: skip
            body["contentPolicyConfig"] = {"filtersConfig": [attack]}
        if self.pii or self.regexes:
            body["sensitiveInformationPolicyConfig"] = {
                "piiEntitiesConfig": [
                    _action_json({"type": e.type} | ({"validation": "STRICT"} if e.strict else {}), e)
                    for e in self.pii
                ],
                "regexesConfig": [
                    _action_json({"name": r.name, "description": r.description, "pattern": r.pattern}, r)
                    for r in self.regexes
                ],
            }
        if self.topics:
            body["topicPolicyConfig"] = {
                "topicsConfig": [
                    {"name": t.name, "definition": t.definition, "examples": list(t.examples), "type": "DENY"}
                    for t in self.topics
                ]
            }
        if self.words or self.managed_word_lists:
            body["wordPolicyConfig"] = {
                "wordsConfig": [{"text": w} for w in self.words],
                "managedWordListsConfig": [{"type": t} for t in self.managed_word_lists],
            }
        filters = [(k, v) for k, v in (("GROUNDING", self.grounding_threshold),
                                       ("RELEVANCE", self.relevance_threshold)) if v is not None]  # fmt: skip
        if filters:
            body["contextualGroundingPolicyConfig"] = {
                "filtersConfig": [{"type": k, "threshold": v} for k, v in filters]
            }
        return body


# --- the sections of the body ---------------------------------------------------------------------


def _content(body: Mapping[str, Any]) -> PromptAttackFilter | None:
    section = optional_section(body, "contentPolicyConfig", ("filtersConfig",))
    if section is None:
        return None
    attack: PromptAttackFilter | None = None
    for path, item in list_items(section, "contentPolicyConfig.filtersConfig", 1, 6):
        item = json_object(item, path, ("type", "inputStrength", "outputStrength", "dataStrength"))
        kind = required(item, "type", path)
        if kind != "PROMPT_ATTACK":
            raise PolicyError(
                f"{path}.type: content filter {kind!r} is not supported; Plinth supports: PROMPT_ATTACK.",
                f"{path}.type",
            )
        if attack is not None:
            raise PolicyError(f"{path}.type: PROMPT_ATTACK is configured twice.", f"{path}.type")
        strength = cast(Strength, choice(required(item, "inputStrength", path), f"{path}.inputStrength",
                                          STRENGTHS))  # fmt: skip
        if choice(item.get("outputStrength", "NONE"), f"{path}.outputStrength", STRENGTHS) != "NONE":
            raise PolicyError(
                f"{path}.outputStrength: must be NONE for PROMPT_ATTACK (it applies to input only).",
                f"{path}.outputStrength",
            )
        data = choice(item.get("dataStrength", strength), f"{path}.dataStrength", STRENGTHS)
        attack = PromptAttackFilter(strength, cast(Strength, data))
    return attack


def _sensitive(body: Mapping[str, Any]) -> tuple[tuple[PIIEntity, ...], tuple[RegexRule, ...]]:
    from plinth.guard.pii_recognizers import SUPPORTED_TYPES  # here: Presidio is slow to import

    root = "sensitiveInformationPolicyConfig"
    section = optional_section(body, root, ("piiEntitiesConfig", "regexesConfig"))
    if section is None:
        return (), ()
    entities: dict[str, PIIEntity] = {}
    for path, item in list_items(section, f"{root}.piiEntitiesConfig", 0, len(SUPPORTED_TYPES)):
        item = json_object(item, path, ("type", "action", "inputAction", "outputAction", "validation"))
        kind = required(item, "type", path)
        if kind not in SUPPORTED_TYPES:
            raise PolicyError(
                f"{path}.type: PII type {kind!r} is not supported; supported: {', '.join(SUPPORTED_TYPES)}.",
                f"{path}.type",
            )
        if kind in entities:
            raise PolicyError(f"{path}.type: PII type {kind!r} is configured twice.", f"{path}.type")
        entities[kind] = PIIEntity(kind, *_actions(item, path), strict=_validation(item, path, kind))
    regexes: dict[str, RegexRule] = {}
    for path, item in list_items(section, f"{root}.regexesConfig", 0, 10):
        item = json_object(item, path, _REGEX_KEYS)
        name = text(item.get("name"), f"{path}.name", 1, 100)
        if name in regexes:
            raise PolicyError(f"{path}.name: regex {name!r} is configured twice.", f"{path}.name")
        pattern = text(item.get("pattern"), f"{path}.pattern", 1, 500)
        try:  # the PII detector runs custom patterns with the `regex` module (it has timeouts)
            regex.compile(pattern)
        except regex.error as exc:
            message = f"{path}.pattern: invalid regular expression: {exc}."
            raise PolicyError(message, f"{path}.pattern") from exc
        description = text(item.get("description", ""), f"{path}.description", 0, 1000)
        regexes[name] = RegexRule(name, pattern, *_actions(item, path), description=description)
    return tuple(entities.values()), tuple(regexes.values())


def _topics(body: Mapping[str, Any]) -> tuple[Topic, ...]:
    section = optional_section(body, "topicPolicyConfig", ("topicsConfig",))
    if section is None:
        return ()
    topics: dict[str, Topic] = {}
    for path, item in list_items(section, "topicPolicyConfig.topicsConfig", 1, 30):
        item = json_object(item, path, ("name", "definition", "examples", "type"))
        name = text(item.get("name"), f"{path}.name", 1, 100, _TOPIC_NAME)
        if name in topics:
            raise PolicyError(f"{path}.name: topic {name!r} is configured twice.", f"{path}.name")
        choice(required(item, "type", path), f"{path}.type", ("DENY",))
        examples = item.get("examples", [])
        if not isinstance(examples, list) or len(examples) > 5:
            raise PolicyError(f"{path}.examples: must be a list of at most 5 strings.", f"{path}.examples")
        topics[name] = Topic(
            name,
            text(item.get("definition"), f"{path}.definition", 1, 1000),
            tuple(text(e, f"{path}.examples.{i}", 1, 100) for i, e in enumerate(examples)),
        )
    return tuple(topics.values())


def _words(body: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    section = optional_section(body, "wordPolicyConfig", ("wordsConfig", "managedWordListsConfig"))
    if section is None:
        return (), ()
    words: list[str] = []
    for path, item in list_items(section, "wordPolicyConfig.wordsConfig", 0, 10_000):
        words.append(text(json_object(item, path, ("text",)).get("text"), f"{path}.text", 1, 100))
    managed: list[str] = []
    for path, item in list_items(section, "wordPolicyConfig.managedWordListsConfig", 0, 1):
        item = json_object(item, path, ("type",))
        managed.append(choice(required(item, "type", path), f"{path}.type", ("PROFANITY",)))
    if not words and not managed:
        raise PolicyError("wordPolicyConfig: give wordsConfig or managedWordListsConfig.", "wordPolicyConfig")
    return tuple(dict.fromkeys(words)), tuple(managed)


def _grounding(body: Mapping[str, Any]) -> tuple[float | None, float | None]:
    section = optional_section(body, "contextualGroundingPolicyConfig", ("filtersConfig",))
    if section is None:
        return None, None
    thresholds: dict[str, float] = {}
    for path, item in list_items(section, "contextualGroundingPolicyConfig.filtersConfig", 1, 2):
        item = json_object(item, path, ("type", "threshold"))
        kind = choice(required(item, "type", path), f"{path}.type", ("GROUNDING", "RELEVANCE"))
        if kind in thresholds:
            raise PolicyError(f"{path}.type: {kind} is configured twice.", f"{path}.type")
        value = required(item, "threshold", path)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_THRESHOLD:
            raise PolicyError(
                f"{path}.threshold: must be a number from 0 to {MAX_THRESHOLD}, got {value!r}.",
                f"{path}.threshold",
            )
        thresholds[kind] = float(value)
    return thresholds.get("GROUNDING"), thresholds.get("RELEVANCE")


def _message(body: Mapping[str, Any], key: str) -> str:
    return text(body.get(key, DEFAULT_BLOCKED_MESSAGE), key, 1, 500)


def _actions(item: Mapping[str, Any], path: str) -> tuple[PIIAction, PIIAction]:
    """Bedrock's ``action`` with its optional per-direction ``inputAction``/``outputAction`` overrides."""
    action = choice(required(item, "action", path), f"{path}.action", PII_ACTIONS)
    return (
        cast(PIIAction, choice(item.get("inputAction", action), f"{path}.inputAction", PII_ACTIONS)),
        cast(PIIAction, choice(item.get("outputAction", action), f"{path}.outputAction", PII_ACTIONS)),
    )


def _validation(item: Mapping[str, Any], path: str, kind: str) -> bool:
    """Plinth's per-entity ``validation``: LENIENT (the default) matches on shape, STRICT adds checksums."""
    from plinth.guard.pii_recognizers import LENIENT_RECOGNIZERS

    if "validation" not in item:
        return False
    if kind not in LENIENT_RECOGNIZERS:
        message = f"{path}.validation: only {', '.join(LENIENT_RECOGNIZERS)} have a validation choice."
        raise PolicyError(message, f"{path}.validation")
    return choice(item["validation"], f"{path}.validation", ("LENIENT", "STRICT")) == "STRICT"


def _action_json(base: dict[str, Any], rule: PIIEntity | RegexRule) -> dict[str, Any]:
    base["action"] = rule.input_action
    if rule.output_action != rule.input_action:
        base["outputAction"] = rule.output_action
    return base


def builtin_policy() -> GuardrailPolicy:
    """The policy used where nobody configured one (``plinth guard check`` with no guardrail and no
    tenant default): prompt attacks at MEDIUM, and the common PII types anonymized."""
    pii = ("EMAIL", "PHONE", "CREDIT_DEBIT_CARD_NUMBER", "INTERNATIONAL_BANK_ACCOUNT_NUMBER",
           "US_SOCIAL_SECURITY_NUMBER", "AWS_ACCESS_KEY", "AWS_SECRET_KEY", "API_TOKEN")  # fmt: skip
    return GuardrailPolicy.from_bedrock(
        {
            "name": "plinth-builtin",
            "contentPolicyConfig": {"filtersConfig": [{"type": "PROMPT_ATTACK", "inputStrength": "MEDIUM"}]},
            "sensitiveInformationPolicyConfig": {
                "piiEntitiesConfig": [{"type": t, "action": "ANONYMIZE"} for t in pii]
            },
        }
    )
