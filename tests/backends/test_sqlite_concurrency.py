"""SQLite under concurrent writers: tasks, handles and real processes on one file, and SIGKILL."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

from confstore import ConfigScope, VersionConflictError
from confstore.backends.sqlite import SQLiteConfigStore

SYSTEM = ConfigScope.SYSTEM
WRITER_SCRIPT = Path(__file__).with_name("_sqlite_writer.py")
# The key _sqlite_writer.py writes.
SHARED_KEY = ("multiprocess", SYSTEM, "writer", "shared")


async def test_sixty_concurrent_tasks_on_one_key_get_versions_one_to_sixty(
    store: SQLiteConfigStore,
) -> None:
    entries = await asyncio.gather(
        *(store.set_config("t", SYSTEM, "svc", "key", {"task": n}) for n in range(60))
    )
    assert sorted(entry.version for entry in entries) == list(range(1, 61))
    history = await store.get_config_history("t", SYSTEM, "svc", "key", limit=100)
    assert {entry.version: entry.config_value["task"] for entry in history} == {
        entry.version: entry.config_value["task"] for entry in entries
    }


async def test_concurrent_compare_and_set_lets_exactly_one_writer_win(
    store: SQLiteConfigStore,
) -> None:
    outcomes = await asyncio.gather(
        *(
            store.set_config("t", SYSTEM, "svc", "key", {"task": n}, expected_version=0)
            for n in range(20)
        ),
        return_exceptions=True,
    )
    winners = [outcome for outcome in outcomes if not isinstance(outcome, BaseException)]
    losers = [outcome for outcome in outcomes if isinstance(outcome, VersionConflictError)]
    assert len(winners) == 1
    assert len(losers) == 19
    assert all((loser.expected, loser.actual) == (0, 1) for loser in losers)
    assert (await store.get_stats())["total_versions"] == 1


async def test_a_failed_write_in_a_group_commit_does_not_abort_the_others(
    store: SQLiteConfigStore,
) -> None:
    await store.set_config("t", SYSTEM, "svc", "key", {"n": 0})
    outcomes = await asyncio.gather(
        *(
            store.set_config(
                "t", SYSTEM, "svc", "key", {"n": n}, expected_version=99 if n % 2 else None
            )
            for n in range(1, 21)
        ),
        return_exceptions=True,
    )
    conflicts, writes = outcomes[::2], outcomes[1::2]  # odd n asked for version 99
    assert all(isinstance(outcome, VersionConflictError) for outcome in conflicts)
    assert sorted(getattr(outcome, "version", None) for outcome in writes) == list(range(2, 12))


async def test_writes_through_two_handles_on_one_file_get_contiguous_versions(
    db_path: Path,
) -> None:
    async with SQLiteConfigStore(db_path) as first, SQLiteConfigStore(db_path) as second:
        entries = await asyncio.gather(
            *(
                (first if n % 2 else second).set_config("t", SYSTEM, "svc", "key", {"n": n})
                for n in range(40)
            )
        )
    assert sorted(entry.version for entry in entries) == list(range(1, 41))


async def test_reads_do_not_wait_for_a_held_write_lock(
    store: SQLiteConfigStore, db_path: Path
) -> None:
    await store.set_config("t", SYSTEM, "svc", "key", {"n": 1})
    holder = sqlite3.connect(db_path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        async with asyncio.timeout(2):
            entry = await store.get_config("t", SYSTEM, "svc", "key")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert entry is not None
    assert entry.version == 1


async def _start_writer(db_path: Path, name: str, count: int) -> asyncio.subprocess.Process:
    """A writer process with its store open, waiting for ``_go``."""
    writer = await asyncio.create_subprocess_exec(
        sys.executable,
        str(WRITER_SCRIPT),
        str(db_path),
        name,
        str(count),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert writer.stdout is not None
    ready = await writer.stdout.readline()
    if ready != b"READY\n":
        assert writer.stderr is not None
        pytest.fail(f"writer {name} did not start: {(await writer.stderr.read()).decode()}")
    return writer


async def _go(writer: asyncio.subprocess.Process) -> None:
    assert writer.stdin is not None
    writer.stdin.write(b"go\n")
    await writer.stdin.drain()


def _reported(output: bytes) -> list[tuple[int, str, int]]:
    """(version, writer, sequence) for every complete line a writer printed."""
    lines = output.decode().splitlines(keepends=True)
    return [
        (int(version), writer, int(sequence))
        for version, writer, sequence in (line.split() for line in lines if line.endswith("\n"))
    ]


async def test_three_processes_writing_one_file_get_versions_one_to_450(
    db_path: Path,
) -> None:
    async with SQLiteConfigStore(db_path):
        pass  # create the schema before the race, as a deployment would
    writers = [await _start_writer(db_path, f"w{n}", 150) for n in range(3)]
    for writer in writers:  # all three are open and waiting: they start writing together
        await _go(writer)
    results = await asyncio.gather(*(writer.communicate() for writer in writers))
    for writer, (_, stderr) in zip(writers, results, strict=True):
        assert writer.returncode == 0, stderr.decode()
    reported = [row for stdout, _ in results for row in _reported(stdout)]
    assert sorted(version for version, _, _ in reported) == list(range(1, 451))
    async with SQLiteConfigStore(db_path) as store:
        history = await store.get_config_history(*SHARED_KEY, limit=1000)
    stored = {entry.version: entry.config_value for entry in history}
    assert stored == {
        version: {"writer": writer, "sequence": sequence} for version, writer, sequence in reported
    }


async def test_writer_killed_with_sigkill_loses_no_reported_version(db_path: Path) -> None:
    writer = await _start_writer(db_path, "victim", 1_000_000)
    await _go(writer)
    assert writer.stdout is not None
    printed = b""
    while len(_reported(printed)) < 100:
        line = await writer.stdout.readline()
        assert line, (await writer.stderr.read()).decode() if writer.stderr else "writer died"
        printed += line
    writer.send_signal(signal.SIGKILL)
    printed += await writer.stdout.read()  # what it printed before it died
    await writer.wait()
    assert writer.returncode == -signal.SIGKILL
    reported = _reported(printed)

    async with SQLiteConfigStore(db_path) as store:
        latest = await store.get_config(*SHARED_KEY)
        assert latest is not None
        history = await store.get_config_history(*SHARED_KEY, limit=latest.version)
    stored = {entry.version: entry.config_value for entry in history}
    for version, name, sequence in reported:
        assert stored[version] == {"writer": name, "sequence": sequence}
    assert sorted(stored) == list(range(1, latest.version + 1))

    def integrity_check() -> str:
        with sqlite3.connect(db_path) as connection:
            return str(connection.execute("PRAGMA integrity_check").fetchone()[0])

    assert await asyncio.to_thread(integrity_check) == "ok"


async def test_a_write_that_fails_after_changing_rows_is_rolled_back_alone(
    store: SQLiteConfigStore,
) -> None:
    """The group-commit path itself: each write of a batch runs in its own savepoint."""
    writer = store._writer
    assert writer is not None

    def insert_then_fail(connection: sqlite3.Connection) -> None:
        connection.execute(
            "INSERT INTO config_versions (tenant_id, scope, service, config_key, version, value, "
            "created_at, updated_at) VALUES ('t', 'system', 'svc', 'doomed', 1, '{}', 'x', 'x')"
        )
        raise VersionConflictError(1, 2)

    outcomes = await asyncio.gather(
        store.set_config("t", SYSTEM, "svc", "before", {"n": 1}),
        writer.write(insert_then_fail),
        store.set_config("t", SYSTEM, "svc", "after", {"n": 2}),
        return_exceptions=True,
    )
    assert isinstance(outcomes[1], VersionConflictError)
    assert await store.get_config("t", SYSTEM, "svc", "doomed") is None
    assert await store.get_config("t", SYSTEM, "svc", "before") is not None
    assert await store.get_config("t", SYSTEM, "svc", "after") is not None
    assert (await store.get_stats())["total_versions"] == 2
