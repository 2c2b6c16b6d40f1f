"""The conformance suite against the emulator (clean and with faults) and against a real Vespa."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator

import pytest
from confstore_vespa import VespaConfigStore
from confstore_vespa.emulator import VespaEmulator
from vespa_test_support import FAST_RETRY, StoreFactory

from confstore import ConfigStore
from confstore.testing import ConfigStoreTests, ReopenConfigStore

pytest_plugins = ["confstore.testing"]

LIVE_URL = os.environ.get("CONFSTORE_TEST_VESPA_URL")
NOT_HEALTH = ("get", "put", "update", "remove", "visit", "delete_where")
WRITES = ("put", "update", "remove", "delete_where")


@pytest.fixture
async def config_store(make_store: StoreFactory) -> ConfigStore:
    return await make_store()


@pytest.fixture
async def config_store_peer(make_store: StoreFactory) -> ConfigStore:
    return await make_store()


@pytest.fixture
def reopen_config_store(make_store: StoreFactory) -> ReopenConfigStore:
    async def reopen() -> ConfigStore:
        return await make_store()

    return reopen


@pytest.fixture
async def unreachable_config_store() -> AsyncIterator[ConfigStore]:
    """A store for a closed port on 127.0.0.1 (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = VespaConfigStore(f"http://127.0.0.1:{port}", retry=FAST_RETRY, timeout=1.0)
    yield store
    await store.close()


class TestVespaStoreOnEmulator(ConfigStoreTests):
    """A fresh emulator per test; the peer is a second store (another host) on it."""

    hypothesis_max_examples = 10


class TestVespaStoreWithInjectedFaults(ConfigStoreTests):
    """20 % of requests answer 503, 3 % lose their connection, and writes also lose it or time
    out after being applied (5 % and 3 %): the contract still holds."""

    hypothesis_max_examples = 5
    concurrent_writers = 20

    @pytest.fixture(autouse=True)
    def faults(self, vespa: VespaEmulator) -> None:
        vespa.add_fault("status", status=503, probability=0.2, operations=NOT_HEALTH)
        vespa.add_fault("drop_before", probability=0.03, operations=NOT_HEALTH)
        vespa.add_fault("drop_before", probability=0.05, operations=WRITES)
        vespa.add_fault("drop_after", probability=0.05, operations=WRITES)
        vespa.add_fault("status_after", status=504, probability=0.03, operations=WRITES)


@pytest.mark.skipif(
    LIVE_URL is None,
    reason="set CONFSTORE_TEST_VESPA_URL (e.g. http://localhost:8080) to a Vespa 8 with "
    "schemas/vespa deployed to run the conformance suite against it",
)
class TestVespaStoreLive(ConfigStoreTests):
    """A real Vespa; each test gets its own namespace, so it starts empty and cleans up."""

    hypothesis_max_examples = 5
    change_feed_latency = 2.0

    @pytest.fixture
    def namespace(self) -> str:
        return f"test-{uuid.uuid4().hex[:12]}"

    async def _open(self, namespace: str, opened: list[VespaConfigStore]) -> VespaConfigStore:
        assert LIVE_URL is not None
        store = VespaConfigStore(LIVE_URL, namespace=namespace, retry=FAST_RETRY)
        await store.initialize()
        opened.append(store)
        return store

    @pytest.fixture
    async def live_stores(self, namespace: str) -> AsyncIterator[list[VespaConfigStore]]:
        opened: list[VespaConfigStore] = []
        yield opened
        cleaner = VespaConfigStore(LIVE_URL or "", namespace=namespace)
        await cleaner.purge_namespace()
        await cleaner.close()
        for store in opened:
            await store.close()

    @pytest.fixture
    async def config_store(
        self, namespace: str, live_stores: list[VespaConfigStore]
    ) -> ConfigStore:
        return await self._open(namespace, live_stores)

    @pytest.fixture
    async def config_store_peer(
        self, namespace: str, live_stores: list[VespaConfigStore]
    ) -> ConfigStore:
        return await self._open(namespace, live_stores)

    @pytest.fixture
    def reopen_config_store(
        self, namespace: str, live_stores: list[VespaConfigStore]
    ) -> ReopenConfigStore:
        async def reopen() -> ConfigStore:
            return await self._open(namespace, live_stores)

        return reopen
