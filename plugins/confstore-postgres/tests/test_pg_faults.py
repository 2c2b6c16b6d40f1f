"""Faults on a server of this module's own (it is killed): crashes, outages, recovery.

Always a throwaway cluster, even when CONFSTORE_TEST_POSTGRES_URL names a server: these tests
SIGKILL the postmaster and start it again.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Iterator

import asyncpg
import pytest
from confstore_postgres.cluster import TemporaryCluster
from pg_support import TEST_SETTINGS, holding_write_lock, wait_for_lock_waiters, with_options

from confstore import (
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    ConfigStoreError,
    open_store,
)

WRITERS = 64
KEYS = 4


@pytest.fixture(scope="module")
def cluster() -> Iterator[TemporaryCluster]:
    with TemporaryCluster(settings=TEST_SETTINGS) as cluster:
        yield cluster


@pytest.fixture
def fault_url(cluster: TemporaryCluster, schema_name: str) -> str:
    cluster.start()  # a previous test may have left it down
    return with_options(cluster.url(), schema=schema_name, timeout="5")


@pytest.fixture
def schema_name() -> str:
    return f"fault_{os.urandom(6).hex()}"


async def test_sigkill_of_the_postmaster_under_64_writers_loses_and_duplicates_nothing(
    cluster: TemporaryCluster, fault_url: str
) -> None:
    acknowledged: list[tuple[str, int, dict[str, int]]] = []
    failures: list[BaseException] = []
    stop = asyncio.Event()
    attempts = itertools.count()
    milestone = [200]  # acknowledged writes to wait for
    reached = asyncio.Event()

    async with open_store(fault_url, pool_size=16) as store:

        async def writer(number: int) -> None:
            config_key = f"k{number % KEYS}"
            while not stop.is_set():
                value = {"writer": number, "attempt": next(attempts)}
                try:
                    entry = await store.set_config("crash", "system", "svc", config_key, value)
                except ConfigStoreError as exc:
                    failures.append(exc)
                    await asyncio.sleep(0.01)
                else:
                    acknowledged.append((config_key, entry.version, value))
                    if len(acknowledged) >= milestone[0]:
                        reached.set()

        tasks = [asyncio.create_task(writer(number)) for number in range(WRITERS)]
        try:
            async with asyncio.timeout(60):
                await reached.wait()
            cluster.kill()
            await asyncio.sleep(0.3)  # writers meet the dead server for a while
            down_since = len(failures)
            reached.clear()
            milestone[0] = len(acknowledged) + 200
            cluster.start()
            async with asyncio.timeout(60):
                await reached.wait()
        finally:
            stop.set()
            await asyncio.gather(*tasks)

        assert len(failures) >= down_since > 0, "the crash went unnoticed"
        assert all(isinstance(failure, BackendError) for failure in failures)
        stored: dict[tuple[str, int], dict[str, int]] = {}
        for index in range(KEYS):
            history = await store.get_config_history(
                "crash", "system", "svc", f"k{index}", limit=100_000
            )
            versions = [entry.version for entry in history]
            assert versions == list(range(len(versions), 0, -1)), "a gap or a duplicate version"
            stored.update({(f"k{index}", entry.version): entry.config_value for entry in history})
    for config_key, version, value in acknowledged:
        assert stored[(config_key, version)] == value, "an acknowledged write was lost"
    attempts_stored = [value["attempt"] for value in stored.values()]
    assert len(attempts_stored) == len(set(attempts_stored)), "a write was stored twice"


async def test_a_server_that_is_down_gives_backend_errors_and_the_store_recovers(
    cluster: TemporaryCluster, fault_url: str
) -> None:
    async with open_store(fault_url) as store:
        await store.set_config("down", "system", "svc", "k", {"n": 1})
        cluster.stop(mode="immediate")
        assert await store.health_check() is False
        with pytest.raises(BackendUnavailableError):
            await store.get_config("down", "system", "svc", "k")
        with pytest.raises(BackendError):
            await store.set_config("down", "system", "svc", "k", {"n": 2})
        with pytest.raises(BackendUnavailableError):
            await store.changes_since(None)
        cluster.start()
        assert await store.health_check() is True
        entry = await store.set_config("down", "system", "svc", "k", {"n": 3})
        assert entry.version == 2
        assert (await store.get_config("down", "system", "svc", "k")) == entry


async def test_initialize_while_the_server_is_down_fails_then_works(
    cluster: TemporaryCluster, fault_url: str
) -> None:
    cluster.stop()
    store = open_store(fault_url)
    with pytest.raises(BackendUnavailableError):
        await store.initialize()
    cluster.start()
    async with store:
        assert (await store.set_config("up", "system", "svc", "k", {})).version == 1


async def test_a_batch_cut_off_by_a_crash_is_outcome_unknown_for_each_write_and_never_doubled(
    cluster: TemporaryCluster, fault_url: str
) -> None:
    """A batch in flight when the server dies, which stays down past the store's timeout: no
    write of it can learn whether it committed, so each raises BackendTimeoutError. A write sent
    meanwhile does not wait behind it: it fails at once, like any write to a server that is down."""
    first = ("cut", "system", "svc", "first")
    held = ("cut", "system", "svc", "held")
    async with open_store(with_options(fault_url, timeout="3")) as store:
        blockers = [await asyncpg.connect(cluster.url()) for _ in range(2)]
        try:
            async with holding_write_lock(blockers[1], held):
                async with holding_write_lock(blockers[0], first):
                    lone = asyncio.create_task(store.set_config(*first, {}))
                    await wait_for_lock_waiters(blockers[0], 1)
                    batch = [
                        asyncio.create_task(store.set_config("cut", "system", "svc", name, {}))
                        for name in ("a", "held", "b")
                    ]
                    await asyncio.sleep(0)  # each task runs to its queued write
                assert (await lone).version == 1
                await wait_for_lock_waiters(blockers[1], 1)  # the batch waits for "held"
                cluster.kill()
                with pytest.raises(BackendUnavailableError):
                    await store.set_config("cut", "system", "svc", "late", {})
                assert not any(task.done() for task in batch)
                outcomes = await asyncio.gather(*batch, return_exceptions=True)
        finally:
            for blocker in blockers:
                blocker.terminate()
        assert all(isinstance(outcome, BackendTimeoutError) for outcome in outcomes), outcomes
        assert all("unknown" in str(outcome) or "whether" in str(outcome) for outcome in outcomes)
        cluster.start()
        for name in ("a", "held", "b"):
            assert await store.get_config_history("cut", "system", "svc", name) == []
        assert (await store.set_config("cut", "system", "svc", "a", {})).version == 1
        assert [e.version for e in await store.get_config_history(*first)] == [1]
