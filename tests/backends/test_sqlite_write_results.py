"""What a SQLite set_config returns and raises, on the loop's thread and on the writer thread.

A write builds its returned entry from what it sent and what the append statement returned,
without reading it back; these tests hold that entry to what a read of the same version
returns, field by field and timestamp text by timestamp text, and hold a failed write on the
loop to the same outcome as on the thread: the same error, nothing written.
"""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from collections.abc import AsyncIterator, Callable, Generator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from confstore import ConfigEntry, ConfigScope, InvalidConfigError, VersionConflictError
from confstore._models import format_timestamp
from confstore.backends import sqlite as sqlite_backend
from confstore.backends.sqlite import SQLiteConfigStore

SYSTEM = ConfigScope.SYSTEM
KEY = ("t", SYSTEM, "svc", "k")


@pytest.fixture
def generous_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    # A loaded test machine must not send writes to the thread: these tests say where they run.
    monkeypatch.setattr(sqlite_backend, "_LOOP_WRITE_BUDGET", 60.0)


@pytest.fixture(params=[True, False], ids=["on-the-loop", "on-the-thread"])
async def store(
    request: pytest.FixtureRequest, db_path: Path, generous_budget: None
) -> AsyncIterator[SQLiteConfigStore]:
    """The shared fixture's store, once with writes on the loop and once without."""
    async with SQLiteConfigStore(db_path, loop_writes=request.param) as opened:
        yield opened


def jobs_of_writer_thread(store: SQLiteConfigStore) -> int:
    writer = store._writer
    assert writer is not None
    return writer._thread.queued


def stored_timestamps(path: Path, version: int) -> tuple[str, str]:
    with sqlite3.connect(path) as connection:
        row = connection.execute(
            "SELECT created_at, updated_at FROM config_versions WHERE version = ?", (version,)
        ).fetchone()
    connection.close()
    return row[0], row[1]


def assert_same_entry(written: ConfigEntry, read: ConfigEntry | None) -> None:
    assert read is not None
    assert written == read
    assert written.to_dict() == read.to_dict()  # timestamps' exact text included
    for moment in (written.created_at, written.updated_at):
        assert moment.tzinfo is UTC
    assert type(written.config_value) is dict
    assert type(written.scope) is ConfigScope


async def test_the_returned_entry_equals_what_a_read_returns(store: SQLiteConfigStore) -> None:
    jobs_before = jobs_of_writer_thread(store)
    first = await store.set_config(*KEY, {"a": [1, 2.5, None, "é"]}, updated_by="ann")
    second = await store.set_config(*KEY, {"a": {"b": True}}, comment="second", updated_by="bob")
    third = await store.set_config(*KEY, {}, expected_version=2)
    if store.loop_writes:
        assert jobs_of_writer_thread(store) == jobs_before  # all three committed on the loop
    else:
        assert jobs_of_writer_thread(store) == jobs_before + 3
    for entry in (first, second, third):
        assert_same_entry(entry, await store.get_config(*KEY, version=entry.version))
        created, updated = stored_timestamps(Path(store.path), entry.version)
        assert (format_timestamp(entry.created_at), format_timestamp(entry.updated_at)) == (
            created,
            updated,
        )
    assert_same_entry(third, await store.get_config(*KEY))
    # created_at is the key's first write, read back from the head for later versions.
    assert first.created_at == first.updated_at == second.created_at == third.created_at
    assert first.updated_at < second.updated_at < third.updated_at
    assert (second.updated_by, second.comment, third.updated_by) == ("bob", "second", None)


async def test_writes_alternating_between_keys_return_each_keys_created_at(
    store: SQLiteConfigStore,
) -> None:
    # A write parses its key's created_at once and keeps the last one: each key keeps its own.
    keys = [("t", SYSTEM, "svc", f"k{n}") for n in range(3)]
    created = {key: (await store.set_config(*key, {"n": 0})).created_at for key in keys}
    assert len(set(created.values())) == 3
    for round_number in range(1, 4):
        for key in keys + keys[::-1]:
            entry = await store.set_config(*key, {"n": round_number})
            assert entry.created_at == created[key]
            assert entry.updated_at > entry.created_at
            assert_same_entry(entry, await store.get_config(*key, version=entry.version))


async def test_a_lone_write_on_the_loop_completes_without_suspending(
    db_path: Path, generous_budget: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its set_config coroutine runs to its end at the first step: no await inside, no turn.
    monkeypatch.setattr(sqlite_backend, "_LOOP_TURN_EVERY", 3600.0)
    async with SQLiteConfigStore(db_path) as store:
        await store.set_config(*KEY, {"n": 0})  # the first write of the loop takes a turn
        jobs_before = jobs_of_writer_thread(store)
        coroutine = store.set_config(*KEY, {"n": 1})
        with pytest.raises(StopIteration) as finished:
            coroutine.send(None)
        entry = finished.value.value
        assert isinstance(entry, ConfigEntry)
        assert entry.version == 2
        assert jobs_of_writer_thread(store) == jobs_before
        assert_same_entry(entry, await store.get_config(*KEY))


async def test_a_write_on_a_whole_second_keeps_six_digits_of_microseconds(
    store: SQLiteConfigStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole_second = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    monkeypatch.setattr(sqlite_backend, "time_ns", lambda: int(whole_second.timestamp()) * 10**9)
    entry = await store.set_config(*KEY, {"n": 1})
    assert stored_timestamps(Path(store.path), 1) == ("2026-01-02T03:04:05.000000+00:00",) * 2
    assert entry.updated_at == entry.created_at == whole_second
    assert_same_entry(entry, await store.get_config(*KEY))


@pytest.mark.parametrize(
    "nanoseconds",
    [
        # a second and the next, across a minute, an hour, a day and a year, in one run: the
        # second's text is made again whenever the second changes
        [1_767_225_599_999_999_999, 1_767_225_600_000_000_000, 1_767_225_600_000_001_999],
        [0, 999, 1_000, 999_999_000, 1_000_000_000, 86_399_999_999_000],
        [1_700_000_000_123_456_789] * 3 + [1_699_999_999_000_000_000],  # the clock going back
    ],
    ids=["new-year", "epoch", "backwards"],
)
def test_the_write_time_is_the_clock_floored_to_microseconds_and_its_text(
    nanoseconds: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    readings = iter(nanoseconds)
    monkeypatch.setattr(sqlite_backend, "time_ns", lambda: next(readings))
    for reading in nanoseconds:
        moment, text = sqlite_backend._write_time()
        expected = datetime.fromtimestamp(reading // 1000 // 10**6, UTC).replace(
            microsecond=reading // 1000 % 10**6
        )
        assert moment == expected
        assert moment.tzinfo is UTC
        assert text == format_timestamp(expected)


async def test_the_returned_value_is_a_copy_of_the_callers(store: SQLiteConfigStore) -> None:
    value = {"nested": {"list": [1]}}
    entry = await store.set_config(*KEY, value)
    value["nested"]["list"].append(2)
    assert entry.config_value == {"nested": {"list": [1]}}
    assert_same_entry(entry, await store.get_config(*KEY))


async def test_a_key_that_was_deleted_keeps_its_created_at(store: SQLiteConfigStore) -> None:
    first = await store.set_config(*KEY, {"n": 1})
    assert await store.delete_config(*KEY)
    again = await store.set_config(*KEY, {"n": 3})
    assert again.version == 3
    assert again.created_at == first.created_at
    assert_same_entry(again, await store.get_config(*KEY))


async def test_a_conflicting_write_raises_and_writes_nothing(store: SQLiteConfigStore) -> None:
    await store.set_config(*KEY, {"n": 1})
    cursor = await store.current_cursor()
    for expected in (0, 2, 7):
        with pytest.raises(VersionConflictError) as raised:
            await store.set_config(*KEY, {"n": "lost"}, expected_version=expected)
        assert (raised.value.expected, raised.value.actual) == (expected, 1)
    assert await store.current_cursor() == cursor  # no change recorded
    assert [entry.version for entry in await store.get_config_history(*KEY)] == [1]
    # The writer is free again, and numbering continues without a gap.
    assert (await store.set_config(*KEY, {"n": 2}, expected_version=1)).version == 2


async def test_a_new_key_with_expected_version_zero_is_created(store: SQLiteConfigStore) -> None:
    entry = await store.set_config(*KEY, {"n": 1}, expected_version=0)
    assert entry.version == 1
    with pytest.raises(VersionConflictError):
        await store.set_config(*KEY, {"n": 2}, expected_version=0)


@pytest.mark.parametrize(
    ("value", "options", "message"),
    [
        ({"x": float("nan")}, {}, "not JSON-serialisable"),
        ({"x": (1, 2)}, {}, "round trip"),
        ({"x": "\ud800"}, {}, "surrogate"),
        ({"llm_api_key": "***"}, {}, "mask"),
        ({"x": 1}, {"expected_version": -1}, "expected_version"),
        ({"x": 1}, {"updated_by": 5}, "updated_by"),
    ],
)
async def test_a_bad_write_is_refused_before_any_io(
    store: SQLiteConfigStore, value: dict[str, object], options: dict[str, object], message: str
) -> None:
    jobs_before = jobs_of_writer_thread(store)
    with pytest.raises(InvalidConfigError, match=message):
        await store.set_config(*KEY, value, **options)  # type: ignore[arg-type]
    assert jobs_of_writer_thread(store) == jobs_before
    assert await store.get_config_history(*KEY) == []


async def test_concurrent_writers_get_entries_equal_to_their_reads(
    store: SQLiteConfigStore,
) -> None:
    entries = await asyncio.gather(
        *(store.set_config("t", SYSTEM, "svc", f"k{n % 4}", {"n": n}) for n in range(32))
    )
    for entry in entries:
        assert_same_entry(
            entry, await store.get_config("t", SYSTEM, "svc", entry.config_key, entry.version)
        )


class CountingTurn:
    """Stands in for the writer's loop turn, counting the writes that took one."""

    def __init__(self) -> None:
        self.turns = 0
        self.turn = sqlite_backend._one_turn

    def __call__(self) -> Generator[None, None, None]:
        self.turns += 1
        return self.turn()


@pytest.fixture
def turns(monkeypatch: pytest.MonkeyPatch) -> CountingTurn:
    counting = CountingTurn()
    monkeypatch.setattr(sqlite_backend, "_one_turn", counting)
    return counting


async def test_a_lone_writer_with_nothing_else_ready_skips_the_turn(
    tmp_path: Path, generous_budget: None, turns: CountingTurn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_backend, "_LOOP_TURN_EVERY", 3600.0)
    async with SQLiteConfigStore(tmp_path / "lone.db") as store:
        jobs_before = jobs_of_writer_thread(store)
        for n in range(20):
            assert (await store.set_config(*KEY, {"n": n})).version == n + 1
        assert jobs_of_writer_thread(store) == jobs_before  # all on the loop
    assert turns.turns <= 1  # the first write of the loop takes one


async def test_a_writer_takes_its_turn_when_another_callback_is_ready(
    tmp_path: Path, generous_budget: None, turns: CountingTurn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_backend, "_LOOP_TURN_EVERY", 3600.0)
    loop = asyncio.get_running_loop()
    calls = 0
    running = True

    def callback() -> None:  # always ready again: the writer must let it run
        nonlocal calls
        calls += 1
        if running:
            loop.call_soon(callback)

    async with SQLiteConfigStore(tmp_path / "shared.db") as store:
        loop.call_soon(callback)
        try:
            for n in range(20):
                await store.set_config(*KEY, {"n": n})
        finally:
            running = False
    assert turns.turns == 20
    assert calls >= 20


async def test_a_lone_writer_still_lets_timers_fire(
    tmp_path: Path, generous_budget: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing is ready while a task sleeps on a timer: the writer's turn every
    _LOOP_TURN_EVERY is what lets the loop see the timer is due."""
    # No checkpoint or feed trim on the writer thread, whose awaits would give turns too.
    monkeypatch.setattr(sqlite_backend, "_CHECKPOINT_FRAMES", 10**9)
    monkeypatch.setattr(sqlite_backend, "_FEED_TRIM_EVERY", 10**9)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(sqlite_backend._LOOP_TURN_EVERY / 2)
            ticks += 1

    async with SQLiteConfigStore(tmp_path / "timers.db") as store:
        loop = asyncio.get_running_loop()
        ticking = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        started = loop.time()
        try:
            n = 0
            while ticks < 3:  # without a turn now and then, this loop never ends
                assert loop.time() - started < 10.0, "a task sleeping on a timer never woke"
                await store.set_config(*KEY, {"n": n})
                n += 1
        finally:
            ticking.cancel()


async def test_a_lone_writer_still_lets_ready_io_be_handled(
    tmp_path: Path, generous_budget: None, turns: CountingTurn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A descriptor becomes readable while nothing is ready to run: the writer's check every
    _LOOP_TURN_EVERY sees it and takes the turn in which the loop handles it."""
    monkeypatch.setattr(sqlite_backend, "_CHECKPOINT_FRAMES", 10**9)
    monkeypatch.setattr(sqlite_backend, "_FEED_TRIM_EVERY", 10**9)
    loop = asyncio.get_running_loop()
    receiving, sending = socket.socketpair()
    received: list[bytes] = []
    loop.add_reader(receiving.fileno(), lambda: received.append(receiving.recv(16)))
    try:
        async with SQLiteConfigStore(tmp_path / "io.db") as store:
            for n in range(20):  # nothing waits: the checks take no turn
                await store.set_config(*KEY, {"n": n})
            turns_before = turns.turns
            assert turns_before <= 1  # the first write of the loop may find a callback ready
            sending.send(b"ping")
            started = loop.time()
            n = 0
            while not received:  # without a turn now and then, this loop never ends
                assert loop.time() - started < 10.0, "a readable descriptor was never handled"
                await store.set_config(*KEY, {"n": n})
                n += 1
    finally:
        loop.remove_reader(receiving.fileno())
        receiving.close()
        sending.close()
    assert received == [b"ping"]
    assert turns.turns > turns_before


async def test_a_lone_writer_asks_the_loop_instead_of_taking_a_turn(
    tmp_path: Path, generous_budget: None, turns: CountingTurn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the check due before every write and nothing waiting, no write takes a turn."""
    monkeypatch.setattr(sqlite_backend, "_LOOP_TURN_EVERY", 0.0)
    checks = 0
    check = sqlite_backend.waiting_check

    def counting_check(loop: asyncio.AbstractEventLoop) -> Callable[[], bool]:
        waiting = check(loop)

        def counted() -> bool:
            nonlocal checks
            checks += 1
            return waiting()

        return counted

    monkeypatch.setattr(sqlite_backend, "waiting_check", counting_check)
    async with SQLiteConfigStore(tmp_path / "asks.db") as store:
        for n in range(20):
            assert (await store.set_config(*KEY, {"n": n})).version == n + 1
    assert checks >= 19
    assert turns.turns <= 1  # the first write of the loop may find a callback ready
