"""GuardrailPolicy.from_bedrock: a full Bedrock body parses and round-trips; every invalid field is a
PolicyError naming that field."""

from __future__ import annotations

import copy

import pytest

from plinth.guard.policy import (
    DEFAULT_BLOCKED_MESSAGE,
    GuardrailPolicy,
    PIIEntity,
    PromptAttackFilter,
    RegexRule,
    Topic,
)
from plinth.guard.policy_fields import PolicyError

FULL = {
    "name": "support-bot",
    "description": "Customer support",
    "blockedInputMessaging": "I can't help with that.",
    "blockedOutputsMessaging": "The answer was withheld.",
    "contentPolicyConfig": {
        "filtersConfig": [{"type": "PROMPT_ATTACK", "inputStrength": "HIGH", "outputStrength": "NONE"}]
    },
    "sensitiveInformationPolicyConfig": {
        "piiEntitiesConfig": [
            {"type": "EMAIL", "action": "ANONYMIZE"},
            {"type": "US_SOCIAL_SECURITY_NUMBER", "action": "BLOCK", "outputAction": "ANONYMIZE"},
        ],
        "regexesConfig": [
            {"name": "order_id", "description": "Order ids", "pattern": r"ORD-\d{6}", "action": "ANONYMIZE"}
        ],  # fmt: skip
    },
    "topicPolicyConfig": {
        "topicsConfig": [
            {
                "name": "Investment advice",
                "definition": "Advice on buying stocks.",
                "examples": ["Should I buy Nvidia?"],
                "type": "DENY",
            }
        ]  # fmt: skip
    },
    "wordPolicyConfig": {
        "wordsConfig": [{"text": "frobnicate"}],
        "managedWordListsConfig": [{"type": "PROFANITY"}],
    },
    "contextualGroundingPolicyConfig": {
        "filtersConfig": [{"type": "GROUNDING", "threshold": 0.7}, {"type": "RELEVANCE", "threshold": 0.5}]
    },
    "detectorFailureMode": "OPEN",
}


def test_full_body_parses_into_every_field() -> None:
    policy = GuardrailPolicy.from_bedrock(FULL)
    assert policy.name == "support-bot" and policy.description == "Customer support"
    assert policy.blocked_input_messaging == "I can't help with that."
    assert policy.blocked_outputs_messaging == "The answer was withheld."
    assert policy.prompt_attack == PromptAttackFilter("HIGH", "HIGH")  # dataStrength defaults to input
    assert policy.pii == (
        PIIEntity("EMAIL", "ANONYMIZE", "ANONYMIZE"),
        PIIEntity("US_SOCIAL_SECURITY_NUMBER", "BLOCK", "ANONYMIZE"),
    )
    assert policy.regexes == (RegexRule("order_id", r"ORD-\d{6}", "ANONYMIZE", "ANONYMIZE", "Order ids"),)
    assert policy.topics == (
        Topic("Investment advice", "Advice on buying stocks.", ("Should I buy Nvidia?",)),
    )
    assert policy.words == ("frobnicate",) and policy.managed_word_lists == ("PROFANITY",)
    assert (policy.grounding_threshold, policy.relevance_threshold) == (0.7, 0.5)
    assert policy.failure_mode == "OPEN"


def test_round_trip_and_defaults() -> None:
    policy = GuardrailPolicy.from_bedrock(FULL)
    assert GuardrailPolicy.from_bedrock(policy.to_bedrock()) == policy
    minimal = GuardrailPolicy.from_bedrock({"name": "m"})
    assert minimal.blocked_input_messaging == DEFAULT_BLOCKED_MESSAGE
    assert minimal.failure_mode == "CLOSED" and minimal.prompt_attack is None and minimal.pii == ()
    assert GuardrailPolicy.from_bedrock(minimal.to_bedrock()) == minimal
    data = GuardrailPolicy.from_bedrock(
        {
            "name": "d",
            "contentPolicyConfig": {
                "filtersConfig": [{"type": "PROMPT_ATTACK", "inputStrength": "LOW", "dataStrength": "HIGH"}]
            },
        }  # fmt: skip
    )
    assert data.prompt_attack == PromptAttackFilter("LOW", "HIGH")
    assert hash(policy) == hash(GuardrailPolicy.from_bedrock(copy.deepcopy(FULL)))  # cache key
    strict = GuardrailPolicy.from_bedrock(_with(f"{PII}.1.validation", "STRICT"))
    assert strict.pii[1].strict and not policy.pii[1].strict
    assert GuardrailPolicy.from_bedrock(strict.to_bedrock()) == strict


def _with(path: str, value: object) -> dict:
    """FULL with the field at dotted ``path`` set to ``value`` (a missing sentinel deletes it)."""
    body = copy.deepcopy(FULL)
    parts = path.split(".")
    node: object = body
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]  # type: ignore[index]
    last = parts[-1]
    if value is _DELETE:
        del node[int(last) if isinstance(node, list) else last]  # type: ignore[arg-type, union-attr]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value  # type: ignore[index]
    return body


_DELETE = object()
PII = "sensitiveInformationPolicyConfig.piiEntitiesConfig"
REGEX = "sensitiveInformationPolicyConfig.regexesConfig"
TOPIC = "topicPolicyConfig.topicsConfig"
GROUND = "contextualGroundingPolicyConfig.filtersConfig"
ATTACK = "contentPolicyConfig.filtersConfig"

INVALID = [
    # (field to change, new value, param the error must name, words the message must contain)
    ("name", "", "name", "non-empty"),
    ("name", "has spaces", "name", "characters outside"),
    ("name", "x" * 51, "name", "at most 50"),
    ("name", _DELETE, "name", "non-empty"),
    ("kmsKeyId", "arn:aws:kms:...", "kmsKeyId", "unsupported field"),
    ("blockedInputMessaging", "", "blockedInputMessaging", "non-empty"),
    ("blockedOutputsMessaging", 7, "blockedOutputsMessaging", "string"),
    ("detectorFailureMode", "MAYBE", "detectorFailureMode", "CLOSED, OPEN"),
    ("contentPolicyConfig", [], "contentPolicyConfig", "JSON object"),
    (ATTACK, [], ATTACK, "1 to 6"),
    (f"{ATTACK}.0.type", "HATE", f"{ATTACK}.0.type", "supports: PROMPT_ATTACK"),
    (f"{ATTACK}.0.inputStrength", "EXTREME", f"{ATTACK}.0.inputStrength", "NONE, LOW, MEDIUM, HIGH"),
    (f"{ATTACK}.0.inputStrength", _DELETE, f"{ATTACK}.0.inputStrength", "required"),
    (f"{ATTACK}.0.outputStrength", "HIGH", f"{ATTACK}.0.outputStrength", "must be NONE"),
    (f"{ATTACK}.0.dataStrength", "high", f"{ATTACK}.0.dataStrength", "one of"),
    (f"{ATTACK}.0.inputModalities", ["TEXT"], f"{ATTACK}.0.inputModalities", "unsupported"),
    (f"{PII}.0.type", "NAME", f"{PII}.0.type", "US_SOCIAL_SECURITY_NUMBER"),
    (f"{PII}.1.type", "EMAIL", f"{PII}.1.type", "twice"),
    (f"{PII}.0.action", "MASK", f"{PII}.0.action", "BLOCK, ANONYMIZE, NONE"),
    (f"{PII}.0.action", _DELETE, f"{PII}.0.action", "required"),
    (f"{PII}.1.outputAction", "DROP", f"{PII}.1.outputAction", "one of"),
    (f"{PII}.0.validation", "STRICT", f"{PII}.0.validation", "only CREDIT_DEBIT_CARD_NUMBER"),
    (f"{PII}.1.validation", "LUHN", f"{PII}.1.validation", "LENIENT, STRICT"),
    (f"{REGEX}.0.pattern", "ORD-(\\d{6}", f"{REGEX}.0.pattern", "invalid regular expression"),
    (f"{REGEX}.0.pattern", "", f"{REGEX}.0.pattern", "non-empty"),
    (f"{REGEX}.0.name", "", f"{REGEX}.0.name", "non-empty"),
    (REGEX, "ORD-1", REGEX, "list"),
    (f"{TOPIC}.0.type", "ALLOW", f"{TOPIC}.0.type", "DENY"),
    (f"{TOPIC}.0.definition", "", f"{TOPIC}.0.definition", "non-empty"),
    (f"{TOPIC}.0.examples", ["a"] * 6, f"{TOPIC}.0.examples", "at most 5"),
    (f"{TOPIC}.0.name", "bad/name", f"{TOPIC}.0.name", "characters outside"),
    ("wordPolicyConfig.wordsConfig.0.text", "", "wordPolicyConfig.wordsConfig.0.text", "non-empty"),
    (
        "wordPolicyConfig.managedWordListsConfig.0.type",
        "SLURS",
        "wordPolicyConfig.managedWordListsConfig.0.type",
        "PROFANITY",
    ),  # fmt: skip
    (f"{GROUND}.0.threshold", 1.0, f"{GROUND}.0.threshold", "0 to 0.99"),
    (f"{GROUND}.0.threshold", -0.1, f"{GROUND}.0.threshold", "0 to 0.99"),
    (f"{GROUND}.0.threshold", True, f"{GROUND}.0.threshold", "number"),
    (f"{GROUND}.1.type", "GROUNDING", f"{GROUND}.1.type", "twice"),
    (f"{GROUND}.0.type", "FACTUALITY", f"{GROUND}.0.type", "GROUNDING, RELEVANCE"),
]


@pytest.mark.parametrize(
    ("path", "value", "param", "words"), INVALID, ids=[f"{p}={v!r}"[:60] for p, v, *_ in INVALID]
)
def test_invalid_fields_name_their_param(path: str, value: object, param: str, words: str) -> None:
    with pytest.raises(PolicyError) as err:
        GuardrailPolicy.from_bedrock(_with(path, value))
    assert err.value.param == param
    assert words in err.value.message


def test_body_must_be_an_object_and_words_need_content() -> None:
    with pytest.raises(PolicyError) as err:
        GuardrailPolicy.from_bedrock(["name"])
    assert err.value.param is None
    with pytest.raises(PolicyError) as err:
        GuardrailPolicy.from_bedrock({"name": "w", "wordPolicyConfig": {"wordsConfig": []}})
    assert err.value.param == "wordPolicyConfig"
