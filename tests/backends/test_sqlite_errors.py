"""SQLite driver failures reach callers as confstore errors, chained to the sqlite3 error."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from confstore import BackendTimeoutError, BackendUnavailableError, ConfigScope
from confstore.backends.sqlite import SCHEMA_VERSION, SQLiteConfigStore

SYSTEM = ConfigScope.SYSTEM


@pytest.fixture
def lock_holder(db_path: Path) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection on the store's file, to hold its write lock."""
    connection = sqlite3.connect(db_path, isolation_level=None)
    yield connection
    if connection.in_transaction:
        connection.execute("ROLLBACK")
    connection.close()


async def test_a_directory_as_database_path_raises_backend_unavailable(tmp_path: Path) -> None:
    directory = tmp_path / "a-directory"
    directory.mkdir()
    store = SQLiteConfigStore(directory)
    with pytest.raises(BackendUnavailableError, match="a-directory: it is a directory"):
        await store.initialize()


async def test_a_file_that_is_not_a_database_raises_backend_unavailable(db_path: Path) -> None:
    await asyncio.to_thread(db_path.write_bytes, b"not an SQLite database, just text " * 100)
    with pytest.raises(BackendUnavailableError) as caught:
        await SQLiteConfigStore(db_path).initialize()
    assert isinstance(caught.value.__cause__, sqlite3.DatabaseError)


async def test_a_parent_that_is_a_file_raises_backend_unavailable(tmp_path: Path) -> None:
    (tmp_path / "plain-file").write_text("x")
    with pytest.raises(BackendUnavailableError, match="plain-file is not a directory"):
        await SQLiteConfigStore(tmp_path / "plain-file" / "config.db").initialize()


async def test_a_newer_schema_version_is_refused(db_path: Path) -> None:
    with sqlite3.connect(db_path) as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(BackendUnavailableError, match="schema version"):
        await SQLiteConfigStore(db_path).initialize()


async def test_a_failed_initialize_leaves_the_store_closed_and_retryable(tmp_path: Path) -> None:
    path = tmp_path / "later.db"
    path.mkdir()
    store = SQLiteConfigStore(path)
    with pytest.raises(BackendUnavailableError):
        await store.initialize()
    path.rmdir()
    async with store:
        assert (await store.set_config("t", SYSTEM, "svc", "key", {"a": 1})).version == 1


async def test_a_write_lock_held_past_the_timeout_raises_backend_timeout(
    db_path: Path, lock_holder: sqlite3.Connection
) -> None:
    async with SQLiteConfigStore(db_path, timeout=0.3) as store:
        lock_holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(BackendTimeoutError) as caught:
            await store.set_config("t", SYSTEM, "svc", "key", {"a": 1})
        assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
        lock_holder.execute("ROLLBACK")
        assert await store.get_config("t", SYSTEM, "svc", "key") is None


async def test_every_write_of_a_batch_that_timed_out_gets_the_error(
    db_path: Path, lock_holder: sqlite3.Connection
) -> None:
    async with SQLiteConfigStore(db_path, timeout=0.3) as store:
        lock_holder.execute("BEGIN IMMEDIATE")
        outcomes = await asyncio.gather(
            *(store.set_config("t", SYSTEM, "svc", f"key-{n}", {"n": n}) for n in range(5)),
            return_exceptions=True,
        )
    assert all(isinstance(outcome, BackendTimeoutError) for outcome in outcomes)
    assert len({id(outcome) for outcome in outcomes}) == 5


async def test_a_write_lock_released_within_the_timeout_lets_the_write_through(
    db_path: Path, lock_holder: sqlite3.Connection
) -> None:
    async with SQLiteConfigStore(db_path, timeout=10) as store:
        lock_holder.execute("BEGIN IMMEDIATE")
        asyncio.get_running_loop().call_later(0.2, lock_holder.execute, "ROLLBACK")
        entry = await store.set_config("t", SYSTEM, "svc", "key", {"a": 1})
    assert entry.version == 1


async def test_a_connection_lost_under_the_store_raises_backend_unavailable(
    db_path: Path,
) -> None:
    async with SQLiteConfigStore(db_path) as store:
        reader = store._reader
        assert reader is not None
        await reader.call(sqlite3.Connection.close)
        # Point reads run on the loop's own connection first: lose that one too.
        assert store._loop_reader is not None
        store._loop_reader.connection.close()
        with pytest.raises(BackendUnavailableError):
            await store.get_config("t", SYSTEM, "svc", "key")
        assert await store.health_check() is False
