"""The conformance suite against the emulator in both flavours, with faults, and live clusters."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
from confstore_elasticsearch import ElasticsearchConfigStore
from confstore_elasticsearch.emulator import ElasticsearchEmulator, Flavor

from confstore import ConfigStore, open_store
from confstore.testing import ConfigStoreTests, ReopenConfigStore

pytest_plugins = ["confstore.testing"]

LIVE_ELASTICSEARCH_URL = os.environ.get("CONFSTORE_TEST_ELASTICSEARCH_URL")
LIVE_OPENSEARCH_URL = os.environ.get("CONFSTORE_TEST_OPENSEARCH_URL")


class EmulatedStoreTests(ConfigStoreTests):
    """A fresh emulator per test (periodic refresh off); the peer is a second store on it."""

    hypothesis_max_examples = 8

    @pytest.fixture
    async def config_store(self, make_es_store) -> ConfigStore:  # type: ignore[no-untyped-def]
        return await make_es_store()

    @pytest.fixture
    async def config_store_peer(self, make_es_store) -> ConfigStore:  # type: ignore[no-untyped-def]
        return await make_es_store()

    @pytest.fixture
    def unreachable_config_store(self, unreachable_es_store) -> ConfigStore:  # type: ignore[no-untyped-def]
        store: ConfigStore = unreachable_es_store
        return store

    @pytest.fixture
    def reopen_config_store(self, make_es_store) -> ReopenConfigStore:  # type: ignore[no-untyped-def]
        async def reopen() -> ConfigStore:
            store: ConfigStore = await make_es_store()
            return store

        return reopen


class TestElasticsearchStoreOnEmulator(EmulatedStoreTests):
    pass


class TestOpenSearchStoreOnEmulator(EmulatedStoreTests):
    @pytest.fixture
    def es_flavor(self) -> Flavor:
        return "opensearch"


class TestElasticsearchStoreWithInjectedFaults(EmulatedStoreTests):
    """10 % of requests answer 503 or 429 or lose their connection before or after being
    applied: the contract still holds."""

    hypothesis_max_examples = 4
    concurrent_writers = 20

    @pytest.fixture(autouse=True)
    def faults(self, es_emulator: ElasticsearchEmulator) -> None:
        es_emulator.random_fault_rate = 0.1


class TestOpenSearchStoreWithInjectedFaults(TestElasticsearchStoreWithInjectedFaults):
    @pytest.fixture
    def es_flavor(self) -> Flavor:
        return "opensearch"


class LiveStoreTests(ConfigStoreTests):
    """A real cluster; every test gets its own index prefix and deletes its indices afterwards.

    The URL may carry credentials and options: ``https://elastic:secret@localhost:9200?ca_file=...``.
    """

    hypothesis_max_examples = 4
    live_url: str | None = None
    flavor = "elasticsearch"

    @pytest.fixture
    async def live_stores(self) -> AsyncIterator[list[ElasticsearchConfigStore]]:
        opened: list[ElasticsearchConfigStore] = []
        yield opened
        if opened:
            for kind in ("heads", "versions"):
                name = opened[0].index_name(kind)
                await opened[0].http.request("DELETE", name, idempotent=True)
        for store in opened:
            await store.close()

    async def _open(self, stores: list[ElasticsearchConfigStore]) -> ElasticsearchConfigStore:
        assert self.live_url is not None
        url = (
            self.live_url
            if "+" in self.live_url.split("://")[0]
            else f"{self.flavor}+{self.live_url}"
        )
        index = stores[0].index_prefix if stores else f"confstore-test-{uuid.uuid4().hex[:12]}"
        store = open_store(url, index=index)
        assert isinstance(store, ElasticsearchConfigStore)
        stores.append(store)
        await store.initialize()
        return store

    @pytest.fixture
    async def config_store(self, live_stores: list[ElasticsearchConfigStore]) -> ConfigStore:
        return await self._open(live_stores)

    @pytest.fixture
    async def config_store_peer(
        self, config_store: ConfigStore, live_stores: list[ElasticsearchConfigStore]
    ) -> ConfigStore:
        return await self._open(live_stores)

    @pytest.fixture
    def reopen_config_store(
        self, config_store: ConfigStore, live_stores: list[ElasticsearchConfigStore]
    ) -> ReopenConfigStore:
        async def reopen() -> ConfigStore:
            return await self._open(live_stores)

        return reopen


@pytest.mark.skipif(
    LIVE_ELASTICSEARCH_URL is None,
    reason="set CONFSTORE_TEST_ELASTICSEARCH_URL (e.g. http://elastic:secret@localhost:9200, "
    "see the README) to run the conformance suite against a real Elasticsearch",
)
class TestElasticsearchStoreLive(LiveStoreTests):
    live_url = LIVE_ELASTICSEARCH_URL


@pytest.mark.skipif(
    LIVE_OPENSEARCH_URL is None,
    reason="set CONFSTORE_TEST_OPENSEARCH_URL (e.g. http://localhost:9201, see the README) "
    "to run the conformance suite against a real OpenSearch",
)
class TestOpenSearchStoreLive(LiveStoreTests):
    live_url = LIVE_OPENSEARCH_URL
    flavor = "opensearch"
