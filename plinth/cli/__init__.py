"""The ``plinth`` command line: thin wrappers over library functions (``plinth = "plinth.cli:app"``).

:mod:`plinth.cli.app` is the entry point and imports every command module; commands import shared
helpers from :mod:`plinth.cli.common`, never the entry point, so there is no import cycle.
"""

from plinth.cli.app import app

__all__ = ["app"]
