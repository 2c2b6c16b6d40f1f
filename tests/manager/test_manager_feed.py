"""How the manager follows the change feed: an expired cursor resyncs, any other error does not,
and a store that is told of commits wakes the follower before the poll interval ends."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

import pytest
from manager_stores import SwitchableStore

from confstore import (
    BackendUnavailableError,
    ChangeBatch,
    ConfigEntry,
    ConfigManager,
    CursorExpiredError,
    InvalidConfigError,
    MemoryConfigStore,
    SystemConfig,
)
from confstore.backends.sqlite import SQLiteConfigStore

WAIT = 3.0


class FeedFailingStore(SwitchableStore):
    """Raises ``feed_error`` (once) from the next change-feed request."""

    def __init__(self) -> None:
        super().__init__()
        self.feed_error: Exception | None = None

    async def _changes_since(self, cursor: str | None, limit: int) -> ChangeBatch:
        error, self.feed_error = self.feed_error, None
        if error is not None:
            raise error
        return await super()._changes_since(cursor, limit)


async def test_expired_cursor_drops_the_cache_and_follows_from_the_present() -> None:
    store = FeedFailingStore()
    async with ConfigManager(store, poll_interval=60) as manager:
        await manager.get_system_config("default")
        reads = store.reads
        store.feed_error = CursorExpiredError("cursor older than the retained feed")
        await manager.refresh()
        await manager.get_system_config("default")
        assert store.reads == reads + 1


async def test_unrelated_invalid_config_error_is_not_taken_for_expiry() -> None:
    store = FeedFailingStore()
    async with ConfigManager(store, poll_interval=60) as manager:
        await manager.get_system_config("t")
        reads = store.reads
        store.feed_error = InvalidConfigError("something else is wrong")
        with pytest.raises(InvalidConfigError, match="something else"):
            await manager.refresh()
        await manager.get_system_config("t")
        assert store.reads == reads


class NotifyingStore(MemoryConfigStore):
    """A store that is told of its own commits, as LISTEN/NOTIFY or a watch stream would be."""

    def __init__(self) -> None:
        super().__init__()
        self.committed = asyncio.Event()

    async def wait_for_changes(self, cursor: str | None, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self.committed.wait()
                self.committed.clear()


async def test_a_store_that_is_told_of_commits_wakes_the_follower_before_the_poll() -> None:
    store = NotifyingStore()
    async with (
        ConfigManager(store, poll_interval=60) as manager,
        ConfigManager(store, poll_interval=60) as writer,
    ):
        assert (await manager.get_system_config("t")).llm_model != "woken"
        watch = manager.watch(tenant_id="t")
        await writer.set_system_config(SystemConfig(llm_model="woken"), tenant_id="t")
        store.committed.set()
        event = await asyncio.wait_for(anext(watch), WAIT)
        assert event.version == 1
        assert (await manager.get_system_config("t")).llm_model == "woken"


class BrokenListenerStore(SwitchableStore):
    """A store whose notification channel is broken: waiting for changes always fails."""

    async def wait_for_changes(self, cursor: str | None, timeout: float) -> None:
        raise BackendUnavailableError("listener connection lost")


async def test_a_failing_wait_for_changes_falls_back_to_polling() -> None:
    store = BrokenListenerStore()
    async with ConfigManager(store, poll_interval=0.01) as manager:
        await manager.get_system_config("t")
        await asyncio.wait_for(store.wait_for_polls(5), WAIT)


class GatedReadsStore(MemoryConfigStore):
    """Counts the latest-version reads in flight at once (each yields to the loop first)."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight = 0
        self.peak = 0
        self.fail_reads = False

    async def _get_config(self, key: Any, version: int | None) -> ConfigEntry | None:
        if version is not None:
            return await super()._get_config(key, version)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(0.001)
            if self.fail_reads:
                raise BackendUnavailableError("gated store: reads fail")
            return await super()._get_config(key, version)
        finally:
            self.in_flight -= 1


async def test_the_keys_a_batch_of_changes_touched_are_read_again_concurrently() -> None:
    store = GatedReadsStore()
    async with (
        ConfigManager(store, poll_interval=60) as manager,
        ConfigManager(store, poll_interval=60) as writer,
    ):
        tenants = [f"tenant-{number}" for number in range(40)]
        for tenant in tenants:
            await manager.get_system_config(tenant)
        for tenant in tenants:
            await writer.set_system_config(SystemConfig(llm_model=f"for-{tenant}"), tenant)
        store.peak = 0
        await manager.refresh()
        assert 1 < store.peak <= 16
        for tenant in tenants:
            assert (await manager.get_system_config(tenant)).llm_model == f"for-{tenant}"


async def test_a_failing_concurrent_read_again_raises_its_own_error_not_a_group() -> None:
    store = GatedReadsStore()
    async with (
        ConfigManager(store, poll_interval=60) as manager,
        ConfigManager(store, poll_interval=60) as writer,
    ):
        for tenant in ("a", "b", "c"):
            await manager.get_system_config(tenant)
            await writer.set_system_config(SystemConfig(llm_model="new"), tenant)
        store.fail_reads = True
        with pytest.raises(BackendUnavailableError, match="reads fail"):
            await manager.refresh()
        store.fail_reads = False
        await manager.refresh()
        assert (await manager.get_system_config("c")).llm_model == "new"


class ExpiringSQLiteStore(SQLiteConfigStore):
    """A real SQLite store whose next change-feed request, once ``expire`` is set, reports the
    cursor expired (as retention would, after trimming changes the manager had not read)."""

    expire = False

    async def _changes_since(self, cursor: str | None, limit: int) -> ChangeBatch:
        if self.expire:
            self.expire = False
            raise CursorExpiredError("cursor older than the retained feed")
        return await super()._changes_since(cursor, limit)


async def test_the_cursor_expired_warning_is_logged_once_the_cache_has_started_over(
    tmp_path: Path,
) -> None:
    """A reader acting on the warning at once (as an operator or a test would) reads the store,
    not the stale cache: the resync it announces has happened."""
    announced = asyncio.Event()

    class Announcement(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "cursor expired" in record.getMessage():
                announced.set()

    handler = Announcement()
    logging.getLogger("confstore.manager").addHandler(handler)
    path = tmp_path / "config.db"
    try:
        async with (
            SQLiteConfigStore(path) as writer,
            ExpiringSQLiteStore(path) as followed,
            ConfigManager(followed, poll_interval=60) as manager,
        ):
            await writer.set_config("t", "system", "system", "system_config", {"llm_model": "one"})
            await manager.refresh()
            assert (await manager.get_system_config("t")).llm_model == "one"
            followed.expire = True
            await writer.set_config("t", "system", "system", "system_config", {"llm_model": "two"})
            refresh = asyncio.create_task(manager.refresh())
            async with asyncio.timeout(WAIT):
                await announced.wait()
            assert (await manager.get_system_config("t")).llm_model == "two"
            await refresh
    finally:
        logging.getLogger("confstore.manager").removeHandler(handler)
