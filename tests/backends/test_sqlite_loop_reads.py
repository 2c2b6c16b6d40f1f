"""Point reads served on the event loop's thread: same answers, never stale, and the reader
thread whenever the loop could wait (another thread, a locked file, a slow read, turned off)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import pytest
from _lock_holder import start_lock_holder

from confstore import ConfigEntry, ConfigStoreError, InvalidConfigError, open_store
from confstore.backends._loop_lane import LoopBudget
from confstore.backends.sqlite import _LOOP_READ_BUDGET, SQLiteConfigStore

WRITER_SCRIPT = Path(__file__).with_name("_sqlite_writer.py")
KEY = ("t", "system", "svc", "key")
WAIT = 30.0
HAVE_PROC = os.path.isdir("/proc/self/fd")


class LoopStatements:
    """Counts the statements the store's loop connection is given (it stands between the store
    and that connection, which runs each one).

    Unless ``keep_valve``, the store's budget is made endless: on a loaded machine a read may
    take over 2 ms and send the next reads to the thread, which the tests of the valve cover;
    the others count on every allowed read being the loop's."""

    def __init__(self, store: SQLiteConfigStore, *, keep_valve: bool = False) -> None:
        loop_reader = store._loop_reader
        assert loop_reader is not None
        self.connection = loop_reader.connection
        self.count = 0
        loop_reader.connection = cast(sqlite3.Connection, self)
        if not keep_valve:
            loop_reader.budget.budget = float("inf")

    def execute(self, sql: str, parameters: Sequence[Any]) -> sqlite3.Cursor:
        self.count += 1
        return self.connection.execute(sql, parameters)


async def test_loop_reads_give_exactly_what_reader_thread_reads_give(
    store: SQLiteConfigStore, db_path: Path
) -> None:
    for number in range(3):
        for version in range(number + 2):
            await store.set_config("t", "system", "svc", f"k{number}", {"v": version, "n": [1.5]})
    await store.delete_config("t", "system", "svc", "k1", comment="gone")
    loop_statements = LoopStatements(store)
    async with SQLiteConfigStore(db_path, loop_reads=False) as thread_store:
        for key in ("k0", "k1", "k2", "missing"):
            for version in (None, 1, 2, 3, 4, 99):
                on_loop = await store.get_config("t", "system", "svc", key, version=version)
                on_thread = await thread_store.get_config(
                    "t", "system", "svc", key, version=version
                )
                assert on_loop == on_thread, (key, version)
    assert loop_statements.count == 4 * 6


async def test_a_read_right_after_a_write_sees_it(store: SQLiteConfigStore) -> None:
    loop_statements = LoopStatements(store)
    for expected in range(1, 201):
        written = await store.set_config(*KEY, {"v": expected})
        read = await store.get_config(*KEY)
        assert read is not None
        assert read.version == written.version == expected
        assert await store.get_config(*KEY, version=expected) == read
    assert loop_statements.count == 400


async def test_a_read_sees_every_version_another_process_has_committed(
    store: SQLiteConfigStore, db_path: Path
) -> None:
    # The writer prints each version once its commit returned; a read started after that line
    # arrived must see that version or a later one.
    await store.set_config("multiprocess", "system", "writer", "shared", {"first": True})
    loop_statements = LoopStatements(store)
    writer = await asyncio.create_subprocess_exec(
        sys.executable,
        str(WRITER_SCRIPT),
        str(db_path),
        "other",
        "200",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert writer.stdin is not None
    assert writer.stdout is not None
    assert await writer.stdout.readline() == b"READY\n"
    writer.stdin.write(b"go\n")
    acknowledged = 0
    async with asyncio.timeout(WAIT):
        while line := await writer.stdout.readline():
            acknowledged = int(line.split()[0])
            entry = await store.get_config("multiprocess", "system", "writer", "shared")
            assert entry is not None
            assert entry.version >= acknowledged
        assert await writer.wait() == 0
    assert acknowledged == 201
    assert loop_statements.count == 200  # each read was the loop's to try first


async def test_a_locked_file_is_read_on_the_reader_thread_once_the_lock_is_gone(
    tmp_path: Path,
) -> None:
    # A read-only store on a file in rollback-journal mode (made by another tool): a writer
    # holding an exclusive lock blocks readers there, so the loop's read gets SQLITE_BUSY.
    path = tmp_path / "journal.db"
    async with SQLiteConfigStore(path) as writer_store:
        await writer_store.set_config(*KEY, {"v": 1})
    with sqlite3.connect(path, isolation_level=None) as converting:
        converting.execute("PRAGMA journal_mode=DELETE")
    converting.close()
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        async with SQLiteConfigStore(path, read_only=True) as store:
            loop_statements = LoopStatements(store)
            holder.execute("BEGIN EXCLUSIVE")
            read = asyncio.create_task(store.get_config(*KEY))
            # The read gives the loop a turn, then tries the loop's connection, is refused at
            # once, and waits on the reader thread (busy timeout) for the lock.
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            assert loop_statements.count == 1  # tried on the loop
            assert not read.done()
            holder.execute("ROLLBACK")
            entry = await asyncio.wait_for(read, WAIT)
            assert entry is not None
            assert entry.config_value == {"v": 1}
            assert loop_statements.count == 1
            # Unlocked, the next read is the loop's again.
            assert await store.get_config(*KEY) == entry
            assert loop_statements.count == 2
    finally:
        holder.close()


def _slow_once(connection: sqlite3.Connection, seconds: float) -> None:
    """Makes the next statement on ``connection`` take ``seconds`` (CPU, not a sleep)."""

    def burn() -> int:
        connection.set_progress_handler(None, 0)
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            pass
        return 0

    connection.set_progress_handler(burn, 1)


async def test_a_slow_loop_read_sends_reads_to_the_thread_for_a_pause(
    store: SQLiteConfigStore,
) -> None:
    written = await store.set_config(*KEY, {"v": 1})
    loop_statements = LoopStatements(store, keep_valve=True)
    assert store._loop_reader is not None
    budget = store._loop_reader.budget
    _slow_once(loop_statements.connection, 2 * _LOOP_READ_BUDGET)
    assert await store.get_config(*KEY) == written
    assert loop_statements.count == 1
    assert budget.paused
    for _ in range(20):
        assert await store.get_config(*KEY) == written
    assert loop_statements.count == 1
    # Once the pause is over (the budget's clock moved past it), reads are the loop's again.
    real_clock = budget.clock
    budget.clock = lambda: real_clock() + budget.pause
    assert await store.get_config(*KEY) == written
    assert loop_statements.count == 2


def test_a_budget_pauses_after_a_run_over_it_and_only_for_its_own_thread() -> None:
    now = [100.0]
    budget = LoopBudget(0.002, 1.0, clock=lambda: now[0])
    assert budget.allows()
    started = budget.clock()
    now[0] += 0.002
    budget.spent(started)
    assert budget.allows()  # at the budget, not over it
    started = budget.clock()
    now[0] += 0.003
    budget.spent(started)
    assert not budget.allows()
    assert budget.paused
    now[0] += 0.999
    assert not budget.allows()
    now[0] += 0.002
    assert budget.allows()
    assert not budget.paused
    answers: list[bool] = []
    other = threading.Thread(target=lambda: answers.append(budget.allows()))
    other.start()
    other.join()
    assert answers == [False]


async def test_a_read_from_another_threads_loop_goes_to_the_reader_thread(
    store: SQLiteConfigStore,
) -> None:
    written = await store.set_config(*KEY, {"v": 1})
    loop_statements = LoopStatements(store)
    results: list[ConfigEntry | None] = []
    other = threading.Thread(target=lambda: results.append(asyncio.run(store.get_config(*KEY))))
    other.start()
    await asyncio.to_thread(other.join)
    assert results == [written]
    assert loop_statements.count == 0


def _descriptors_open_on(path: Path) -> int:
    """How many descriptors of this process are open on ``path`` (one per connection)."""
    count = 0
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(FileNotFoundError):  # the listing's own descriptor
            count += os.readlink(fd) == str(path)
    return count


@pytest.mark.skipif(not HAVE_PROC, reason="needs /proc (Linux)")
@pytest.mark.parametrize(("option", "connections"), [("true", 3), ("false", 2)])
async def test_the_loop_reads_option_decides_whether_the_loop_has_a_connection(
    db_path: Path, option: str, connections: int
) -> None:
    async with open_store(f"sqlite:///{db_path}?loop_reads={option}") as store:
        assert isinstance(store, SQLiteConfigStore)
        written = await store.set_config(*KEY, {"v": 1})
        assert await store.get_config(*KEY) == written
        assert _descriptors_open_on(db_path) == connections
        assert (store._loop_reader is not None) == (option == "true")


@pytest.mark.parametrize("value", ["maybe", "2", ""])
def test_a_bad_loop_reads_value_is_a_typed_error(db_path: Path, value: str) -> None:
    with pytest.raises(InvalidConfigError, match="loop_reads"):
        open_store(f"sqlite:///{db_path}?loop_reads={value}")


def test_a_loop_reads_argument_that_is_not_a_bool_is_a_typed_error(db_path: Path) -> None:
    with pytest.raises(InvalidConfigError, match="loop_reads"):
        SQLiteConfigStore(db_path, loop_reads="no")  # type: ignore[arg-type]


@pytest.mark.parametrize("lane", ["loop", "thread"])
async def test_close_with_reads_in_flight_leaves_nothing_open(db_path: Path, lane: str) -> None:
    store = SQLiteConfigStore(db_path)
    await store.initialize()
    written = await store.set_config(*KEY, {"v": 1})
    if lane == "thread":
        assert store._loop_reader is not None
        store._loop_reader.budget._paused_until = float("inf")  # every read to the thread
    started = [asyncio.create_task(store.get_config(*KEY)) for _ in range(25)]
    await asyncio.sleep(0)
    # The first reads have given the loop its turn; the others are about to.
    waiting = [asyncio.create_task(store.get_config(*KEY)) for _ in range(25)]
    await asyncio.sleep(0)
    # The first reads are answered on the loop, or queued on the reader thread.
    await store.close()
    assert await asyncio.gather(*started) == [written] * 25
    for outcome in await asyncio.gather(*waiting, return_exceptions=True):
        assert isinstance(outcome, ConfigStoreError), outcome
    if HAVE_PROC:
        assert _descriptors_open_on(db_path) == 0
    # The last connection closed checkpointed and removed the WAL.
    assert not db_path.with_name(db_path.name + "-wal").exists()


async def test_a_cancelled_read_leaves_the_store_usable(store: SQLiteConfigStore) -> None:
    written = await store.set_config(*KEY, {"v": 1})
    read = asyncio.create_task(store.get_config(*KEY))
    await asyncio.sleep(0)
    read.cancel()
    with pytest.raises(asyncio.CancelledError):
        await read
    assert await store.get_config(*KEY) == written


# Holds, from another process (POSIX record locks are per process), the WAL index's write,
# checkpoint and recovery locks: what a connection rebuilding the index after a crash holds.
RECOVERY_LOCK_HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 3, 120)
print("LOCKED", flush=True)
sys.stdin.readline()
"""


async def test_a_read_during_wal_recovery_by_another_process_goes_to_the_reader_thread(
    store: SQLiteConfigStore, db_path: Path
) -> None:
    written = await store.set_config(*KEY, {"v": 1})
    loop_statements = LoopStatements(store)
    assert await store.get_config(*KEY) == written
    shm = db_path.with_name(db_path.name + "-shm")
    holder = await start_lock_holder(RECOVERY_LOCK_HOLDER, shm)
    assert holder.stdin is not None
    # The two copies of the index header now differ, as after a writer died while updating
    # it: the next reader must rebuild the index, and the recovery lock is another's.
    with shm.open("r+b") as index:
        index.seek(48 + 40)
        salt = index.read(1)
        index.seek(48 + 40)
        index.write(bytes([salt[0] ^ 0xFF]))
    read = asyncio.create_task(store.get_config(*KEY))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert loop_statements.count == 2  # tried on the loop, refused at once
    assert not read.done()
    holder.stdin.write(b"done\n")
    assert await holder.wait() == 0
    # The reader thread, retrying, gets the lock, rebuilds the index and reads.
    assert await asyncio.wait_for(read, WAIT) == written
    assert await store.get_config(*KEY) == written
    assert loop_statements.count == 3
