"""Fixtures of the confstore-etcd tests: a real three-member etcd cluster and stores on it.

The cluster is started once per test process (free loopback ports, temporary directories,
stopped by pid at exit). ``CONFSTORE_TEST_ETCD_URL`` (``etcd+http://h1:2379,h2:2379`` or
``http://h1:2379,...``, a cluster without auth: the protocol tests put a plain HTTP proxy in
front of one member) points the store tests at an existing cluster instead; every test uses a
prefix of its own. Tests that kill members, compact the history or turn auth on always run on
clusters of their own.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from confstore_etcd import EtcdConfigStore
from confstore_etcd.cluster import EtcdCluster
from etcd_test_support import free_port

from confstore import open_store
from confstore.http import RetryPolicy

LIVE_URL = os.environ.get("CONFSTORE_TEST_ETCD_URL")

StoreFactory = Callable[..., Awaitable[EtcdConfigStore]]


def as_store_url(url: str) -> str:
    return url if url.startswith("etcd+") else f"etcd+{url}"


@pytest.fixture(scope="session")
def etcd_url() -> str:
    """The store URL (without options) of the cluster the store tests use."""
    if LIVE_URL:
        return as_store_url(LIVE_URL)
    return EtcdCluster.shared().store_url()


@pytest.fixture(scope="session")
def own_cluster() -> Iterator[EtcdCluster]:
    """A three-member cluster for the tests that kill members or compact history (never the
    CONFSTORE_TEST_ETCD_URL one)."""
    with EtcdCluster(3) as cluster:
        yield cluster


@pytest.fixture
def etcd_prefix() -> str:
    """A key prefix of this test's own: one prefix is one independent store."""
    return f"test-{uuid.uuid4().hex[:12]}/"


@pytest.fixture
async def make_etcd_store(etcd_url: str, etcd_prefix: str) -> AsyncIterator[StoreFactory]:
    """Open initialised stores (each one another "host") on the test's prefix; closes them."""
    opened: list[EtcdConfigStore] = []

    async def make(url: str | None = None, **options: Any) -> EtcdConfigStore:
        options.setdefault("prefix", etcd_prefix)
        store = open_store(url or etcd_url, **options)
        assert isinstance(store, EtcdConfigStore)
        opened.append(store)
        await store.initialize()
        return store

    yield make
    for store in opened:
        await store.close()


@pytest.fixture
async def unreachable_etcd_store() -> AsyncIterator[EtcdConfigStore]:
    """A store (not initialised) whose members cannot be reached: ports nothing listens on."""
    store = EtcdConfigStore(
        [f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"],
        retry=RetryPolicy(attempts=4, base_delay=0.001, max_delay=0.001),
        timeout=1.0,
    )
    yield store
    await store.close()
