"""Plinth's HTTP server: the OpenAI-compatible API, SageMaker LMI, health and Prometheus metrics."""

from plinth.server.app import create_app, serve

__all__ = ["create_app", "serve"]
