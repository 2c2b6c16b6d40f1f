"""SQLite store against plain aiosqlite and against its own SQL, measured in the same run on files
in a temporary directory.

- latest read: ``get_config`` (no cache) against one ``execute_fetchall`` of the same row on a raw
  aiosqlite connection (target 1.0x), twice: in the pinned process, and in an event loop of its
  own in a thread allowed on every CPU (``(uncached, unpinned)``), both sides opened there.
- durable writes, sequential and with 64 concurrent writers: ``set_config`` against the
  straightforward aiosqlite write (``BEGIN IMMEDIATE``; ``SELECT max(version)``; ``INSERT``;
  ``COMMIT``, each a separate await; concurrent writers share one connection behind an
  ``asyncio.Lock``, the usual way to share a connection) on the same kind of table (targets 1.5x
  and 5x). Both sides use WAL and ``synchronous=FULL``.
- durable write against its floor: ``set_config`` against the store's own statements
  (``BEGIN IMMEDIATE``; the append statement; ``COMMIT``) run synchronously on a plain sqlite3
  connection to a file with the store's schema: no event loop, no thread hop, no Python objects
  beyond the calls (target: within 1.3x, ratio >= 0.77). Its note gives the store's part and,
  for scale, two more sides measured in the same rounds: the same statements run on the event
  loop with one ``await asyncio.sleep(0)`` per write (what one turn of the loop per write
  adds; the store takes a turn only when another task is ready, or once a millisecond), and
  sent to a thread of the store's kind (``SQLiteThread.call``) and awaited (what a write on
  the writer thread adds), neither with store code around them.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from pathlib import Path

import aiosqlite

from confstore import ConfigEntry, ConfigKey, ConfigScope
from confstore._models import format_timestamp, utc_now
from confstore._validation import encode_value, validate_key
from confstore.backends._sqlite_thread import SQLiteThread
from confstore.backends.sqlite import _APPEND_VERSION_RETURNING, SQLiteConfigStore

from ._harness import Result, measure_rate, run_unpinned

_BASELINE_SCHEMA = """
    CREATE TABLE IF NOT EXISTS config_versions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        tenant_id TEXT NOT NULL, scope TEXT NOT NULL, service TEXT NOT NULL,
        config_key TEXT NOT NULL, version INTEGER NOT NULL, value TEXT NOT NULL,
        created_at TEXT NOT NULL, updated_at TEXT NOT NULL, updated_by TEXT, comment TEXT,
        deleted INTEGER NOT NULL DEFAULT 0,
        UNIQUE (tenant_id, scope, service, config_key, version)
    )
"""
_RAW_READ = (
    "SELECT tenant_id, scope, service, config_key, value, version, created_at, updated_at, "
    "updated_by, comment, deleted FROM config_versions "
    "WHERE tenant_id = ? AND scope = ? AND service = ? AND config_key = ? "
    "ORDER BY version DESC LIMIT 1"
)
_VALUE = {"llm_model": "model-a", "temperature": 0.2, "max_tokens": 512, "tags": ["a", "b"]}
_NOW = "2026-01-01T00:00:00.000000+00:00"
CONCURRENT_WRITERS = 64
_WARM_UP_WRITES = 400


class _BaselineWriter:
    """The straightforward aiosqlite implementation the issue names, one shared connection."""

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self.connection = connection
        self.lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> _BaselineWriter:
        connection = await aiosqlite.connect(path, isolation_level=None)
        await connection.execute("PRAGMA journal_mode=WAL")
        await connection.execute("PRAGMA synchronous=FULL")
        await connection.execute(_BASELINE_SCHEMA)
        return cls(connection)

    async def set_config(self, config_key: str) -> int:
        async with self.lock:
            connection = self.connection
            await connection.execute("BEGIN IMMEDIATE")
            try:
                cursor = await connection.execute(
                    "SELECT max(version) FROM config_versions "
                    "WHERE tenant_id = ? AND scope = ? AND service = ? AND config_key = ?",
                    ("bench", "system", "svc", config_key),
                )
                row = await cursor.fetchone()
                await cursor.close()
                version = (row[0] if row and row[0] else 0) + 1
                now = time.time()
                await connection.execute(
                    "INSERT INTO config_versions (tenant_id, scope, service, config_key, version, "
                    "value, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    ("bench", "system", "svc", config_key, version, str(_VALUE), now, now),
                )
                await connection.commit()
            except BaseException:
                await connection.rollback()
                raise
            return version


Operation = Callable[[], Awaitable[object]]
Write = Callable[[str], Awaitable[object]]


async def _compare(
    ours: Operation, baseline: Operation, count: int, rounds: int
) -> tuple[float, float]:
    """Median rates of ``rounds`` interleaved runs, so machine noise hits both sides alike."""
    baseline_rate, our_rate = await _medians((baseline, ours), count, rounds)
    return our_rate, baseline_rate


async def _medians(sides: Sequence[Operation], count: int, rounds: int) -> list[float]:
    """The median rate of each side over ``rounds`` rounds that run every side in turn."""
    rates: list[list[float]] = [[] for _ in sides]
    for _ in range(rounds):
        for side, side_rates in zip(sides, rates, strict=True):
            side_rates.append(await measure_rate(side, count))
    return [statistics.median(side_rates) for side_rates in rates]


def _sequential(write: Write) -> Operation:
    async def operation() -> object:
        return await write("sequential")

    return operation


def _concurrent(write: Write, writes_per_writer: int) -> Operation:
    """One operation = CONCURRENT_WRITERS tasks, each writing its own key ``writes_per_writer`` times."""

    async def writer(number: int) -> None:
        for _ in range(writes_per_writer):
            await write(f"writer-{number}")

    async def operation() -> object:
        return await asyncio.gather(*(writer(number) for number in range(CONCURRENT_WRITERS)))

    return operation


async def _bench_reads(path: Path, count: int, rounds: int, name: str) -> Result:
    async with (
        SQLiteConfigStore(path) as store,
        SQLiteConfigStore(path, loop_reads=False) as thread_store,
    ):
        await store.set_config("bench", "system", "svc", "read", _VALUE)
        async with aiosqlite.connect(path, isolation_level=None) as raw:
            params = ("bench", "system", "svc", "read")

            async def raw_read() -> object:
                return await raw.execute_fetchall(_RAW_READ, params)

            async def store_read() -> object:
                return await store.get_config("bench", "system", "svc", "read")

            async def thread_read() -> object:
                return await thread_store.get_config("bench", "system", "svc", "read")

            baseline, ours, on_thread = await _medians(
                (raw_read, store_read, thread_read), count, rounds
            )
    return Result(
        name,
        ours,
        baseline,
        "reads/s",
        target=1.0,
        note=(
            "baseline: one execute_fetchall of the same row on a raw aiosqlite connection; "
            f"read {1e6 / ours:.0f} us on the loop's thread, {1e6 / on_thread:.0f} us "
            f"({on_thread / baseline:.2f}x) through the reader thread (loop_reads=false), "
            f"raw {1e6 / baseline:.0f} us"
        ),
    )


async def _bench_writes(directory: Path, count: int, per_writer: int, rounds: int) -> list[Result]:
    baseline = await _BaselineWriter.open(directory / "baseline.db")
    try:
        async with SQLiteConfigStore(directory / "store.db", synchronous="FULL") as store:

            async def store_write(config_key: str) -> object:
                return await store.set_config("bench", "system", "svc", config_key, _VALUE)

            # Warm up past the first WAL checkpoint on both files: a WAL that is still growing
            # makes every fsync also commit file-size metadata, which is not the steady state.
            for _ in range(_WARM_UP_WRITES):
                await baseline.set_config("warm-up")
                await store_write("warm-up")
            sequential = await _compare(
                _sequential(store_write), _sequential(baseline.set_config), count, rounds
            )
            concurrent = await _compare(
                _concurrent(store_write, per_writer),
                _concurrent(baseline.set_config, per_writer),
                1,
                rounds,
            )
    finally:
        await baseline.connection.close()
    writes_per_run = CONCURRENT_WRITERS * per_writer
    note = "baseline: BEGIN IMMEDIATE; SELECT max; INSERT; COMMIT as separate awaits"
    return [
        Result(
            "sqlite durable set_config, sequential",
            sequential[0],
            sequential[1],
            "writes/s",
            target=1.5,
            note=note,
        ),
        Result(
            f"sqlite durable set_config, {CONCURRENT_WRITERS} writers",
            concurrent[0] * writes_per_run,
            concurrent[1] * writes_per_run,
            "writes/s",
            target=5.0,
            note=note + " (one shared connection behind an asyncio.Lock); ours: group commit",
        ),
    ]


class _Floor:
    """The store's own write statements, run synchronously on a plain sqlite3 connection."""

    def __init__(self, path: Path) -> None:
        self.connection = _floor_connection(path)
        value_json = json.dumps(_VALUE, separators=(",", ":"))
        # ?1-?4 the key, ?5 value, ?6 now, ?7 updated_by, ?8 comment, ?9 deleted, ?10 expected.
        self.parameters = ("bench", "system", "svc", "floor", value_json, _NOW, None, None, 0, None)

    def write(self) -> None:
        _floor_write(self.connection, self.parameters)

    def rate(self, count: int) -> float:
        started = time.perf_counter()
        for _ in range(count):
            self.write()
        return count / (time.perf_counter() - started)


def _floor_connection(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA synchronous=FULL")
    return connection


def _floor_write(connection: sqlite3.Connection, parameters: tuple[object, ...]) -> None:
    connection.execute("BEGIN IMMEDIATE")
    connection.execute(_APPEND_VERSION_RETURNING, parameters).fetchone()
    connection.execute("COMMIT")


def _python_seconds_per_write(count: int) -> float:
    """What set_config does in Python besides the SQL: validation, value encoding, the entry."""
    started = time.perf_counter()
    for _ in range(count):
        key = validate_key("bench", "system", "svc", "sequential")
        value, _ = encode_value(_VALUE)
        now = utc_now()
        format_timestamp(now)
        ConfigEntry(*_key_parts(key), value, 1, now, now, None, None)
    return (time.perf_counter() - started) / count


def _key_parts(key: ConfigKey) -> tuple[str, ConfigScope, str, str]:
    return key.tenant_id, key.scope, key.service, key.config_key


async def _bench_write_floor(directory: Path, count: int, rounds: int) -> Result:
    path = directory / "floor.db"
    async with SQLiteConfigStore(path, synchronous="FULL") as store:
        floor = _Floor(path)  # synchronous on purpose: it is the floor
        threaded = SQLiteThread("benchmark-floor-thread")
        await threaded.open(partial(_floor_connection, path))
        try:

            async def store_write() -> object:
                return await store.set_config("bench", "system", "svc", "sequential", _VALUE)

            async def threaded_write() -> object:
                return await threaded.call(_floor_write, floor.parameters)

            async def loop_write() -> object:
                await asyncio.sleep(0)
                return floor.write()

            for _ in range(_WARM_UP_WRITES):
                await store_write()
                floor.write()
            rates: dict[str, list[float]] = {"floor": [], "loop": [], "thread": [], "store": []}
            for _ in range(rounds):
                rates["floor"].append(floor.rate(count))
                rates["loop"].append(await measure_rate(loop_write, count))
                rates["thread"].append(await measure_rate(threaded_write, count))
                rates["store"].append(await measure_rate(store_write, count))
            writer = store._writer
            assert writer is not None
            thread = writer._thread

            async def hop() -> object:
                return await thread.call(_nothing)

            hop_rate = statistics.median([await measure_rate(hop, count) for _ in range(rounds)])
        finally:
            await threaded.close()
            floor.connection.close()
    ours, baseline, on_loop, on_thread = (
        statistics.median(rates[side]) for side in ("store", "floor", "loop", "thread")
    )
    python = _python_seconds_per_write(count * 10)
    set_config, floor_us, loop_us, thread_us = (
        1e6 / rate for rate in (ours, baseline, on_loop, on_thread)
    )
    # The spread: the store's part in each round (its writes less the floor's, same round).
    parts = [
        1e6 / store - 1e6 / floor
        for store, floor in zip(rates["store"], rates["floor"], strict=True)
    ]
    low, middle, high = statistics.quantiles(parts, n=4)
    breakdown = (
        f"set_config {set_config:.0f} us = floor (SQL + fsync) {floor_us:.0f} us"
        f" + the store {set_config - floor_us:.0f} us (its validation, encoding, entry and the"
        f" loop turns it takes; the Python alone, timed in a loop: {python * 1e6:.0f} us);"
        f" for scale, the bare SQL with one loop turn per write: floor + {loop_us - floor_us:.0f}"
        f" us; on a thread instead: floor + {thread_us - floor_us:.0f} us (a no-op hop alone:"
        f" {1e6 / hop_rate:.0f} us); the store's part round by round: median {middle:.0f} us,"
        f" quartiles {low:.0f} to {high:.0f} us over {rounds} rounds"
    )
    return Result(
        "sqlite durable set_config vs its own SQL",
        ours,
        baseline,
        "writes/s",
        target=1 / 1.3,
        note=f"baseline: the same statements run synchronously (no loop, no hop); {breakdown}",
    )


def _nothing(connection: sqlite3.Connection) -> None:
    return None


async def run(quick: bool) -> list[Result]:
    # Many short interleaved rounds: on a shared machine, fsync latency swings by 10x within
    # seconds, and only a median over rounds that alternate closely sees the same disk on both sides.
    reads, read_rounds = (100, 5) if quick else (200, 25)
    writes, per_writer, write_rounds = (10, 1, 8) if quick else (10, 2, 61)
    # More rounds for the floor row, whose ratio sits near its target: a steadier median.
    floor_rounds = 8 if quick else 121
    with tempfile.TemporaryDirectory(prefix="confstore-bench-") as temporary:
        directory = Path(temporary)
        results = [
            await _bench_reads(
                directory / "read.db", reads, read_rounds, "sqlite latest read (uncached)"
            ),
            await run_unpinned(
                partial(
                    _bench_reads,
                    directory / "read-unpinned.db",
                    reads,
                    read_rounds,
                    "sqlite latest read (uncached, unpinned)",
                )
            ),
        ]
        results.extend(await _bench_writes(directory, writes, per_writer, write_rounds))
        results.append(await _bench_write_floor(directory, writes, floor_rounds))
    return results
