"""``plinth guard …``: check text against a guardrail, train and evaluate the prompt-attack classifier."""

from __future__ import annotations

import typer

guard_app = typer.Typer(help="Guardrails: check text, train and evaluate detectors.", no_args_is_help=True)
