"""The ``confstore`` command-line tool (console script ``confstore = confstore.cli:main``)."""

from ._app import main as main

__all__ = ["main"]
