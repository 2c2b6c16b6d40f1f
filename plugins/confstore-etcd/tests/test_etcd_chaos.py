"""Real failures on a real cluster: 32 writers while the leader is SIGKILLed and restarted and a
follower is stopped; nothing acknowledged is lost or duplicated, versions stay contiguous."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import uuid

import pytest
from confstore_etcd import EtcdConfigStore
from confstore_etcd.cluster import EtcdCluster

from confstore import ConfigStoreError, open_store

WRITERS = 32
HANDLES = 4  # stores, as four hosts would have
KEYS = 8
PHASE_WRITES = 40  # acknowledged writes to wait for in each phase of the test
TENANT = "chaos"


class Writers:
    """32 tasks writing tokens to 8 keys through 4 handles until told to stop."""

    def __init__(self, handles: list[EtcdConfigStore]) -> None:
        self.handles = handles
        self.acknowledged: dict[str, dict[int, str]] = {f"k{n}": {} for n in range(KEYS)}
        self.failed: dict[str, set[str]] = {f"k{n}": set() for n in range(KEYS)}
        self.errors: list[ConfigStoreError] = []
        self.count = 0
        self._stop = asyncio.Event()
        self._progress = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._write(number)) for number in range(WRITERS)]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    async def wait_for(self, more: int, timeout: float = 60) -> None:
        """Wait until ``more`` further writes were acknowledged (failing if any writer died)."""
        target = self.count + more
        async with asyncio.timeout(timeout):
            while self.count < target:
                self._progress.clear()
                await self._progress.wait()
                for task in self._tasks:
                    if task.done():
                        task.result()

    async def _write(self, number: int) -> None:
        store = self.handles[number % HANDLES]
        config_key = f"k{number % KEYS}"
        sequence = 0
        while not self._stop.is_set():
            token = f"w{number}-{sequence}"
            sequence += 1
            try:
                entry = await store.set_config(TENANT, "agent", "svc", config_key, {"t": token})
            except ConfigStoreError as exc:
                self.failed[config_key].add(token)
                self.errors.append(exc)
                continue
            assert entry.version not in self.acknowledged[config_key], (
                "a version acknowledged twice"
            )
            self.acknowledged[config_key][entry.version] = token
            self.count += 1
            self._progress.set()


@pytest.mark.slow
async def test_writers_survive_a_leader_kill_and_a_stopped_follower(
    own_cluster: EtcdCluster,
) -> None:
    cluster = own_cluster
    url = cluster.store_url(prefix=f"chaos-{uuid.uuid4().hex[:8]}/", timeout="2")
    async with contextlib.AsyncExitStack() as stack:
        handles = [await stack.enter_async_context(open_store(url)) for _ in range(HANDLES)]
        await _chaos(cluster, url, handles)  # type: ignore[arg-type]


async def _chaos(cluster: EtcdCluster, url: str, handles: list[EtcdConfigStore]) -> None:
    watcher = handles[0]
    cursor = await watcher.current_cursor()
    writers = Writers(handles)
    writers.start()
    try:
        await writers.wait_for(PHASE_WRITES)
        old_leader = await asyncio.to_thread(cluster.leader)
        cluster.kill(old_leader)  # SIGKILL
        new_leader = await cluster.wait_for_new_leader(old_leader)
        await writers.wait_for(PHASE_WRITES)
        cluster.start_member(old_leader, wait=False)
        await cluster.wait_serving(old_leader)
        await writers.wait_for(PHASE_WRITES)

        leader = await _leader(cluster)
        follower = next(name for name in cluster.members if name != leader)
        cluster.kill(follower, signal.SIGTERM)
        await writers.wait_for(PHASE_WRITES)
        cluster.start_member(follower, wait=False)
        await cluster.wait_serving(follower)
        await writers.wait_for(PHASE_WRITES)
    finally:
        await writers.stop()

    assert new_leader != old_leader
    async with open_store(url) as checker:
        for config_key, acknowledged in writers.acknowledged.items():
            history = await checker.get_config_history(TENANT, "agent", "svc", config_key, 10_000)
            stored = {entry.version: entry.config_value["t"] for entry in history}
            assert sorted(stored) == list(range(1, len(stored) + 1)), f"gap in {config_key}"
            assert len(set(stored.values())) == len(stored), f"a write applied twice: {config_key}"
            for version, token in acknowledged.items():
                assert stored.get(version) == token, f"{config_key} v{version} lost"
            unacknowledged = set(stored.values()) - set(acknowledged.values())
            assert unacknowledged <= writers.failed[config_key], "a write nobody made"
        # The feed of a handle that lived through it all, and etcd's history replayed for a
        # new one, report every acknowledged version.
        for handle in (watcher, checker):
            reported = await _reported(handle, cursor)
            for config_key, acknowledged in writers.acknowledged.items():
                assert set(acknowledged) <= reported[config_key]
    assert writers.count >= 5 * PHASE_WRITES


async def _leader(cluster: EtcdCluster) -> str:
    return await asyncio.to_thread(cluster.leader)


async def _reported(store: EtcdConfigStore | object, cursor: str) -> dict[str, set[int]]:
    assert isinstance(store, EtcdConfigStore)
    reported: dict[str, set[int]] = {f"k{n}": set() for n in range(KEYS)}
    while True:
        batch = await store.changes_since(cursor)
        for change in batch.changes:
            reported[change.key.config_key].add(change.version)
        cursor = batch.cursor
        if not batch.has_more:
            return reported
