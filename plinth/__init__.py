"""Plinth: a self-hosted generative-AI platform in one process.

Multi-tenant LLM serving with per-request LoRA adapters, knowledge bases, ask-your-data SQL and
guardrails, behind an OpenAI-compatible API. Start with ``plinth --help``.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
