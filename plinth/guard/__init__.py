"""Guardrails: prompt-attack, PII, denied-topic, word, grounding and canary checks on every path."""
