"""SQLite imports entries as they arrive, in one transaction: anything wrong writes nothing."""

from __future__ import annotations

import asyncio
import io
import json
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import pytest

from confstore import (
    ExportFileReader,
    ImportConflictError,
    ImportFormatError,
    _export_reader,
    open_store,
)
from confstore._export import ROW_CHUNK
from confstore.backends import sqlite as sqlite_backend
from confstore.backends.sqlite import SQLiteConfigStore

# Several chunks, so every rule is checked across chunk boundaries too.
MANY = 3 * ROW_CHUNK + 7


def entry(version: int, config_key: str = "key", **extra: Any) -> dict[str, Any]:
    return {
        "tenant_id": "source",
        "scope": "system",
        "service": "svc",
        "config_key": config_key,
        "config_value": {"n": version},
        "version": version,
        "created_at": "2026-01-01T00:00:00+00:00",
        "updated_at": f"2026-01-01T00:00:{version % 60:02d}+00:00",
        **extra,
    }


async def stream(
    entries: Iterable[dict[str, Any]], fail_at_end: bool = False
) -> AsyncIterator[Any]:
    for item in entries:
        yield item
    if fail_at_end:
        raise ConnectionError("the source went away")


def file_reader(entries: Iterable[dict[str, Any]], on_progress: Any = None) -> ExportFileReader:
    """A reader of the entries as an export file (one entry per line)."""
    lines = ",\n".join(json.dumps(item) for item in entries)
    text = '{"format": "confstore-export", "format_version": 1, "configs": [\n' + lines + "\n]}"
    return ExportFileReader(io.StringIO(text), on_progress=on_progress)


@pytest.fixture
def small_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files are read 8 KiB at a time, so a few thousand entries take dozens of pieces."""
    monkeypatch.setattr(_export_reader, "CHUNK_CHARACTERS", 8192)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteConfigStore]:
    async with SQLiteConfigStore(tmp_path / "import.db") as opened:
        await opened.set_config("acme", "system", "svc", "existing", {"n": 0})
        yield opened


async def total_versions(store: SQLiteConfigStore) -> int:
    return int((await store.get_stats())["total_versions"])


async def test_a_stream_of_many_chunks_is_restored_exactly(store: SQLiteConfigStore) -> None:
    written = await store.import_entries("acme", stream(entry(v) for v in range(1, MANY + 1)))
    assert written == MANY
    history = await store.get_config_history("acme", "system", "svc", "key", limit=MANY)
    assert [item.version for item in history] == list(range(MANY, 0, -1))
    assert history[0].updated_at.second == MANY % 60
    assert history[0].tenant_id == "acme"


async def test_entries_in_any_order_are_restored(store: SQLiteConfigStore) -> None:
    versions = list(range(1, MANY + 1))
    shuffled = versions[::2] + versions[1::2]
    assert await store.import_entries("acme", (entry(v) for v in shuffled)) == MANY
    latest = await store.get_config("acme", "system", "svc", "key")
    assert latest is not None
    assert latest.version == MANY


async def test_a_source_that_fails_at_the_end_writes_nothing(store: SQLiteConfigStore) -> None:
    entries = stream((entry(v) for v in range(1, MANY + 1)), fail_at_end=True)
    with pytest.raises(ConnectionError):
        await store.import_entries("acme", entries)
    assert await total_versions(store) == 1


async def test_a_malformed_last_entry_writes_nothing(store: SQLiteConfigStore) -> None:
    entries = [entry(v) for v in range(1, MANY + 1)] + [{**entry(MANY + 1), "scope": "nope"}]
    with pytest.raises(ImportFormatError, match=rf"configs\[{MANY}\]"):
        await store.import_entries("acme", stream(entries))
    assert await total_versions(store) == 1


async def test_a_version_given_twice_in_different_chunks_writes_nothing(
    store: SQLiteConfigStore,
) -> None:
    entries = [entry(v) for v in range(1, MANY + 1)] + [entry(5)]
    with pytest.raises(ImportFormatError, match="version 5 of acme/system/svc/key appears twice"):
        await store.import_entries("acme", stream(entries))
    assert await total_versions(store) == 1


async def test_a_late_conflict_with_a_stored_version_writes_nothing(
    store: SQLiteConfigStore,
) -> None:
    await store.set_config("acme", "system", "svc", "other", {"stored": True})
    entries = [entry(v) for v in range(1, MANY + 1)] + [entry(1, config_key="other")]
    with pytest.raises(ImportConflictError):
        await store.import_entries("acme", stream(entries))
    assert await total_versions(store) == 2


async def test_a_version_given_twice_within_one_statement_writes_nothing(
    store: SQLiteConfigStore,
) -> None:
    entries = [entry(v) for v in range(1, 9)] + [entry(3)] + [entry(v) for v in range(9, 16)]
    with pytest.raises(ImportFormatError, match="version 3 of acme/system/svc/key appears twice"):
        await store.import_entries("acme", stream(entries))
    assert await total_versions(store) == 1


async def test_a_conflict_in_the_middle_of_a_statement_writes_nothing(
    store: SQLiteConfigStore,
) -> None:
    """The statement keeps the rows before the conflicting one until the import rolls back."""
    await store.set_config("acme", "system", "svc", "key", {"stored": True})  # version 1
    entries = [entry(v, config_key="a") for v in range(1, 6)] + [entry(v) for v in range(1, 4)]
    with pytest.raises(ImportConflictError, match="version 1 of acme/system/svc/key"):
        await store.import_entries("acme", stream(entries))
    assert await total_versions(store) == 2
    assert await store.get_config("acme", "system", "svc", "a") is None


async def writer_cache_size(store: SQLiteConfigStore) -> int:
    writer = store._writer
    assert writer is not None
    size: int = await writer._thread.call(
        lambda connection: connection.execute("PRAGMA cache_size").fetchone()[0]
    )
    return size


async def test_an_import_runs_with_a_larger_page_cache_and_gives_it_back(
    store: SQLiteConfigStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    default = await writer_cache_size(store)
    during: list[int] = []
    write = sqlite_backend._ImportTransaction.write

    def recording_write(transaction: Any, connection: sqlite3.Connection, rows: list[Any]) -> int:
        during.append(connection.execute("PRAGMA cache_size").fetchone()[0])
        return write(transaction, connection, rows)

    monkeypatch.setattr(sqlite_backend._ImportTransaction, "write", recording_write)
    assert await store.import_entries("acme", stream(entry(v) for v in range(1, MANY + 1)))
    assert set(during) == {-sqlite_backend._IMPORT_CACHE_KIB}
    assert await writer_cache_size(store) == default
    with pytest.raises(ImportFormatError):
        await store.import_entries("acme", stream([entry(MANY + 1), {"scope": "nope"}]))
    assert await writer_cache_size(store) == default != -sqlite_backend._IMPORT_CACHE_KIB


async def test_importing_the_same_entries_again_writes_nothing(store: SQLiteConfigStore) -> None:
    entries = [entry(v) for v in range(1, MANY + 1)]
    assert await store.import_entries("acme", entries) == MANY
    assert await store.import_entries("acme", stream(entries)) == 0
    assert await total_versions(store) == MANY + 1


async def test_append_adds_entries_in_version_order_on_top(store: SQLiteConfigStore) -> None:
    entries = [entry(v, config_key="existing") for v in (3, 1, 2)]
    assert await store.import_entries("acme", stream(entries), mode="append") == 3
    history = await store.get_config_history("acme", "system", "svc", "existing")
    assert [(e.version, e.config_value) for e in history] == [
        (4, {"n": 3}),
        (3, {"n": 2}),
        (2, {"n": 1}),
        (1, {"n": 0}),
    ]


async def test_append_refuses_a_version_given_twice_and_writes_nothing(
    store: SQLiteConfigStore,
) -> None:
    entries = [entry(v) for v in range(1, MANY + 1)] + [entry(MANY)]
    with pytest.raises(ImportFormatError, match="appears twice"):
        await store.import_entries("acme", stream(entries), mode="append")
    assert await total_versions(store) == 1


@pytest.mark.usefixtures("small_pieces")
async def test_a_file_is_read_checked_and_written_a_piece_at_a_time_on_one_thread_off_the_loop(
    store: SQLiteConfigStore,
) -> None:
    readers: list[int] = []
    reader = file_reader(
        (entry(v) for v in range(1, MANY + 1)),
        on_progress=lambda _: readers.append(threading.get_ident()),
    )
    await reader.read_header()
    readers.clear()
    assert await store.import_entries("acme", reader.entries()) == MANY
    assert len(readers) > 50
    assert len(set(readers)) == 1
    assert threading.get_ident() not in readers
    history = await store.get_config_history("acme", "system", "svc", "key", limit=MANY)
    assert [item.version for item in history] == list(range(MANY, 0, -1))


@pytest.mark.usefixtures("small_pieces")
async def test_a_bad_entry_in_a_late_piece_of_a_file_writes_nothing(
    store: SQLiteConfigStore,
) -> None:
    entries = [entry(v) for v in range(1, MANY + 1)]
    entries[MANY - 2]["version"] = 0
    with pytest.raises(ImportFormatError, match=rf"configs\[{MANY - 2}\]"):
        await store.import_entries("acme", file_reader(entries).entries())
    assert await total_versions(store) == 1


@pytest.mark.usefixtures("small_pieces")
async def test_writes_during_a_file_import_wait_for_it_and_then_commit(
    store: SQLiteConfigStore,
) -> None:
    loop = asyncio.get_running_loop()
    started = asyncio.Event()
    reader = file_reader(
        (entry(v) for v in range(1, MANY + 1)),
        on_progress=lambda _: loop.call_soon_threadsafe(started.set),
    )

    async def write_meanwhile() -> int:
        await started.wait()
        return (await store.set_config("acme", "system", "svc", "key", {"late": 1})).version

    written, version = await asyncio.gather(
        store.import_entries("acme", reader.entries()), write_meanwhile()
    )
    assert written == MANY
    assert version == MANY + 1


async def test_writes_during_an_import_wait_for_it_and_then_commit(
    store: SQLiteConfigStore,
) -> None:
    started = asyncio.Event()

    async def slow_source() -> AsyncIterator[Any]:
        for version in range(1, MANY + 1):
            if version == ROW_CHUNK + 1:
                started.set()
                await asyncio.sleep(0.05)  # the import holds its transaction meanwhile
            yield entry(version)

    async def write_meanwhile() -> int:
        await started.wait()
        return (await store.set_config("acme", "system", "svc", "key", {"late": 1})).version

    written, version = await asyncio.gather(
        store.import_entries("acme", slow_source()), write_meanwhile()
    )
    assert written == MANY
    assert version == MANY + 1


async def test_the_import_is_one_transaction_for_another_process(tmp_path: Path) -> None:
    """A reader on another connection sees nothing of an import before its end, then all of it."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    seen_during: list[int] = []
    async with open_store(url) as importer, open_store(url) as reader:

        async def watched_source() -> AsyncIterator[Any]:
            for version in range(1, MANY + 1):
                if version % ROW_CHUNK == 0:
                    seen_during.append((await reader.get_stats())["total_versions"])
                yield entry(version)

        await importer.import_entries("acme", watched_source())
        assert (await reader.get_stats())["total_versions"] == MANY
    assert seen_during == [0, 0, 0]


async def test_a_restore_over_some_stored_versions_writes_only_the_others(
    store: SQLiteConfigStore,
) -> None:
    """Stored versions in the middle of a chunk: only the statement holding them is redone one
    row at a time, the rest of the chunk is written as it was."""
    middle = [entry(v) for v in range(ROW_CHUNK // 2, ROW_CHUNK // 2 + 3)]
    assert await store.import_entries("acme", middle) == 3
    written = await store.import_entries("acme", stream(entry(v) for v in range(1, MANY + 1)))
    assert written == MANY - 3
    assert await total_versions(store) == MANY + 1


def test_statement_batches_keep_order_sizes_and_the_character_bound() -> None:
    rows = [
        ("t", "system", "s", "k", "x" * length, 1, "", "", None, None, 0)
        for length in [10] * 700 + [sqlite_backend._STATEMENT_CHARACTERS // 3] * 5 + [10] * 3
    ]
    sizes = (256, 128, 64, 32, 16, 8, 4, 2, 1)
    batches = list(sqlite_backend._statement_batches(rows, sizes))
    assert [row for batch in batches for row in batch] == rows
    assert {len(batch) for batch in batches} <= set(sizes)
    for batch in batches:
        characters = sum(len(row[4]) for row in batch)
        assert len(batch) == 1 or characters <= sqlite_backend._STATEMENT_CHARACTERS


def test_an_import_fits_sqlite_with_the_old_limit_of_999_parameters(tmp_path: Path) -> None:
    connection = sqlite3.connect(tmp_path / "old.db", isolation_level=None)
    connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
    for statement in sqlite_backend._SCHEMA:
        connection.execute(statement)
    transaction = sqlite_backend._ImportTransaction("restore")
    connection.execute("BEGIN IMMEDIATE")
    transaction.start(connection)
    rows = [
        ("t", "system", "s", "k", "{}", version, "", "", None, None, 0)
        for version in range(1, 1001)
    ]
    assert transaction.write(connection, rows) == 1000
    connection.execute("COMMIT")
    assert connection.execute("SELECT count(*) FROM config_versions").fetchone() == (1000,)
    connection.close()
