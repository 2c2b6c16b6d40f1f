"""Loop writes: a set_config that finds the SQLite writer idle commits on the loop's thread.

Where a statement ran is read from SQLite itself: a trace callback on the writer connection
records the thread that executed each statement, and the writer thread's job counter shows
whether it was used at all.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from _lock_holder import start_lock_holder

from confstore import BackendUnavailableError, ConfigScope, InvalidConfigError, open_store
from confstore.backends import sqlite as sqlite_backend
from confstore.backends._loop_lane import LoopBudget
from confstore.backends._sqlite_thread import SQLiteThread
from confstore.backends.sqlite import SQLiteConfigStore

SYSTEM = ConfigScope.SYSTEM
KEY = ("t", SYSTEM, "svc", "k")


class StatementLog:
    """The writer connection's statements, each with the thread that ran it."""

    def __init__(self) -> None:
        self.entries: list[tuple[int, str]] = []
        # The next ``slow_commits`` COMMITs take ``slow_seconds`` more (a slow disk).
        self.slow_commits = 0
        self.slow_seconds = 0.0

    def __call__(self, statement: str) -> None:
        self.entries.append((threading.get_ident(), statement))
        if statement == "COMMIT" and self.slow_commits:
            self.slow_commits -= 1
            time.sleep(self.slow_seconds)

    def threads_of(self, statement: str) -> list[int]:
        return [thread for thread, text in self.entries if text == statement]

    def clear(self) -> None:
        self.entries.clear()


def writer_thread(store: SQLiteConfigStore) -> SQLiteThread:
    writer = store._writer
    assert writer is not None
    return writer._thread


async def trace_writer(store: SQLiteConfigStore) -> StatementLog:
    log = StatementLog()

    def install(connection: sqlite3.Connection) -> None:
        connection.set_trace_callback(log)

    await writer_thread(store).call(install)
    log.clear()
    return log


@pytest.fixture
def generous_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """No write trips the time valve (a busy CI machine can take 5 ms for an fsync)."""
    monkeypatch.setattr(sqlite_backend, "_LOOP_WRITE_BUDGET", 60.0)


@pytest.fixture
async def store(tmp_path: Path, generous_budget: None) -> AsyncIterator[SQLiteConfigStore]:
    async with SQLiteConfigStore(tmp_path / "inline.db") as opened:
        yield opened


async def test_a_sequential_writers_writes_commit_on_the_loop_thread(
    store: SQLiteConfigStore,
) -> None:
    log = await trace_writer(store)
    thread = writer_thread(store)
    jobs_before = thread.queued
    for n in range(20):
        entry = await store.set_config(*KEY, {"n": n})
        assert entry.version == n + 1
    assert thread.queued == jobs_before  # the writer thread was never used
    assert log.threads_of("COMMIT") == [threading.get_ident()] * 20
    history = await store.get_config_history(*KEY, limit=100)
    assert [entry.config_value["n"] for entry in history] == list(range(19, -1, -1))


async def test_sixty_four_concurrent_writers_still_share_commits(
    store: SQLiteConfigStore,
) -> None:
    log = await trace_writer(store)

    async def writer(number: int) -> list[int]:
        return [
            (await store.set_config("t", SYSTEM, "svc", f"k{number}", {"n": n})).version
            for n in range(3)
        ]

    versions = await asyncio.gather(*(writer(number) for number in range(64)))
    assert versions == [[1, 2, 3]] * 64
    commits = log.threads_of("COMMIT")
    assert len(commits) < 64 * 3 // 8
    assert threading.get_ident() in commits  # the first write went inline ...
    assert len(set(commits)) == 2  # ... the batches that joined it went to the thread


async def test_a_loop_of_writes_lets_other_tasks_run(store: SQLiteConfigStore) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    try:
        for n in range(10):
            await store.set_config(*KEY, {"n": n})
    finally:
        ticking.cancel()
    assert ticks >= 10


LOCK_HOLDER = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN IMMEDIATE")
print("LOCKED", flush=True)
sys.stdin.readline()
connection.execute("COMMIT")
print("RELEASED", flush=True)
"""


async def test_a_write_lock_held_by_another_process_sends_the_write_to_the_thread(
    tmp_path: Path, generous_budget: None
) -> None:
    path = tmp_path / "locked.db"
    async with SQLiteConfigStore(path, timeout=60) as store:
        await store.set_config(*KEY, {"n": 0})
        log = await trace_writer(store)
        holder = await start_lock_holder(LOCK_HOLDER, path)
        assert holder.stdin is not None
        assert holder.stdout is not None
        try:
            write = asyncio.create_task(store.set_config(*KEY, {"n": 1}))
            ticks = 0
            # The loop keeps running while the write waits for the lock: it is not held by
            # a busy wait (had it been, none of these ticks would happen before the timeout).
            async with asyncio.timeout(30):
                while ticks < 50:
                    await asyncio.sleep(0.001)
                    ticks += 1
            assert not write.done()
            holder.stdin.write(b"release\n")
            await holder.stdin.drain()
            assert await holder.stdout.readline() == b"RELEASED\n"
            entry = await write
        finally:
            if holder.returncode is None:
                holder.kill()
            await holder.wait()
        assert entry.version == 2
        loop_thread = threading.get_ident()
        assert loop_thread in log.threads_of("BEGIN IMMEDIATE")  # tried here, found busy
        assert loop_thread not in log.threads_of("COMMIT")
        assert (await store.get_config(*KEY)).config_value == {"n": 1}  # type: ignore[union-attr]
        # The lock gone, the next write is inline again.
        log.clear()
        await store.set_config(*KEY, {"n": 2})
        assert log.threads_of("COMMIT") == [loop_thread]


async def test_a_slow_inline_write_sends_writes_to_the_thread_for_a_while(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_backend, "_LOOP_WRITE_BUDGET", 0.01)
    # One stall pauses loop writes for the first pause only, not the longest.
    monkeypatch.setattr(sqlite_backend, "_LOOP_WRITE_FIRST_PAUSE", 0.3)
    monkeypatch.setattr(sqlite_backend, "_LOOP_WRITE_PAUSE", 60.0)
    async with SQLiteConfigStore(tmp_path / "slow.db") as store:
        log = await trace_writer(store)
        loop_thread = threading.get_ident()
        log.slow_commits, log.slow_seconds = 1, 0.15
        await store.set_config(*KEY, {"n": 0})  # inline, and 150 ms: 15 times the budget
        paused_at = time.monotonic()
        await store.set_config(*KEY, {"n": 1})  # on the thread
        commits = log.threads_of("COMMIT")
        assert commits[0] == loop_thread
        assert commits[1] != loop_thread
        await asyncio.sleep(max(0.0, paused_at + 0.35 - time.monotonic()))
        log.clear()
        await store.set_config(*KEY, {"n": 2})
        assert log.threads_of("COMMIT") == [loop_thread]  # the pause is over


def test_pauses_that_follow_each_other_double_up_to_the_longest() -> None:
    now = [100.0]
    budget = LoopBudget(0.005, 1.0, outlier=10, first_pause=0.1, clock=lambda: now[0])

    def stall(seconds: float) -> float:
        """A run of ``seconds`` (over 10 times the budget); how long it paused the budget."""
        started = budget.start()
        assert started is not None
        now[0] += seconds
        budget.spent(started)
        paused = 0.0
        while budget.start() is None:
            now[0] += 0.001
            paused += 0.001
        return round(paused, 3)

    assert stall(0.06) == 0.1  # one stall: a short pause
    assert [stall(0.06) for _ in range(5)] == [0.2, 0.4, 0.8, 1.0, 1.0]  # a disk that stays slow
    now[0] += 1.5  # then a while without a stall
    assert stall(0.06) == 0.1
    started = budget.start()
    assert started is not None
    now[0] += 0.002  # a run within the budget pauses nothing
    budget.spent(started)
    assert budget.start() == now[0]


async def test_loop_writes_false_sends_every_write_to_the_thread(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'off.db'}?loop_writes=false")
    assert isinstance(store, SQLiteConfigStore)
    async with store:
        log = await trace_writer(store)
        for n in range(5):
            await store.set_config(*KEY, {"n": n})
        commits = log.threads_of("COMMIT")
        assert len(commits) == 5
        assert threading.get_ident() not in commits


@pytest.mark.parametrize("value", ["maybe", "2", ""])
def test_a_bad_loop_writes_option_is_a_typed_error(tmp_path: Path, value: str) -> None:
    with pytest.raises(InvalidConfigError, match="loop_writes"):
        open_store(f"sqlite:///{tmp_path / 'x.db'}?loop_writes={value}")
    with pytest.raises(InvalidConfigError, match="loop_writes"):
        SQLiteConfigStore(tmp_path / "x.db", loop_writes=value)  # type: ignore[arg-type]


async def test_a_write_from_another_thread_runs_on_the_writer_thread(
    store: SQLiteConfigStore,
) -> None:
    await store.set_config(*KEY, {"n": 0})
    log = await trace_writer(store)
    other: list[int] = []

    def write_elsewhere() -> None:
        other.append(threading.get_ident())
        asyncio.run(store.set_config(*KEY, {"n": 1}))

    await asyncio.to_thread(write_elsewhere)
    [commit] = log.threads_of("COMMIT")
    assert commit not in (threading.get_ident(), other[0])
    assert (await store.set_config(*KEY, {"n": 2})).version == 3
    assert log.threads_of("COMMIT")[-1] == threading.get_ident()


async def test_a_write_cancelled_in_its_first_turn_writes_nothing(
    store: SQLiteConfigStore,
) -> None:
    await store.set_config(*KEY, {"n": 0})
    write = asyncio.create_task(store.set_config(*KEY, {"n": 1}))
    await asyncio.sleep(0)  # the write has started and yields its turn
    write.cancel()
    with pytest.raises(asyncio.CancelledError):
        await write
    assert (await store.set_config(*KEY, {"n": 2})).version == 2
    history = await store.get_config_history(*KEY, limit=10)
    assert [entry.config_value["n"] for entry in history] == [2, 0]


async def test_close_waits_for_a_write_in_its_first_turn(tmp_path: Path) -> None:
    path = tmp_path / "closing.db"
    store = SQLiteConfigStore(path)
    await store.initialize()
    write = asyncio.create_task(store.set_config(*KEY, {"n": 0}))
    await asyncio.sleep(0)
    await store.close()
    assert (await write).version == 1
    async with SQLiteConfigStore(path) as reopened:
        assert (await reopened.get_config(*KEY)).version == 1  # type: ignore[union-attr]


async def test_checkpoints_run_on_the_writer_thread_not_at_an_inline_commit(
    tmp_path: Path, generous_budget: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_backend, "_CHECKPOINT_FRAMES", 30)
    async with SQLiteConfigStore(tmp_path / "wal.db") as store:

        def autocheckpoint(connection: sqlite3.Connection) -> int:
            return int(connection.execute("PRAGMA wal_autocheckpoint").fetchone()[0])

        assert await writer_thread(store).call(autocheckpoint) == 0
        log = await trace_writer(store)
        for n in range(40):
            await store.set_config(*KEY, {"n": n})
        await store._writer.drain()  # type: ignore[union-attr]
        checkpoints = log.threads_of("PRAGMA wal_checkpoint(PASSIVE)")
        assert checkpoints
        assert threading.get_ident() not in checkpoints
        assert threading.get_ident() in log.threads_of("COMMIT")


@pytest.mark.parametrize("frames_per_write", [1, 2, 6, 7, 333, 999, 1000])
def test_a_checkpoint_is_due_after_the_writes_that_fill_its_frames(frames_per_write: int) -> None:
    # The first count of writes whose frames reach _CHECKPOINT_FRAMES (as SQLite's own automatic
    # checkpoint waits for that many frames).
    writes = sqlite_backend._writes_for_checkpoint(frames_per_write)
    frames = sqlite_backend._CHECKPOINT_FRAMES
    assert writes * frames_per_write >= frames > (writes - 1) * frames_per_write


@pytest.mark.parametrize(("frames_per_write", "writes"), [(0, 1000), (-3, 1000), (5000, 1)])
def test_frames_per_write_out_of_range_are_clamped(frames_per_write: int, writes: int) -> None:
    assert sqlite_backend._writes_for_checkpoint(frames_per_write) == writes


ACKNOWLEDGE_THEN_DIE = """
import asyncio, os, signal, sys
from confstore.backends import sqlite as sqlite_backend
from confstore.backends.sqlite import SQLiteConfigStore

sqlite_backend._LOOP_WRITE_BUDGET = 60.0  # a slow fsync on a busy machine stays inline

async def main() -> None:
    store = SQLiteConfigStore(sys.argv[1])
    await store.initialize()
    thread = store._writer._thread
    jobs = thread.queued
    for n in range(int(sys.argv[2])):
        entry = await store.set_config("t", "system", "svc", "k", {"n": n})
        assert thread.queued == jobs, "the write went to the writer thread"
        print(entry.version, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


async def test_an_inline_write_acknowledged_survives_sigkill_right_after(
    tmp_path: Path,
) -> None:
    path = tmp_path / "killed.db"
    async with SQLiteConfigStore(path) as store:  # the schema, so the child's writes are lone
        await store.set_config("t", SYSTEM, "svc", "other", {})
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        ACKNOWLEDGE_THEN_DIE,
        str(path),
        "5",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await child.communicate()
    assert child.returncode == -9, err.decode()
    assert out.decode().split() == ["1", "2", "3", "4", "5"]
    async with SQLiteConfigStore(path) as reopened:
        entry = await reopened.get_config(*KEY)
        assert entry is not None
        assert entry.version == 5
        assert entry.config_value == {"n": 4}


async def test_writes_that_stay_over_the_budget_go_to_the_thread_but_one_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Wide enough that the first write of a new file (the WAL created) stays far below it.
    monkeypatch.setattr(sqlite_backend, "_LOOP_WRITE_BUDGET", 0.04)
    # A first pause as long as the test, so it sees the average's decision alone.
    monkeypatch.setattr(sqlite_backend, "_LOOP_WRITE_FIRST_PAUSE", 60.0)
    monkeypatch.setattr(sqlite_backend, "_LOOP_WRITE_PAUSE", 60.0)
    async with SQLiteConfigStore(tmp_path / "slow.db") as store:
        log = await trace_writer(store)
        loop_thread = threading.get_ident()
        log.slow_commits, log.slow_seconds = 1, 0.06  # 1.5 times the budget, once
        await store.set_config(*KEY, {"n": 0})
        await store.set_config(*KEY, {"n": 1})
        assert log.threads_of("COMMIT") == [loop_thread] * 2
        log.clear()
        log.slow_commits = 30  # then every write: the average crosses the budget
        for n in range(15):
            await store.set_config(*KEY, {"n": n})
        commits = log.threads_of("COMMIT")
        first_on_thread = next(i for i, thread in enumerate(commits) if thread != loop_thread)
        assert 3 <= first_on_thread <= 12, commits
        assert set(commits[first_on_thread:]) == {commits[first_on_thread]}


async def test_a_full_disk_on_the_loop_is_a_backend_error_and_writes_nothing(
    store: SQLiteConfigStore,
) -> None:
    await store.set_config(*KEY, {"n": 0})

    def fill_up(connection: sqlite3.Connection) -> None:
        pages = connection.execute("PRAGMA page_count").fetchone()[0]
        connection.execute(f"PRAGMA max_page_count={pages}")  # SQLITE_FULL beyond it

    await writer_thread(store).call(fill_up)
    log = await trace_writer(store)
    with pytest.raises(BackendUnavailableError, match="full") as caught:
        await store.set_config(*KEY, {"big": "x" * 200_000})
    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
    assert log.threads_of("BEGIN IMMEDIATE") == [threading.get_ident()]  # it ran on the loop
    assert log.threads_of("COMMIT") == []
    assert (await store.get_config(*KEY)).version == 1  # type: ignore[union-attr]
    assert (await store.set_config(*KEY, {"n": 1})).version == 2  # small writes still fit


async def test_a_writer_connection_lost_under_the_store_is_a_backend_error(
    store: SQLiteConfigStore,
) -> None:
    await writer_thread(store).call(sqlite3.Connection.close)
    with pytest.raises(BackendUnavailableError):
        await store.set_config(*KEY, {"n": 0})
