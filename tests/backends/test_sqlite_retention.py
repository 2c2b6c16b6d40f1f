"""SQLite retention: a bounded change feed, expired cursors, the schema upgrade, prune at scale."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from confstore import (
    ConfigManager,
    ConfigScope,
    CursorExpiredError,
    InvalidConfigError,
    SystemConfig,
    open_store,
)
from confstore.backends import sqlite as sqlite_backend
from confstore.backends.sqlite import SCHEMA_VERSION, SQLiteConfigStore

SYSTEM = ConfigScope.SYSTEM


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SQLiteConfigStore]:
    async with SQLiteConfigStore(db_path, synchronous="NORMAL", feed_max_changes=10) as opened:
        yield opened


async def write_many(store: SQLiteConfigStore, count: int, key: str = "k") -> None:
    await asyncio.gather(
        *(store.set_config("t", SYSTEM, "svc", key, {"n": n}) for n in range(count))
    )


def count_rows(path: Path, table: str) -> int:
    with sqlite3.connect(path) as connection:
        return int(connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


async def test_prune_trims_the_feed_to_its_newest_changes(
    store: SQLiteConfigStore, db_path: Path
) -> None:
    await write_many(store, 30)
    result = await store.prune(keep_last=100)
    assert (result.versions_removed, result.changes_removed) == (0, 20)
    assert count_rows(db_path, "config_changes") == 10
    batch = await store.changes_since(None)
    assert [change.version for change in batch.changes] == list(range(21, 31))


async def test_a_cursor_before_the_kept_feed_is_expired(store: SQLiteConfigStore) -> None:
    start = await store.current_cursor()
    await write_many(store, 30)
    middle = str(int(await store.current_cursor()) - 10)
    await store.prune(keep_last=100)
    with pytest.raises(CursorExpiredError, match="current_cursor"):
        await store.changes_since(start)
    batch = await store.changes_since(middle)
    assert len(batch.changes) == 10
    assert (await store.changes_since(await store.current_cursor())).changes == ()


async def test_the_newest_change_is_kept_so_cursors_never_go_back(db_path: Path) -> None:
    async with SQLiteConfigStore(db_path, feed_max_changes=1, feed_max_age=0) as store:
        await write_many(store, 5)
        cursor = await store.current_cursor()
        await store.prune(keep_last=1)
        assert count_rows(db_path, "config_changes") == 1
        assert await store.current_cursor() == cursor
        await store.set_config("t", SYSTEM, "svc", "k", {"n": "after"})
        batch = await store.changes_since(cursor)
        assert [change.version for change in batch.changes] == [6]


async def test_changes_older_than_the_feed_age_are_trimmed(db_path: Path) -> None:
    async with SQLiteConfigStore(db_path, feed_max_age="1h") as store:
        await write_many(store, 5)
        with sqlite3.connect(db_path) as connection:
            connection.execute("UPDATE config_changes SET committed_at = committed_at - 7200")
        await store.set_config("t", SYSTEM, "svc", "k", {"n": "young"})
        result = await store.prune(keep_last=100)
        assert result.changes_removed == 5
        batch = await store.changes_since(None)
        assert [change.version for change in batch.changes] == [6]


async def test_writes_trim_the_feed_without_a_prune(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_backend, "_FEED_TRIM_EVERY", 50)
    async with SQLiteConfigStore(db_path, synchronous="NORMAL", feed_max_changes=20) as store:
        for _ in range(4):
            await write_many(store, 25)
        assert count_rows(db_path, "config_changes") <= 20 + 50


async def test_manager_resyncs_after_its_cursor_expired(db_path: Path) -> None:
    async with (
        SQLiteConfigStore(db_path) as reader,
        SQLiteConfigStore(db_path, feed_max_changes=3) as writer,
        ConfigManager(reader, poll_interval=60) as manager,
    ):
        await manager.set_system_config(SystemConfig(llm_model="first"), tenant_id="acme")
        assert (await manager.get_system_config("acme")).llm_model == "first"
        await manager.refresh()
        for n in range(10):
            await writer.set_config(
                "acme", SYSTEM, "system", "system_config", {"llm_model": f"m{n}"}
            )
        await writer.prune(keep_last=2)
        await manager.refresh()
        assert (await manager.get_system_config("acme")).llm_model == "m9"


async def test_feed_options_come_from_the_url(db_path: Path) -> None:
    store = open_store(f"sqlite:///{db_path}?feed_max_changes=5&feed_max_age=2d")
    assert isinstance(store, SQLiteConfigStore)
    assert store.feed_max_changes == 5
    assert store.feed_max_age.days == 2
    for bad in ("feed_max_changes=0", "feed_max_age=soon", "feed_max_age=-1"):
        with pytest.raises(InvalidConfigError):
            open_store(f"sqlite:///{db_path}?{bad}")


def database_pages(path: Path) -> int:
    """The database's size in pages, WAL included (the file alone lags behind checkpoints)."""
    with contextlib.closing(sqlite3.connect(path)) as connection:
        return int(connection.execute("PRAGMA page_count").fetchone()[0])


async def test_pruned_pages_are_reused_so_the_file_stops_growing(db_path: Path) -> None:
    # A short change feed, so the feed's own rows (trimmed by prune) do not grow the file.
    async with SQLiteConfigStore(db_path, synchronous="NORMAL", feed_max_changes=50) as store:
        sizes = []
        for _ in range(5):
            for key in range(10):
                await write_many(store, 100, key=f"k{key}")
            await store.prune(keep_last=5)
            sizes.append(await asyncio.to_thread(database_pages, db_path))
        assert sizes[-1] <= sizes[2]
        assert (await store.get_stats())["total_versions"] == 50


async def test_a_retired_key_keeps_its_head_but_is_absent(
    store: SQLiteConfigStore, db_path: Path
) -> None:
    await store.set_config("t", SYSTEM, "svc", "k", {"n": 1})
    await store.delete_config("t", SYSTEM, "svc", "k")
    await store.prune(deleted_older_than=0)
    assert count_rows(db_path, "config_versions") == 0
    assert await store.delete_config("t", SYSTEM, "svc", "k") is False
    assert await store.delete_config("t", SYSTEM, "svc", "k", purge=True) is False
    assert await store.list_tenants(include_deleted=True) == []
    stats = await store.get_stats()
    assert (stats["total_versions"], stats["total_configs"], stats["total_tenants"]) == (0, 0, 0)
    entry = await store.set_config("t", SYSTEM, "svc", "k", {"n": 2}, expected_version=0)
    assert entry.version == 3


# A file written before retention: schema version 1, a change feed without commit times.
_VERSION_1_TRIGGER = """
    CREATE TRIGGER config_versions_maintain AFTER INSERT ON config_versions
    BEGIN
        INSERT INTO config_heads (tenant_id, scope, service, config_key,
                                  latest_version, deleted, created_at, version_count)
        VALUES (NEW.tenant_id, NEW.scope, NEW.service, NEW.config_key,
                NEW.version, NEW.deleted, NEW.created_at, 1)
        ON CONFLICT (tenant_id, scope, service, config_key) DO UPDATE SET
            deleted = CASE WHEN excluded.latest_version > latest_version
                           THEN excluded.deleted ELSE deleted END,
            latest_version = max(latest_version, excluded.latest_version),
            version_count = version_count + 1;
        INSERT INTO config_changes (tenant_id, scope, service, config_key, kind, version)
        VALUES (NEW.tenant_id, NEW.scope, NEW.service, NEW.config_key,
                CASE WHEN NEW.deleted THEN 'delete' ELSE 'set' END, NEW.version);
    END
"""


def make_version_1_file(path: Path) -> None:
    """Turn a fresh store's file back into the version 1 layout, with two versions written."""
    with sqlite3.connect(path) as connection:
        connection.execute("DROP TRIGGER config_versions_maintain")
        connection.execute("ALTER TABLE config_changes DROP COLUMN committed_at")
        connection.execute(_VERSION_1_TRIGGER)
        for version in (1, 2):
            connection.execute(
                "INSERT INTO config_versions (tenant_id, scope, service, config_key, version, "
                "value, created_at, updated_at) VALUES ('t', 'system', 'svc', 'k', ?, '{}', "
                "'2020-01-01T00:00:00.000000+00:00', '2020-01-01T00:00:00.000000+00:00')",
                (version,),
            )
        connection.execute("PRAGMA user_version=1")


async def test_a_version_1_file_is_upgraded_in_place(db_path: Path) -> None:
    async with SQLiteConfigStore(db_path):
        pass
    await asyncio.to_thread(make_version_1_file, db_path)
    async with SQLiteConfigStore(db_path, feed_max_age="1d") as store:
        entry = await store.set_config("t", SYSTEM, "svc", "k", {"n": 3})
        assert entry.version == 3
        result = await store.prune(keep_last=1)
        # The two old changes had no commit time: they count as old.
        assert (result.versions_removed, result.changes_removed) == (2, 2)
    with sqlite3.connect(db_path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


async def test_prune_beside_concurrent_writers_loses_nothing_current(db_path: Path) -> None:
    async with (
        SQLiteConfigStore(db_path, synchronous="NORMAL") as writer,
        SQLiteConfigStore(db_path, synchronous="NORMAL") as pruner,
    ):
        done = asyncio.Event()

        async def write_versions(task: int) -> list[int]:
            written = []
            for n in range(20):
                entry = await writer.set_config("t", SYSTEM, "svc", "k", {"task": task, "n": n})
                written.append(entry.version)
            return written

        async def prune_until_done() -> int:
            rounds = 0
            while not done.is_set():
                await pruner.prune(keep_last=2)
                rounds += 1
                await asyncio.sleep(0)
            return rounds

        pruning = asyncio.create_task(prune_until_done())
        written = await asyncio.gather(*(write_versions(task) for task in range(5)))
        done.set()
        assert await pruning >= 1
        versions = sorted(version for batch in written for version in batch)
        assert versions == list(range(1, 101))
        latest = await pruner.get_config("t", SYSTEM, "svc", "k")
        assert latest is not None
        assert (latest.version, latest.config_value["n"]) == (100, 19)
        await pruner.prune(keep_last=2)
        history = await pruner.get_config_history("t", SYSTEM, "svc", "k", limit=10)
        assert [entry.version for entry in history] == [100, 99]
