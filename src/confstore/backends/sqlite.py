"""SQLiteConfigStore: the embedded default store, one SQLite file shared safely by many processes.

Schema (``PRAGMA user_version`` = 1; ``initialize()`` creates it once and is idempotent):

- ``config_versions``: every stored version, one row each, with the key's four identifier columns,
  ``version``, the value as canonical JSON text and the audit fields. ``seq`` (the rowid) orders
  rows by insertion; ``UNIQUE(tenant_id, scope, service, config_key, version)`` is both the guarantee
  that no two writes share a version and the index every per-key read seeks, so the latest version
  and ``history(10)`` of a key with a million versions cost one B-tree descent, like a key with 100.
  Identifiers are separate columns (never concatenated), so ("a:b", "c") and ("a", "b:c") differ.
- ``config_heads``: one row per key with its latest version, deleted flag, ``created_at`` and
  version count. Listings, tenants and stats read this small table instead of scanning versions,
  and a write computes ``latest + 1`` from it.
- ``config_changes``: the change feed, one row per committed version (``set``/``delete``) or purge;
  its ``seq`` is the feed cursor. Writers take the write lock in turn (``BEGIN IMMEDIATE``), so
  sequence numbers become visible in order and a follower never skips one.

A trigger on ``config_versions`` maintains heads and the change feed inside the inserting statement:
no extra round trip, and the statement is atomic with them. Timestamps are ISO 8601 text in UTC
with microseconds, as in exports (readable with any SQLite tool, and the fastest form to parse).

The change log is never pruned (one small row per write), so its rowid ``seq`` only grows and a
cursor stays valid forever, without AUTOINCREMENT's extra page write per commit.

Connections: a file store opens one writer and one reader connection (aiosqlite, each on its own
thread). The file is in WAL mode, so reads never wait for the writer; ``synchronous=FULL`` by default
makes every acknowledged write survive a crash of the process or the machine. ``:memory:`` uses a
single connection for both. A read is one thread hop: the query runs and its rows become
ConfigEntry objects on the reader thread (``_queue_on_thread``).

Writes go through one group-commit path: a write is queued, and the writer takes everything queued
so far into one transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``, one fsync, one thread hop). Each
write runs in its own SAVEPOINT, so it keeps its own version, its own compare-and-set outcome and its
own error: a conflicting or failing write is rolled back alone while the others commit. The next
version and the compare-and-set check are one ``INSERT ... SELECT ... RETURNING`` statement. Writers
in other processes wait through SQLite's busy timeout; a "database is locked" that outlives it is
retried with backoff until the store's ``timeout``, then reported as BackendTimeoutError.

Driver errors are translated once, by ``_DriverErrors``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import sqlite3
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Final, Literal, TypeVar, cast

import aiosqlite

from .._errors import (
    BackendTimeoutError,
    BackendUnavailableError,
    ConfigStoreError,
    InvalidConfigError,
    VersionConflictError,
)
from .._export import ImportMode, plan_restore
from .._models import (
    ChangeBatch,
    ChangeKind,
    ConfigChange,
    ConfigEntry,
    ConfigKey,
    ConfigScope,
    format_timestamp,
    utc_now,
)
from .._options import StoreOptions
from .._store import ConfigStore, StoreCapabilities
from .._url import StoreURL
from .._validation import DEFAULT_MAX_VALUE_BYTES

SCHEMA_VERSION: Final = 1
DEFAULT_TIMEOUT: Final = 10.0
MEMORY_PATH: Final = ":memory:"
Synchronous = Literal["FULL", "NORMAL"]
_SYNCHRONOUS_MODES: Final = ("FULL", "NORMAL")

# Bounds one group commit, so a burst of writers cannot hold the write lock for long.
_MAX_BATCH = 512
# Rows fetched per page when streaming a tenant's entries (iter_configs).
_PAGE_SIZE = 1000

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS config_versions (
        seq INTEGER PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        scope TEXT NOT NULL,
        service TEXT NOT NULL,
        config_key TEXT NOT NULL,
        version INTEGER NOT NULL CHECK (version >= 1),
        value TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        updated_by TEXT,
        comment TEXT,
        deleted INTEGER NOT NULL DEFAULT 0,
        UNIQUE (tenant_id, scope, service, config_key, version)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS config_heads (
        tenant_id TEXT NOT NULL,
        scope TEXT NOT NULL,
        service TEXT NOT NULL,
        config_key TEXT NOT NULL,
        latest_version INTEGER NOT NULL,
        deleted INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        version_count INTEGER NOT NULL,
        PRIMARY KEY (tenant_id, scope, service, config_key)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE IF NOT EXISTS config_changes (
        seq INTEGER PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        scope TEXT NOT NULL,
        service TEXT NOT NULL,
        config_key TEXT NOT NULL,
        kind TEXT NOT NULL,
        version INTEGER NOT NULL
    )
    """,
    # Restored versions may arrive below the latest one: heads only move forward.
    """
    CREATE TRIGGER IF NOT EXISTS config_versions_maintain AFTER INSERT ON config_versions
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
    """,
)

_ENTRY_COLUMNS = (
    "tenant_id, scope, service, config_key, value, version, "
    "created_at, updated_at, updated_by, comment, deleted"
)
_KEY_MATCH = "tenant_id = ? AND scope = ? AND service = ? AND config_key = ?"

_SELECT_LATEST = (
    f"SELECT {_ENTRY_COLUMNS} FROM config_versions WHERE {_KEY_MATCH} ORDER BY version DESC LIMIT 1"
)
_SELECT_VERSION = f"SELECT {_ENTRY_COLUMNS} FROM config_versions WHERE {_KEY_MATCH} AND version = ?"
_SELECT_HISTORY = (
    f"SELECT {_ENTRY_COLUMNS} FROM config_versions WHERE {_KEY_MATCH} ORDER BY version DESC LIMIT ?"
)
_SELECT_VERSION_RANGE = (
    f"SELECT {_ENTRY_COLUMNS} FROM config_versions WHERE {_KEY_MATCH} AND version BETWEEN ? AND ?"
)
_SELECT_HEAD = f"SELECT latest_version, deleted FROM config_heads WHERE {_KEY_MATCH}"

# Latest live version of each key of a tenant, after a (scope, service, config_key) position.
_SELECT_LIVE_PAGE = f"""
    SELECT {", ".join("v." + column.strip() for column in _ENTRY_COLUMNS.split(","))}
    FROM config_heads AS h JOIN config_versions AS v
      ON v.tenant_id = h.tenant_id AND v.scope = h.scope AND v.service = h.service
     AND v.config_key = h.config_key AND v.version = h.latest_version
    WHERE h.tenant_id = :tenant_id AND h.deleted = 0
      AND (:scope IS NULL OR h.scope = :scope) AND (:service IS NULL OR h.service = :service)
      AND (h.scope, h.service, h.config_key) > (:after_scope, :after_service, :after_key)
    ORDER BY h.scope, h.service, h.config_key
    LIMIT :limit
"""
_SELECT_HISTORY_PAGE = f"""
    SELECT {_ENTRY_COLUMNS} FROM config_versions
    WHERE tenant_id = :tenant_id
      AND (scope, service, config_key, version) > (:after_scope, :after_service, :after_key, :after_version)
    ORDER BY scope, service, config_key, version
    LIMIT :limit
"""
_SELECT_TENANTS = "SELECT DISTINCT tenant_id FROM config_heads WHERE deleted = 0 ORDER BY tenant_id"
_SELECT_ALL_TENANTS = "SELECT DISTINCT tenant_id FROM config_heads ORDER BY tenant_id"
# One statement, so one consistent snapshot.
_SELECT_STATS = """
    SELECT
        (SELECT count(*) FROM config_heads WHERE deleted = 0),
        (SELECT coalesce(sum(version_count), 0) FROM config_heads),
        (SELECT count(DISTINCT tenant_id) FROM config_heads WHERE deleted = 0),
        (SELECT json_group_object(scope, live) FROM
            (SELECT scope, count(*) AS live FROM config_heads WHERE deleted = 0 GROUP BY scope))
"""
_SELECT_CHANGES = (
    "SELECT seq, tenant_id, scope, service, config_key, kind, version FROM config_changes "
    "WHERE seq > ? ORDER BY seq LIMIT ?"
)
_SELECT_CURSOR = "SELECT coalesce(max(seq), 0) FROM config_changes"

# latest + 1 and the compare-and-set check in one statement, inside the write transaction.
# Parameters: ?1-?4 the key, ?5 value, ?6 now, ?7 updated_by, ?8 comment, ?9 deleted, ?10 expected.
_APPEND_VERSION = """
    INSERT INTO config_versions (tenant_id, scope, service, config_key, version, value,
                                 created_at, updated_at, updated_by, comment, deleted)
    SELECT ?1, ?2, ?3, ?4, coalesce(h.latest_version, 0) + 1, ?5,
           coalesce(h.created_at, ?6), ?6, ?7, ?8, ?9
    FROM (SELECT 1) LEFT JOIN config_heads AS h
      ON h.tenant_id = ?1 AND h.scope = ?2 AND h.service = ?3 AND h.config_key = ?4
    WHERE ?10 IS NULL OR coalesce(h.latest_version, 0) = ?10
"""
_APPEND_VERSION_RETURNING = _APPEND_VERSION + " RETURNING version, created_at"
_INSERT_VERSION = (
    f"INSERT INTO config_versions ({_ENTRY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_PURGE_VERSIONS = f"DELETE FROM config_versions WHERE {_KEY_MATCH}"
_PURGE_HEAD = f"DELETE FROM config_heads WHERE {_KEY_MATCH}"
_RECORD_PURGE = (
    "INSERT INTO config_changes (tenant_id, scope, service, config_key, kind, version) "
    "VALUES (?, ?, ?, ?, 'purge', ?)"
)

_SQLITE_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
_SCOPES = {scope.value: scope for scope in ConfigScope}
_KINDS = {kind.value: kind for kind in ChangeKind}

_T = TypeVar("_T")
Row = tuple[Any, ...]
WriteWork = Callable[[sqlite3.Connection], Any]


class _DriverErrors:
    """Translates sqlite3/aiosqlite failures into confstore errors: the one place that does.

    Busy/locked after the retries -> BackendTimeoutError; anything else from the driver (cannot
    open, disk I/O, corrupt file, closed connection) -> BackendUnavailableError. A class rather than
    a generator-based context manager because it wraps every read and must cost next to nothing.
    """

    __slots__ = ("path", "timeout")

    def __init__(self, path: str, timeout: float) -> None:
        self.path = path
        self.timeout = timeout

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is None or isinstance(exc, ConfigStoreError):
            return
        if isinstance(exc, sqlite3.Error):
            if _is_busy(exc):
                raise BackendTimeoutError(
                    f"SQLite database {self.path} stayed locked for {self.timeout:g}s: {exc}"
                ) from exc
            raise BackendUnavailableError(f"SQLite database {self.path} failed: {exc}") from exc
        if isinstance(exc, ValueError | OSError):
            # aiosqlite raises ValueError for a closed connection; OSError comes from creating
            # the parent directory.
            raise BackendUnavailableError(
                f"SQLite database {self.path} is unavailable: {exc}"
            ) from exc


def _is_busy(exc: BaseException) -> bool:
    """True for SQLite's "database is locked" / "database table is locked" (busy, locked)."""
    if not isinstance(exc, sqlite3.Error):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in _SQLITE_BUSY_CODES
    return "locked" in str(exc).lower()


def _run_in_thread(
    connection: aiosqlite.Connection, work: Callable[..., _T], *args: Any
) -> asyncio.Future[_T]:
    """Run ``work(sqlite3_connection, *args)`` on the aiosqlite connection's thread, as one hop."""
    future: asyncio.Future[_T] = asyncio.get_running_loop().create_future()
    _queue_on_thread(connection, future, work, *args)
    return future


def _queue_on_thread(
    connection: aiosqlite.Connection,
    future: asyncio.Future[Any] | None,
    work: Callable[..., Any],
    *args: Any,
) -> None:
    """Queue ``work(sqlite3_connection, *args)`` on the connection's thread; ``future`` gets its result.

    aiosqlite's public methods each run one sqlite3 call on that thread; a group commit runs many
    statements, and a read builds its entries next to its query, each in one hop instead of one
    per call. So we queue work the way aiosqlite queues its own calls (a future, or None for work
    that reports back by itself, and a callable on ``_tx``; aiosqlite >= 0.22), which also skips
    its per-call wrappers: this is the hot path of every read and write.
    """
    if not connection._running or connection._connection is None:
        raise ValueError("the aiosqlite connection is closed")
    connection._tx.put_nowait((future, partial(work, connection._connection, *args)))


async def _retry_while_busy(
    connection: aiosqlite.Connection, work: Callable[[sqlite3.Connection], _T], timeout: float
) -> _T:
    """Run ``work`` in one hop, retrying with backoff while another process holds a lock.

    SQLite's busy timeout already waits inside most calls; this covers the cases where SQLite
    reports busy at once (WAL recovery, a journal-mode change racing another opener).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    delay = 0.002
    while True:
        try:
            return await _run_in_thread(connection, work)
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc) or loop.time() + delay > deadline:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.1)


@dataclass(slots=True)
class _Failed:
    """The outcome of a write that raised: only that write is rolled back."""

    error: Exception


def _run_batch(works: Sequence[WriteWork], connection: sqlite3.Connection) -> list[Any]:
    """One transaction for a group of writes, each in its own savepoint. Runs on the writer thread.

    A write that raises is rolled back to its savepoint and its exception returned as _Failed; a
    driver error other than a constraint violation aborts (and rolls back) the whole batch.
    """
    connection.execute("BEGIN IMMEDIATE")
    try:
        outcomes = [_run_one(work, connection) for work in works]
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
        raise
    return outcomes


class _OneStatement:
    """A write that changes the database with one SQL statement, atomic by itself, so it needs no
    savepoint (two statements fewer on the hot path of set_config)."""

    __slots__ = ("work",)

    def __init__(self, work: WriteWork) -> None:
        self.work = work

    def __call__(self, connection: sqlite3.Connection) -> Any:
        return self.work(connection)


def _run_one(work: WriteWork, connection: sqlite3.Connection) -> Any:
    savepoint = not isinstance(work, _OneStatement)
    if savepoint:
        connection.execute("SAVEPOINT confstore_write")
    try:
        result = work(connection)
    except sqlite3.Error as exc:
        if not isinstance(exc, sqlite3.IntegrityError):
            raise
        failure: Exception = exc
    except Exception as exc:
        failure = exc
    else:
        if savepoint:
            connection.execute("RELEASE confstore_write")
        return result
    if savepoint:
        connection.execute("ROLLBACK TO confstore_write")
        connection.execute("RELEASE confstore_write")
    return _Failed(failure)


_Pending = tuple[WriteWork, "asyncio.Future[Any]"]


class _GroupCommitWriter:
    """The single write path of one store handle: queued writes are committed together.

    A batch starts one turn of the event loop after the first write queues, so every write
    submitted in that turn (for example by the writers a finished batch just woke) joins it; while
    a batch is on the writer thread, new writes queue for the next one. A batch runs as one hop
    and reports back with one ``call_soon_threadsafe``: no task per write or per batch.
    """

    def __init__(
        self, connection: aiosqlite.Connection, errors: _DriverErrors, timeout: float
    ) -> None:
        self._connection = connection
        self._driver_errors = errors
        self._timeout = timeout
        self._pending: deque[_Pending] = deque()
        self._in_flight = False
        self._scheduled = False
        self._idle = asyncio.Event()
        self._idle.set()

    async def submit(self, work: WriteWork) -> Any:
        """Run ``work(connection)`` inside a write transaction and return what it returns."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((work, future))
        self._schedule()
        return await future

    async def drain(self) -> None:
        """Wait until every queued write has been committed or has failed."""
        await self._idle.wait()

    def _schedule(self) -> None:
        if self._in_flight or self._scheduled:
            return
        self._scheduled = True
        self._idle.clear()
        asyncio.get_running_loop().call_soon(self._start_next_batch)

    def _start_next_batch(self) -> None:
        self._scheduled = False
        batch: list[_Pending] = []
        while self._pending and len(batch) < _MAX_BATCH:
            work, future = self._pending.popleft()
            if not future.done():  # a cancelled caller's write is never started
                batch.append((work, future))
        if not batch:
            self._idle.set()
            return
        self._in_flight = True
        self._send(batch, asyncio.get_running_loop().time() + self._timeout, 0.002)

    def _send(self, batch: list[_Pending], deadline: float, delay: float) -> None:
        loop = asyncio.get_running_loop()
        works = [work for work, _ in batch]

        def on_writer_thread(connection: sqlite3.Connection) -> None:
            outcome: list[Any] | BaseException
            try:
                outcome = _run_batch(works, connection)
            except BaseException as exc:
                outcome = exc
            with contextlib.suppress(RuntimeError):  # the loop closed while we worked
                loop.call_soon_threadsafe(self._finish, batch, outcome, deadline, delay)

        try:
            _queue_on_thread(self._connection, None, on_writer_thread)
        except ValueError as exc:
            self._finish(batch, exc, deadline, delay)

    def _finish(
        self,
        batch: list[_Pending],
        outcome: list[Any] | BaseException,
        deadline: float,
        delay: float,
    ) -> None:
        if isinstance(outcome, BaseException):
            loop = asyncio.get_running_loop()
            if _is_busy(outcome) and loop.time() + delay <= deadline:
                # Another process held the write lock beyond SQLite's own busy wait: retry.
                loop.call_later(delay, self._send, batch, deadline, min(delay * 2, 0.1))
                return
            for _, future in batch:
                if not future.done():
                    future.set_exception(self._translated(outcome))
        else:
            for (_, future), result in zip(batch, outcome, strict=True):
                if future.done():
                    continue
                if isinstance(result, _Failed):
                    future.set_exception(self._translated(result.error))
                else:
                    future.set_result(result)
        self._in_flight = False
        if self._pending:
            self._schedule()
        else:
            self._idle.set()

    def _translated(self, error: BaseException) -> BaseException:
        """The confstore error for ``error``: a fresh one per caller, so no traceback is shared."""
        if isinstance(error, ConfigStoreError):
            return error
        try:
            with self._driver_errors:
                raise error
        except BaseException as translated:
            return translated


class SQLiteConfigStore(ConfigStore):
    """The contract on one SQLite file (or ``:memory:``); safe for many processes on one file.

    ``timeout`` bounds how long a write waits for the file's write lock (other processes) and how
    long health_check waits; ``synchronous`` is ``"FULL"`` (default: an acknowledged write survives
    power loss) or ``"NORMAL"`` (survives a crash of the process, not of the machine).
    """

    backend_name: ClassVar[str] = "sqlite"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        synchronous: str = "FULL",
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
    ) -> None:
        super().__init__(max_value_bytes=max_value_bytes)
        self.path = os.fspath(path)
        if not self.path:
            raise InvalidConfigError("the SQLite path must not be empty", field="path")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise InvalidConfigError(
                f"timeout must be a positive number of seconds, got {timeout!r}", field="timeout"
            )
        self.timeout = float(timeout)
        mode = synchronous.upper() if isinstance(synchronous, str) else synchronous
        if mode not in _SYNCHRONOUS_MODES:
            raise InvalidConfigError(
                f"synchronous must be FULL or NORMAL, got {synchronous!r}", field="synchronous"
            )
        self.synchronous = cast(Synchronous, mode)
        self._writer_connection: aiosqlite.Connection | None = None
        self._reader_connection: aiosqlite.Connection | None = None
        self._writer: _GroupCommitWriter | None = None
        self._lifecycle = asyncio.Lock()
        self._driver_errors = _DriverErrors(self.path, self.timeout)

    @classmethod
    def from_url(cls, url: StoreURL, **options: Any) -> SQLiteConfigStore:
        """``sqlite:///relative.db``, ``sqlite:////absolute.db`` or ``sqlite://:memory:``.

        Options: ``timeout`` (alias ``busy_timeout``, seconds), ``synchronous`` (FULL or NORMAL),
        ``max_value_bytes``.
        """
        reader = StoreOptions("sqlite", options)
        busy_timeout = reader.take_float("busy_timeout", DEFAULT_TIMEOUT)
        timeout = reader.take_float("timeout", busy_timeout)
        synchronous = reader.take_str("synchronous", "FULL") or "FULL"
        max_value_bytes = reader.take_int("max_value_bytes", DEFAULT_MAX_VALUE_BYTES, minimum=1)
        reader.finish()
        if url.host == MEMORY_PATH:
            path = MEMORY_PATH
        elif url.host is not None:
            raise InvalidConfigError(
                f"a sqlite URL has no host (got {url.host!r}); use sqlite:///relative/path.db, "
                "sqlite:////absolute/path.db or sqlite://:memory:",
                field="url",
            )
        elif not url.path:
            raise InvalidConfigError("a sqlite URL needs a file path", field="url")
        else:
            path = url.path
        return cls(path, timeout=timeout, synchronous=synchronous, max_value_bytes=max_value_bytes)

    @property
    def in_memory(self) -> bool:
        return self.path == MEMORY_PATH

    @property
    def capabilities(self) -> StoreCapabilities:
        on_disk = not self.in_memory
        return StoreCapabilities(persistent=on_disk, shared=on_disk)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r})"

    async def initialize(self) -> None:
        async with self._lifecycle:
            if self._writer is not None:
                return
            with self._driver_errors:
                if not self.in_memory:
                    await asyncio.to_thread(_make_parent_directory, self.path)
                opened: list[aiosqlite.Connection] = []
                try:
                    writer = reader = await self._connect(opened)
                    await _retry_while_busy(
                        writer, partial(_prepare_writer, self.synchronous), self.timeout
                    )
                    if not self.in_memory:
                        reader = await self._connect(opened)
                        await _run_in_thread(reader, _prepare_reader)
                except BaseException:
                    for connection in opened:
                        with contextlib.suppress(Exception):
                            await connection.close()
                    raise
            self._writer_connection = writer
            self._reader_connection = reader
            self._writer = _GroupCommitWriter(writer, self._driver_errors, self.timeout)

    async def close(self) -> None:
        async with self._lifecycle:
            writer, self._writer = self._writer, None
            if writer is not None:
                await writer.drain()
            connections = {self._reader_connection, self._writer_connection} - {None}
            self._reader_connection = self._writer_connection = None
            with self._driver_errors:
                for connection in connections:
                    await cast(aiosqlite.Connection, connection).close()

    async def _set_config(
        self,
        key: ConfigKey,
        value: dict[str, Any],
        value_json: str,
        *,
        expected_version: int | None,
        updated_by: str | None,
        comment: str | None,
    ) -> ConfigEntry:
        def work(connection: sqlite3.Connection) -> tuple[int, str, str]:
            now = format_timestamp(utc_now())
            written = _append_version(
                connection, key, value_json, now, updated_by, comment, expected_version
            )
            return written[0], written[1], now

        version, created_at, updated_at = await self._write(_OneStatement(work))
        return ConfigEntry(
            tenant_id=key.tenant_id,
            scope=key.scope,
            service=key.service,
            config_key=key.config_key,
            config_value=value,
            version=version,
            created_at=_parse_timestamp(created_at),
            updated_at=_parse_timestamp(updated_at),
            updated_by=updated_by,
            comment=comment,
        )

    async def _get_config(self, key: ConfigKey, version: int | None) -> ConfigEntry | None:
        if version is None:
            return await self._query(_fetch_latest, _key_params(key))
        entries = await self._query(_fetch_entries, _SELECT_VERSION, (*_key_params(key), version))
        return entries[0] if entries else None

    async def _get_config_history(self, key: ConfigKey, limit: int) -> list[ConfigEntry]:
        return await self._query(_fetch_entries, _SELECT_HISTORY, (*_key_params(key), limit))

    async def _list_configs(
        self, tenant_id: str, scope: ConfigScope | None, service: str | None
    ) -> list[ConfigEntry]:
        return await self._query(
            _fetch_entries,
            _SELECT_LIVE_PAGE,
            {
                "tenant_id": tenant_id,
                "scope": None if scope is None else scope.value,
                "service": service,
                "after_scope": "",
                "after_service": "",
                "after_key": "",
                "limit": -1,
            },
        )

    async def _delete_config(
        self, key: ConfigKey, *, purge: bool, updated_by: str | None, comment: str | None
    ) -> bool:
        def work(connection: sqlite3.Connection) -> bool:
            head = connection.execute(_SELECT_HEAD, _key_params(key)).fetchone()
            if head is None:
                return False
            latest_version, deleted = head
            if purge:
                connection.execute(_PURGE_VERSIONS, _key_params(key))
                connection.execute(_PURGE_HEAD, _key_params(key))
                connection.execute(_RECORD_PURGE, (*_key_params(key), latest_version))
                return True
            if deleted:
                return False
            now = format_timestamp(utc_now())
            _append_version(connection, key, "{}", now, updated_by, comment, None, deleted=True)
            return True

        return cast(bool, await self._write(work))

    async def _list_tenants(self, include_deleted: bool) -> list[str]:
        sql = _SELECT_ALL_TENANTS if include_deleted else _SELECT_TENANTS
        return [row[0] for row in await self._query(_fetch_rows, sql, ())]

    async def _iter_configs(
        self, tenant_id: str, include_history: bool
    ) -> AsyncIterator[ConfigEntry]:
        # Keyset pagination: each page is a short read, so memory stays bounded and the reader
        # connection is free between pages.
        after: dict[str, Any] = {"after_scope": "", "after_service": "", "after_key": ""}
        if include_history:
            sql = _SELECT_HISTORY_PAGE
            after["after_version"] = 0
        else:
            sql = _SELECT_LIVE_PAGE
            after.update(scope=None, service=None)
        while True:
            page = await self._query(
                _fetch_entries, sql, {"tenant_id": tenant_id, "limit": _PAGE_SIZE, **after}
            )
            for entry in page:
                yield entry
            if len(page) < _PAGE_SIZE:
                return
            last = page[-1]
            after.update(
                after_scope=last.scope.value, after_service=last.service, after_key=last.config_key
            )
            if include_history:
                after["after_version"] = last.version

    async def _import_entries(
        self, tenant_id: str, entries: list[ConfigEntry], mode: ImportMode
    ) -> int:
        if mode == "append":
            return cast(int, await self._write(partial(_import_append, entries)))
        return cast(int, await self._write(partial(_import_restore, entries)))

    async def get_stats(self) -> dict[str, Any]:
        rows = await self._query(_fetch_rows, _SELECT_STATS, ())
        total_configs, total_versions, total_tenants, per_scope_json = rows[0]
        live_per_scope = json.loads(per_scope_json or "{}")
        return {
            "backend": self.backend_name,
            "total_configs": total_configs,
            "total_versions": total_versions,
            "total_tenants": total_tenants,
            "configs_per_scope": {
                scope.value: int(live_per_scope.get(scope.value, 0)) for scope in ConfigScope
            },
        }

    async def health_check(self) -> bool:
        reader = self._reader_connection
        if reader is None:
            return False
        try:
            async with asyncio.timeout(self.timeout):
                await reader.execute_fetchall(_SELECT_CURSOR)
        except Exception:
            return False
        return True

    async def current_cursor(self) -> str:
        rows = await self._query(_fetch_rows, _SELECT_CURSOR, ())
        return str(rows[0][0])

    async def _changes_since(self, cursor: str | None, limit: int) -> ChangeBatch:
        start = _parse_cursor(cursor)
        rows = await self._query(_fetch_rows, _SELECT_CHANGES, (start, limit + 1))
        page = rows[:limit]
        changes = tuple(
            ConfigChange(
                ConfigKey(tenant_id, _SCOPES[scope], service, config_key), _KINDS[kind], version
            )
            for _, tenant_id, scope, service, config_key, kind, version in page
        )
        end = page[-1][0] if page else start
        return ChangeBatch(changes, str(end), has_more=len(rows) > limit)

    async def _query(self, work: Callable[..., _T], *args: Any) -> _T:
        """Run ``work(connection, *args)`` on the reader connection's thread: one hop per read."""
        reader = self._reader_connection
        if reader is None:
            raise self._not_open()
        with self._driver_errors:
            return await _run_in_thread(reader, work, *args)

    async def _write(self, work: WriteWork) -> Any:
        writer = self._writer
        if writer is None:
            raise self._not_open()
        return await writer.submit(work)

    async def _connect(self, opened: list[aiosqlite.Connection]) -> aiosqlite.Connection:
        """Open a connection (autocommit: transactions are explicit) and add it to ``opened``."""
        connection = await aiosqlite.connect(
            self.path, timeout=self.timeout, isolation_level=None, cached_statements=256
        )
        opened.append(connection)
        return connection

    def _not_open(self) -> BackendUnavailableError:
        return BackendUnavailableError(
            f"{self!r} is not open: call initialize() or use 'async with' first"
        )


def _make_parent_directory(path: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)


def _prepare_writer(synchronous: Synchronous, connection: sqlite3.Connection) -> None:
    """Set the journal mode and durability, and create or check the schema, on the writer thread."""
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(f"PRAGMA synchronous={synchronous}")
    connection.execute("BEGIN IMMEDIATE")
    try:
        found = connection.execute("PRAGMA user_version").fetchone()[0]
        if found == 0:
            for statement in _SCHEMA:
                connection.execute(statement)
            connection.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        elif found != SCHEMA_VERSION:
            raise BackendUnavailableError(
                f"the database has schema version {found}; this confstore reads {SCHEMA_VERSION}"
            )
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


def _prepare_reader(connection: sqlite3.Connection) -> None:
    connection.execute("PRAGMA query_only=ON")
    # Touch the schema so a file that is not a database fails here, not on the first read.
    connection.execute("SELECT count(*) FROM sqlite_master").fetchone()


def _append_version(
    connection: sqlite3.Connection,
    key: ConfigKey,
    value_json: str,
    now: str,
    updated_by: str | None,
    comment: str | None,
    expected_version: int | None,
    *,
    deleted: bool = False,
) -> tuple[int, str]:
    """Write latest + 1 of ``key``; return (version, created_at). Raises VersionConflictError."""
    row = connection.execute(
        _APPEND_VERSION_RETURNING,
        (
            *_key_params(key),
            value_json,
            now,
            updated_by,
            comment,
            int(deleted),
            expected_version,
        ),
    ).fetchone()
    if row is None:
        head = connection.execute(_SELECT_HEAD, _key_params(key)).fetchone()
        raise VersionConflictError(
            cast(int, expected_version), 0 if head is None else head[0], key=key
        )
    return row[0], row[1]


def _import_append(entries: list[ConfigEntry], connection: sqlite3.Connection) -> int:
    now = format_timestamp(utc_now())
    connection.executemany(
        _APPEND_VERSION,
        (
            (
                *_key_params(entry.key),
                _dumps(entry.config_value),
                now,
                entry.updated_by,
                entry.comment,
                int(entry.deleted),
                None,
            )
            for entry in entries
        ),
    )
    return len(entries)


def _import_restore(entries: list[ConfigEntry], connection: sqlite3.Connection) -> int:
    """Plan every key first (a conflict raises before anything is written), then insert."""
    planned: list[ConfigEntry] = []
    for key, group in itertools.groupby(entries, key=lambda entry: entry.key):
        incoming = list(group)
        rows = connection.execute(
            _SELECT_VERSION_RANGE,
            (*_key_params(key), incoming[0].version, incoming[-1].version),
        ).fetchall()
        stored = {row[5]: _entry(row) for row in rows}
        planned.extend(plan_restore(incoming, stored))
    timestamps = _TimestampMemo()
    connection.executemany(
        _INSERT_VERSION,
        (
            (
                entry.tenant_id,
                entry.scope.value,
                entry.service,
                entry.config_key,
                _dumps(entry.config_value),
                entry.version,
                timestamps.format(entry.created_at),
                timestamps.format(entry.updated_at),
                entry.updated_by,
                entry.comment,
                int(entry.deleted),
            )
            for entry in planned
        ),
    )
    return len(planned)


class _TimestampMemo:
    """Formats each distinct timestamp once: an import repeats a key's created_at on every version."""

    def __init__(self) -> None:
        self._formatted: dict[datetime, str] = {}

    def format(self, moment: datetime) -> str:
        text = self._formatted.get(moment)
        if text is None:
            if len(self._formatted) > 10_000:
                self._formatted.clear()
            text = self._formatted[moment] = format_timestamp(moment)
        return text


def _fetch_rows(
    connection: sqlite3.Connection, sql: str, parameters: Sequence[Any] | dict[str, Any]
) -> list[Row]:
    return connection.execute(sql, parameters).fetchall()


def _fetch_entries(
    connection: sqlite3.Connection, sql: str, parameters: Sequence[Any] | dict[str, Any]
) -> list[ConfigEntry]:
    """Rows become entries on the connection's thread, next to the query that produced them."""
    return [_entry(row) for row in connection.execute(sql, parameters)]


def _fetch_latest(
    connection: sqlite3.Connection, key_params: tuple[str, str, str, str]
) -> ConfigEntry | None:
    row = connection.execute(_SELECT_LATEST, key_params).fetchone()
    return None if row is None or row[10] else _entry(row)


def _key_params(key: ConfigKey) -> tuple[str, str, str, str]:
    return key.tenant_id, key.scope.value, key.service, key.config_key


def _entry(row: Row) -> ConfigEntry:
    """A stored row (columns in ``_ENTRY_COLUMNS`` order) as an entry; on the hot path of reads."""
    (
        tenant_id,
        scope,
        service,
        config_key,
        value,
        version,
        created,
        updated,
        by,
        comment,
        deleted,
    ) = row
    return ConfigEntry(
        tenant_id,
        _SCOPES[scope],
        service,
        config_key,
        json.loads(value),
        version,
        _parse_timestamp(created),
        _parse_timestamp(updated),
        by,
        comment,
        bool(deleted),
    )


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
"""The same canonical JSON text ``encode_value`` produces (one encoder, not one per call)."""


_parse_timestamp = datetime.fromisoformat  # stored by format_timestamp: always UTC with offset


def _parse_cursor(cursor: str | None) -> int:
    if cursor is None:
        return 0
    if isinstance(cursor, str) and cursor.isascii() and cursor.isdigit():
        return int(cursor)
    raise InvalidConfigError(
        f"not a change-feed cursor of the sqlite store: {cursor!r}", field="cursor"
    )
