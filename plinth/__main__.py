"""``python -m plinth`` runs the CLI."""

from plinth.cli import app

app(prog_name="plinth")
