"""SQLiteConfigStore.wait_for_changes: woken by a commit from any process (PRAGMA data_version,
checked on a thread of its own while someone waits), never later than its timeout."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from confstore import InvalidConfigError, open_store
from confstore.backends.sqlite import SQLiteConfigStore

WRITER_SCRIPT = Path(__file__).with_name("_sqlite_writer.py")
# Far longer than any test waits: a wait that returns did so because of a commit.
NEVER = 600.0
WAIT = 10.0


async def start_writer(db_path: Path) -> asyncio.subprocess.Process:
    """A writer process that has opened the store and writes one version when told."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(WRITER_SCRIPT),
        str(db_path),
        "other",
        "1",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    assert await process.stdout.readline() == b"READY\n"
    return process


async def test_a_commit_in_another_process_wakes_a_waiter(
    store: SQLiteConfigStore, db_path: Path
) -> None:
    cursor = await store.current_cursor()
    writer = await start_writer(db_path)
    waiter = asyncio.create_task(store.wait_for_changes(cursor, NEVER))
    await asyncio.sleep(0)
    assert writer.stdin is not None
    writer.stdin.write(b"go\n")
    await asyncio.wait_for(waiter, WAIT)
    assert await writer.wait() == 0
    batch = await store.changes_since(cursor)
    assert [change.key.tenant_id for change in batch.changes] == ["multiprocess"]


async def test_a_commit_by_another_handle_in_this_process_wakes_a_waiter(
    store: SQLiteConfigStore, db_path: Path
) -> None:
    cursor = await store.current_cursor()
    waiter = asyncio.create_task(store.wait_for_changes(cursor, NEVER))
    async with SQLiteConfigStore(db_path) as other:
        await other.set_config("t", "system", "svc", "k", {"n": 1})
    await asyncio.wait_for(waiter, WAIT)


async def test_the_stores_own_write_wakes_its_waiter(store: SQLiteConfigStore) -> None:
    cursor = await store.current_cursor()
    waiter = asyncio.create_task(store.wait_for_changes(cursor, NEVER))
    await store.set_config("t", "system", "svc", "k", {"n": 1})
    await asyncio.wait_for(waiter, WAIT)


async def test_a_cursor_behind_the_feed_returns_at_once(store: SQLiteConfigStore) -> None:
    cursor = await store.current_cursor()
    await store.set_config("t", "system", "svc", "k", {"n": 1})
    await store.wait_for_changes(None, NEVER)  # prime: the watcher has read the feed's end
    await asyncio.wait_for(store.wait_for_changes(cursor, NEVER), WAIT)


async def test_without_commits_the_wait_ends_at_its_timeout(store: SQLiteConfigStore) -> None:
    cursor = await store.current_cursor()
    await store.wait_for_changes(cursor, 0.05)
    assert (await store.changes_since(cursor)).changes == ()


async def test_closing_the_store_ends_a_wait(store: SQLiteConfigStore) -> None:
    waiter = asyncio.create_task(store.wait_for_changes(await store.current_cursor(), NEVER))
    await asyncio.sleep(0)  # the waiter runs up to its wait
    assert not waiter.done()
    await store.close()
    await asyncio.wait_for(waiter, WAIT)


async def test_a_cancelled_wait_leaves_later_waits_working(store: SQLiteConfigStore) -> None:
    cursor = await store.current_cursor()
    cancelled = asyncio.create_task(store.wait_for_changes(cursor, NEVER))
    await asyncio.sleep(0)  # the waiter runs up to its wait
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    waiter = asyncio.create_task(store.wait_for_changes(cursor, NEVER))
    await store.set_config("t", "system", "svc", "k", {"n": 1})
    await asyncio.wait_for(waiter, WAIT)


async def test_a_foreign_cursor_is_refused(store: SQLiteConfigStore) -> None:
    with pytest.raises(InvalidConfigError, match="cursor"):
        await store.wait_for_changes("not-a-cursor", 0.01)


@pytest.mark.parametrize("value", ["0", "-1", "nan", "61", "soon"])
def test_watch_interval_in_the_url_must_be_sensible(db_path: Path, value: str) -> None:
    with pytest.raises(InvalidConfigError, match="watch_interval"):
        open_store(f"sqlite:///{db_path}?watch_interval={value}")


def test_watch_interval_is_taken_from_the_url(db_path: Path) -> None:
    store = open_store(f"sqlite:///{db_path}?watch_interval=0.25")
    assert isinstance(store, SQLiteConfigStore)
    assert store.watch_interval == 0.25


class TimerOnlyStore(SQLiteConfigStore):
    """The store as on a platform without file events: it checks on the watch_interval timer."""

    _file_events = False


@pytest.mark.parametrize("store_class", [SQLiteConfigStore, TimerOnlyStore])
async def test_with_or_without_file_events_a_commit_wakes_a_waiter(
    db_path: Path, store_class: type[SQLiteConfigStore]
) -> None:
    async with store_class(db_path) as follower, SQLiteConfigStore(db_path) as writer:
        cursor = await follower.current_cursor()
        for number in range(3):
            waiter = asyncio.create_task(follower.wait_for_changes(cursor, NEVER))
            await writer.set_config("t", "system", "svc", "k", {"n": number})
            await asyncio.wait_for(waiter, WAIT)
            cursor = (await follower.changes_since(cursor)).cursor
