"""The whole conformance suite against a real PostgreSQL server, with no skips."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from confstore import ConfigStore
from confstore.testing import ConfigStoreTests, ReopenConfigStore, store_handles

pytest_plugins = ["confstore.testing"]


class TestPostgresStore(ConfigStoreTests):
    """Each test has its own schema on the session's server; the peer is a second store
    (its own pool) on the same schema, as another process would be."""

    hypothesis_max_examples = 10

    @pytest.fixture
    def config_store(self, pg_store: ConfigStore) -> ConfigStore:
        return pg_store

    @pytest.fixture
    async def config_store_peer(self, store_url: str) -> AsyncIterator[ConfigStore]:
        async with store_handles(store_url) as open_handle:
            yield await open_handle()

    @pytest.fixture
    async def reopen_config_store(self, store_url: str) -> AsyncIterator[ReopenConfigStore]:
        async with store_handles(store_url) as open_handle:
            yield open_handle

    @pytest.fixture
    def unreachable_config_store(self, unreachable_pg_store: ConfigStore) -> ConfigStore:
        return unreachable_pg_store
