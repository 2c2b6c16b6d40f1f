"""Fixtures of the confstore-elasticsearch tests: a fresh in-process emulator and stores on it."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from confstore_elasticsearch import ElasticsearchConfigStore
from confstore_elasticsearch.emulator import ElasticsearchEmulator, Flavor

from confstore.http import RetryPolicy

StoreFactory = Callable[..., Awaitable[ElasticsearchConfigStore]]


@pytest.fixture
def es_flavor() -> Flavor:
    """Which server the emulator plays; test classes override it to run as OpenSearch."""
    return "elasticsearch"


@pytest.fixture
async def es_emulator(es_flavor: Flavor) -> AsyncIterator[ElasticsearchEmulator]:
    async with ElasticsearchEmulator(flavor=es_flavor, seed=1234) as emulator:
        yield emulator


@pytest.fixture
def es_retry() -> RetryPolicy:
    # Fast retries keep fault tests quick; many attempts keep injected faults from exhausting them.
    return RetryPolicy(attempts=10, base_delay=0.001, max_delay=0.02)


@pytest.fixture
async def make_es_store(
    es_emulator: ElasticsearchEmulator, es_retry: RetryPolicy, es_flavor: Flavor
) -> AsyncIterator[StoreFactory]:
    """Open initialised stores on the emulator (each one is another "host"); closes them all."""
    opened: list[ElasticsearchConfigStore] = []

    async def make(**options: Any) -> ElasticsearchConfigStore:
        options.setdefault("retry", es_retry)
        options.setdefault("timeout", 5.0)
        options.setdefault("flavor", es_flavor)
        store = ElasticsearchConfigStore(es_emulator.url, **options)
        await store.initialize()
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


@pytest.fixture
async def unreachable_es_store() -> AsyncIterator[ElasticsearchConfigStore]:
    """A store (not initialised) whose cluster cannot be reached: a port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    retry = RetryPolicy(attempts=2, base_delay=0.001, max_delay=0.001)
    store = ElasticsearchConfigStore(f"http://127.0.0.1:{port}", retry=retry, timeout=1.0)
    yield store
    await store.close()
