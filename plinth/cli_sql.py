"""``plinth data …`` and ``plinth sql …``: cost datasets and vetted SQL over them (work in progress)."""

from __future__ import annotations

import typer

data_app = typer.Typer(help="Cost and usage datasets (generate, register).", no_args_is_help=True)
sql_app = typer.Typer(help="Ask questions of a dataset, or run vetted SQL.", no_args_is_help=True)
