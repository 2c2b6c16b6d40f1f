"""The whole conformance suite on a real three-member etcd cluster (or CONFSTORE_TEST_ETCD_URL)."""

from __future__ import annotations

import pytest
from confstore_etcd import EtcdConfigStore

from confstore import ConfigStore
from confstore.testing import ConfigStoreTests, ReopenConfigStore

pytest_plugins = ["confstore.testing"]


class TestEtcdStore(ConfigStoreTests):
    """Every test has its own key prefix; the peer is a second handle (a second "host")."""

    hypothesis_max_examples = 8

    @pytest.fixture
    async def config_store(self, make_etcd_store) -> ConfigStore:  # type: ignore[no-untyped-def]
        store: EtcdConfigStore = await make_etcd_store()
        return store

    @pytest.fixture
    async def config_store_peer(self, make_etcd_store) -> ConfigStore:  # type: ignore[no-untyped-def]
        store: EtcdConfigStore = await make_etcd_store()
        return store

    @pytest.fixture
    def unreachable_config_store(self, unreachable_etcd_store) -> ConfigStore:  # type: ignore[no-untyped-def]
        store: ConfigStore = unreachable_etcd_store
        return store

    @pytest.fixture
    def reopen_config_store(self, make_etcd_store) -> ReopenConfigStore:  # type: ignore[no-untyped-def]
        async def reopen() -> ConfigStore:
            store: ConfigStore = await make_etcd_store()
            return store

        return reopen
