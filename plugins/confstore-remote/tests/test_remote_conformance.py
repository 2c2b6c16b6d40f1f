"""The whole conformance suite through a real server on loopback backed by SQLite."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
from confstore_remote import RemoteConfigStore
from remote_test_support import FAST_RETRY, RemoteFactory

from confstore import ConfigStore
from confstore.testing import ConfigStoreTests, ReopenConfigStore

pytest_plugins = ["confstore.testing"]


@pytest.fixture
async def config_store(make_remote: RemoteFactory) -> ConfigStore:
    return await make_remote()


@pytest.fixture
async def config_store_peer(make_remote: RemoteFactory) -> ConfigStore:
    return await make_remote()


@pytest.fixture
def reopen_config_store(make_remote: RemoteFactory) -> ReopenConfigStore:
    async def reopen() -> ConfigStore:
        return await make_remote()

    return reopen


@pytest.fixture
async def unreachable_config_store() -> AsyncIterator[ConfigStore]:
    """A remote store for a closed port on 127.0.0.1 (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = RemoteConfigStore(
        f"http://127.0.0.1:{port}", token="cst_unused", retry=FAST_RETRY, timeout=1.0
    )
    yield store
    await store.close()


class TestRemoteStoreThroughServer(ConfigStoreTests):
    """A fresh server and SQLite file per test; the peer is a second remote store on it."""

    hypothesis_max_examples = 5
