"""Fixtures of the manager tests: a fresh store and manager per test, no process-wide manager."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from manager_stores import SwitchableStore

from confstore import ConfigManager, MemoryConfigStore, reset_config_manager

# Short enough that tests waiting on the feed stay fast; the default (1 s) is tested separately.
FAST_POLL_INTERVAL = 0.05


@pytest.fixture(autouse=True)
async def no_process_wide_manager() -> AsyncIterator[None]:
    await reset_config_manager()
    yield
    await reset_config_manager()


@pytest.fixture
def store() -> MemoryConfigStore:
    return MemoryConfigStore()


@pytest.fixture
async def manager(store: MemoryConfigStore) -> AsyncIterator[ConfigManager]:
    async with ConfigManager(store, poll_interval=FAST_POLL_INTERVAL) as manager:
        yield manager


@pytest.fixture
def switchable() -> SwitchableStore:
    return SwitchableStore()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'config.db'}"
