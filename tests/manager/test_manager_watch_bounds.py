"""ConfigManager.watch() queues are bounded: a consumer that falls behind gets one resync event in
place of what it missed, then the later changes; an expired feed cursor resyncs every watch."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest
from test_manager_feed import FeedFailingStore

from confstore import (
    ConfigChangeEvent,
    ConfigManager,
    ConfigResyncEvent,
    ConfigWatch,
    CursorExpiredError,
    InvalidConfigError,
    MemoryConfigStore,
    SystemConfig,
)

WAIT = 3.0


async def write_models(manager: ConfigManager, *names: str) -> None:
    for name in names:
        await manager.set_system_config(SystemConfig(llm_model=name), "acme")


async def next_event(watch: object) -> ConfigChangeEvent | ConfigResyncEvent:
    return await asyncio.wait_for(anext(watch), WAIT)  # type: ignore[call-overload]


async def test_a_slow_consumer_gets_the_buffered_events_then_one_resync_then_later_ones(
    store: MemoryConfigStore,
) -> None:
    async with ConfigManager(store, poll_interval=60) as manager:
        watch = manager.watch(max_buffer=3)
        await write_models(manager, *(f"m{number}" for number in range(10)))
        await manager.refresh()
        buffered = [await next_event(watch) for _ in range(3)]
        assert [event.version for event in buffered] == [1, 2, 3]  # type: ignore[union-attr]
        resync = await next_event(watch)
        assert resync == ConfigResyncEvent("overflow", 7, None, None)
        await write_models(manager, "after")
        await manager.refresh()
        later = await next_event(watch)
        assert isinstance(later, ConfigChangeEvent)
        assert later.version == 11
        assert (await manager.get_system_config("acme")).llm_model == "after"


async def test_a_watch_never_holds_more_than_its_buffer(store: MemoryConfigStore) -> None:
    async with ConfigManager(store, poll_interval=60) as manager:
        watch = manager.watch(tenant_id="acme", max_buffer=5)
        for batch in range(4):
            await write_models(manager, *(f"b{batch}-{n}" for n in range(50)))
            await manager.refresh()
            assert watch._receive.statistics().current_buffer_used <= 5
        events = [await next_event(watch) for _ in range(6)]
        assert isinstance(events[-1], ConfigResyncEvent)
        assert events[-1].dropped == 200 - 5
        assert events[-1].tenant_id == "acme"


async def test_a_consumer_that_keeps_up_never_sees_a_resync(store: MemoryConfigStore) -> None:
    async with ConfigManager(store, poll_interval=60) as manager:
        watch = manager.watch(max_buffer=2)
        for number in range(20):
            await write_models(manager, f"m{number}")
            await manager.refresh()
            event = await next_event(watch)
            assert isinstance(event, ConfigChangeEvent)
            assert event.version == number + 1


async def test_an_expired_cursor_sends_each_watch_a_resync_and_later_changes_follow() -> None:
    store = FeedFailingStore()
    async with ConfigManager(store, poll_interval=60) as manager:
        everything = manager.watch()
        one_tenant = manager.watch(tenant_id="acme", scope="system")
        store.feed_error = CursorExpiredError("cursor older than the retained feed")
        await manager.refresh()
        assert await next_event(everything) == ConfigResyncEvent("cursor_expired", 0, None, None)
        resync = await next_event(one_tenant)
        assert isinstance(resync, ConfigResyncEvent)
        assert (resync.reason, resync.tenant_id, resync.scope) == (
            "cursor_expired",
            "acme",
            "system",
        )
        await write_models(manager, "after-expiry")
        await manager.refresh()
        event = await next_event(one_tenant)
        assert isinstance(event, ConfigChangeEvent)
        assert event.entry is not None
        assert event.entry.config_value["llm_model"] == "after-expiry"


async def test_a_watch_ends_after_its_buffered_events_when_the_manager_closes(
    store: MemoryConfigStore,
) -> None:
    manager = ConfigManager(store, poll_interval=60)
    watch = manager.watch()
    await write_models(manager, "one", "two")
    await manager.refresh()
    await manager.close()
    versions = [event.version async for event in watch]  # type: ignore[union-attr]
    assert versions == [1, 2]


@pytest.mark.parametrize("max_buffer", [0, -1, 1.5, True, "10"])
def test_a_watch_buffer_must_be_a_positive_count(
    store: MemoryConfigStore, max_buffer: object
) -> None:
    manager = ConfigManager(store)
    with pytest.raises(InvalidConfigError, match="max_buffer"):
        manager.watch(max_buffer=max_buffer)  # type: ignore[arg-type]


async def test_a_watch_whose_consumer_was_cancelled_or_left_is_freed(sqlite_url: str) -> None:
    async with ConfigManager(url=sqlite_url, poll_interval=60) as manager:

        async def consume(watch: ConfigWatch) -> None:
            async for _ in watch:
                pass

        cancelled_watch = manager.watch()
        consumer = asyncio.create_task(consume(cancelled_watch))
        await write_models(manager, "first")
        await asyncio.sleep(0)
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consumer
        left_watch = manager.watch(tenant_id="acme")
        await manager.refresh()
        async for _ in left_watch:
            break
        refs = [weakref.ref(cancelled_watch), weakref.ref(left_watch)]
        del consumer, cancelled_watch, left_watch
        gc.collect()
        assert [ref() for ref in refs] == [None, None]
        await write_models(manager, "second")
        await manager.refresh()
        assert (await manager.get_system_config("acme")).llm_model == "second"
