"""The memory store runs the conformance suite exactly as a third-party store would."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from confstore import ConfigStore, open_store
from confstore.testing import ConfigStoreTests, ReopenConfigStore, store_handles

pytest_plugins = ["confstore.testing"]


@pytest.fixture
def memory_url() -> str:
    """A named memory store: every handle opened with this URL shares its data."""
    return f"memory://conformance-{uuid.uuid4().hex}"


@pytest.fixture
async def config_store(memory_url: str) -> AsyncIterator[ConfigStore]:
    async with open_store(memory_url) as store:
        yield store


@pytest.fixture
async def config_store_peer(memory_url: str) -> AsyncIterator[ConfigStore]:
    async with store_handles(memory_url) as open_handle:
        yield await open_handle()


@pytest.fixture
async def reopen_config_store(memory_url: str) -> AsyncIterator[ReopenConfigStore]:
    async with store_handles(memory_url) as open_handle:
        yield open_handle


class TestNamedMemoryStore(ConfigStoreTests):
    """memory://NAME: shared by handles in this process, so the peer and reopen tests run."""


class TestPrivateMemoryStore(ConfigStoreTests):
    """memory://: private and not persistent, so the peer and reopen tests skip, with reasons."""

    hypothesis_max_examples = 10

    @pytest.fixture
    async def config_store(self) -> AsyncIterator[ConfigStore]:
        async with open_store("memory://") as store:
            yield store
