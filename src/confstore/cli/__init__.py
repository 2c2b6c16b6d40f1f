"""The ``confstore`` command-line tool (the console script runs ``main``: see _confstore_cli)."""

from ._app import main as main

__all__ = ["main"]
