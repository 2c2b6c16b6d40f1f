"""A SQLite store's tables read directly, for tests that compare two databases."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

# The change feed without commit times (which differ between two runs).
CHANGES = (
    "SELECT seq, tenant_id, scope, service, config_key, kind, version "
    "FROM config_changes ORDER BY seq"
)


def table_rows(path: Path, *queries: str) -> list[list[Any]]:
    """The rows of each query on the database at ``path``."""
    connection = sqlite3.connect(path)
    try:
        return [connection.execute(query).fetchall() for query in queries]
    finally:
        connection.close()
