"""The document protocol on the reference MemoryDocumentStore passes the whole conformance suite.

The memory document store implements the primitives and nothing more, so this run tests
confstore.docstore's protocol itself: repair, unknown outcomes, purge and the change feed.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from confstore import ConfigStore
from confstore.docstore import DocumentConfigStore, MemoryDocumentStore
from confstore.testing import ConfigStoreTests, ReopenConfigStore

pytest_plugins = ["confstore.testing"]


@pytest.fixture
def area() -> str:
    return f"conformance-{uuid.uuid4().hex}"


@pytest.fixture
async def open_handle(area: str) -> AsyncIterator[ReopenConfigStore]:
    """Open initialised handles on the test's storage area (each one another "host")."""
    opened: list[ConfigStore] = []

    async def open_one() -> ConfigStore:
        store = DocumentConfigStore(MemoryDocumentStore(area))
        await store.initialize()
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        await store.close()


@pytest.fixture
async def config_store(open_handle: ReopenConfigStore) -> ConfigStore:
    return await open_handle()


@pytest.fixture
async def config_store_peer(open_handle: ReopenConfigStore) -> ConfigStore:
    return await open_handle()


@pytest.fixture
def reopen_config_store(open_handle: ReopenConfigStore) -> ReopenConfigStore:
    return open_handle


class TestMemoryDocumentStore(ConfigStoreTests):
    """DocumentConfigStore on MemoryDocumentStore: every test of the suite, none skipped but
    the unreachable-backend ones (memory is always reachable)."""
