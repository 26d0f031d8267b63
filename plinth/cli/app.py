"""The ``plinth`` entry point: the root command and its global options; it imports every command.

Each command turns its flags into :class:`~plinth.config.Settings` keyword arguments (flags left out do
not override ``plinth.toml`` or ``PLINTH_*``) and calls one function. Heavy modules (torch, the server,
SQLAlchemy) are imported inside commands so ``plinth --help`` stays fast. Commands never import this
module (LitGPT's ``__main__`` pattern): what they share is in :mod:`plinth.cli.common`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from plinth import __version__
from plinth.cli.adapters import adapters_app
from plinth.cli.agent import agent_app
from plinth.cli.common import ConfigFile, DataDir
from plinth.cli.eval import eval_app
from plinth.cli.guard import guard_app
from plinth.cli.kb import kb_app
from plinth.cli.keys import keys_app
from plinth.cli.model import model_app
from plinth.cli.serve import demo, serve
from plinth.cli.sql import data_app, sql_app
from plinth.cli.tenants import tenants_app
from plinth.cli.tune import tune

__all__ = ["app"]

app = typer.Typer(name="plinth", help="Self-hosted generative-AI platform.", no_args_is_help=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"plinth {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    data_dir: DataDir = None,
    config: ConfigFile = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Self-hosted generative-AI platform: serving, adapters, knowledge bases, SQL, guardrails."""
    ctx.obj = {"data_dir": data_dir, "config": config}


app.add_typer(model_app, name="model")
app.add_typer(keys_app, name="keys")
app.add_typer(tenants_app, name="tenants")
app.command()(serve)
app.command()(demo)
app.command()(tune)
app.add_typer(adapters_app, name="adapters")
app.add_typer(kb_app, name="kb")
app.add_typer(data_app, name="data")
app.add_typer(sql_app, name="sql")
app.add_typer(guard_app, name="guard")
app.add_typer(agent_app, name="agent")
app.add_typer(eval_app, name="eval")
