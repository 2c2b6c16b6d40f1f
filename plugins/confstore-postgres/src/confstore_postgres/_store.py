"""PostgresConfigStore: the store contract on PostgreSQL, through asyncpg.

Tables (``schemas/postgres/schema.sql``, created by ``initialize()`` in the URL's schema, default
``confstore``): ``config_heads`` (one row per key: latest version, tombstone flag, created_at,
version count), ``config_versions`` (every version), ``config_changes`` (the change feed) and
``schema_info`` (the recorded schema version and the feed's identity).

- A write is one statement, one round trip (``_sql``): the key's advisory lock, the next version
  from its head row, the version row and the feed row, all atomic. Compare-and-set is the same
  statement with a conditional head step; a mismatch returns no row and writes nothing.
- Concurrent ``set_config`` calls share a transaction (``_batch``): those that arrive while a
  write is in flight go to the server together as one statement, so they share one commit's WAL
  flush; each keeps its own outcome. A lone write goes at once, alone.
- Each write carries a fresh request id, stored with its version. If the connection drops (or the
  call times out) after the statement was sent, the store waits until the old server session is
  gone, then reads the key back by that id: found means written (its version is returned), absent
  means not written, and it is sent again. So a write is neither lost nor duplicated; when the
  server stays unreachable past the timeout the outcome is unknown and BackendTimeoutError says so.
- Purges and imports are transactions that take their keys' locks first (in one fixed order).
  Imports use COPY; a restore plans every key first, so a conflict writes nothing.
- Exports stream through a server-side cursor in a read-only transaction (one snapshot).
- The change feed (``_feed``) is the source of truth; ``wait_for_changes`` listens for
  NOTIFY on a dedicated connection so followers in other processes wake at once, and every write
  sends a NOTIFY after it commits (coalesced, and never inside the write: see ``_sql.NOTIFY``).

Connections come from an asyncpg pool (``pool_size``), opened lazily; a connection lost to a
server restart is replaced on the next call. Only confstore exceptions leave the store (``_driver``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime
from importlib import resources
from itertools import groupby
from typing import Any, ClassVar, Final, NoReturn, TypeVar

import asyncpg

from confstore import (
    BackendTimeoutError,
    BackendUnavailableError,
    ChangeBatch,
    ChangeKind,
    ConfigChange,
    ConfigEntry,
    ConfigKey,
    ConfigScope,
    ConfigStore,
    ImportFormatError,
    InvalidConfigError,
    IsolatedArea,
    PruneResult,
    RetentionPolicy,
    StoreCapabilities,
    StoreURL,
    VersionConflictError,
    plan_restore,
)
from confstore._export import ImportMode

from . import _sql
from ._batch import GroupCommit, PendingWrite
from ._driver import (
    connection_broken,
    not_sent,
    outcome_unknown,
    refused_for_data,
    stale_statement,
    translate,
)
from ._feed import MAX_DONE, FeedCursor, next_page, present
from ._settings import PostgresSettings

logger = logging.getLogger("confstore.postgres")

DDL: Final = resources.files(__package__).joinpath("sql/schema.sql").read_text(encoding="utf-8")

# Rows a server-side cursor fetches per round trip when streaming an export.
_EXPORT_PREFETCH: Final = 1000
# How long a read-back waits for the server session of a lost write to end (milliseconds).
_TERMINATE_WAIT_MS: Final = 5000
_VERSION_COLUMNS: Final = [
    "tenant_id",
    "scope",
    "service",
    "config_key",
    "version",
    "value",
    "created_at",
    "updated_at",
    "updated_by",
    "comment",
    "deleted",
    "request_id",
]
_CHANGE_COLUMNS: Final = ["tenant_id", "scope", "service", "config_key", "kind", "version"]
_SCOPES: Final = {scope.value: scope for scope in ConfigScope}
_KINDS: Final = {kind.value: kind for kind in ChangeKind}
_NOT_APPLIED: Final = object()


class _Refused:
    """A batch the server refused with an error about its data: nothing of it was applied."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def __str__(self) -> str:
        return str(self.error)


_T = TypeVar("_T")
Attempt = Callable[[asyncpg.Connection], Awaitable[_T]]


class _Connection(asyncpg.Connection):  # type: ignore[misc]
    """A pooled connection that remembers which server session it is (pid, start time), so a
    write lost with it can make sure that session is gone before reading the write back."""

    session: tuple[int, datetime] | None = None


async def _identify(connection: asyncpg.Connection) -> None:
    if isinstance(connection, _Connection):
        started = await connection.fetchval(_sql.CONNECTION_IDENTITY)
        connection.session = (connection.get_server_pid(), started)


async def _keep_session(connection: asyncpg.Connection) -> None:
    """The pool's reset: nothing. The store never changes session state (no SET, LISTEN or
    session locks), and asyncpg's own reset would cost a round trip on every release."""


class _Notifier:
    """Sends the NOTIFY that wakes feed followers after writes: one at a time, coalescing the
    writes that commit while one is in flight. A lost wake-up only delays followers to their poll."""

    def __init__(self, store: PostgresConfigStore) -> None:
        self._store = store
        self._pending = False
        self._task: asyncio.Task[None] | None = None

    def poke(self) -> None:
        self._pending = True
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def flush(self) -> None:
        task = self._task
        if task is not None and not task.done():
            with contextlib.suppress(Exception):
                await task

    async def _run(self) -> None:
        while self._pending:
            self._pending = False
            pool = self._store._pool
            if pool is None:
                return
            try:
                async with pool.acquire(timeout=self._store.timeout) as connection:
                    await connection.execute(
                        _sql.NOTIFY, self._store.settings.channel, timeout=self._store.timeout
                    )
            except Exception as exc:
                logger.debug("confstore: NOTIFY failed (followers will poll): %s", exc)
                return


class _Listener:
    """A dedicated connection LISTENing on the schema's channel (pooled connections cannot:
    releasing one drops its LISTEN). Every notification advances ``generation``."""

    def __init__(self, store: PostgresConfigStore) -> None:
        self._store = store
        self._connection: asyncpg.Connection | None = None
        self._connecting: asyncio.Future[bool] | None = None
        self._event = asyncio.Event()
        self.generation = 0

    @property
    def connected(self) -> bool:
        return self._connection is not None and not self._connection.is_closed()

    async def wait(self, seen: int | None) -> None:
        """Return after a notification newer than generation ``seen`` (None: any new one), or at
        once after (re)connecting: notifications sent while disconnected are lost, so the
        follower must read the feed again. Waits forever when the server cannot be reached
        (the caller bounds the wait)."""
        if not self.connected:
            connecting = self._connecting
            if connecting is None or connecting.done():
                connecting = self._connecting = asyncio.ensure_future(self._connect())
            # A caller's timeout must not cut a connection off half made (it would leak): the
            # attempt goes on and the next wait finds its connection.
            if await asyncio.shield(connecting):
                return
            await asyncio.Event().wait()
        if seen is not None and self.generation > seen:
            return
        await self._event.wait()

    async def close(self) -> None:
        connecting, self._connecting = self._connecting, None
        if connecting is not None and not connecting.done():
            connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await connecting
        await self._disconnect()

    async def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            try:
                async with asyncio.timeout(self._store.timeout):
                    await connection.close()
            except Exception:
                connection.terminate()

    async def _connect(self) -> bool:
        await self._disconnect()
        try:
            connection = await self._store._connect()
        except Exception as exc:
            logger.debug("confstore: cannot LISTEN (followers will poll): %s", exc)
            return False
        try:
            await connection.add_listener(self._store.settings.channel, self._notified)
        except BaseException as exc:
            connection.terminate()  # never left open, even when cancelled
            if not isinstance(exc, Exception):
                raise
            logger.debug("confstore: cannot LISTEN (followers will poll): %s", exc)
            return False
        connection.add_termination_listener(self._terminated)
        self._connection = connection
        self._wake()
        return True

    def _notified(self, connection: object, pid: int, channel: str, payload: object) -> None:
        self._wake()

    def _terminated(self, connection: object) -> None:
        self._wake()

    def _wake(self) -> None:
        self.generation += 1
        event, self._event = self._event, asyncio.Event()
        event.set()


class PostgresConfigStore(ConfigStore):
    """The store contract on PostgreSQL 14 or later (asyncpg); safe for many processes and hosts.

    Build it from a URL (``postgresql://`` or ``postgres://``, libpq's forms; see
    ``PostgresSettings``) or from settings. ``timeout`` (seconds, default 10) bounds connecting,
    every statement and the resolution of a write whose connection dropped; ``pool_size`` caps
    the connections (default 10); ``schema`` (default ``confstore``) is where the tables live,
    so one database can hold several independent stores.
    """

    backend_name: ClassVar[str] = "postgresql"

    def __init__(
        self,
        url: str | None = None,
        *,
        settings: PostgresSettings | None = None,
        max_value_bytes: int | None = None,
        **options: Any,
    ) -> None:
        if settings is None:
            parsed = StoreURL.parse(url or "postgresql://")
            if parsed.backend not in ("postgresql", "postgres"):
                raise InvalidConfigError(f"not a PostgreSQL URL: {parsed.render()}", field="url")
            settings = PostgresSettings.from_url(parsed, {**parsed.options, **options})
        elif url is not None or options:
            raise InvalidConfigError("give a URL and options, or settings, not both", field="url")
        if max_value_bytes is None:
            super().__init__()
        else:
            super().__init__(max_value_bytes=max_value_bytes)
        self.settings = settings
        self.timeout = settings.timeout
        self._statements = _sql.Statements(settings.schema)
        self._write_sql = {
            kind: self._statements.write(kind)
            for kind in ("upsert", "create", "compare", "tombstone")
        }
        self._write_batch_sql = self._statements.write_batch
        self._writes = GroupCommit(self._write_pending, self._write_batch)
        self._where = settings.describe()
        self._pool: asyncpg.Pool | None = None
        self._lane: asyncpg.Connection | None = None
        self._lane_busy = False
        self._lane_wanted = settings.pool_size > 1
        self._feed_id = ""
        self._lifecycle = asyncio.Lock()
        self._notifier = _Notifier(self)
        self._listener = _Listener(self)
        # Notification generation when each recently returned cursor was read (wait_for_changes).
        self._generations: OrderedDict[str, int] = OrderedDict()

    @classmethod
    def from_url(cls, url: StoreURL, **options: Any) -> PostgresConfigStore:
        """``postgresql://[user[:password]@][host][:port][/database][?options]`` (or ``postgres://``).

        Options: see ``PostgresSettings.from_url``, and ``max_value_bytes``.
        """
        merged = {**url.options, **options}
        max_value_bytes = merged.pop("max_value_bytes", None)
        if max_value_bytes is not None:
            try:
                max_value_bytes = int(max_value_bytes)
            except (TypeError, ValueError):
                raise InvalidConfigError(
                    f"max_value_bytes must be an integer, got {max_value_bytes!r}",
                    field="max_value_bytes",
                ) from None
        return cls(settings=PostgresSettings.from_url(url, merged), max_value_bytes=max_value_bytes)

    @property
    def capabilities(self) -> StoreCapabilities:
        return StoreCapabilities(persistent=True, shared=True, retention=True)

    @classmethod
    def isolated_area(cls, url: StoreURL, name: str) -> IsolatedArea:
        """A new schema in the database ``url`` names (``name`` with ``_`` for ``-``); the role
        needs ``CREATE`` on the database."""
        area = url.with_options(schema=name.replace("-", "_"))
        where = cls.from_url(area).settings.describe()
        return IsolatedArea.removed_by(area, where, cls, cls.drop_schema)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._where!r})"

    async def backend_version(self) -> str:
        version = await self._fetch("fetchval", _sql.SERVER_VERSION_TEXT)
        return f"PostgreSQL {version}"

    async def drop_schema(self) -> None:
        """Drop this store's schema and everything in it: every version of every tenant and the
        change feed. For tests and decommissioning; needs no ``initialize()``."""
        with self._errors():
            connection = await self._connect()
            try:
                await connection.execute(self._statements.drop_schema)
            finally:
                await connection.close()

    async def initialize(self) -> None:
        """Open the pool, check the server and create or check the schema's tables."""
        async with self._lifecycle:
            if self._pool is not None:
                return
            pool: asyncpg.Pool | None = None
            try:
                with self._errors():
                    pool = await asyncpg.create_pool(
                        min_size=0,
                        max_size=self.settings.pool_size,
                        connection_class=_Connection,
                        init=_identify,
                        reset=_keep_session,
                        command_timeout=self.timeout,
                        **self._connect_arguments(),
                    )
                    async with pool.acquire(timeout=self.timeout) as connection:
                        self._feed_id = await self._prepare_schema(connection)
            except BaseException:
                if pool is not None:
                    pool.terminate()
                raise
            self._pool = pool

    async def close(self) -> None:
        async with self._lifecycle:
            await self._writes.idle()
            await self._notifier.flush()
            await self._listener.close()
            pool, self._pool = self._pool, None
            lane, self._lane = self._lane, None
            if pool is not None:
                if lane is not None:
                    with contextlib.suppress(Exception):
                        await pool.release(lane)
                try:
                    async with asyncio.timeout(self.timeout):
                        await pool.close()
                except Exception:
                    pool.terminate()

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
        _check_text(updated_by=updated_by, comment=comment)
        row = await self._writes.write(
            PendingWrite(key, value_json, updated_by, comment, expected_version)
        )
        if row is None:
            assert expected_version is not None
            head = await self._fetch("fetchrow", self._statements.head, *_key_params(key))
            actual = 0 if head is None else int(head[0])
            raise VersionConflictError(expected_version, actual, key=key)
        version, created_at, updated_at = row
        return ConfigEntry(
            key.tenant_id,
            key.scope,
            key.service,
            key.config_key,
            value,
            version,
            created_at,
            updated_at,
            updated_by,
            comment,
        )

    async def _get_config(self, key: ConfigKey, version: int | None) -> ConfigEntry | None:
        if version is None:
            row = await self._fetch("fetchrow", self._statements.latest, *_key_params(key))
            return None if row is None or row[6] else _key_entry(key, row)
        row = await self._fetch("fetchrow", self._statements.version, *_key_params(key), version)
        return None if row is None else _key_entry(key, row)

    async def _get_config_history(self, key: ConfigKey, limit: int) -> list[ConfigEntry]:
        rows = await self._fetch("fetch", self._statements.history, *_key_params(key), limit)
        return [_key_entry(key, row) for row in rows]

    async def _list_configs(
        self, tenant_id: str, scope: ConfigScope | None, service: str | None
    ) -> list[ConfigEntry]:
        rows = await self._fetch(
            "fetch",
            self._statements.live_configs,
            tenant_id,
            None if scope is None else scope.value,
            service,
        )
        return [_entry(row) for row in rows]

    async def _delete_config(
        self, key: ConfigKey, *, purge: bool, updated_by: str | None, comment: str | None
    ) -> bool:
        _check_text(updated_by=updated_by, comment=comment)
        if purge:
            return await self._purge(key)
        row = await self._write_version(key, "tombstone", "{}", updated_by, comment, True, None)
        return row is not None

    async def _list_tenants(self, include_deleted: bool) -> list[str]:
        rows = await self._fetch("fetch", self._statements.tenants, include_deleted)
        return [row[0] for row in rows]

    async def _iter_configs(
        self, tenant_id: str, include_history: bool
    ) -> AsyncIterator[ConfigEntry]:
        arguments: tuple[str | None, ...]
        if include_history:
            sql, arguments = self._statements.tenant_history, (tenant_id,)
        else:
            sql, arguments = self._statements.live_configs, (tenant_id, None, None)
        pool = self._require_pool()
        # One read-only transaction (one snapshot, no transaction id, so the change feed is not
        # held back) and a server-side cursor: memory stays bounded however many versions.
        with self._errors():
            async with (
                pool.acquire(timeout=self.timeout) as connection,
                connection.transaction(isolation="repeatable_read", readonly=True),
            ):
                async for row in connection.cursor(sql, *arguments, prefetch=_EXPORT_PREFETCH):
                    yield _entry(row)

    async def _import_entries(
        self, tenant_id: str, entries: list[ConfigEntry], mode: ImportMode
    ) -> int:
        for entry in entries:
            if _has_nul(entry.updated_by) or _has_nul(entry.comment):
                raise ImportFormatError(
                    f"version {entry.version} of {entry.key}: updated_by and comment cannot "
                    "contain NUL characters in PostgreSQL"
                )
        request_id = uuid.uuid4()
        written: list[ConfigEntry] = []

        async def attempt(connection: asyncpg.Connection) -> int:
            async with connection.transaction():
                await self._lock_keys(connection, [entry.key for entry in entries])
                if mode == "append":
                    planned = await self._plan_append(connection, entries)
                else:
                    planned = await self._plan_restore(connection, entries)
                written[:] = planned
                if planned:
                    await self._copy_versions(connection, planned, request_id)
            return len(planned)

        async def read_back(connection: asyncpg.Connection) -> object:
            if not written:
                return _NOT_APPLIED
            first = written[0].key
            found = await connection.fetchrow(
                self._statements.written_by_request, *_key_params(first), request_id
            )
            return len(written) if found is not None else _NOT_APPLIED

        count: int = await self._resolved(attempt, read_back)
        if count:
            self._notifier.poke()
        return count

    async def get_stats(self) -> dict[str, Any]:
        row = await self._fetch("fetchrow", self._statements.stats)
        total_configs, total_versions, total_tenants, per_scope = row
        live_per_scope = json.loads(per_scope)
        return {
            "backend": self.backend_name,
            "total_configs": int(total_configs),
            "total_versions": int(total_versions),
            "total_tenants": int(total_tenants),
            "configs_per_scope": {
                scope.value: int(live_per_scope.get(scope.value, 0)) for scope in ConfigScope
            },
        }

    async def health_check(self) -> bool:
        pool = self._pool
        if pool is None:
            return False
        try:
            async with asyncio.timeout(self.timeout):
                async with pool.acquire() as connection:
                    await connection.fetchval("SELECT 1")
        except Exception:
            return False
        return True

    async def current_cursor(self) -> str:
        generation = self._listener.generation
        row = await self._fetch("fetchrow", self._statements.present_cursor, MAX_DONE)
        xmin, feed_id, _, finished = row
        cursor = present(feed_id, xmin, finished).encode()
        # Remembered like a page's cursor: a NOTIFY that arrives before the follower waits on
        # this cursor still wakes it (a follower resyncing from here would else sleep to its poll).
        self._remember(cursor, generation)
        return cursor

    async def _changes_since(self, cursor: str | None, limit: int) -> ChangeBatch:
        position = FeedCursor.decode(cursor)
        generation = self._listener.generation
        partial = position.partial or (0, 0)
        rows = await self._fetch(
            "fetch",
            self._statements.changes,
            position.floor,
            [str(xid) for xid in position.done],
            partial[0],
            partial[1],
            limit + 1,
        )
        xmin, next_xid, feed_id, floor = rows[0][:4]
        position.check(feed_id, floor, next_xid)
        changes = [row[4:] for row in rows if row[4] is not None]
        page = next_page(position, feed_id, xmin, changes, limit)
        batch = ChangeBatch(
            tuple(
                ConfigChange(
                    ConfigKey(tenant_id, _SCOPES[scope], service, config_key),
                    _KINDS[kind],
                    version,
                )
                for _, _, tenant_id, scope, service, config_key, kind, version in page.rows
            ),
            page.cursor.encode(),
            has_more=page.has_more,
        )
        self._remember(batch.cursor, generation)
        return batch

    async def wait_for_changes(self, cursor: str | None, timeout: float) -> None:
        """Return when a NOTIFY says another write committed since ``cursor`` was read (from any
        process on the database), or after ``timeout`` seconds. Never raises for an outage:
        the follower's next poll reports it."""
        if self._pool is None:
            await asyncio.sleep(timeout)
            return
        seen = None if cursor is None else self._generations.get(cursor)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._listener.wait(seen)

    async def _write_pending(
        self, pending: PendingWrite, unknown: Callable[[], None] | None = None
    ) -> asyncpg.Record | None:
        """A ``set_config`` sent alone (``_batch``); ``unknown`` is called if its outcome is."""
        expected_version = pending.expected_version
        if expected_version is None:
            kind = "upsert"
        else:
            kind = "create" if expected_version == 0 else "compare"
        return await self._write_version(
            pending.key,
            kind,
            pending.value_json,
            pending.updated_by,
            pending.comment,
            False,
            expected_version,
            pending.request_id,
            unknown,
        )

    async def _write_batch(
        self, batch: Sequence[PendingWrite], unknown: Callable[[], None]
    ) -> list[object]:
        """``set_config`` calls of distinct keys in one statement, resolved like a lone write if
        its connection drops; per write its row, None if its condition did not hold, or its
        error. A batch the server refuses for a value's sake (a data or constraint error,
        nothing applied) is sent again as lone writes, so that error reaches only its write."""
        keys = _key_arrays([pending.key for pending in batch])
        request_ids = [pending.request_id for pending in batch]
        arguments = (
            *keys,
            [pending.value_json for pending in batch],
            [pending.updated_by for pending in batch],
            [pending.comment for pending in batch],
            request_ids,
            [pending.expected_version for pending in batch],
        )

        async def attempt(connection: asyncpg.Connection) -> object:
            try:
                return await connection.fetch(self._write_batch_sql, *arguments)
            except Exception as exc:
                if refused_for_data(exc):
                    return _Refused(exc)
                raise

        async def read_back(connection: asyncpg.Connection) -> object:
            rows = await connection.fetch(self._statements.written_by_requests, *keys, request_ids)
            # A batch commits whole: one write found means all of it was applied, and the
            # writes not found were the ones whose condition did not hold.
            return rows if any(row[0] is not None for row in rows) else _NOT_APPLIED

        outcome = await self._resolved(attempt, read_back, unknown)
        if isinstance(outcome, _Refused):
            logger.debug("confstore: a batch was refused (%s); its writes are sent alone", outcome)
            return list(
                await asyncio.gather(
                    *(self._write_pending(pending, unknown) for pending in batch),
                    return_exceptions=True,
                )
            )
        rows: list[asyncpg.Record] = outcome
        if any(row[0] is not None for row in rows):
            self._notifier.poke()
        return [None if row[0] is None else row for row in rows]

    async def _write_version(
        self,
        key: ConfigKey,
        kind: str,
        value_json: str,
        updated_by: str | None,
        comment: str | None,
        deleted: bool,
        expected_version: int | None,
        request_id: uuid.UUID | None = None,
        unknown: Callable[[], None] | None = None,
    ) -> asyncpg.Record | None:
        """One write statement, resolved if its connection drops; the row, or None if refused."""
        sql = self._write_sql[kind]
        if request_id is None:
            request_id = uuid.uuid4()
        params = _key_params(key)
        arguments = (*params, value_json, updated_by, comment, deleted, request_id)

        async def attempt(connection: asyncpg.Connection) -> object:
            row = await connection.fetchrow(sql, *arguments, expected_version)
            return _NOT_APPLIED if row is None else row

        async def read_back(connection: asyncpg.Connection) -> object:
            row = await connection.fetchrow(
                self._statements.written_by_request, *params, request_id
            )
            return _NOT_APPLIED if row is None else row

        outcome = await self._resolved(attempt, read_back, unknown)
        if outcome is _NOT_APPLIED:
            return None
        self._notifier.poke()
        return outcome

    async def _purge(self, key: ConfigKey) -> bool:
        params = _key_params(key)

        async def attempt(connection: asyncpg.Connection) -> bool:
            async with connection.transaction():
                await connection.execute(self._statements.lock_key, *params)
                latest = await connection.fetchval(self._statements.purge_head, *params)
                if latest is None:
                    return False
                await connection.execute(self._statements.purge_versions, *params, latest)
            return True

        async def read_back(connection: asyncpg.Connection) -> object:
            # The key is gone: purged by this call (or by another one meanwhile; either way
            # what was asked for is done). Still there: the purge did not happen.
            head = await connection.fetchrow(self._statements.head, *params)
            return True if head is None else _NOT_APPLIED

        purged: bool = await self._resolved(attempt, read_back)
        if purged:
            self._notifier.poke()
        return purged

    async def _prune(
        self, policy: RetentionPolicy, tenant_id: str | None, dry_run: bool
    ) -> PruneResult:
        """Versions by the policy, then the change feed to ``feed_max_changes``."""
        result = await super()._prune(policy, tenant_id, dry_run)
        if dry_run:
            return result
        trimmed = await self._fetch(
            "fetchval", self._statements.trim_feed, self.settings.feed_max_changes
        )
        return replace(result, changes_removed=int(trimmed))

    async def _remove_versions(
        self, key: ConfigKey, versions: list[int], *, purge: bool, latest: int
    ) -> bool:
        """Retention, one transaction under the key's lock. Removing versions is idempotent, so
        an unknown outcome is simply sent again; retiring a key reads back whether it is gone."""
        params = _key_params(key)

        async def attempt(connection: asyncpg.Connection) -> bool:
            async with connection.transaction():
                await connection.execute(self._statements.lock_key, *params)
                if not purge:
                    await connection.execute(self._statements.prune_versions, *params, versions)
                    return True
                if await connection.fetchval(self._statements.retire_head, *params, latest) is None:
                    return False
                await connection.execute(self._statements.purge_versions, *params, latest)
            return True

        async def read_back(connection: asyncpg.Connection) -> object:
            if not purge:
                return _NOT_APPLIED
            head = await connection.fetchrow(self._statements.head, *params)
            return True if head is None else _NOT_APPLIED

        removed: bool = await self._resolved(attempt, read_back)
        if removed and purge:
            self._notifier.poke()
        return removed

    async def _resolved(
        self,
        attempt: Attempt[Any],
        read_back: Attempt[object],
        unknown: Callable[[], None] | None = None,
    ) -> Any:
        """Run a write ``attempt`` until its outcome is known, within the store's timeout.

        An error the server reported, or one raised before anything was sent, ends it (nothing
        was applied). A lost connection or a timeout after sending is resolved by ``read_back``
        on a new connection, once the lost session is gone (``unknown()`` is called first): the
        write's result if it was applied, else the attempt is sent again.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while True:
            used: list[tuple[int, datetime] | None] = []
            try:
                return await self._use_connection(attempt, used)
            except Exception as exc:
                session = used[0] if used else None
                if session is None or not (outcome_unknown(exc) or not_sent(exc)):
                    if session is not None and stale_statement(exc) and loop.time() < deadline:
                        continue
                    _raise_translated(exc, self._where)
                if outcome_unknown(exc):
                    if unknown is not None:
                        unknown()
                    outcome = await self._read_back(read_back, session, deadline, exc)
                    if outcome is not _NOT_APPLIED:
                        return outcome
                if loop.time() >= deadline:
                    raise BackendUnavailableError(
                        f"{self._where}: the connection was lost; the write was not applied and "
                        f"could not be sent again within {self.timeout:g}s"
                    ) from exc
                logger.info("confstore: a write lost with its connection was not applied; resent")

    async def _read_back(
        self,
        read_back: Attempt[object],
        session: tuple[int, datetime],
        deadline: float,
        cause: BaseException,
    ) -> object:
        """The outcome of a write whose connection was lost, once the server session that ran it
        has ended (so it cannot still commit); retried while the server is unreachable."""
        loop = asyncio.get_running_loop()
        delay = 0.01
        while True:
            try:
                pool = self._require_pool()
                async with pool.acquire(timeout=self._remaining(deadline)) as connection:
                    ended = await connection.fetchval(
                        _sql.TERMINATE_CONNECTION, session[0], session[1], _TERMINATE_WAIT_MS
                    )
                    if ended is False:
                        raise BackendTimeoutError(
                            f"{self._where}: a write's server session did not end; its outcome "
                            "is unknown"
                        ) from cause
                    return await read_back(connection)
            except BackendTimeoutError:
                raise
            except Exception as exc:
                if not (outcome_unknown(exc) or not_sent(exc) or _unreachable(exc)):
                    _raise_translated(exc, self._where)
            if loop.time() + delay >= deadline:
                raise BackendTimeoutError(
                    f"{self._where}: the connection was lost after a write was sent, and the "
                    f"server could not be asked within {self.timeout:g}s whether it was applied"
                ) from cause
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.25)

    async def _fetch(self, method: str, sql: str, *arguments: Any) -> Any:
        """A read on a pooled connection; sent again once on a new connection if the pooled one
        turns out to be dead (a server restart)."""

        def operation(connection: asyncpg.Connection) -> Awaitable[Any]:
            return getattr(connection, method)(sql, *arguments)  # type: ignore[no-any-return]

        for retry in (True, False):
            try:
                return await self._use_connection(operation)
            except Exception as exc:
                if retry and _read_again(exc):
                    continue
                _raise_translated(exc, self._where)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _use_connection(
        self,
        operation: Callable[[asyncpg.Connection], Awaitable[_T]],
        used: list[tuple[int, datetime] | None] | None = None,
    ) -> _T:
        """Run ``operation(connection)`` on the fast lane when it is free, else on a pooled
        connection; ``used`` gets the server session it ran on. A failure that may have left the
        connection broken (a timed-out statement may still run; a connection cut off mid-answer
        may look alive) discards it, so it never serves another call.

        The fast lane is one pooled connection the store keeps: an operation that finds it free
        skips the pool's acquire and release, which cost more than a short query's round trip."""
        pool = self._require_pool()
        if self._lane is None and self._lane_wanted and not self._lane_busy:
            self._lane_busy = True
            try:
                self._lane = await pool.acquire()
            finally:
                self._lane_busy = False
        lane = self._lane
        if lane is not None and not self._lane_busy:
            self._lane_busy = True
            try:
                if used is not None:
                    used.append(lane.session)
                return await operation(lane)
            except Exception as exc:
                if connection_broken(exc):
                    self._lane = None
                    await _give_back(pool, lane)
                raise
            finally:
                self._lane_busy = False
        async with pool.acquire() as connection:
            if used is not None:
                used.append(getattr(connection, "session", None))
            try:
                return await operation(connection)
            except Exception as exc:
                if connection_broken(exc):
                    _discard(connection)
                raise

    async def _lock_keys(self, connection: asyncpg.Connection, keys: Sequence[ConfigKey]) -> None:
        await connection.execute(self._statements.lock_keys, *_key_arrays(keys))

    async def _plan_restore(
        self, connection: asyncpg.Connection, entries: list[ConfigEntry]
    ) -> list[ConfigEntry]:
        """What a restore must write: every key planned before anything is written."""
        ranges = [
            (key, group[0].version, group[-1].version)
            for key, group in ((key, list(items)) for key, items in groupby(entries, _key_of))
        ]
        rows = await connection.fetch(
            self._statements.stored_versions,
            *_key_arrays([key for key, _, _ in ranges]),
            [first for _, first, _ in ranges],
            [last for _, _, last in ranges],
        )
        stored: dict[ConfigKey, dict[int, ConfigEntry]] = {}
        for row in rows:
            entry = _entry(row)
            stored.setdefault(entry.key, {})[entry.version] = entry
        planned: list[ConfigEntry] = []
        for key, incoming in groupby(entries, _key_of):
            planned.extend(plan_restore(incoming, stored.get(key, {})))
        return planned

    async def _plan_append(
        self, connection: asyncpg.Connection, entries: list[ConfigEntry]
    ) -> list[ConfigEntry]:
        """Each entry as the next version of its key, written now (the server's clock)."""
        keys = list(dict.fromkeys(entry.key for entry in entries))
        heads = {
            ConfigKey(row[0], _SCOPES[row[1]], row[2], row[3]): (row[4], row[5])
            for row in await connection.fetch(self._statements.heads_of, *_key_arrays(keys))
        }
        now = await connection.fetchval("SELECT clock_timestamp()")
        planned = []
        for key, incoming in groupby(entries, _key_of):
            latest, created_at = heads.get(key, (0, now))
            for offset, entry in enumerate(incoming, start=1):
                planned.append(
                    ConfigEntry(
                        key.tenant_id,
                        key.scope,
                        key.service,
                        key.config_key,
                        entry.config_value,
                        latest + offset,
                        created_at,
                        now,
                        entry.updated_by,
                        entry.comment,
                        entry.deleted,
                    )
                )
        return planned

    async def _copy_versions(
        self, connection: asyncpg.Connection, planned: list[ConfigEntry], request_id: uuid.UUID
    ) -> None:
        """COPY the planned versions and their feed rows, then move the heads forward."""
        schema = self.settings.schema
        timeout = self.timeout + len(planned) / 5000
        await connection.copy_records_to_table(
            "config_versions",
            schema_name=schema,
            columns=_VERSION_COLUMNS,
            records=(
                (
                    *_key_params(entry.key),
                    entry.version,
                    _dumps(entry.config_value),
                    entry.created_at,
                    entry.updated_at,
                    entry.updated_by,
                    entry.comment,
                    entry.deleted,
                    request_id,
                )
                for entry in planned
            ),
            timeout=timeout,
        )
        await connection.copy_records_to_table(
            "config_changes",
            schema_name=schema,
            columns=_CHANGE_COLUMNS,
            records=(
                (*_key_params(entry.key), "delete" if entry.deleted else "set", entry.version)
                for entry in planned
            ),
            timeout=timeout,
        )
        heads = []
        for key, group in groupby(planned, _key_of):
            versions = list(group)
            newest = max(versions, key=lambda entry: entry.version)
            heads.append(
                (key, newest.version, newest.deleted, versions[0].created_at, len(versions))
            )
        await connection.execute(
            self._statements.merge_heads,
            *_key_arrays([head[0] for head in heads]),
            [head[1] for head in heads],
            [head[2] for head in heads],
            [head[3] for head in heads],
            [head[4] for head in heads],
            timeout=timeout,
        )

    async def _prepare_schema(self, connection: asyncpg.Connection) -> str:
        """Check the server, create the tables if the schema has none; return the feed id."""
        server_version = await connection.fetchval(_sql.SERVER_VERSION)
        if server_version < _sql.MINIMUM_SERVER_VERSION * 10000:
            raise BackendUnavailableError(
                f"{self._where} runs PostgreSQL {server_version // 10000}; confstore-postgres "
                f"needs {_sql.MINIMUM_SERVER_VERSION} or later"
            )
        info = await self._schema_info(connection)
        if info is None:
            async with connection.transaction():
                await connection.execute(self._statements.setup_lock, self.settings.schema)
                info = await self._schema_info(connection)
                if info is None:
                    if not await connection.fetchval(_sql.SCHEMA_EXISTS, self.settings.schema):
                        await connection.execute(self._statements.create_schema)
                    await connection.execute(self._statements.enter_schema)
                    await connection.execute(DDL)
                    info = await self._schema_info(connection)
        assert info is not None
        schema_version, feed_id = info
        if schema_version != _sql.SCHEMA_VERSION:
            newer = schema_version > _sql.SCHEMA_VERSION
            raise BackendUnavailableError(
                f"{self._where} holds confstore schema version {schema_version}; this "
                f"confstore-postgres reads version {_sql.SCHEMA_VERSION}"
                + ("; upgrade confstore-postgres to use it" if newer else "")
            )
        return str(feed_id)

    async def _schema_info(self, connection: asyncpg.Connection) -> tuple[int, str] | None:
        # A query of pg_class, not to_regclass(): it reads the catalog with this statement's
        # snapshot, so it sees tables another store created while we waited for the setup lock.
        if not await connection.fetchval(_sql.TABLE_EXISTS, self.settings.schema, "schema_info"):
            return None
        table = f'"{self.settings.schema}".schema_info'
        row = await connection.fetchrow(self._statements.schema_info)
        if row is None:
            raise BackendUnavailableError(
                f"{self._where}: {table} is empty; it should record the schema version"
            )
        return int(row[0]), str(row[1])

    def _connect_arguments(self) -> dict[str, Any]:
        return {
            "dsn": self.settings.dsn(),
            "password": self.settings.password,
            "timeout": self.timeout,
            "server_settings": {"application_name": self.settings.application_name},
        }

    async def _connect(self) -> asyncpg.Connection:
        """A connection of its own, outside the pool (the NOTIFY listener)."""
        return await asyncpg.connect(**self._connect_arguments())

    def _remember(self, cursor: str, generation: int) -> None:
        self._generations[cursor] = generation
        self._generations.move_to_end(cursor)
        while len(self._generations) > 64:
            self._generations.popitem(last=False)

    def _remaining(self, deadline: float) -> float:
        return max(0.001, deadline - asyncio.get_running_loop().time())

    def _require_pool(self) -> asyncpg.Pool:
        pool = self._pool
        if pool is None:
            raise BackendUnavailableError(
                f"{self!r} is not open: call initialize() or use 'async with' first"
            )
        return pool

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            _raise_translated(exc, self._where)


def _raise_translated(exc: Exception, where: str) -> NoReturn:
    translated = translate(exc, where)
    if translated is exc:
        raise exc
    raise translated from exc


def _key_params(key: ConfigKey) -> tuple[str, str, str, str]:
    return key.tenant_id, key.scope.value, key.service, key.config_key


def _key_of(entry: ConfigEntry) -> ConfigKey:
    return entry.key


def _key_arrays(keys: Sequence[ConfigKey]) -> tuple[list[str], list[str], list[str], list[str]]:
    return (
        [key.tenant_id for key in keys],
        [key.scope.value for key in keys],
        [key.service for key in keys],
        [key.config_key for key in keys],
    )


async def _give_back(pool: asyncpg.Pool, connection: asyncpg.Connection) -> None:
    """Return a broken connection to the pool closed, so the pool replaces it."""
    _discard(connection)
    with contextlib.suppress(Exception):
        await pool.release(connection)


def _discard(connection: asyncpg.Connection) -> None:
    """Close a connection that must not be reused (asyncpg may already have taken it back)."""
    with contextlib.suppress(asyncpg.InterfaceError):
        connection.terminate()


def _read_again(exc: BaseException) -> bool:
    """Whether a failed read may be sent again on another connection: its connection was lost
    (not a timeout: the server was slow, and would be again) or it was never sent, or a cached
    statement outlived a schema change."""
    lost = outcome_unknown(exc) and not isinstance(exc, TimeoutError)
    return lost or not_sent(exc) or stale_statement(exc)


def _unreachable(exc: BaseException) -> bool:
    return isinstance(exc, OSError | asyncpg.CannotConnectNowError | BackendUnavailableError)


def _has_nul(text: str | None) -> bool:
    return text is not None and "\x00" in text


def _check_text(**fields: str | None) -> None:
    """PostgreSQL text cannot hold NUL: refuse it before any SQL, like every other bad input."""
    for name, text in fields.items():
        if _has_nul(text):
            raise InvalidConfigError(f"{name} cannot contain NUL characters", field=name)


def _key_entry(key: ConfigKey, row: Sequence[Any]) -> ConfigEntry:
    """A row in ``_sql.KEY_ENTRY_COLUMNS`` order as an entry of ``key``; the hot path of a read."""
    value, version, created_at, updated_at, updated_by, comment, deleted = row
    return ConfigEntry(
        key.tenant_id,
        key.scope,
        key.service,
        key.config_key,
        json.loads(value),
        version,
        created_at,
        updated_at,
        updated_by,
        comment,
        deleted,
    )


def _entry(row: Sequence[Any]) -> ConfigEntry:
    """A row in ``_sql.ENTRY_COLUMNS`` order (the key's columns, then ``KEY_ENTRY_COLUMNS``) as
    an entry (listings, exports)."""
    return _key_entry(ConfigKey(row[0], _SCOPES[row[1]], row[2], row[3]), row[4:])


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
