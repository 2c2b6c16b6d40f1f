"""The SQLite store runs the conformance suite exactly as a third-party store would."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from confstore import ConfigStore, open_store
from confstore.testing import ConfigStoreTests, ReopenConfigStore, store_handles

pytest_plugins = ["confstore.testing"]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'config.db'}"


@pytest.fixture
async def config_store(sqlite_url: str) -> AsyncIterator[ConfigStore]:
    async with open_store(sqlite_url) as store:
        yield store


@pytest.fixture
async def config_store_peer(sqlite_url: str) -> AsyncIterator[ConfigStore]:
    async with store_handles(sqlite_url) as open_handle:
        yield await open_handle()


@pytest.fixture
async def reopen_config_store(sqlite_url: str) -> AsyncIterator[ReopenConfigStore]:
    async with store_handles(sqlite_url) as open_handle:
        yield open_handle


@pytest.fixture
def unreachable_config_store(tmp_path: Path) -> ConfigStore:
    """A store on a path SQLite cannot open: a directory."""
    directory = tmp_path / "a-directory-not-a-database"
    directory.mkdir()
    return open_store(f"sqlite:///{directory}")


class TestSQLiteFileStore(ConfigStoreTests):
    """A file: persistent and shared, so the peer and reopen tests run."""


class TestSQLiteMemoryStore(ConfigStoreTests):
    """sqlite://:memory: is private and not persistent: the peer and reopen tests skip."""

    hypothesis_max_examples = 10

    @pytest.fixture
    async def config_store(self) -> AsyncIterator[ConfigStore]:
        async with open_store("sqlite://:memory:") as store:
            yield store
