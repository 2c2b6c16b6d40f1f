"""Fixtures shared by the SQLite store's tests: a file path of its own and a store open on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from confstore import SQLiteConfigStore


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A database file not created yet, alone in a directory of its own (its ``-wal`` and
    ``-shm`` files appear beside it, and a test may change the directory's permissions)."""
    (tmp_path / "store").mkdir()
    return tmp_path / "store" / "config.db"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SQLiteConfigStore]:
    """A SQLite store with the default options, open on ``db_path``, closed after the test."""
    async with SQLiteConfigStore(db_path) as opened:
        yield opened
