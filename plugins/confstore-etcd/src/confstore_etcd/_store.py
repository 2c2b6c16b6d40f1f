"""EtcdConfigStore: the whole ConfigStore contract on etcd v3, through its JSON gateway.

Key layout: see ``_keys`` (a head per config, a key per version, a marker every write touches).

Writes. Version N+1 of a key is allocated and published by one transaction::

    compare:  head.mod_revision == the one read     (head absent: head.create_revision == 0)
    success:  put version N+1, put head (N+1, ...), put marker
    failure:  range head                            (the new head, to retry at once)

- Uniqueness and no gaps: the head moves only by a transaction that saw it unchanged, so two
  writers (tasks, processes, hosts) can never both publish N+1; the loser gets the new head
  in the same answer and tries N+2. A handle remembers the heads it wrote, so a writer that is
  alone on a key needs one round trip per write; otherwise it reads the head first (two).
- ``expected_version`` is checked against the head the transaction compares, so a
  compare-and-set never overwrites.
- Unknown outcomes (timeout, dropped connection, a 5xx): the same transaction is sent again,
  to the next member. Its compare can hold only if the first try was not applied, and a first
  try applied later fails its own compare, so a write is never applied twice. When the compare
  fails, the head (or, if others wrote since, version N+1) carries the writer's ``write_id``,
  which says whether the first try won.
- Delete writes a tombstone version the same way. Purge is one transaction: range-delete every
  version, replace the head by a purge marker (version 0), put the marker key.
- Restore imports write the missing versions in transactions that stay within etcd's limits
  (``max_txn_ops`` operations, ``max_request_bytes`` bytes), each guarded by the compare of
  every head it moves; a guard that fails (a concurrent writer) makes the import plan again
  from what is stored, so an interrupted or repeated import never duplicates a version.

Requests start at the leader (found at ``initialize()``), else the next member that answers.
Reads are linearizable ranges: a latest read or ``history(n)`` is one range of the key's
versions (newest first), a listing a range of heads plus one transaction per 128 of them.

Change feed: see ``_feed`` (the cursor is an etcd revision; a cursor etcd compacted away raises
CursorExpiredError). ``wait_for_changes`` waits on the handle's watch stream.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, ClassVar

from confstore import (
    BackendError,
    ChangeBatch,
    ConfigEntry,
    ConfigKey,
    ConfigScope,
    ConfigStore,
    InvalidConfigError,
    IsolatedArea,
    StoreCapabilities,
    StoreOptions,
    StoreURL,
    VersionConflictError,
    plan_restore,
    utc_now,
)
from confstore.http import RetryPolicy, make_ssl_context

from ._client import Answer, EtcdClient
from ._feed import Cursor, FeedWatch, page, replay
from ._keys import Head, KeySpace, b64, entry_from_kv, prefix_end, unb64, version_value

DEFAULT_PORT = 2379
DEFAULT_PREFIX = "confstore/"
DEFAULT_TIMEOUT = 5.0
# Rounds over every member; between rounds a capped, jittered backoff (about 3 s in all on
# average, 5.5 s at most), long enough for etcd to elect a leader (1 s election timeout).
DEFAULT_RETRY = RetryPolicy(attempts=10, base_delay=0.05, max_delay=1.0)
# etcd's defaults (--max-txn-ops, --max-request-bytes); a cluster with other limits says so in
# the URL (?max_txn_ops=...&max_request_bytes=...).
DEFAULT_MAX_TXN_OPS = 128
DEFAULT_MAX_REQUEST_BYTES = 1572864
_REQUEST_OVERHEAD = 64 * 1024
_SCAN_PAGE = 500
_HISTORY_WINDOW = 200
_CACHED_HEADS = 4096
_APPEND_CONCURRENCY = 8
_RESTORE_ROUNDS = 16
_CONTENTION_BACKOFF = RetryPolicy(base_delay=0.002, max_delay=0.1)
# Bytes a put adds to a request besides its value (key, framing), with room to spare.
_PUT_OVERHEAD = 256


# What one transaction of a restore writes: some versions of some keys.
_Transaction = list[tuple[ConfigKey, list[ConfigEntry]]]


class EtcdConfigStore(ConfigStore):
    """Versioned configs in an etcd v3 cluster, under one key prefix (one prefix, one store).

    ``endpoints``: the members' client URLs (``http://h1:2379``), as a list or comma-separated.
    Requests go to one member and move to the next when it fails. ``username``/``password``:
    etcd auth (the token is renewed when etcd refuses it). ``ca_file``, ``cert_file``,
    ``key_file``, ``verify``: TLS for ``https://`` endpoints. ``timeout``: seconds per request.
    No I/O until ``initialize()``.
    """

    backend_name: ClassVar[str] = "etcd"
    # A purged head restarts at version 1 (see _purge), so retention keeps an old deleted
    # key's tombstone and removes what came before it.
    _retires_deleted_keys: ClassVar[bool] = False

    def __init__(
        self,
        endpoints: str | Sequence[str] = f"http://127.0.0.1:{DEFAULT_PORT}",
        *,
        prefix: str = DEFAULT_PREFIX,
        timeout: float = DEFAULT_TIMEOUT,
        username: str | None = None,
        password: str | None = None,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        verify: bool = True,
        retry: RetryPolicy | None = None,
        max_txn_ops: int = DEFAULT_MAX_TXN_OPS,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        max_value_bytes: int = 1024 * 1024,
    ) -> None:
        super().__init__(max_value_bytes=max_value_bytes)
        urls = endpoints.split(",") if isinstance(endpoints, str) else list(endpoints)
        urls = [url.strip().rstrip("/") for url in urls if url.strip()]
        if not urls or not all(url.startswith(("http://", "https://")) for url in urls):
            raise InvalidConfigError(
                f"etcd endpoints must be http:// or https:// URLs, got {endpoints!r}",
                field="endpoints",
            )
        if max_txn_ops < 4:
            raise InvalidConfigError("max_txn_ops must be at least 4", field="max_txn_ops")
        self.keys = KeySpace.for_prefix(prefix)
        self.prefix = prefix
        self.timeout = timeout
        self.max_txn_ops = max_txn_ops
        self.max_request_bytes = max_request_bytes
        ssl_context = None
        if any(url.startswith("https://") for url in urls):
            ssl_context = make_ssl_context(
                ca_file=ca_file, cert_file=cert_file, key_file=key_file, verify=verify
            )
        self._client = EtcdClient(
            urls,
            timeout=timeout,
            retry=retry or DEFAULT_RETRY,
            username=username,
            password=password,
            ssl_context=ssl_context,
        )
        self._heads: collections.OrderedDict[ConfigKey, Head | None] = collections.OrderedDict()
        self._feed = FeedWatch(self._client, self.keys)
        self._feed_lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None

    @classmethod
    def from_url(cls, url: StoreURL, **options: Any) -> EtcdConfigStore:
        """Build from ``etcd+http(s)://[user:password@]host:port[,host:port...]?prefix=..``."""
        reader = StoreOptions(url.backend, options)
        if url.path:
            raise InvalidConfigError(
                f"an etcd store URL has no path (got /{url.path}); choose keys with ?prefix=",
                field="url",
            )
        hosts = url.hosts or ((url.host or "127.0.0.1", url.port),)
        endpoints = [
            f"{url.transport or 'http'}://{f'[{host}]' if ':' in host else host}:"
            f"{port or DEFAULT_PORT}"
            for host, port in hosts
        ]
        store = cls(
            endpoints,
            prefix=reader.take_str("prefix", DEFAULT_PREFIX) or "",
            timeout=reader.take_float("timeout", DEFAULT_TIMEOUT, minimum=0.001),
            username=url.username,
            password=url.password,
            ca_file=reader.take_str("ca_file"),
            cert_file=reader.take_str("cert_file"),
            key_file=reader.take_str("key_file"),
            verify=reader.take_bool("verify", True),
            max_txn_ops=reader.take_int("max_txn_ops", DEFAULT_MAX_TXN_OPS, minimum=4),
            max_request_bytes=reader.take_int(
                "max_request_bytes", DEFAULT_MAX_REQUEST_BYTES, minimum=1024
            ),
            max_value_bytes=reader.take_int("max_value_bytes", 1024 * 1024, minimum=1),
        )
        reader.finish()
        return store

    @property
    def client(self) -> EtcdClient:
        """The gateway client (tests add request hooks to its members)."""
        return self._client

    @property
    def capabilities(self) -> StoreCapabilities:
        return StoreCapabilities(persistent=True, shared=True, retention=True)

    @classmethod
    def isolated_area(cls, url: StoreURL, name: str) -> IsolatedArea:
        """A new key prefix under the URL's (default ``confstore/``): ``{prefix}{name}/``, so a
        user allowed only the URL's prefix may make it."""
        prefix = f"{url.options.get('prefix', DEFAULT_PREFIX)}{name}/"
        members = ", ".join(f"{host}:{port or DEFAULT_PORT}" for host, port in url.hosts) or (
            f"{url.host or '127.0.0.1'}:{url.port or DEFAULT_PORT}"
        )
        where = f"key prefix {prefix!r} of etcd at {members}"
        return IsolatedArea.removed_by(
            url.with_options(prefix=prefix), where, cls, cls.purge_prefix
        )

    async def backend_version(self) -> str | None:
        answer = await self._client.call("maintenance/status", {})
        version = answer.body.get("version")
        return f"etcd {version}" if isinstance(version, str) else None

    async def purge_prefix(self) -> None:
        """Delete every key under this store's prefix: every version of every tenant and the
        change-feed marker. For tests and decommissioning; needs no ``initialize()``."""
        prefix = self.keys.prefix
        await self._client.call(
            "kv/deleterange", {"key": b64(prefix), "range_end": b64(prefix_end(prefix))}, write=True
        )

    async def initialize(self) -> None:
        """Check that the cluster answers a linearizable read of the prefix (and the login);
        on failure nothing stays open."""
        try:
            await self._client.prefer_leader()
            await self._range(self.keys.marker)
        except BaseException:
            await self._client.close()
            raise

    async def close(self) -> None:
        await self._feed.stop()
        await self._client.close()
        self._heads.clear()

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
        entry = await self._write(
            key,
            value,
            expected_version=expected_version,
            updated_by=updated_by,
            comment=comment,
            deleted=False,
        )
        assert entry is not None
        return entry

    async def _write(
        self,
        key: ConfigKey,
        value: dict[str, Any],
        *,
        expected_version: int | None,
        updated_by: str | None,
        comment: str | None,
        deleted: bool,
        only_if_live: bool = False,
    ) -> ConfigEntry | None:
        """The write protocol of the module docstring; None when ``only_if_live`` and not live."""
        write_id = uuid.uuid4().hex
        fresh = key not in self._heads
        head = await self._read_head(key) if fresh else self._heads[key]
        lost_races = 0
        try:
            while True:
                latest = head.version if head is not None else 0
                doubtful = (expected_version is not None and expected_version != latest) or (
                    only_if_live and (head is None or not head.live)
                )
                if doubtful and not fresh:
                    head, fresh = await self._read_head(key), True
                    continue
                if expected_version is not None and expected_version != latest:
                    raise VersionConflictError(expected_version, latest, key=key)
                if only_if_live and (head is None or not head.live):
                    return None
                entry = _next_entry(key, head, value, updated_by, comment, deleted)
                version_put = _put(
                    self.keys.version(key, entry.version), version_value(entry, write_id)
                )
                committed, current, answer = await self._move_head(
                    key, head, _head_of(entry, write_id), [version_put]
                )
                if committed or await self._won_earlier(
                    key, entry.version, write_id, current, answer
                ):
                    return entry
                head, fresh = current, True
                if expected_version is None:
                    lost_races += 1
                    await asyncio.sleep(_CONTENTION_BACKOFF.delay(lost_races))
        except BaseException:
            self._heads.pop(key, None)
            raise

    async def _move_head(
        self, key: ConfigKey, head: Head | None, new_head: Head, operations: list[dict[str, Any]]
    ) -> tuple[bool, Head | None, Answer]:
        """One transaction: if the key's head is still ``head``, run ``operations``, put
        ``new_head`` and the marker. (Whether it committed, the head now, etcd's answer.)

        A failed compare whose head carries ``new_head``'s write id means that an earlier try
        of this same transaction (whose answer was lost) committed it."""
        answer = await self._txn(
            [self._guard(key, head)],
            [
                *operations,
                _put(self.keys.head(key), new_head.encode()),
                _put(self.keys.marker, b""),
            ],
            [_range_op(self.keys.head(key))],
        )
        if answer.body.get("succeeded"):
            current: Head | None = replace(new_head, mod_revision=answer.revision)
        else:
            current = _head_from(_responses(answer)[0])
        self._remember(key, current)
        committed = current is not None and current.write_id == new_head.write_id
        return committed, current, answer

    async def _won_earlier(
        self, key: ConfigKey, version: int, write_id: str, current: Head | None, answer: Answer
    ) -> bool:
        """After a failed compare whose head names another write: had an earlier try of ours
        committed version ``version`` before that other write?"""
        if not answer.ambiguous or current is None or current.version < version:
            return False
        kvs = await self._range(self.keys.version(key, version))
        return bool(kvs) and entry_from_kv(kvs[0])[1] == write_id

    def _guard(self, key: ConfigKey, head: Head | None) -> dict[str, Any]:
        if head is None:
            return {"key": b64(self.keys.head(key)), "target": "CREATE", "create_revision": "0"}
        return {
            "key": b64(self.keys.head(key)),
            "target": "MOD",
            "mod_revision": str(head.mod_revision),
        }

    def _remember(self, key: ConfigKey, head: Head | None) -> None:
        self._heads[key] = head
        self._heads.move_to_end(key)
        while len(self._heads) > _CACHED_HEADS:
            self._heads.popitem(last=False)

    async def _read_head(self, key: ConfigKey) -> Head | None:
        kvs = await self._range(self.keys.head(key))
        head = Head.from_kv(kvs[0]) if kvs else None
        self._remember(key, head)
        return head

    async def _get_config(self, key: ConfigKey, version: int | None) -> ConfigEntry | None:
        if version is not None:
            kvs = await self._range(self.keys.version(key, version))
        else:
            start, end = self.keys.versions_of(key)
            kvs = await self._range(start, end, limit=1)
        if not kvs:
            return None
        entry, _ = entry_from_kv(kvs[0])
        return None if version is None and entry.deleted else entry

    async def _get_config_history(self, key: ConfigKey, limit: int) -> list[ConfigEntry]:
        start, end = self.keys.versions_of(key)
        return [entry_from_kv(kv)[0] for kv in await self._range(start, end, limit=limit)]

    async def _list_configs(
        self, tenant_id: str, scope: ConfigScope | None, service: str | None
    ) -> list[ConfigEntry]:
        # Without a scope the service is no prefix of the keys: filter it here.
        start, end = self.keys.heads_of(tenant_id, scope, service)
        return [
            entry
            async for entry in self._latest_entries(start, end)
            if service is None or entry.service == service
        ]

    async def _latest_entries(self, start: bytes, end: bytes) -> AsyncIterator[ConfigEntry]:
        """The latest live version of every head in [start, end), in key order."""
        async for page_of_heads in self._scan_heads(start, end):
            live = [(key, head) for key, head in page_of_heads if head.live]
            ranges = [_range_op(self.keys.version(key, head.version)) for key, head in live]
            for kvs in await self._ranges(ranges):
                if kvs:
                    entry, _ = entry_from_kv(kvs[0])
                    if not entry.deleted:
                        yield entry

    async def _scan_heads(
        self, start: bytes, end: bytes
    ) -> AsyncIterator[list[tuple[ConfigKey, Head]]]:
        async for kvs in self._scan(start, end):
            heads = []
            for kv in kvs:
                key = self.keys.key_of_head(unb64(kv.get("key")))
                if key is not None:
                    heads.append((key, Head.from_kv(kv)))
            yield heads

    async def _scan(self, start: bytes, end: bytes) -> AsyncIterator[list[dict[str, Any]]]:
        """Every key in [start, end), a page at a time."""
        while True:
            body = {"key": b64(start), "range_end": b64(end), "limit": _SCAN_PAGE}
            answer = await self._client.call("kv/range", body)
            kvs = answer.body.get("kvs", [])
            if kvs:
                yield kvs
            if not answer.body.get("more") or not kvs:
                return
            start = unb64(kvs[-1]["key"]) + b"\0"

    async def _delete_config(
        self, key: ConfigKey, *, purge: bool, updated_by: str | None, comment: str | None
    ) -> bool:
        if purge:
            return await self._purge(key)
        entry = await self._write(
            key,
            {},
            expected_version=None,
            updated_by=updated_by,
            comment=comment,
            deleted=True,
            only_if_live=True,
        )
        return entry is not None

    async def _purge(self, key: ConfigKey) -> bool:
        """One transaction: every version goes, the head becomes a purge marker (version 0)."""
        write_id = uuid.uuid4().hex
        head = await self._read_head(key)
        try:
            while head is not None and head.exists:
                start, end = self.keys.versions_of(key)
                purge_marker = Head(0, False, "", write_id, (), purged=head.version)
                delete_versions = {
                    "request_delete_range": {"key": b64(start), "range_end": b64(end)}
                }
                committed, head, _ = await self._move_head(
                    key, head, purge_marker, [delete_versions]
                )
                if committed:
                    return True
            return False
        except BaseException:
            self._heads.pop(key, None)
            raise

    async def _remove_versions(
        self, key: ConfigKey, versions: list[int], *, purge: bool, latest: int
    ) -> bool:
        """Delete the version keys, a range per run of consecutive versions (idempotent, so an
        unknown outcome is sent again). Heads and the change feed are untouched: nothing
        current changes. etcd frees the space at its next compaction."""
        deletes = [
            {"request_delete_range": {"key": b64(start), "range_end": b64(end)}}
            for low, high in _runs(sorted(version for version in versions if version < latest))
            for start, end in [self.keys.versions_between(key, low, high)]
        ]
        for start in range(0, len(deletes), self.max_txn_ops):
            await self._txn([], deletes[start : start + self.max_txn_ops], [])
        return True

    async def _list_tenants(self, include_deleted: bool) -> list[str]:
        tenants: set[str] = set()
        async for heads in self._scan_heads(*self.keys.all_heads):
            tenants.update(
                key.tenant_id
                for key, head in heads
                if head.live or (include_deleted and head.exists)
            )
        return sorted(tenants)

    async def _iter_configs(
        self, tenant_id: str, include_history: bool
    ) -> AsyncIterator[ConfigEntry]:
        start, end = self.keys.heads_of(tenant_id)
        if not include_history:
            async for entry in self._latest_entries(start, end):
                yield entry
            return
        async for heads in self._scan_heads(start, end):
            stored = [(key, head) for key, head in heads if head.exists]
            # The first window of every key of the page in few round trips, the rest key by key.
            first = [
                _range_op(*self.keys.versions_between(key, 1, min(head.version, _HISTORY_WINDOW)))
                for key, head in stored
            ]
            for (key, head), kvs in zip(stored, await self._ranges(first), strict=True):
                for kv in reversed(kvs):
                    yield entry_from_kv(kv)[0]
                for low in range(_HISTORY_WINDOW + 1, head.version + 1, _HISTORY_WINDOW):
                    high = min(head.version, low + _HISTORY_WINDOW - 1)
                    window = self.keys.versions_between(key, low, high)
                    for kv in reversed(await self._range(*window)):
                        yield entry_from_kv(kv)[0]

    async def _import_entries(self, tenant_id: str, entries: list[ConfigEntry], mode: str) -> int:
        groups = [list(group) for _, group in itertools.groupby(entries, key=lambda e: e.key)]
        if mode == "append":
            return await self._import_append(groups)
        return await self._import_restore(groups)

    async def _import_append(self, groups: list[list[ConfigEntry]]) -> int:
        semaphore = asyncio.Semaphore(_APPEND_CONCURRENCY)

        async def append_key(group: list[ConfigEntry]) -> int:
            async with semaphore:
                for entry in group:
                    await self._write(
                        entry.key,
                        entry.config_value,
                        expected_version=None,
                        updated_by=entry.updated_by,
                        comment=entry.comment,
                        deleted=entry.deleted,
                    )
                return len(group)

        return sum(await asyncio.gather(*(append_key(group) for group in groups)))

    async def _import_restore(self, groups: list[list[ConfigEntry]]) -> int:
        """Plan from what is stored, write in guarded transactions; plan again if a guard fails."""
        written = 0
        for _ in range(_RESTORE_ROUNDS):
            keys = [group[0].key for group in groups]
            heads = dict(zip(keys, await self._read_heads(keys), strict=True))
            stored = await self._stored_versions(groups)
            planned = [
                (key, plan_restore(group, stored[key]))
                for key, group in zip(keys, groups, strict=True)
            ]
            transactions = self._restore_transactions(
                [(key, todo) for key, todo in planned if todo]
            )
            if not transactions:
                return written
            for transaction in transactions:
                count = await self._commit_restore(transaction, heads)
                if count is None:
                    break
                written += count
            else:
                return written
        raise BackendError(
            f"etcd: the import kept meeting concurrent writers after {_RESTORE_ROUNDS} rounds; "
            "run it again"
        )

    async def _stored_versions(
        self, groups: list[list[ConfigEntry]]
    ) -> dict[ConfigKey, dict[int, ConfigEntry]]:
        """The stored versions with the numbers the incoming entries have, per key."""
        wanted = [(entry.key, entry.version) for group in groups for entry in group]
        found = await self._ranges([_range_op(self.keys.version(k, v)) for k, v in wanted])
        stored: dict[ConfigKey, dict[int, ConfigEntry]] = {group[0].key: {} for group in groups}
        for (key, version), kvs in zip(wanted, found, strict=True):
            if kvs:
                stored[key][version] = entry_from_kv(kvs[0])[0]
        return stored

    def _restore_transactions(
        self, planned: list[tuple[ConfigKey, list[ConfigEntry]]]
    ) -> list[_Transaction]:
        """Split what a restore writes into transactions within etcd's limits: per key a
        compare and a head, per version a put, and the marker."""
        budget = max(self.max_request_bytes - _REQUEST_OVERHEAD, 1)
        transactions: list[_Transaction] = []
        current: _Transaction = []
        ops = size = 0
        for key, entries in planned:
            for entry in entries:
                cost = len(version_value(entry, "")) + _PUT_OVERHEAD
                extra = 1 if current and current[-1][0] == key else 2
                if current and (ops + extra + 1 > self.max_txn_ops or size + cost > budget):
                    transactions.append(current)
                    current, ops, size, extra = [], 0, 0, 2
                if extra == 2:
                    current.append((key, []))
                current[-1][1].append(entry)
                ops += extra
                size += cost
        if current:
            transactions.append(current)
        return transactions

    async def _commit_restore(
        self, transaction: _Transaction, heads: dict[ConfigKey, Head | None]
    ) -> int | None:
        """Write one transaction of a restore, guarded by ``heads`` (updated when it commits);
        how many versions, or None if a guard failed (the caller plans again)."""
        write_id = uuid.uuid4().hex
        compares: list[dict[str, Any]] = []
        puts: list[dict[str, Any]] = []
        checks: list[dict[str, Any]] = []
        new_heads: dict[ConfigKey, Head] = {}
        for key, entries in transaction:
            new_heads[key] = _restored_head(heads[key], entries, write_id)
            compares.append(self._guard(key, heads[key]))
            checks.append(_range_op(self.keys.head(key)))
            puts.extend(
                _put(self.keys.version(key, entry.version), version_value(entry, write_id))
                for entry in entries
            )
            puts.append(_put(self.keys.head(key), new_heads[key].encode()))
        puts.append(_put(self.keys.marker, b""))
        answer = await self._txn(compares, puts, checks)
        for key in new_heads:
            self._heads.pop(key, None)
        committed = answer.body.get("succeeded") or any(
            head is not None and head.write_id == write_id
            for head in map(_head_from, _responses(answer))
        )
        if not committed:
            return None
        for key, head in new_heads.items():
            heads[key] = replace(head, mod_revision=answer.revision)
        return sum(len(entries) for _, entries in transaction)

    async def _read_heads(self, keys: list[ConfigKey]) -> list[Head | None]:
        found = await self._ranges([_range_op(self.keys.head(key)) for key in keys])
        return [Head.from_kv(kvs[0]) if kvs else None for kvs in found]

    async def get_stats(self) -> dict[str, Any]:
        start, end = self.keys.all_versions
        counted = await self._client.call(
            "kv/range", {"key": b64(start), "range_end": b64(end), "count_only": True}
        )
        per_scope = {scope.value: 0 for scope in ConfigScope}
        tenants: set[str] = set()
        configs = 0
        async for heads in self._scan_heads(*self.keys.all_heads):
            for key, head in heads:
                if head.live:
                    configs += 1
                    per_scope[key.scope.value] += 1
                    tenants.add(key.tenant_id)
        return {
            "backend": self.backend_name,
            "total_configs": configs,
            "total_versions": int(counted.body.get("count", 0)),
            "total_tenants": len(tenants),
            "configs_per_scope": per_scope,
        }

    async def health_check(self) -> bool:
        """True when a member reports itself healthy (``GET /health``) within ``timeout``."""
        try:
            return await self._client.health(self.timeout)
        except Exception:
            return False

    async def current_cursor(self) -> str:
        await self._started_feed()
        _, now = await self._marker_revision()
        return Cursor(now).encode()

    async def _changes_since(self, cursor: str | None, limit: int) -> ChangeBatch:
        position = Cursor.decode(cursor)
        last_write, now = await self._marker_revision()
        if last_write <= position.revision:
            return ChangeBatch((), Cursor(max(now, position.revision)).encode())
        feed = await self._started_feed()
        if feed.covers(position.revision) and await self._caught_up(feed, last_write):
            records = feed.records_after(position.revision)
            return page(records, position, limit, complete_to=last_write, end=now)
        records, reached = await replay(
            self._client,
            self.keys,
            position.revision,
            last_write,
            limit + position.skip,
            self.timeout,
        )
        if reached >= last_write:
            return page(records, position, limit, complete_to=last_write, end=now)
        return page(records, position, limit, complete_to=reached, end=reached, more=True)

    async def wait_for_changes(self, cursor: str | None, timeout: float) -> None:
        """Return when the handle's watch stream shows a write after ``cursor`` (or at once if
        the cursor is older than what the stream holds), else after ``timeout`` seconds.
        Never raises for an outage: it then waits out the timeout."""
        deadline = time.monotonic() + timeout
        try:
            position = Cursor.decode(cursor)
            async with asyncio.timeout(timeout):
                feed = await self._started_feed()
                if position.skip or not feed.covers(position.revision):
                    return
                await feed.wait_beyond(position.revision)
        except TimeoutError:
            return
        except (BackendError, InvalidConfigError):
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))

    async def _caught_up(self, feed: FeedWatch, revision: int) -> bool:
        try:
            async with asyncio.timeout(self.timeout):
                return await feed.wait_seen(revision)
        except TimeoutError:
            return False

    async def _started_feed(self) -> FeedWatch:
        """The handle's watch stream, started at the present on first use (or in a new loop)."""
        if self._feed.running:
            return self._feed
        loop = asyncio.get_running_loop()
        if self._feed_lock is None or self._feed_lock[0] is not loop:
            self._feed_lock = (loop, asyncio.Lock())
        async with self._feed_lock[1]:
            if not self._feed.running:
                _, now = await self._marker_revision()
                await self._feed.stop()
                await self._feed.start_at(now)
        return self._feed

    async def _marker_revision(self) -> tuple[int, int]:
        """(revision of the store's last write, the cluster's revision now), linearizably."""
        answer = await self._client.call("kv/range", {"key": b64(self.keys.marker)})
        kvs = answer.body.get("kvs", [])
        return (int(kvs[0]["mod_revision"]) if kvs else 0), answer.revision

    async def _txn(
        self,
        compare: list[dict[str, Any]],
        success: list[dict[str, Any]],
        failure: list[dict[str, Any]],
    ) -> Answer:
        body = {"compare": compare, "success": success, "failure": failure}
        return await self._client.call("kv/txn", body, write=True)

    async def _range(
        self, key: bytes, end: bytes | None = None, *, limit: int | None = None
    ) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"key": b64(key)}
        if end is not None:
            body["range_end"] = b64(end)
        if limit is not None:
            body["limit"] = limit
        answer = await self._client.call("kv/range", body)
        kvs: list[dict[str, Any]] = answer.body.get("kvs", [])
        return kvs

    async def _ranges(self, ranges: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        """Several ranges, as few read-only transactions as etcd's ops limit allows."""
        found: list[list[dict[str, Any]]] = []
        for start in range(0, len(ranges), self.max_txn_ops):
            chunk = ranges[start : start + self.max_txn_ops]
            answer = await self._client.call("kv/txn", {"success": chunk})
            found.extend(
                response.get("response_range", {}).get("kvs", []) for response in _responses(answer)
            )
        return found


def _next_entry(
    key: ConfigKey,
    head: Head | None,
    value: dict[str, Any],
    updated_by: str | None,
    comment: str | None,
    deleted: bool,
) -> ConfigEntry:
    now = utc_now()
    created_at = now
    if head is not None and head.exists and head.created_at:
        created_at = datetime.fromisoformat(head.created_at)
    return ConfigEntry(
        tenant_id=key.tenant_id,
        scope=key.scope,
        service=key.service,
        config_key=key.config_key,
        config_value=value,
        version=(head.version if head is not None else 0) + 1,
        created_at=created_at,
        updated_at=max(now, created_at),
        updated_by=updated_by,
        comment=comment,
        deleted=deleted,
    )


def _head_of(entry: ConfigEntry, write_id: str) -> Head:
    """The head a write of ``entry`` leaves."""
    return Head(
        version=entry.version,
        deleted=entry.deleted,
        created_at=entry.created_at.isoformat(),
        write_id=write_id,
        written=((entry.version, entry.deleted),),
    )


def _restored_head(head: Head | None, entries: list[ConfigEntry], write_id: str) -> Head:
    """The head after a restore wrote ``entries`` (restored versions may lie below the head)."""
    newest = max(entries, key=lambda entry: entry.version)
    written = tuple((entry.version, entry.deleted) for entry in entries)
    if head is not None and head.exists and head.version >= newest.version:
        return replace(head, write_id=write_id, written=written)
    created_at = head.created_at if head is not None and head.exists else ""
    return Head(
        version=newest.version,
        deleted=newest.deleted,
        created_at=created_at or newest.created_at.isoformat(),
        write_id=write_id,
        written=written,
    )


def _put(key: bytes, value: bytes) -> dict[str, Any]:
    return {"request_put": {"key": b64(key), "value": b64(value)}}


def _range_op(key: bytes, end: bytes | None = None) -> dict[str, Any]:
    request = {"key": b64(key)}
    if end is not None:
        request["range_end"] = b64(end)
    return {"request_range": request}


def _responses(answer: Answer) -> list[dict[str, Any]]:
    responses: list[dict[str, Any]] = answer.body.get("responses", [])
    return responses


def _head_from(response: dict[str, Any]) -> Head | None:
    kvs = response.get("response_range", {}).get("kvs", [])
    return Head.from_kv(kvs[0]) if kvs else None


def _runs(versions: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted versions as (first, last) runs of consecutive numbers."""
    runs: list[tuple[int, int]] = []
    for version in versions:
        if runs and runs[-1][1] == version - 1:
            runs[-1] = (runs[-1][0], version)
        else:
            runs.append((version, version))
    return runs
