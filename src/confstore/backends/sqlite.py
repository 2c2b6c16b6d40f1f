"""SQLiteConfigStore: the embedded default store, one SQLite file shared safely by many processes.

Schema (``PRAGMA user_version`` = 2; ``initialize()`` creates it once and is idempotent, and
upgrades a version 1 file in place):

- ``config_versions``: every stored version, one row each, with the key's four identifier columns,
  ``version``, the value as canonical JSON text and the audit fields. ``seq`` (the rowid) orders
  rows by insertion; ``UNIQUE(tenant_id, scope, service, config_key, version)`` is both the guarantee
  that no two writes share a version and the index every per-key read seeks, so the latest version
  and ``history(10)`` of a key with a million versions cost one B-tree descent, like a key with 100.
  Identifiers are separate columns (never concatenated), so ("a:b", "c") and ("a", "b:c") differ.
- ``config_heads``: one row per key with its latest version, deleted flag, ``created_at`` and
  version count. Listings, tenants and stats read this small table instead of scanning versions,
  and a write computes ``latest + 1`` from it. A key that retention removed entirely (an old
  tombstone) keeps its head with ``version_count = 0``: it counts as absent, and its next write
  continues the numbering.
- ``config_changes``: the change feed, one row per committed version (``set``/``delete``) or purge,
  with its commit time (``committed_at``, Unix seconds); its ``seq`` is the feed cursor. Writers
  take the write lock in turn (``BEGIN IMMEDIATE``), so sequence numbers become visible in order
  and a follower never skips one.

A trigger on ``config_versions`` maintains heads and the change feed inside the inserting statement:
no extra round trip, and the statement is atomic with them. (A restore import drops it inside its
transaction and maintains both a chunk at a time instead; see ``_ImportTransaction``.) Timestamps are ISO 8601 text in UTC
with microseconds, as in exports (readable with any SQLite tool, and the fastest form to parse).

The change feed is bounded: every few thousand writes of a handle (and on ``prune()``) the oldest
changes beyond ``feed_max_changes`` or older than ``feed_max_age`` are deleted. The newest change is
never deleted, so the rowid ``seq`` only grows (without AUTOINCREMENT's extra page write per
commit); a cursor from before the oldest kept change raises CursorExpiredError.

Retention (``prune``) works a page of keys per transaction, so writers of other processes get the
lock between pages; removed versions leave their pages to SQLite's free list, which later writes
reuse, so a store pruned to its last N versions stops growing.

Connections: a file store opens one writer and one reader connection, each owned by its own
daemon thread (``_sqlite_thread``: the store runs sqlite3 itself, no async driver in between). The
file is in WAL mode, so reads never wait for the writer; ``synchronous=FULL`` by default makes every
acknowledged write survive a crash of the process or the machine. ``:memory:`` uses a single
connection for both. A read is one thread hop: the query runs and its rows become ConfigEntry
objects on the reader thread. A store that is never closed does not keep the process alive: see
``_sqlite_thread`` for what happens to it at garbage collection and at exit.

A set_config that finds the writer idle is committed on the event loop's own thread, on the
writer's connection (no thread hop; see ``_GroupCommitWriter`` for what that can block the loop
for, and ``loop_writes=False`` to turn it off). Every other write goes through one group-commit
path: a write is queued, and the writer takes everything queued so far into one transaction
(``BEGIN IMMEDIATE`` ... ``COMMIT``, one fsync, one thread hop). Each
write runs in its own SAVEPOINT, so it keeps its own version, its own compare-and-set outcome and its
own error: a conflicting or failing write is rolled back alone while the others commit. The next
version and the compare-and-set check are one ``INSERT ... SELECT ... RETURNING`` statement. Writers
in other processes wait through SQLite's busy timeout; a "database is locked" that outlives it is
retried with backoff until the store's ``timeout``, then reported as BackendTimeoutError.

An import is one transaction too, however large: it holds the write path (``exclusive()``) and
sends its entries to the writer thread a chunk at a time as they are read (``_ImportTransaction``),
so memory stays bounded; any error rolls the whole import back. A file that confstore's reader
parses (``ExportFileReader``, ``confstore import``) is read, parsed, checked and written on the
writer thread itself, a piece per job. ``import_configs`` checks a whole
document into rows before it starts the transaction (no ConfigEntry per entry), then writes them
the same way.

Read-only: with ``mode=ro``, or when the file cannot be written (permissions, a read-only file
system), the store opens only the reader, with SQLite's read-only mode (and ``immutable`` on a
read-only file system, where SQLite cannot create the shared-memory file); writes are refused.

Followers of the feed (``ConfigManager``, ``confstore watch``) wait in ``wait_for_changes``,
which a commit by any process ends within milliseconds (``_sqlite_watch``: a thread of its own
that sleeps on file events of the WAL and follows ``PRAGMA data_version``).

Driver errors are translated once, by ``_DriverErrors``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import sqlite3
import types
from collections import deque
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Coroutine,
    Generator,
    Iterable,
    Iterator,
    Sequence,
    Sized,
)
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from time import time_ns
from types import TracebackType
from typing import Any, ClassVar, Final, Literal, TypeVar, cast
from urllib.parse import quote

from .._errors import (
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    ConfigStoreError,
    CursorExpiredError,
    ImportFormatError,
    InvalidConfigError,
    PermissionDeniedError,
    VersionConflictError,
)
from .._export import (
    ROW_CHUNK,
    CheckedRows,
    EntryRow,
    ImportMode,
    ParsedEntries,
    TimestampMemo,
    checked_row_chunks,
    chunked,
    entry_row,
    import_document_rows,
    plan_restore,
)
from .._models import (
    ChangeBatch,
    ChangeKind,
    ConfigChange,
    ConfigEntry,
    ConfigKey,
    ConfigScope,
    format_timestamp,
    new_entry,
    utc_now,
)
from .._options import StoreOptions
from .._retention import KeyPrune, PruneResult, RetentionPolicy, parse_duration
from .._store import ConfigStore, IsolatedArea, StoreCapabilities
from .._url import DEFAULT_STORE_URL, StoreURL
from .._validation import DEFAULT_MAX_VALUE_BYTES, parse_sequence_cursor, validate_version
from ._loop_lane import LoopBudget, waiting_check
from ._sqlite_thread import SQLiteThread, ThreadGroup
from ._sqlite_watch import DEFAULT_WATCH_INTERVAL, CommitWatcher

SCHEMA_VERSION: Final = 2
DEFAULT_FEED_MAX_CHANGES: Final = 100_000
DEFAULT_FEED_MAX_AGE: Final = timedelta(days=7)
DEFAULT_TIMEOUT: Final = 10.0
MEMORY_PATH: Final = ":memory:"
Synchronous = Literal["FULL", "NORMAL"]
_SYNCHRONOUS_MODES: Final = ("FULL", "NORMAL")

# Bounds one group commit, so a burst of writers cannot hold the write lock for long.
_MAX_BATCH = 512
# Rows fetched per page when streaming a tenant's entries (iter_configs).
_PAGE_SIZE = 1000
# Characters of values an import inserts with one statement (about twice that in memory).
_STATEMENT_CHARACTERS = 16 << 20
# Writes of one handle between two trims of the change feed.
_FEED_TRIM_EVERY = 4096
# A point read on the loop's thread that takes longer than this (seconds) sends point reads
# to the reader thread for the next _LOOP_READ_PAUSE seconds.
_LOOP_READ_BUDGET = 0.002
_LOOP_READ_PAUSE = 1.0
# Keys per prune transaction.
_PRUNE_PAGE = 500
# Writes committed on the loop's thread that take longer than this on average (seconds: a slow
# or busy disk, networked storage), or one that takes _LOOP_WRITE_OUTLIER times as long, send
# writes to the writer thread for the next _LOOP_WRITE_FIRST_PAUSE seconds; each time it
# happens again right after such a pause, for twice as long, up to _LOOP_WRITE_PAUSE seconds.
_LOOP_WRITE_BUDGET = 0.005
_LOOP_WRITE_FIRST_PAUSE = 0.1
_LOOP_WRITE_PAUSE = 1.0
# Not lower: on a busy machine the process itself can wait tens of ms for a CPU, which the
# elapsed time of a write includes (and which holds the loop whether the write runs there or not).
_LOOP_WRITE_OUTLIER = 10
# A write on the loop that finds no other callback ready skips its turn of the loop, unless
# this long (seconds) has passed since a write took one or asked the loop whether I/O or a
# timer waits (waiting_check), and one does: I/O and timers are still polled.
_LOOP_TURN_EVERY = 0.001
# WAL frames (pages) after which the writer checkpoints, as SQLite's wal_autocheckpoint would
# (its default), but on the writer thread; and a first guess of the frames one write adds.
_CHECKPOINT_FRAMES = 1000
_FRAMES_PER_WRITE = 6

# Restored versions may arrive below the latest one: heads only move forward. A head whose key
# retention removed (version_count 0) takes the new key's created_at.
_MAINTAIN_TRIGGER = """
    CREATE TRIGGER IF NOT EXISTS config_versions_maintain AFTER INSERT ON config_versions
    BEGIN
        INSERT INTO config_heads (tenant_id, scope, service, config_key,
                                  latest_version, deleted, created_at, version_count)
        VALUES (NEW.tenant_id, NEW.scope, NEW.service, NEW.config_key,
                NEW.version, NEW.deleted, NEW.created_at, 1)
        ON CONFLICT (tenant_id, scope, service, config_key) DO UPDATE SET
            deleted = CASE WHEN excluded.latest_version > latest_version
                           THEN excluded.deleted ELSE deleted END,
            created_at = CASE WHEN version_count = 0 THEN excluded.created_at ELSE created_at END,
            latest_version = max(latest_version, excluded.latest_version),
            version_count = version_count + 1;
        INSERT INTO config_changes (tenant_id, scope, service, config_key, kind, version,
                                    committed_at)
        VALUES (NEW.tenant_id, NEW.scope, NEW.service, NEW.config_key,
                CASE WHEN NEW.deleted THEN 'delete' ELSE 'set' END, NEW.version,
                CAST(strftime('%s', 'now') AS INTEGER));
    END
"""
# Version 1 had no commit times (its changes count as old) and the trigger without them.
_UPGRADE_FROM_1 = (
    "ALTER TABLE config_changes ADD COLUMN committed_at INTEGER NOT NULL DEFAULT 0",
    "DROP TRIGGER config_versions_maintain",
    _MAINTAIN_TRIGGER,
)

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
        version INTEGER NOT NULL,
        committed_at INTEGER NOT NULL DEFAULT 0
    )
    """,
    _MAINTAIN_TRIGGER,
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
_SELECT_HEAD = (
    f"SELECT latest_version, deleted FROM config_heads WHERE {_KEY_MATCH} AND version_count > 0"
)

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
_SELECT_ALL_TENANTS = (
    "SELECT DISTINCT tenant_id FROM config_heads WHERE version_count > 0 ORDER BY tenant_id"
)
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
           CASE WHEN h.version_count > 0 THEN h.created_at ELSE ?6 END, ?6, ?7, ?8, ?9
    FROM (SELECT 1) LEFT JOIN config_heads AS h
      ON h.tenant_id = ?1 AND h.scope = ?2 AND h.service = ?3 AND h.config_key = ?4
    WHERE ?10 IS NULL OR (CASE WHEN h.version_count > 0 THEN h.latest_version ELSE 0 END) = ?10
"""
_APPEND_VERSION_RETURNING = _APPEND_VERSION + " RETURNING version, created_at"
_INSERT_VERSION = (
    f"INSERT INTO config_versions ({_ENTRY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SELECT_MAX_SEQ = "SELECT coalesce(max(seq), 0) FROM config_versions"
_SELECT_STORED_VERSION = (
    f"SELECT {_ENTRY_COLUMNS}, seq FROM config_versions WHERE {_KEY_MATCH} AND version = ?"
)
# An append import's entries wait here (per connection, in SQLite's temporary database) until
# the whole import has been read, so they are appended in key and version order.
_CREATE_STAGING = f"""
    CREATE TEMP TABLE IF NOT EXISTS import_staging (
        {_ENTRY_COLUMNS},
        PRIMARY KEY (tenant_id, scope, service, config_key, version)
    ) WITHOUT ROWID
"""
_CLEAR_STAGING = "DELETE FROM temp.import_staging"
_INSERT_STAGING = (
    f"INSERT INTO temp.import_staging ({_ENTRY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# An import inserts rows a power of two at a time (so few distinct statements are cached) with
# one multi-row INSERT each, which SQLite runs without taking Python's GIL back for every row, as
# executemany does. OR FAIL: a constraint failure ends the statement and keeps the rows it
# inserted before the failing one (the import takes the rest one at a time). With the default
# (ABORT), SQLite would have to undo the statement alone, so it keeps a statement journal: every
# page written before the statement that the statement writes again (as the page cache spills
# pages to the WAL in mid-statement) is first copied to a temporary file, about 20,000 pages
# for an import of 100,000 versions.
_BATCH_SIZES: Final = tuple(1 << power for power in range(9, -1, -1))
_ROW_FIELDS: Final = len(_ENTRY_COLUMNS.split(","))
# The writer's page cache during an import (KiB, as PRAGMA cache_size takes a negative count);
# SQLite's default is 2 MB. Once the cache is full, each new page spills an older one to the
# WAL on its own, and a spilled page written again later (a b-tree's upper pages change now and
# then) makes the commit read back and checksum every frame after it. With 32 MB, an import of
# 100,000 versions (65 MB of pages) spilled 9,400 pages instead of 16,200, and committed without
# that pass, which had read back 14,000 frames.
_IMPORT_CACHE_KIB: Final = 32 << 10
# sqlite3's total_changes is a C int: counts are taken modulo this.
_CHANGES_MODULUS: Final = 1 << 32
_INSERT_MANY = {
    (table, size): f"INSERT OR FAIL INTO {table} ({_ENTRY_COLUMNS}) VALUES "
    + ", ".join([f"({', '.join(['?'] * _ROW_FIELDS)})"] * size)
    for table in ("config_versions", "temp.import_staging")
    for size in _BATCH_SIZES
}
# A restore import maintains heads and the change feed a chunk at a time (?1: the last seq
# before the chunk), with the trigger dropped inside its transaction: the same rows the trigger
# writes for each inserted version, in a few statements instead of two per row.
_SELECT_MAINTAIN_TRIGGER = (
    "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'config_versions_maintain'"
)
_DROP_MAINTAIN_TRIGGER = "DROP TRIGGER config_versions_maintain"
# Per key: the newest version (its deleted flag), the first row's created_at (the one the trigger
# gives a new head or one that retention emptied) and the count, applied as the trigger applies
# each row in turn.
_MAINTAIN_HEADS = """
    WITH chunk AS (
        SELECT tenant_id, scope, service, config_key, max(version) AS newest, min(seq) AS first,
               count(*) AS added
        FROM config_versions NOT INDEXED WHERE seq > ?1
        GROUP BY tenant_id, scope, service, config_key
    )
    INSERT INTO config_heads (tenant_id, scope, service, config_key,
                              latest_version, deleted, created_at, version_count)
    SELECT c.tenant_id, c.scope, c.service, c.config_key, c.newest,
           (SELECT v.deleted FROM config_versions AS v
            WHERE v.tenant_id = c.tenant_id AND v.scope = c.scope AND v.service = c.service
              AND v.config_key = c.config_key AND v.version = c.newest),
           (SELECT v.created_at FROM config_versions AS v WHERE v.seq = c.first),
           c.added
    FROM chunk AS c WHERE true
    ON CONFLICT (tenant_id, scope, service, config_key) DO UPDATE SET
        deleted = CASE WHEN excluded.latest_version > latest_version
                       THEN excluded.deleted ELSE deleted END,
        created_at = CASE WHEN version_count = 0 THEN excluded.created_at ELSE created_at END,
        latest_version = max(latest_version, excluded.latest_version),
        version_count = version_count + excluded.version_count
"""
_RECORD_CHANGES = """
    INSERT INTO config_changes (tenant_id, scope, service, config_key, kind, version,
                                committed_at)
    SELECT tenant_id, scope, service, config_key,
           CASE WHEN deleted THEN 'delete' ELSE 'set' END, version,
           CAST(strftime('%s', 'now') AS INTEGER)
    FROM config_versions WHERE seq > ?1 ORDER BY seq
"""
_SELECT_STAGED_VERSION = (
    f"SELECT version FROM temp.import_staging WHERE {_KEY_MATCH} AND version = ?"
)
_SELECT_STAGED = (
    "SELECT tenant_id, scope, service, config_key, value, updated_by, comment, deleted "
    "FROM temp.import_staging ORDER BY tenant_id, scope, service, config_key, version"
)
_PURGE_VERSIONS = f"DELETE FROM config_versions WHERE {_KEY_MATCH}"
_PURGE_HEAD = f"DELETE FROM config_heads WHERE {_KEY_MATCH}"
_RECORD_PURGE = (
    "INSERT INTO config_changes (tenant_id, scope, service, config_key, kind, version, "
    "committed_at) VALUES (?, ?, ?, ?, 'purge', ?, CAST(strftime('%s', 'now') AS INTEGER))"
)
_SELECT_OLDEST_CHANGE = "SELECT min(seq) FROM config_changes"
# The first change young enough to keep; the scan stops there, so it reads only what goes.
_SELECT_FIRST_YOUNG_CHANGE = (
    "SELECT seq FROM config_changes WHERE committed_at >= ? ORDER BY seq LIMIT 1"
)
_TRIM_CHANGES = "DELETE FROM config_changes WHERE seq <= ?"

# Retention. A page of heads (keyset after a key), then per key: what goes, and removing it.
_SELECT_HEADS_PAGE = """
    SELECT tenant_id, scope, service, config_key, latest_version, deleted FROM config_heads
    WHERE (:tenant_id IS NULL OR tenant_id = :tenant_id) AND version_count > 0
      AND (tenant_id, scope, service, config_key)
        > (:after_tenant, :after_scope, :after_service, :after_key)
    ORDER BY tenant_id, scope, service, config_key
    LIMIT :limit
"""
_SELECT_UPDATED_AT = f"SELECT updated_at FROM config_versions WHERE {_KEY_MATCH} AND version = ?"
# The oldest version keep_last keeps (None when the key has fewer versions).
_SELECT_KEEP_FLOOR = (
    f"SELECT version FROM config_versions WHERE {_KEY_MATCH} ORDER BY version DESC LIMIT 1 OFFSET ?"
)
_PRUNABLE = f"{_KEY_MATCH} AND version < ? AND (? IS NULL OR updated_at <= ?)"
_COUNT_PRUNABLE = f"SELECT count(*), max(version) FROM config_versions WHERE {_PRUNABLE}"
_DELETE_PRUNABLE = f"DELETE FROM config_versions WHERE {_PRUNABLE}"
_COUNT_VERSIONS = f"SELECT count(*) FROM config_versions WHERE {_KEY_MATCH}"
_UNCOUNT_VERSIONS = f"UPDATE config_heads SET version_count = version_count - ? WHERE {_KEY_MATCH}"
_RETIRE_HEAD = f"UPDATE config_heads SET version_count = 0 WHERE {_KEY_MATCH}"

_SQLITE_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
# A read-only file, directory or file system, or an authorizer's refusal.
_SQLITE_DENIED_CODES = frozenset(
    {sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM, sqlite3.SQLITE_AUTH}
)
_SCOPES = {scope.value: scope for scope in ConfigScope}
_KINDS = {kind.value: kind for kind in ChangeKind}

_T = TypeVar("_T")
Row = tuple[Any, ...]
WriteWork = Callable[[sqlite3.Connection], Any]


class _DriverErrors:
    """Translates sqlite3 failures into confstore errors: the one place that does.

    Busy/locked after the retries -> BackendTimeoutError; read-only (the file, its directory or
    file system; no permission) -> PermissionDeniedError; anything else from the driver (cannot
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
            if _error_code(exc) in _SQLITE_DENIED_CODES:
                raise PermissionDeniedError(f"SQLite database {self.path}: {exc}") from exc
            raise BackendUnavailableError(f"SQLite database {self.path} failed: {exc}") from exc
        if isinstance(exc, PermissionError) or getattr(exc, "errno", None) == errno.EROFS:
            raise PermissionDeniedError(f"SQLite database {self.path}: {exc}") from exc
        if isinstance(exc, OSError):
            # From creating or checking the parent directory.
            raise BackendUnavailableError(
                f"SQLite database {self.path} is unavailable: {exc}"
            ) from exc


def _is_busy(exc: BaseException) -> bool:
    """True for SQLite's "database is locked" / "database table is locked" (busy, locked)."""
    if not isinstance(exc, sqlite3.Error):
        return False
    code = _error_code(exc)
    if code is not None:
        return code in _SQLITE_BUSY_CODES
    return "locked" in str(exc).lower()


async def _retry_while_busy(
    thread: SQLiteThread, work: Callable[[sqlite3.Connection], _T], timeout: float
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
            return await thread.call(work)
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc) or loop.time() + delay > deadline:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.1)


@dataclass(slots=True)
class _Failed:
    """The outcome of a write that raised: only that write is rolled back."""

    error: Exception


def _run_batch(
    connection: sqlite3.Connection, works: Sequence[WriteWork], busy: _BusyWait, wait: bool
) -> list[Any]:
    """One transaction for a group of writes, each in its own savepoint: on the writer thread,
    waiting for other processes' locks, or on the loop's (``wait=False``), not waiting at all.

    A write that raises is rolled back to its savepoint and its exception returned as _Failed; a
    driver error other than a constraint violation aborts (and rolls back) the whole batch.
    """
    busy.set(connection, wait)
    return _transaction(connection, lambda _: [_run_one(work, connection) for work in works])


def _transaction(connection: sqlite3.Connection, work: Callable[[sqlite3.Connection], _T]) -> _T:
    """``work(connection)`` between BEGIN IMMEDIATE and COMMIT; rolled back if anything raises."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        result = work(connection)
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
        raise
    return result


class _OneStatement:
    """A write that changes the database with one SQL statement, atomic by itself, so it needs no
    savepoint (two statements fewer on the hot path of set_config). Subclasses are callable
    like any WriteWork, and return something other than None (None says "not run" on the
    loop's side: ``_GroupCommitWriter.run_here``)."""

    __slots__ = ()

    def __call__(self, connection: sqlite3.Connection) -> Any:
        raise NotImplementedError


class _SetVersion(_OneStatement):
    """set_config's work: append latest + 1 and return it as the entry a read of it returns.
    Its parameters are built once, on the loop; its time is taken inside the transaction, so
    versions and their ``updated_at`` go up together."""

    __slots__ = ("key", "parameters", "value")

    def __init__(
        self,
        key: ConfigKey,
        value: dict[str, Any],
        value_json: str,
        updated_by: str | None,
        comment: str | None,
        expected_version: int | None,
    ) -> None:
        self.key = key
        self.value = value
        # _APPEND_VERSION's parameters; ?6 (now) is set when the write runs. The scope is a
        # StrEnum, a str that sqlite3 binds as its text (``.value`` is two Python calls).
        self.parameters: list[Any] = [
            key.tenant_id,
            key.scope,
            key.service,
            key.config_key,
            value_json,
            None,
            updated_by,
            comment,
            0,
            expected_version,
        ]

    def __call__(self, connection: sqlite3.Connection) -> ConfigEntry:
        moment, now = _write_time()
        parameters = self.parameters
        parameters[5] = now
        row = connection.execute(_APPEND_VERSION_RETURNING, parameters).fetchone()
        if row is None:
            raise _version_conflict(connection, self.key, parameters[9])
        version, created_at = row
        # The key's creation time, parsed once: a new key was created now; a key written again
        # has the creation time of its last write (a one-entry cache, any thread).
        global _last_created
        known = _last_created
        if created_at == known[0]:
            created = known[1]
        elif created_at == now:
            created = moment
        else:
            created = _parse_timestamp(created_at)
            _last_created = (created_at, created)
        key = self.key
        return new_entry(
            key.tenant_id,
            key.scope,
            key.service,
            key.config_key,
            self.value,
            version,
            created,
            moment,
            parameters[6],
            parameters[7],
            False,
        )


# The second _write_time last saw, and its text up to the microseconds.
_second_text: tuple[int, str] = (-1, "")
# The last created_at text a write read back that was not its own time, and its moment.
_last_created: tuple[str, datetime] = ("", datetime.min)


def _write_time() -> tuple[datetime, str]:
    """Now, in UTC, and its text as ``format_timestamp`` writes it (and a read parses back).

    The text is built from the microseconds and the second's text, made once a second, and
    the moment parsed from it: ``datetime.isoformat`` costs most of ``datetime.now`` and
    formatting (2.1 us together in a tight loop), parsing a twentieth of that (0.9 us in all).
    Safe on any thread: the second and its text are read and replaced as one tuple.
    """
    global _second_text
    second, microsecond = divmod(time_ns() // 1000, 1_000_000)
    known = _second_text
    if known[0] != second:
        whole = format_timestamp(datetime.fromtimestamp(second, UTC))
        _second_text = known = (second, whole[: whole.index(".") + 1])
    # (str() of 1,000,000 more and its last six digits: the same as ``:06d``, less machinery.)
    text = f"{known[1]}{str(1_000_000 + microsecond)[1:]}+00:00"
    return _parse_timestamp(text), text


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


@types.coroutine
def _one_turn() -> Generator[None, None, None]:
    """``await asyncio.sleep(0)`` without the frame of ``sleep``: one turn of the loop."""
    yield


class _BusyWait:
    """The writer connection's busy timeout, changed only when the side using it changes: the
    writer thread waits up to ``timeout`` for another process's lock, the loop's thread never
    waits (SQLite reports busy at once and the write goes to the thread). A lone writer's
    writes all run on the loop, so they pay no PRAGMA."""

    __slots__ = ("milliseconds", "waiting")

    def __init__(self, timeout: float) -> None:
        self.milliseconds = round(timeout * 1000)
        self.waiting = True  # as the connection was opened

    def set(self, connection: sqlite3.Connection, wait: bool) -> None:
        if wait != self.waiting:
            connection.execute(f"PRAGMA busy_timeout={self.milliseconds if wait else 0}")
            self.waiting = wait


def _writes_for_checkpoint(frames_per_write: int) -> int:
    """How many writes of ``frames_per_write`` WAL frames fill _CHECKPOINT_FRAMES."""
    frames_per_write = min(_CHECKPOINT_FRAMES, max(1, frames_per_write))
    return -(-_CHECKPOINT_FRAMES // frames_per_write)


def _checkpoint(connection: sqlite3.Connection) -> int:
    """A passive WAL checkpoint, as wal_autocheckpoint runs one; returns the WAL's frames."""
    frames: int = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
    return frames


class _GroupCommitWriter:
    """The single write path of one store handle: queued writes are committed together.

    A write submitted to an idle writer goes to the writer thread at once. While a batch is on the
    writer thread, new writes queue; when it finishes, the next batch starts one turn of the event
    loop later, so every write submitted in that turn (for example by the writers the finished
    batch just woke) joins it. A batch runs as one hop and reports back with one reply (``SQLiteThread.run``): no task
    per write or per batch. ``exclusive()`` holds the write path for one long transaction.

    The writer follows its caller's event loop: when a new loop starts using it (the previous
    one ended, say, with ``asyncio.run``), bookkeeping left by the old loop is dropped.

    Writes on the loop (``write()``, unless ``inline=False``): a write that finds the writer idle
    (nothing queued, nothing on the thread, no other write in this turn of the loop) is
    committed on the loop's own thread, on the writer's connection, which the thread lends
    (``SQLiteThread.borrow``): no thread hop, which costs about as much as all of the store's
    Python.
    The loop is then held for the write's transaction, its fsync included: the time its caller
    waits anyway. It never waits for a lock there (busy timeout 0: a write that finds another
    process writing goes to the thread, which waits as before), and writes that take longer
    than ``_LOOP_WRITE_BUDGET`` (see LoopBudget) go to the thread for
    ``_LOOP_WRITE_FIRST_PAUSE`` s, twice as long each time it happens again right after, up to
    ``_LOOP_WRITE_PAUSE`` s.
    With writes on the loop the connection does not checkpoint by itself at commit (that would write and fsync
    the database file on the loop): the writer runs the checkpoints on its thread, after about
    the WAL frames SQLite's own automatic checkpoint would wait for.
    """

    def __init__(
        self, thread: SQLiteThread, errors: _DriverErrors, timeout: float, *, inline: bool
    ) -> None:
        self._thread = thread
        self._driver_errors = errors
        self._timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: deque[_Pending] = deque()
        self._holders: deque[asyncio.Future[None]] = deque()
        self._idle_waiters: list[asyncio.Future[None]] = []
        self._in_flight = False
        self._scheduled = False
        self._busy = _BusyWait(timeout)
        self._inline = inline
        self._budget = LoopBudget(
            _LOOP_WRITE_BUDGET,
            _LOOP_WRITE_PAUSE,
            outlier=_LOOP_WRITE_OUTLIER,
            first_pause=_LOOP_WRITE_FIRST_PAUSE,
        )
        self._writes_since_checkpoint = 0
        # The writes after which a checkpoint is due: _CHECKPOINT_FRAMES at the frames per write
        # the last checkpoint measured.
        self._checkpoint_after = _writes_for_checkpoint(_FRAMES_PER_WRITE)
        # After a transaction of unknown size (an import): checkpoint before the next write.
        self._checkpoint_forced = False
        # The loop's queue of callbacks ready to run (asyncio's own loops; None for others,
        # whose writes then always take their turn), when a write must next ask whether the
        # loop has I/O or timers waiting, and how it asks.
        self._ready: Sized | None = None
        self._turn_due = 0.0
        self._loop_waiting: Callable[[], bool] | None = None

    async def write(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """What ``work(connection)`` returns, run inside a write transaction, or its error: the
        one entry point of every write. A one-statement write (``_OneStatement``) that finds
        the writer idle runs on the loop's thread (see the class); any other write is queued
        for the writer thread's next group commit.

        A write on the loop first gives the loop's other tasks one turn when any is ready to
        run (or the loop's ready queue cannot be seen), holding the writer meanwhile, so writes
        that arrive in that turn queue behind it and commit together, and a loop of writes
        never starves the others. With nothing ready, once ``_LOOP_TURN_EVERY`` seconds have
        passed since the last turn or check, it asks the loop whether I/O or a timer is waiting
        (``waiting_check``), and takes its turn if so: a loop of writes never holds them up for
        longer than that and one write. A cancellation during that turn writes nothing; once
        the write runs on the loop it cannot be cancelled midway: it commits or fails whole.

        This is the hot path of a lone writer, and runs with CPU caches made cold by the last
        fsync, where every call costs several times its price in a tight loop: the checks
        take one reading of the clock and call nothing they need not.
        """
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._adopt(loop)
        if not (
            self._inline
            and isinstance(work, _OneStatement)
            and not (self._in_flight or self._scheduled or self._pending or self._holders)
        ):
            return await self._submit(work)
        budget = self._budget
        started = budget.start()
        if started is None:
            return await self._submit(work)
        self._in_flight = True
        try:
            ready = self._ready
            if ready is None or ready or (started >= self._turn_due and self._waiting(started)):
                await _one_turn()
                # The write's time on the loop starts after the turn: not the others' time.
                started = budget.clock()
                self._turn_due = started + _LOOP_TURN_EVERY
            outcome: _T | None = self._commit_here(work, started)
        finally:
            self._in_flight = False  # _release(), without its call
            self._next()
        if outcome is not None:
            return outcome
        return await self._submit(work)

    def run_here(self, work: _OneStatement) -> Any:
        """What ``work(connection)`` returns, committed right now on the loop's thread, when
        ``write(work)`` would do that without waiting for anything (the writer idle, the loop
        budget not paused, no turn of the loop due: a lone writer's write); else None, and
        nothing written: then ``await write(work)``. For a ``_OneStatement`` whose result is
        never None. No coroutine, no await: the hot path of a lone writer, straight through.

        (When another process holds the write lock, the write tries here, fails at once, and
        ``write()`` tries again before it queues for the thread, which waits for the lock.)
        """
        if (
            self._in_flight
            or self._scheduled
            or self._pending
            or self._holders
            or not self._inline
            or asyncio.get_running_loop() is not self._loop
        ):
            return None
        started = self._budget.start()
        if started is None:
            return None
        ready = self._ready
        if ready is None or ready or (started >= self._turn_due and self._waiting(started)):
            return None  # write() gives the loop its turn first
        outcome = self._commit_here(work, started)
        if self._writes_since_checkpoint >= self._checkpoint_after or self._checkpoint_forced:
            self._next()
        return outcome

    def _commit_here(self, work: Callable[[sqlite3.Connection], _T], started: float) -> _T | None:
        """``work`` in a transaction of its own on the writer's connection, borrowed from its
        thread, run on the calling (the loop's) thread; None when it cannot run here (the thread
        is busy, another process holds the write lock) and nothing was written. ``started``:
        the budget's clock reading when the write began."""
        connection = self._thread.borrow()
        if connection is None:
            return None
        # Alone in its transaction on the borrowed connection: a write that fails rolls it
        # back, nothing else is in it. Another process's write lock sends it to the thread,
        # which waits for the lock.
        try:
            if self._busy.waiting:  # (set() checks it too: this saves its call)
                self._busy.set(connection, False)
            outcome = _transaction(connection, work)
        except (sqlite3.Error, OSError) as exc:
            if not _is_busy(exc):
                raise self._translated(exc) from exc
            return None
        finally:
            self._thread.give_back()
            self._budget.spent(started)
        self._writes_since_checkpoint += 1
        return outcome

    def _waiting(self, now: float) -> bool:
        """Whether the loop has I/O or a timer waiting. When nothing waits, the next such
        question is due ``_LOOP_TURN_EVERY`` seconds after ``now``; when something does, the
        turn that follows sets it."""
        if self._loop_waiting is None or self._loop_waiting():
            return True
        self._turn_due = now + _LOOP_TURN_EVERY
        return False

    def _submit(self, work: Callable[[sqlite3.Connection], _T]) -> asyncio.Future[_T]:
        """Queue ``work(connection)`` for the writer thread's next group commit; the future gets
        what it returns. For ``write``, which has adopted the running loop."""
        future: asyncio.Future[_T] = asyncio.get_running_loop().create_future()
        self._pending.append((work, future))
        if not (self._in_flight or self._scheduled):
            self._start_next_batch()
        return future

    async def drain(self) -> None:
        """Wait until every queued write has been committed or has failed."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._adopt(loop)
        if self._in_flight or self._scheduled or self._pending:
            waiter: asyncio.Future[None] = loop.create_future()
            self._idle_waiters.append(waiter)
            await waiter

    @contextlib.asynccontextmanager
    async def exclusive(
        self, after: Callable[[sqlite3.Connection], None] | None = None
    ) -> AsyncIterator[SQLiteThread]:
        """Hold the write path for one transaction that spans many hops (a streaming import).

        Waits for the batch in flight, then runs ``BEGIN IMMEDIATE``; the body runs its work with
        ``thread.call``. The transaction commits when the body ends and rolls back if it raises;
        ``after`` then runs on the writer thread, either way (its errors are ignored).
        Writes submitted meanwhile wait and are committed after it, in the next batch.
        """
        await self._hold()
        thread = self._thread
        try:
            with self._driver_errors:
                await _retry_while_busy(
                    thread, partial(_begin_immediate, self._busy), self._timeout
                )
        except BaseException:
            self._release()
            raise
        try:
            yield thread
            with self._driver_errors:
                await thread.call(_commit)
        except BaseException:
            # The thread runs jobs in order, so this runs before any later batch.
            with contextlib.suppress(sqlite3.Error):
                thread.post(_rollback)
            raise
        finally:
            if after is not None:
                with contextlib.suppress(sqlite3.Error):
                    thread.post(after)
            self._checkpoint_forced = self._inline
            self._release()

    def _adopt(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        ready = getattr(loop, "_ready", None)
        self._ready = ready if isinstance(ready, deque) else None
        self._loop_waiting = waiting_check(loop)
        self._pending.clear()
        self._holders.clear()
        self._idle_waiters.clear()
        self._in_flight = self._scheduled = False

    async def _hold(self) -> None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._adopt(loop)
        if not (self._in_flight or self._scheduled):
            self._in_flight = True
            return
        turn: asyncio.Future[None] = loop.create_future()
        self._holders.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._release()  # granted, but the caller is gone
            raise

    def _release(self) -> None:
        self._in_flight = False
        self._next()

    def _next(self, *, after_batch: bool = False) -> None:
        """The write path is free: give it to a waiting holder, or start the next batch.

        After a batch, the next one starts one turn of the loop later even if nothing waits
        yet: the writers the batch just woke submit their next writes in that turn and join it
        (a lone writer's next write too, so it loses no turn), instead of the first of them
        going alone and the rest waiting for it. A checkpoint that is due goes first.
        """
        if (
            self._checkpoint_forced or self._writes_since_checkpoint >= self._checkpoint_after
        ) and self._start_checkpoint():
            return
        while self._holders:
            turn = self._holders.popleft()
            if not turn.done():
                self._in_flight = True
                turn.set_result(None)
                return
        if self._pending or after_batch:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._start_next_batch)
            return
        if not self._idle_waiters:
            return
        waiters, self._idle_waiters = self._idle_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _start_next_batch(self) -> None:
        self._scheduled = False
        if self._in_flight:
            return
        batch: list[_Pending] = []
        while self._pending and len(batch) < _MAX_BATCH:
            work, future = self._pending.popleft()
            if not future.done():  # a cancelled caller's write is never started
                batch.append((work, future))
        if not batch:
            self._next()
            return
        self._in_flight = True
        self._send(batch, asyncio.get_running_loop().time() + self._timeout, 0.002)

    def _start_checkpoint(self) -> bool:
        """Start a checkpoint on the thread, for ``_next`` when inline writes have filled the
        WAL that far (the writer is held until it ends); True if one started."""
        writes = self._writes_since_checkpoint
        # Frames per write are learnt from counted writes only (not from an import's).
        context = 0 if self._checkpoint_forced else writes
        try:
            self._thread.run(_checkpoint, (), self._checkpoint_done, context)
        except sqlite3.Error:
            return False  # the store is closing
        self._writes_since_checkpoint = 0
        self._checkpoint_forced = False
        self._in_flight = True
        return True

    def _checkpoint_done(
        self, writes: int, frames: int | None, error: BaseException | None
    ) -> None:
        # A checkpoint that failed (the file busy, say) is retried after as many writes again.
        if frames and writes:
            self._checkpoint_after = _writes_for_checkpoint(frames // writes)
        self._in_flight = False
        self._next()

    def _send(self, batch: list[_Pending], deadline: float, delay: float) -> None:
        works = [work for work, _ in batch]
        try:
            self._thread.run(
                _run_batch, (works, self._busy, True), self._finish, (batch, deadline, delay)
            )
        except sqlite3.Error as exc:
            self._finish((batch, deadline, delay), None, exc)

    def _finish(
        self,
        sent: tuple[list[_Pending], float, float],
        outcomes: list[Any] | None,
        error: BaseException | None,
    ) -> None:
        batch, deadline, delay = sent
        if error is not None:
            loop = asyncio.get_running_loop()
            if _is_busy(error) and loop.time() + delay <= deadline:
                # Another process held the write lock beyond SQLite's own busy wait: retry.
                loop.call_later(delay, self._send, batch, deadline, min(delay * 2, 0.1))
                return
            for _, future in batch:
                if not future.done():
                    future.set_exception(self._translated(error))
        else:
            assert outcomes is not None
            self._writes_since_checkpoint += len(batch)
            for (_, future), result in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                if isinstance(result, _Failed):
                    future.set_exception(self._translated(result.error))
                else:
                    future.set_result(result)
        self._in_flight = False
        # A batch of one was a lone writer's (that waited for a checkpoint, say): its next
        # write may go inline again, so no batch is held open for it.
        self._next(after_batch=len(batch) > 1)

    def _translated(self, error: BaseException) -> BaseException:
        """The confstore error for ``error``: a fresh one per caller, so no traceback is shared."""
        if isinstance(error, ConfigStoreError):
            return error
        try:
            with self._driver_errors:
                raise error
        except BaseException as translated:
            return translated


class _LoopReader:
    """Point reads (a key's latest version, or one version) served on the event loop's thread.

    A point read by the primary index costs the loop less than a hop to the reader thread (the
    hop's two thread switches each wake another thread, often on another idle CPU), so a file
    store answers it here, from a read-only connection of its own, and goes to the reader
    thread instead whenever that could wait:

    - ``budget`` does not allow it: the caller is not on the thread that opened the store
      (another loop, another thread), or a read here took longer than ``_LOOP_READ_BUDGET``
      recently (then reads go to the thread for the next ``_LOOP_READ_PAUSE`` seconds);
    - SQLite reports busy or any other error: the reader thread waits (its busy timeout),
      retries, and reports what remains.

    The connection's busy timeout is 0, so SQLite never sleeps in its busy handler here: a
    lock held by another connection (WAL recovery under way after a crashed writer, a
    connection in exclusive locking mode, a writer on a rollback-journal file opened read-only)
    is an immediate SQLITE_BUSY, and the read goes to the thread. In WAL mode readers never wait
    for writers or checkpoints. What can still hold the loop, once per pause, before the budget
    notices: reading pages that are not in the OS page cache (one B-tree descent, a few page
    reads), or this connection rebuilding the WAL index itself when it is the first to find it
    torn by a crashed writer (reading the WAL once). docs/performance.md has the details.

    Each read is one autocommit statement run to its end (``fetchall``), so it starts a fresh
    read transaction: it sees every version committed before it began, by this store or any
    other process, and keeps no snapshot open. The connection is closed on the reader thread,
    with the thread's own (``SQLiteThread.close_with``).
    """

    __slots__ = ("budget", "connection")

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection
        self.budget = LoopBudget(_LOOP_READ_BUDGET, _LOOP_READ_PAUSE)

    def fetch(self, sql: str, parameters: Sequence[Any]) -> list[Row] | None:
        """The rows, or None when the reader thread must answer instead."""
        budget = self.budget
        if not budget.allows():
            return None
        started = budget.clock()
        try:
            return self.connection.execute(sql, parameters).fetchall()
        except sqlite3.Error:
            return None
        finally:
            budget.spent(started)


def _open_loop_connection(
    connection: sqlite3.Connection, connect: Callable[..., sqlite3.Connection]
) -> sqlite3.Connection:
    """On the reader thread: the loop's read-only connection (busy timeout 0), to be closed
    with the reader's."""
    loop_connection = connect(0.0, check_same_thread=False)
    try:
        loop_connection.execute("PRAGMA query_only=ON")
    except BaseException:
        loop_connection.close()
        raise
    return loop_connection


class SQLiteConfigStore(ConfigStore):
    """The contract on one SQLite file (or ``:memory:``); safe for many processes on one file.

    ``timeout`` bounds how long a write waits for the file's write lock (other processes) and how
    long health_check waits; ``synchronous`` is ``"FULL"`` (default: an acknowledged write survives
    power loss) or ``"NORMAL"`` (survives a crash of the process, not of the machine).

    The file's directory must exist, except for the default location ``data/config/config.db``,
    whose directories are created. ``read_only=True`` (URL ``?mode=ro``) opens the file with
    SQLite's read-only mode; a file the process cannot write (permissions, a read-only file
    system) is opened that way too. A read-only store serves every read; writes raise
    BackendUnavailableError.

    ``loop_reads`` (default True; URL ``?loop_reads=false``): a file store serves point reads
    (``get_config`` of the latest version or of one version) on the event loop's own thread,
    from a read-only connection that never waits for a lock, instead of hopping to its reader
    thread; that is about twice as fast (measured). Such a read can hold the loop only while it
    reads pages the OS has not cached (a few page reads), and once it takes longer than 2 ms,
    reads go to the reader thread for the next second. Reads from another thread or loop, and
    reads SQLite reports busy, go to the reader thread. Turn it off where a loop must never
    touch the disk (a file on a network file system, hard latency bounds on the loop).

    ``loop_writes`` (default True; URL ``?loop_writes=false``): a ``set_config`` that finds the
    store's writer idle is committed on the event loop's own thread, on the writer's
    connection, instead of hopping to the writer thread. What that can block the loop for: the
    write's transaction, once, its fsync included (about 0.5 ms on a local SSD; with
    ``synchronous=FULL``, the time its caller waits anyway); never a wait for another process's
    lock (the write then goes to the thread) and never a checkpoint (those run on the writer
    thread). When writes there take longer than 5 ms on average, or one takes 50 ms, writes go
    to the thread for the next second. Concurrent writers still share group commits on the
    thread; deletes, imports and prune always run there; a ``:memory:`` store never writes on
    the loop.
    """

    backend_name: ClassVar[str] = "sqlite"
    # Whether followers sleep on file events of the WAL where the platform has them (else on
    # the ``watch_interval`` timer; tests turn them off to run the timer on Linux too).
    _file_events: ClassVar[bool] = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        synchronous: str = "FULL",
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        read_only: bool = False,
        feed_max_changes: int = DEFAULT_FEED_MAX_CHANGES,
        feed_max_age: timedelta | float | str = DEFAULT_FEED_MAX_AGE,
        watch_interval: float = DEFAULT_WATCH_INTERVAL,
        loop_reads: bool = True,
        loop_writes: bool = True,
    ) -> None:
        super().__init__(max_value_bytes=max_value_bytes)
        self.loop_reads = _require_bool("loop_reads", loop_reads)
        self.loop_writes = _require_bool("loop_writes", loop_writes)
        self.feed_max_changes = validate_version(feed_max_changes, name="feed_max_changes")
        self.feed_max_age = parse_duration(feed_max_age, name="feed_max_age")
        self._writes_since_trim = 0
        self.path = os.fspath(path)
        if not self.path:
            raise InvalidConfigError("the SQLite path must not be empty", field="path")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise InvalidConfigError(
                f"timeout must be a positive number of seconds, got {timeout!r}", field="timeout"
            )
        self.timeout = float(timeout)
        if isinstance(watch_interval, bool) or not isinstance(watch_interval, int | float):
            watch_interval = -1.0
        if not 0 < watch_interval <= 60:
            raise InvalidConfigError(
                f"watch_interval must be a number of seconds above 0 and up to 60, got "
                f"{watch_interval!r}",
                field="watch_interval",
            )
        self.watch_interval = float(watch_interval)
        mode = synchronous.upper() if isinstance(synchronous, str) else synchronous
        if mode not in _SYNCHRONOUS_MODES:
            raise InvalidConfigError(
                f"synchronous must be FULL or NORMAL, got {synchronous!r}", field="synchronous"
            )
        self.synchronous = cast(Synchronous, mode)
        self.read_only = bool(read_only)
        self._threads: ThreadGroup | None = None
        self._reader: SQLiteThread | None = None
        self._loop_reader: _LoopReader | None = None
        self._writer: _GroupCommitWriter | None = None
        # Why an open store refuses writes (mode=ro, a read-only file...), or None.
        self._read_only_reason: str | None = None
        # How the watcher thread opens its connection (set when the store opens a file).
        self._watch_connect: Callable[[], sqlite3.Connection] | None = None
        self._watcher: CommitWatcher | None = None
        self._lifecycle = asyncio.Lock()
        # A close that was cancelled and still runs (see close).
        self._shutdown: asyncio.Future[None] | None = None
        self._driver_errors = _DriverErrors(self.path, self.timeout)

    @classmethod
    def from_url(cls, url: StoreURL, **options: Any) -> SQLiteConfigStore:
        """``sqlite:///relative.db``, ``sqlite:////absolute.db`` or ``sqlite://:memory:``.

        Options: ``timeout`` (alias ``busy_timeout``, seconds), ``synchronous`` (FULL or NORMAL),
        ``max_value_bytes``, ``mode`` (``rw``, the default, or ``ro`` for read-only),
        ``feed_max_changes`` and ``feed_max_age`` (``7d``, ``12h``, or seconds): how much of the
        change feed is kept; ``watch_interval`` (seconds between checks for commits while a follower waits);
        ``loop_reads`` (``true``, the default, or ``false``: whether point reads may be served
        on the event loop's thread, see the class); ``loop_writes`` (``true``, the default, or ``false``: whether a lone set_config may be
        committed on the event loop's thread, see the class).
        """
        reader = StoreOptions("sqlite", options)
        busy_timeout = reader.take_float("busy_timeout", DEFAULT_TIMEOUT)
        timeout = reader.take_float("timeout", busy_timeout)
        synchronous = reader.take_str("synchronous", "FULL") or "FULL"
        max_value_bytes = reader.take_int("max_value_bytes", DEFAULT_MAX_VALUE_BYTES, minimum=1)
        mode = reader.take_str("mode", "rw")
        feed_max_changes = reader.take_int("feed_max_changes", DEFAULT_FEED_MAX_CHANGES, minimum=1)
        feed_max_age = reader.take_any("feed_max_age", DEFAULT_FEED_MAX_AGE)
        watch_interval = reader.take_float("watch_interval", DEFAULT_WATCH_INTERVAL)
        loop_reads = reader.take_bool("loop_reads", True)
        loop_writes = reader.take_bool("loop_writes", True)
        reader.finish()
        if mode not in ("rw", "ro"):
            raise InvalidConfigError(f"mode must be rw or ro, got {mode!r}", field="mode")
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
        return cls(
            path,
            timeout=timeout,
            synchronous=synchronous,
            max_value_bytes=max_value_bytes,
            read_only=mode == "ro",
            feed_max_changes=feed_max_changes,
            feed_max_age=feed_max_age,
            watch_interval=watch_interval,
            loop_reads=loop_reads,
            loop_writes=loop_writes,
        )

    @property
    def in_memory(self) -> bool:
        return self.path == MEMORY_PATH

    @property
    def capabilities(self) -> StoreCapabilities:
        on_disk = not self.in_memory
        return StoreCapabilities(persistent=on_disk, shared=on_disk, retention=True)

    @classmethod
    def isolated_area(cls, url: StoreURL, name: str) -> IsolatedArea:
        """A scratch file ``{name}-{file name}`` beside the file ``url`` names (so in the same
        directory and file system, with the same options); ``:memory:`` is private to each handle
        anyway. PermissionDeniedError when ``url`` opens a read-only store (``mode=ro``, or a
        file this process may not write): its area could not be written either."""
        if url.host == MEMORY_PATH:
            return IsolatedArea(url, "a private in-memory database per handle")
        target = Path(url.path)
        reason = "opened with mode=ro" if url.options.get("mode") == "ro" else None
        if reason is None and os.path.isfile(target) and not os.access(target, os.W_OK):
            reason = _why_read_only(str(target))
        if reason is not None:
            raise PermissionDeniedError(f"SQLite database {target} is read-only ({reason})")
        if os.path.isdir(target):
            raise BackendUnavailableError(f"SQLite database {target} is a directory")
        scratch = target.parent / f"{name}-{target.name}"

        async def remove() -> None:
            await asyncio.to_thread(_remove_database_files, scratch)

        return IsolatedArea(replace(url, path=str(scratch)), f"scratch database {scratch}", remove)

    async def backend_version(self) -> str:
        return f"SQLite {sqlite3.sqlite_version}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r})"

    async def initialize(self) -> None:
        async with self._lifecycle:
            await self._wait_for_shutdown()
            if self._threads is not None:
                return
            opened: list[SQLiteThread] = []
            try:
                with self._driver_errors:
                    await self._open(opened)
            except BaseException:
                self._reader = self._writer = self._loop_reader = None
                for thread in opened:
                    with contextlib.suppress(Exception):
                        await thread.close()
                raise
            self._threads = ThreadGroup(self, repr(self), opened)

    async def close(self) -> None:
        """End the store's threads and close its connections; when this returns, none runs.

        Shielded: a cancelled close still finishes (in the background), and the next close or
        initialize waits for that.
        """
        async with self._lifecycle:
            if self._shutdown is None:
                self._shutdown = asyncio.ensure_future(self._shut_down(*self._detach()))
            await self._wait_for_shutdown()

    async def _wait_for_shutdown(self) -> None:
        """Wait for the close under way, if any (the lifecycle lock is held)."""
        shutdown = self._shutdown
        if shutdown is None:
            return
        try:
            await asyncio.shield(shutdown)
        finally:
            if shutdown.done():
                self._shutdown = None

    def _detach(self) -> tuple[ThreadGroup | None, _GroupCommitWriter | None, CommitWatcher | None]:
        """Take the threads, the writer and the watcher from the store: it is closed from now on."""
        threads, self._threads = self._threads, None
        writer, self._writer = self._writer, None
        # Its connection closes with the reader thread's, after the reads queued there.
        self._loop_reader = self._reader = None
        self._read_only_reason = None
        self._watch_connect = None
        watcher, self._watcher = self._watcher, None
        return threads, writer, watcher

    async def _shut_down(
        self,
        threads: ThreadGroup | None,
        writer: _GroupCommitWriter | None,
        watcher: CommitWatcher | None,
    ) -> None:
        # The watcher's connection closes first, so that the store's own are the file's last:
        # the last to close checkpoints the WAL and removes it.
        if watcher is not None:
            await watcher.close()
        if writer is not None:
            await writer.drain()
        if threads is not None:
            with self._driver_errors:
                await threads.close()

    async def _open(self, opened: list[SQLiteThread]) -> None:
        """Start the threads and open their connections: a writer unless the file is read-only,
        and a reader (``:memory:`` has one connection for both)."""
        if self.in_memory:
            writer = await self._open_writer(opened)
            assert writer is not None
            self._reader = writer
            return
        reason = "opened with mode=ro" if self.read_only else None
        reason = reason or await asyncio.to_thread(_check_location, self.path)
        if reason is None and await self._open_writer(opened) is None:
            reason = await asyncio.to_thread(_why_read_only, self.path)
        if reason is None:
            connect = partial(_connect, self.path)
        else:
            immutable = await asyncio.to_thread(_on_read_only_file_system, self.path)
            connect = partial(_connect_read_only, self.path, immutable)
        reader = await self._start_thread(opened, "reader", connect)
        await reader.call(_prepare_reader, reason is not None)
        if self.loop_reads:
            # Opened on the reader thread (it may wait for the file system), used on this
            # loop's thread, closed with the reader's connection.
            loop_connection = await reader.call(_open_loop_connection, connect)
            reader.close_with(loop_connection)
            self._loop_reader = _LoopReader(loop_connection)
        self._reader = reader
        self._read_only_reason = reason
        self._watch_connect = partial(connect, self.timeout)

    async def _open_writer(self, opened: list[SQLiteThread]) -> SQLiteThread | None:
        """Open the writer connection and the group-commit path on it; None (and the writer
        closed again) when SQLite finds the file cannot be written."""
        # Not bound to its thread: inline writes borrow it on the loop's thread.
        connect = partial(_connect, self.path, check_same_thread=False)
        writer = await self._start_thread(opened, "writer", connect)
        inline = self.loop_writes and not self.in_memory
        try:
            await _retry_while_busy(
                writer, partial(_prepare_writer, self.synchronous, not inline), self.timeout
            )
        except sqlite3.Error as exc:
            if self.in_memory or _error_code(exc) not in _READ_ONLY_CODES:
                raise
            if not await asyncio.to_thread(os.path.isfile, self.path):
                raise
            opened.remove(writer)
            await writer.close()
            return None
        self._writer = _GroupCommitWriter(writer, self._driver_errors, self.timeout, inline=inline)
        return writer

    async def _start_thread(
        self, opened: list[SQLiteThread], role: str, connect: Callable[[float], sqlite3.Connection]
    ) -> SQLiteThread:
        """A new thread for this store, its connection opened there by ``connect(timeout)``."""
        thread = SQLiteThread(f"confstore-sqlite-{role}")
        opened.append(thread)
        await thread.open(partial(connect, self.timeout))
        return thread

    def _set_config(
        self,
        key: ConfigKey,
        value: dict[str, Any],
        value_json: str,
        *,
        expected_version: int | None,
        updated_by: str | None,
        comment: str | None,
    ) -> ConfigEntry | Coroutine[Any, Any, ConfigEntry]:
        """The entry, when the write was committed at once on the loop's thread (a lone
        writer: ``_GroupCommitWriter.run_here``), else the write's coroutine to await. A write
        after which the change feed is due a trim takes the coroutine."""
        work = _SetVersion(key, value, value_json, updated_by, comment, expected_version)
        writer = self._writer
        if writer is not None and self._writes_since_trim < _FEED_TRIM_EVERY - 1:
            entry: ConfigEntry | None = writer.run_here(work)
            if entry is not None:
                self._writes_since_trim += 1
                return entry
        return self._write(work)

    async def _get_config(self, key: ConfigKey, version: int | None) -> ConfigEntry | None:
        if self._loop_reader is not None:
            # A read still gives other tasks a turn (a loop polling get_config must not starve
            # the writer it waits for), and is cancellable there, before any work.
            await asyncio.sleep(0)
        # Read after that turn: a close() that ran in it has taken the loop's connection away.
        loop_reader = self._loop_reader
        if loop_reader is not None:
            if version is None:
                rows = loop_reader.fetch(_SELECT_LATEST, _key_params(key))
                if rows is not None:
                    return _entry(rows[0]) if rows and not rows[0][10] else None
            else:
                rows = loop_reader.fetch(_SELECT_VERSION, (*_key_params(key), version))
                if rows is not None:
                    return _entry(rows[0]) if rows else None
        # _query inlined: this is the hot path of uncached reads (one coroutine level less).
        reader = self._reader
        if reader is None:
            raise self._not_open()
        with self._driver_errors:
            if version is None:
                return await reader.call(_fetch_latest, _key_params(key))
            entries = await reader.call(
                _fetch_entries, _SELECT_VERSION, (*_key_params(key), version)
            )
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
        return await self._import_rows(_entry_row_chunks(_aiter(entries)), mode)

    async def _import_document(self, tenant_id: str, document: object, mode: ImportMode) -> int:
        # Every entry is checked (into its row) before the transaction starts.
        rows = import_document_rows(tenant_id, document, max_value_bytes=self.max_value_bytes)
        if not rows:
            return 0
        chunks = (rows[start : start + ROW_CHUNK] for start in range(0, len(rows), ROW_CHUNK))
        return await self._import_rows(_aiter(chunks), mode)

    async def _import_stream(
        self, tenant_id: str, entries: AsyncIterator[ConfigEntry], mode: ImportMode
    ) -> int:
        return await self._import_rows(_entry_row_chunks(entries), mode)

    async def _import_raw_entries(
        self, tenant_id: str, entries: Iterable[Any] | AsyncIterable[Any], mode: ImportMode
    ) -> int:
        if isinstance(entries, ParsedEntries):
            return await self._import_rows(
                CheckedRows(tenant_id, entries, self.max_value_bytes), mode
            )
        checked = checked_row_chunks(tenant_id, entries, self.max_value_bytes)
        return await self._import_rows(checked, mode)

    async def _import_rows(
        self, chunks: AsyncIterator[list[EntryRow]] | CheckedRows, mode: ImportMode
    ) -> int:
        """One transaction, written a chunk at a time as rows arrive (see _ImportTransaction).

        Rows that ``CheckedRows`` reads are read, parsed, checked and written on the writer
        thread, a piece per job: one thread does all of the work, so it keeps its caches and
        never waits for the GIL (on one CPU, two threads taking turns cost a fifth more CPU
        time), and the event loop stays free. Rows from the event loop (``chunks``) go to the
        writer thread a list at a time: while it stores one, the loop checks the next (the
        sqlite3 module releases the GIL while SQLite works), so at most two are in memory.
        """
        writer = self._writer
        if writer is None:
            raise self._not_writable()
        transaction = _ImportTransaction(mode)
        async with writer.exclusive(after=transaction.end) as thread:
            await self._on_writer(thread.call(transaction.start))
            if isinstance(chunks, CheckedRows):
                written = 0
                while (count := await self._on_writer(thread.call(transaction.read, chunks))) >= 0:
                    written += count
            else:
                written = await self._write_row_chunks(thread, transaction, chunks)
            return written + await self._on_writer(thread.call(transaction.finish))

    async def _write_row_chunks(
        self,
        thread: SQLiteThread,
        transaction: _ImportTransaction,
        chunks: AsyncIterator[list[EntryRow]],
    ) -> int:
        written = 0
        in_flight: asyncio.Future[int] | None = None
        try:
            # Errors of the caller's own entries pass through untranslated.
            async for rows in chunks:
                if in_flight is not None:
                    written += await self._on_writer(in_flight)
                in_flight = thread.call(transaction.write, rows)
            if in_flight is not None:
                written += await self._on_writer(in_flight)
                in_flight = None
        finally:
            if in_flight is not None and not in_flight.cancel():
                in_flight.exception()  # retrieved: the error that matters is being raised
        return written

    async def _on_writer(self, work: asyncio.Future[_T]) -> _T:
        """The result of ``work`` on the writer thread, driver errors translated."""
        with self._driver_errors:
            return await work

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
        reader = self._reader
        if reader is None:
            return False
        try:
            async with asyncio.timeout(self.timeout):
                await reader.call(_fetch_rows, _SELECT_CURSOR, ())
        except Exception:
            return False
        return True

    async def current_cursor(self) -> str:
        rows = await self._query(_fetch_rows, _SELECT_CURSOR, ())
        return str(rows[0][0])

    async def wait_for_changes(self, cursor: str | None, timeout: float) -> None:
        """Return within ``watch_interval`` of a commit (by any process) that moves the feed
        past ``cursor``, or after ``timeout`` s; see ``_sqlite_watch``. ``:memory:`` sleeps."""
        after = parse_sequence_cursor(cursor, "sqlite")
        watcher = self._commit_watcher()
        if watcher is None:
            await super().wait_for_changes(cursor, timeout)
            return
        with self._driver_errors:
            await watcher.wait(after, timeout)

    def _commit_watcher(self) -> CommitWatcher | None:
        """The running watcher, started on first use; None for ``:memory:`` or a closed store."""
        watcher = self._watcher
        if watcher is not None and not watcher.failed:
            return watcher
        if watcher is not None:
            watcher.stop()  # its connection failed: the next wait tries a new one
        connect = self._watch_connect
        if connect is None:
            return None
        wal_path = f"{self.path}-wal" if self._file_events else None
        self._watcher = CommitWatcher(
            self, connect, _read_feed_position, self.watch_interval, wal_path
        )
        return self._watcher

    async def _changes_since(self, cursor: str | None, limit: int) -> ChangeBatch:
        start = parse_sequence_cursor(cursor, "sqlite")
        rows = await self._query(_fetch_rows, _SELECT_CHANGES, (start, limit + 1))
        if cursor is not None and (not rows or rows[0][0] != start + 1):
            # Sequence numbers have no gaps but the trimmed front of the feed.
            oldest = (await self._query(_fetch_rows, _SELECT_OLDEST_CHANGE, ()))[0][0]
            if oldest is not None and oldest > start + 1:
                raise CursorExpiredError(
                    f"change-feed cursor {cursor} of {self.path} is older than the oldest change "
                    f"kept ({oldest}); start again from current_cursor()"
                )
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
        reader = self._reader
        if reader is None:
            raise self._not_open()
        with self._driver_errors:
            return await reader.call(work, *args)

    def _write(self, work: Callable[[sqlite3.Connection], _T]) -> Coroutine[Any, Any, _T]:
        """Run ``work`` in a write transaction (``_GroupCommitWriter.write``); every few thousand
        writes, trim the change feed after one. A plain def returning the coroutine to await,
        so a write's coroutine chain is one frame shorter."""
        writer = self._writer
        if writer is None:
            raise self._not_writable()
        self._writes_since_trim += 1
        if self._writes_since_trim >= _FEED_TRIM_EVERY:
            self._writes_since_trim = 0
            return self._write_then_trim(writer, work)
        return writer.write(work)

    async def _write_then_trim(
        self, writer: _GroupCommitWriter, work: Callable[[sqlite3.Connection], _T]
    ) -> _T:
        result = await writer.write(work)
        # The write is committed: a trim that fails (the file busy, say) must not make it look
        # failed. The next trim, or prune(), does the work.
        with contextlib.suppress(ConfigStoreError):
            await writer.write(self._trim_feed)
        return result

    def _trim_feed(self, connection: sqlite3.Connection) -> int:
        """Delete the changes beyond ``feed_max_changes`` or older than ``feed_max_age``, never
        the newest one; return how many went. Runs on the writer thread, in a transaction."""
        newest: int = connection.execute(_SELECT_CURSOR).fetchone()[0]
        oldest: int | None = connection.execute(_SELECT_OLDEST_CHANGE).fetchone()[0]
        if oldest is None:
            return 0
        cutoff = int(utc_now().timestamp() - self.feed_max_age.total_seconds())
        young = connection.execute(_SELECT_FIRST_YOUNG_CHANGE, (cutoff,)).fetchone()
        bound = min(
            newest - 1, max(newest - self.feed_max_changes, young[0] - 1 if young else newest)
        )
        if bound < oldest:
            return 0
        connection.execute(_TRIM_CHANGES, (bound,))
        return bound - oldest + 1

    async def _prune(
        self, policy: RetentionPolicy, tenant_id: str | None, dry_run: bool
    ) -> PruneResult:
        """A page of keys per transaction (see _prune_page), then a trim of the change feed."""
        now = utc_now()
        report: list[KeyPrune] = []
        after: dict[str, Any] = dict.fromkeys(
            ("after_tenant", "after_scope", "after_service", "after_key"), ""
        )
        while True:
            page = await self._query(
                _fetch_rows,
                _SELECT_HEADS_PAGE,
                {"tenant_id": tenant_id, "limit": _PRUNE_PAGE, **after},
            )
            if not page:
                break
            work = partial(_prune_page, page, policy, now, dry_run)
            if dry_run:
                report.extend(await self._query(work))
            else:
                report.extend(await self._write(work))
            last = page[-1]
            after.update(
                after_tenant=last[0], after_scope=last[1], after_service=last[2], after_key=last[3]
            )
        trimmed = 0
        if not dry_run:
            trimmed = await self._write(self._trim_feed)
        return PruneResult(tuple(report), dry_run, changes_removed=trimmed)

    def _not_writable(self) -> BackendError:
        if self._reader is not None:
            return PermissionDeniedError(
                f"SQLite database {self.path} is read-only ({self._read_only_reason}): "
                "writes are refused"
            )
        return self._not_open()

    def _not_open(self) -> BackendUnavailableError:
        return BackendUnavailableError(
            f"{self!r} is not open: call initialize() or use 'async with' first"
        )


_DEFAULT_PATH: Final = StoreURL.parse(DEFAULT_STORE_URL).path


def _require_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidConfigError(f"{name} must be True or False, got {value!r}", field=name)
    return value


def _check_location(path: str) -> str | None:
    """Why an existing file cannot be written (see _why_read_only), or None.

    The default location gets its directories; any other path must be in an existing one.
    """
    if os.path.isfile(path) and not os.access(path, os.W_OK):
        return _why_read_only(path)
    if os.path.isdir(path):
        raise BackendUnavailableError(
            f"cannot open SQLite database {path}: it is a directory; name a file in it"
        )
    parent = Path(path).parent
    if os.path.normpath(path) == os.path.normpath(_DEFAULT_PATH):
        parent.mkdir(parents=True, exist_ok=True)
    elif not parent.is_dir():
        problem = "is not a directory" if parent.exists() else "does not exist"
        raise BackendUnavailableError(
            f"cannot open SQLite database {path}: {parent} {problem} "
            f"(only the default location {_DEFAULT_PATH} gets its directories created)"
        )
    return None


def _connect(path: str, timeout: float, *, check_same_thread: bool = True) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), on the calling thread."""
    return sqlite3.connect(
        path,
        timeout=timeout,
        isolation_level=None,
        cached_statements=256,
        check_same_thread=check_same_thread,
    )


def _connect_read_only(
    path: str, immutable: bool, timeout: float, *, check_same_thread: bool = True
) -> sqlite3.Connection:
    """SQLite's read-only mode; ``immutable`` for a file on a read-only file system, where SQLite
    cannot create the shared-memory file a WAL database is read with (and nothing can change it)."""
    uri = f"file:{quote(os.path.abspath(path))}?mode=ro" + ("&immutable=1" if immutable else "")
    return sqlite3.connect(
        uri,
        uri=True,
        timeout=timeout,
        isolation_level=None,
        cached_statements=256,
        check_same_thread=check_same_thread,
    )


_READ_ONLY_CODES: Final = frozenset(
    {sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM}
)


def _error_code(error: sqlite3.Error) -> int | None:
    """SQLite's primary result code of ``error`` (extended codes folded), if it has one."""
    code = getattr(error, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


def _why_read_only(path: str) -> str | None:
    """Why the database at ``path`` is opened read-only; None when there is no file to read."""
    if not os.path.isfile(path):
        return None
    if _on_read_only_file_system(path):
        return "it is on a read-only file system"
    return "the process may not write the file or its directory"


def _remove_database_files(path: Path) -> None:
    """Delete a database file with its journal, WAL and shared-memory files, those that exist."""
    for suffix in ("", "-journal", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def _on_read_only_file_system(path: str) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _prepare_writer(
    synchronous: Synchronous, checkpoints: bool, connection: sqlite3.Connection
) -> None:
    """Set the journal mode and durability, and create or check the schema, on the writer
    thread; ``checkpoints=False`` turns SQLite's automatic checkpoint at commit off (the
    writer then runs them, see _GroupCommitWriter)."""
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(f"PRAGMA synchronous={synchronous}")
    if not checkpoints:
        connection.execute("PRAGMA wal_autocheckpoint=0")
    connection.execute("BEGIN IMMEDIATE")
    try:
        found = connection.execute("PRAGMA user_version").fetchone()[0]
        upgrade = {0: _SCHEMA, 1: _UPGRADE_FROM_1}.get(found)
        if upgrade is not None:
            for statement in upgrade:
                connection.execute(statement)
            connection.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        else:
            _check_schema_version(found)
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


def _prepare_reader(connection: sqlite3.Connection, check_schema: bool) -> None:
    """Make the connection read-only; without a writer (which checks it), check the schema."""
    connection.execute("PRAGMA query_only=ON")
    # Touch the schema so a file that is not a database fails here, not on the first read.
    connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    if check_schema:
        _check_schema_version(connection.execute("PRAGMA user_version").fetchone()[0])


def _check_schema_version(found: int) -> None:
    if found == 0:
        raise BackendUnavailableError(
            "the database has no confstore schema (it was never initialised)"
        )
    if found != SCHEMA_VERSION:
        raise BackendUnavailableError(
            f"the database has schema version {found}; this confstore reads {SCHEMA_VERSION}"
        )


def _prune_page(
    heads: list[Row],
    policy: RetentionPolicy,
    now: datetime,
    dry_run: bool,
    connection: sqlite3.Connection,
) -> list[KeyPrune]:
    """Apply ``policy`` to a page of keys (rows of _SELECT_HEADS_PAGE) as ``plan_key_prune``
    would: by count and age with SQL, never the latest version. Runs in a write transaction (or
    on the reader, for a dry run)."""
    report = []
    for tenant_id, scope, service, config_key, latest, deleted in heads:
        key = ConfigKey(tenant_id, _SCOPES[scope], service, config_key)
        rule = policy.rule_for(key)
        params = (tenant_id, scope, service, config_key)
        older_cutoff, deleted_cutoff = rule.cutoffs(now)
        if deleted and deleted_cutoff is not None:
            updated_at = connection.execute(_SELECT_UPDATED_AT, (*params, latest)).fetchone()
            if updated_at is not None and updated_at[0] <= format_timestamp(deleted_cutoff):
                count = connection.execute(_COUNT_VERSIONS, params).fetchone()[0]
                if not dry_run:
                    connection.execute(_PURGE_VERSIONS, params)
                    connection.execute(_RETIRE_HEAD, params)
                    connection.execute(_RECORD_PURGE, (*params, latest))
                report.append(KeyPrune(key, count, latest, purged=True))
                continue
        if not rule.prunes_versions:
            continue
        below = latest
        if rule.keep_last is not None:
            floor = connection.execute(_SELECT_KEEP_FLOOR, (*params, rule.keep_last - 1)).fetchone()
            if floor is None:
                continue
            below = min(below, floor[0])
        cutoff = None if older_cutoff is None else format_timestamp(older_cutoff)
        condition = (*params, below, cutoff, cutoff)
        count, through = connection.execute(_COUNT_PRUNABLE, condition).fetchone()
        if not count:
            continue
        if not dry_run:
            connection.execute(_DELETE_PRUNABLE, condition)
            connection.execute(_UNCOUNT_VERSIONS, (count, *params))
        report.append(KeyPrune(key, count, through))
    return report


def _begin_immediate(busy: _BusyWait, connection: sqlite3.Connection) -> None:
    busy.set(connection, True)
    connection.execute("BEGIN IMMEDIATE")


def _commit(connection: sqlite3.Connection) -> None:
    connection.execute("COMMIT")


def _rollback(connection: sqlite3.Connection) -> None:
    if connection.in_transaction:
        connection.execute("ROLLBACK")


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
        raise _version_conflict(connection, key, expected_version)
    return row[0], row[1]


def _version_conflict(
    connection: sqlite3.Connection, key: ConfigKey, expected_version: int | None
) -> VersionConflictError:
    """The error for an append that found another latest version than ``expected_version``."""
    head = connection.execute(_SELECT_HEAD, _key_params(key)).fetchone()
    return VersionConflictError(
        cast(int, expected_version), 0 if head is None else head[0], key=key
    )


class _ImportTransaction:
    """The writer-thread side of one import, inside the transaction ``exclusive()`` holds.

    restore: each chunk is inserted with a few multi-row statements (the common case: nothing of
    it is stored yet). If a version already exists, the statement stops there, keeping the rows
    before it, and the rest of its rows are taken one entry at a time: a stored version with the
    same value is skipped, another value is
    an ImportConflictError (``plan_restore``), and a version this import already wrote (its
    ``seq`` is past the one the transaction started at) was given twice. The maintenance
    trigger is dropped for the transaction (and created again before it commits): after each
    chunk, a few set-based statements write the same heads and changes it would have written.
    append: entries are staged in a temporary table (which refuses a version given twice), then
    appended in key and version order as latest + 1, stamped with one time.
    """

    def __init__(self, mode: ImportMode) -> None:
        self.mode = mode
        self.start_seq = 0
        self.batch_sizes = _BATCH_SIZES
        # restore: the maintenance trigger's text while it is dropped, and the last seq whose
        # heads and change are recorded.
        self.trigger: str | None = None
        self.maintained_seq = 0
        # The connection's page cache size before the import (see end).
        self.cache_size: int | None = None

    def start(self, connection: sqlite3.Connection) -> None:
        self.start_seq = self.maintained_seq = connection.execute(_SELECT_MAX_SEQ).fetchone()[0]
        self.cache_size = connection.execute("PRAGMA cache_size").fetchone()[0]
        connection.execute(f"PRAGMA cache_size=-{_IMPORT_CACHE_KIB}")
        # SQLite before 3.32 takes 999 parameters per statement, later ones 32766.
        parameters = connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        self.batch_sizes = tuple(size for size in _BATCH_SIZES if size * _ROW_FIELDS <= parameters)
        if self.mode == "append":
            # Each append reads the head that the trigger of the one before updated.
            connection.execute(_CREATE_STAGING)
            connection.execute(_CLEAR_STAGING)
            return
        # Dropped and created again inside this transaction: no other connection ever sees the
        # store without it, and a rollback restores it.
        found = connection.execute(_SELECT_MAINTAIN_TRIGGER).fetchone()
        if found is not None:
            self.trigger = found[0]
            connection.execute(_DROP_MAINTAIN_TRIGGER)

    def read(self, connection: sqlite3.Connection, rows: CheckedRows) -> int:
        """Write the rows of the next piece ``rows`` reads; -1 after the last."""
        chunk = rows()
        return -1 if chunk is None else self.write(connection, chunk)

    def write(self, connection: sqlite3.Connection, rows: list[EntryRow]) -> int:
        written = self._insert(connection, rows)
        if self.trigger is not None and written:
            connection.execute(_MAINTAIN_HEADS, (self.maintained_seq,))
            connection.execute(_RECORD_CHANGES, (self.maintained_seq,))
            self.maintained_seq = connection.execute(_SELECT_MAX_SEQ).fetchone()[0]
        return written

    def _insert(self, connection: sqlite3.Connection, rows: list[EntryRow]) -> int:
        """Insert ``rows`` (restore: as versions; append: into the staging table); the number of
        versions written (0 when staging)."""
        restore = self.mode == "restore"
        table = "config_versions" if restore else "temp.import_staging"
        written = 0
        for batch in _statement_batches(rows, self.batch_sizes):
            changes = connection.total_changes
            try:
                connection.execute(
                    _INSERT_MANY[table, len(batch)], [field for row in batch for field in row]
                )
            except sqlite3.IntegrityError:
                # The rows before the one that failed are in (OR FAIL, rows inserted in order).
                kept = (connection.total_changes - changes) % _CHANGES_MODULUS
                insert = _INSERT_VERSION if restore else _INSERT_STAGING
                written += (kept if restore else 0) + sum(
                    self._write_one(connection, insert, row) for row in batch[kept:]
                )
            else:
                written += len(batch) if restore else 0
        return written

    def _write_one(self, connection: sqlite3.Connection, insert: str, row: EntryRow) -> int:
        version = row[5]
        stored = connection.execute(
            _SELECT_STORED_VERSION if self.mode == "restore" else _SELECT_STAGED_VERSION,
            (*row[:4], version),
        ).fetchone()
        if stored is None:
            connection.execute(insert, row)
            return 1 if self.mode == "restore" else 0
        entry = _entry(row)
        if self.mode == "append" or stored[-1] > self.start_seq:
            raise ImportFormatError(f"version {version} of {entry.key} appears twice in the import")
        plan_restore([entry], {version: _entry(stored[:-1])})
        return 0

    def end(self, connection: sqlite3.Connection) -> None:
        """After the commit or the rollback: the page cache back to its size (which frees the
        pages beyond it)."""
        if self.cache_size is not None:
            connection.execute(f"PRAGMA cache_size={self.cache_size}")
            self.cache_size = None

    def finish(self, connection: sqlite3.Connection) -> int:
        if self.mode == "restore":
            if self.trigger is not None:
                connection.execute(self.trigger)
            return 0
        now = format_timestamp(utc_now())
        appended = 0

        def appends() -> Iterator[tuple[Any, ...]]:
            nonlocal appended
            for row in connection.execute(_SELECT_STAGED):
                appended += 1
                yield (*row[:5], now, *row[5:], None)

        connection.executemany(_APPEND_VERSION, appends())
        connection.execute(_CLEAR_STAGING)
        return appended


async def _aiter(items: Iterable[_T]) -> AsyncIterator[_T]:
    for item in items:
        yield item


def _statement_batches(rows: list[EntryRow], sizes: Sequence[int]) -> Iterator[list[EntryRow]]:
    """``rows`` in consecutive lists of one of the ``sizes`` (powers of two down to 1), holding at
    most _STATEMENT_CHARACTERS of values unless a list is one row (SQLite copies what is bound)."""
    start = 0
    while start < len(rows):
        size = next(size for size in sizes if size <= len(rows) - start)
        while size > 1 and sum(len(row[4]) for row in rows[start : start + size]) > (
            _STATEMENT_CHARACTERS
        ):
            size //= 2
        yield rows[start : start + size]
        start += size


async def _entry_row_chunks(entries: AsyncIterator[ConfigEntry]) -> AsyncIterator[list[EntryRow]]:
    """Checked entries as lists of rows, ROW_CHUNK at a time (one hop to the writer each)."""
    timestamps = TimestampMemo()
    async for chunk in chunked(entries, ROW_CHUNK):
        yield [entry_row(entry, timestamps) for entry in chunk]


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


_parse_timestamp = datetime.fromisoformat  # stored by format_timestamp: always UTC with offset


def _read_feed_position(connection: sqlite3.Connection) -> int:
    # fetchall: the statement runs to its end, so no read snapshot stays open between checks.
    return int(connection.execute(_SELECT_CURSOR).fetchall()[0][0])
