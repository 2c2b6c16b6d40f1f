"""VespaConfigStore: the confstore contract on Vespa 8's ``/document/v1`` API.

Documents (one type, ``config_metadata``, in one namespace; ids joined with ``/``, which no
identifier may contain, and every segment percent-encoded in the path)::

    h/<tenant>/<scope>/<service>/<key>                    the head: latest version of the key
    v/<tenant>/<scope>/<service>/<key>/<epoch>/<version>  one per stored version
    p/<tenant>/<scope>/<service>/<key>/<epoch>            a purge marker (for the change feed)

A head holds the latest version's number, value, audit fields and timestamps, its ``epoch``
(bumped by each purge) and the ``write_id`` of the write that made it. A latest read is one GET.

Write protocol (set_config, delete_config's tombstone, import):

1. GET the head: epoch E, latest version N (no head: E = 0, N = 0).
2. POST the version document ``v/.../E/N+1`` create-only (``create=true&condition=false``): 200
   means this writer owns version N+1; 412 means it exists. The version documents are the
   arbiter: only one writer can create N+1, on any host.
3. POST the head with the test-and-set condition ``epoch==E and version==N`` (create-only when
   there was no head): the write is committed (visible to latest reads, listings, the feed)
   when the head shows N+1.

A 412 at step 2 means another writer owns N+1: if its head is not there yet (it may have died
between steps 2 and 3), this writer publishes that document as the head itself, then starts
again from step 1 - so a dead writer leaves no gap and no duplicate, and its write becomes
visible. A 412 at step 3 means the head moved: re-read it; N+1 or later in epoch E means our
version is committed (someone published it for us); another epoch means a purge won, so the
orphaned version document is removed and the write starts over. ``expected_version`` is checked
against the head at step 1 (after publishing any unpublished next version) and enforced by
step 2's create-only.

Unknown outcomes: writes are POSTs, which aiohttp never re-sends by itself. A 5xx, timeout or
dropped connection on either step is resolved by reading back (the version document's
``write_id`` says whose it is; the head's version says whether it moved), never by a blind
retry. 429 (not applied) is retried by confstore.http with capped backoff and jitter; reads are
retried on 429/502/503/504 and dropped connections.

Purge: the head is replaced (test-and-set) by an empty head of epoch E+1 and version 0, then a
purge marker is written and the old epochs' version documents are deleted by selection. Readers
only trust version documents of the head's epoch up to the head's version, so leftovers of a
purge or of a dead writer are invisible until repaired or removed.

Change feed: version documents and purge markers carry ``updated_at`` (microseconds, strictly
increasing per key even across hosts with skewed clocks, since each write takes
max(now, previous + 1)). A cursor holds a watermark W and the (key, version) pairs already
reported with ``updated_at`` > W - window; a poll visits documents with ``updated_at`` > W -
window, drops those already reported, holds back versions whose head has not reached them yet
(for at most one window) and reports the rest oldest first. Limits: a write whose ``updated_at``
is more than ``change_window`` seconds older than the newest one already reported (a writer's
clock behind by more than the window) can be missed; a dead writer's version is reported after
one window even if nobody has published it yet; every poll visits the whole corpus with a
selection (fine for configuration data, not for millions of documents).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from confstore import (
    BackendError,
    BackendUnavailableError,
    ChangeBatch,
    ChangeKind,
    ConfigChange,
    ConfigEntry,
    ConfigKey,
    ConfigScope,
    ConfigStore,
    ImportConflictError,
    InvalidConfigError,
    StoreCapabilities,
    StoreOptions,
    StoreURL,
    VersionConflictError,
    decode_cursor,
    encode_cursor,
    epoch_micros,
    from_epoch_micros,
    plan_restore,
)
from confstore.http import HttpClient, RetryPolicy, auth_headers, make_ssl_context

from ._client import DocumentClient, WriteOutcome

DEFAULT_NAMESPACE = "confstore"
DEFAULT_DOCUMENT_TYPE = "config_metadata"
DEFAULT_CLUSTER = "confstore"
DEFAULT_TIMEOUT = 10.0
DEFAULT_CHANGE_WINDOW = 30.0
DEFAULT_MAX_VALUE_BYTES = 1024 * 1024

_CURSOR_PREFIX = "vespa1."
_UNKNOWN_OUTCOME_LIMIT = 8
_CONTENTION_LIMIT = 10_000
_PARALLEL_READS = 32
_CONTENTION_PAUSE = 0.002
_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
_SUMMARY_FIELDS = (
    "kind",
    "tenant_id",
    "scope",
    "service",
    "config_key",
    "epoch",
    "version",
    "deleted",
    "updated_at",
)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Head:
    """What a head document says (``exists=False``: there is none, epoch 0, version 0)."""

    exists: bool
    epoch: int = 0
    version: int = 0
    deleted: bool = False
    updated_at: int = 0
    created_at: int = 0
    write_id: str | None = None
    fields: Mapping[str, Any] | None = None

    @property
    def live(self) -> bool:
        return self.version > 0 and not self.deleted


@dataclass(frozen=True, slots=True)
class _Record:
    """A version document or purge marker, as the change feed sees it."""

    key: ConfigKey
    kind: str
    epoch: int
    version: int
    deleted: bool
    updated_at: int

    @property
    def ident(self) -> tuple[Any, ...]:
        key = self.key
        return (
            key.tenant_id,
            key.scope.value,
            key.service,
            key.config_key,
            self.kind,
            self.epoch,
            self.version,
        )

    def change(self) -> ConfigChange:
        if self.kind == "purge":
            return ConfigChange(self.key, ChangeKind.PURGE, self.version)
        kind = ChangeKind.DELETE if self.deleted else ChangeKind.SET
        return ConfigChange(self.key, kind, self.version)


class VespaConfigStore(ConfigStore):
    """Configs in Vespa 8 documents; safe for concurrent writers on any number of hosts.

    ``url`` is the container's base URL (``http://host:8080``); ``vespa_app`` may be given instead
    (any object with ``url`` and optionally ``port``, ``cert`` and ``key`` attributes, as pyvespa's
    ``Vespa``). The constructor does no I/O. See the module docstring for the write protocol.
    """

    backend_name: ClassVar[str] = "vespa"

    def __init__(
        self,
        url: str | None = None,
        *,
        vespa_app: Any = None,
        namespace: str = DEFAULT_NAMESPACE,
        document_type: str = DEFAULT_DOCUMENT_TYPE,
        cluster: str | None = DEFAULT_CLUSTER,
        timeout: float = DEFAULT_TIMEOUT,
        cert: str | None = None,
        key: str | None = None,
        ca: str | None = None,
        token: str | None = None,
        retry: RetryPolicy | None = None,
        change_window: float = DEFAULT_CHANGE_WINDOW,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
    ) -> None:
        super().__init__(max_value_bytes=max_value_bytes)
        if vespa_app is not None:
            url = url or _app_url(vespa_app)
            cert = cert or getattr(vespa_app, "cert", None)
            key = key or getattr(vespa_app, "key", None)
        if not url:
            raise InvalidConfigError("VespaConfigStore needs a url or a vespa_app", field="url")
        for name, value in (("namespace", namespace), ("cluster", cluster)):
            if value is not None and _NAME.fullmatch(value) is None:
                raise InvalidConfigError(f"invalid Vespa {name}: {value!r}", field=name)
        if not document_type.isidentifier():
            raise InvalidConfigError(
                f"invalid Vespa document type: {document_type!r}", field="document_type"
            )
        if not timeout > 0:
            raise InvalidConfigError("timeout must be positive", field="timeout")
        self.url = url.rstrip("/")
        self.namespace = namespace
        self.document_type = document_type
        self.cluster = cluster or None
        self.timeout = timeout
        self.change_window = change_window
        self._retry = retry or RetryPolicy()
        ssl_context = None
        if cert or key or ca:
            ssl_context = make_ssl_context(ca_file=ca, cert_file=cert, key_file=key)
        self._http = HttpClient(
            self.url,
            timeout=timeout,
            retry=self._retry,
            headers=auth_headers(bearer_token=token),
            ssl_context=ssl_context,
        )
        self._documents = DocumentClient(
            self._http,
            namespace=namespace,
            document_type=document_type,
            cluster=self.cluster,
            server_timeout=timeout * 0.8,
        )
        self._select = self._documents.selections

    @classmethod
    def from_url(cls, url: StoreURL, **options: Any) -> VespaConfigStore:
        """``vespa+http://host:8080?namespace=..&cluster=..&document_type=..&timeout=..``
        (TLS: ``vespa+https://`` with ``cert``, ``key``, ``ca``; Vespa Cloud tokens: ``token``)."""
        if url.path:
            raise InvalidConfigError(f"a Vespa store URL has no path: {url}", field="url")
        if url.username is not None:
            raise InvalidConfigError(
                "a Vespa store URL carries no user or password; use token= or cert=/key=",
                field="url",
            )
        reader = StoreOptions("vespa", options)
        settings: dict[str, Any] = {
            "namespace": reader.take_str("namespace", DEFAULT_NAMESPACE) or DEFAULT_NAMESPACE,
            "document_type": reader.take_str("document_type", DEFAULT_DOCUMENT_TYPE)
            or DEFAULT_DOCUMENT_TYPE,
            "cluster": reader.take_str("cluster", DEFAULT_CLUSTER),
            "timeout": reader.take_float("timeout", DEFAULT_TIMEOUT, minimum=0.001),
            "cert": reader.take_str("cert"),
            "key": reader.take_str("key"),
            "ca": reader.take_str("ca"),
            "token": reader.take_str("token"),
            "change_window": reader.take_float("change_window", DEFAULT_CHANGE_WINDOW),
            "max_value_bytes": reader.take_int(
                "max_value_bytes", DEFAULT_MAX_VALUE_BYTES, minimum=1
            ),
        }
        reader.finish()
        return cls(url.base_url, **settings)

    @property
    def capabilities(self) -> StoreCapabilities:
        return StoreCapabilities(persistent=True, shared=True)

    async def initialize(self) -> None:
        """Check that Vespa answers and knows the document type (a GET of a probe id)."""
        await self._documents.get(("confstore-probe",))

    async def close(self) -> None:
        await self._http.close()

    async def purge_namespace(self) -> int:
        """Delete every document of this store's type in its namespace (all tenants, all
        versions, no change-feed record); returns how many. For tests and decommissioning."""
        return await self._documents.delete_where(self.document_type)

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
        entry = await self._append(
            key,
            value_json,
            deleted=False,
            updated_by=updated_by,
            comment=comment,
            expected_version=expected_version,
        )
        assert entry is not None
        return entry

    async def _delete_config(
        self, key: ConfigKey, *, purge: bool, updated_by: str | None, comment: str | None
    ) -> bool:
        if purge:
            return await self._purge(key)
        entry = await self._append(
            key, "{}", deleted=True, updated_by=updated_by, comment=comment, require_live=True
        )
        return entry is not None

    async def _append(
        self,
        key: ConfigKey,
        value_json: str,
        *,
        deleted: bool,
        updated_by: str | None,
        comment: str | None,
        expected_version: int | None = None,
        require_live: bool = False,
    ) -> ConfigEntry | None:
        """Write latest + 1 (steps 1-3 of the protocol). None when ``require_live`` and not live."""
        write_id = uuid.uuid4().hex
        unknown = losses = 0
        head: _Head | None = None
        for _ in range(_CONTENTION_LIMIT):
            if head is None:
                head = await self._read_head(key)
            blocked = (expected_version is not None and head.version != expected_version) or (
                require_live and not head.live
            )
            if blocked:
                if await self._publish_next(key, head):
                    head = None
                    continue
                if require_live:
                    return None
                assert expected_version is not None
                raise VersionConflictError(expected_version, head.version, key=key)
            now = max(_now_us(), head.updated_at + 1)
            fields = self._document_fields(
                "version",
                key,
                epoch=head.epoch,
                version=head.version + 1,
                deleted=deleted,
                created_at=head.created_at if head.version > 0 else now,
                updated_at=now,
                payload=value_json,
                audit=_audit(updated_by, comment),
                write_id=write_id,
            )
            segments = _version_segments(key, head.epoch, head.version + 1)
            outcome = await self._documents.put(segments, fields, condition="false", create=True)
            if outcome is WriteOutcome.CONDITION_FAILED:
                # Another writer owns this version (a create-only POST is never re-sent, so the
                # 412 is not our own earlier attempt). Retry on top of it after a short random
                # pause, so that fewer writers collide in the next round.
                head = await self._after_lost_race(key, head, segments)
                losses += 1
                await asyncio.sleep(random.uniform(0, _CONTENTION_PAUSE * 2 ** min(losses, 5)))
                continue
            if outcome is WriteOutcome.UNKNOWN:
                stored = await self._documents.get(segments)
                if stored is None:
                    unknown = await self._after_unknown(outcome, unknown)
                    head = None
                    continue
                if stored.get("write_id") != write_id:
                    head = await self._publish(key, head, stored)
                    continue
            if await self._publish(key, head, fields) is not None:
                return self._entry(fields)
            await self._documents.remove(segments)
            head = None
        raise BackendUnavailableError(f"could not write {key}: too much contention")

    async def _after_lost_race(
        self, key: ConfigKey, head: _Head, segments: tuple[str, ...]
    ) -> _Head | None:
        """The head to write on after losing version N+1: the current one once it moved, else
        the head after publishing the winner's version (its writer may have died)."""
        current = await self._read_head(key)
        if (current.epoch, current.version) != (head.epoch, head.version):
            return current
        stored = await self._documents.get(segments)
        return None if stored is None else await self._publish(key, current, stored)

    async def _publish_next(self, key: ConfigKey, head: _Head) -> bool:
        """Publish version N+1 if a writer stored it but died before step 3; True if it did."""
        stored = await self._documents.get(_version_segments(key, head.epoch, head.version + 1))
        if stored is None:
            return False
        await self._publish(key, head, stored)
        return True

    async def _publish(
        self, key: ConfigKey, seen: _Head, fields: Mapping[str, Any]
    ) -> _Head | None:
        """Make the head show the version document ``fields`` (test-and-set from ``seen``).

        Returns the head once it is at that version or later in the same epoch; None if a purge
        moved the head to another epoch.
        """
        target = _number(fields, "version")
        head_fields = {**fields, "kind": "head"}
        unknown = 0
        for _ in range(_CONTENTION_LIMIT):
            outcome = await self._put_head(key, seen, head_fields)
            if outcome is WriteOutcome.APPLIED:
                return _head_of(head_fields)
            current = await self._read_head(key)
            if current.epoch != seen.epoch:
                return None
            if current.version >= target:
                return current
            if (current.exists, current.version) == (seen.exists, seen.version):
                unknown = await self._after_unknown(outcome, unknown)
            seen = current
        raise BackendUnavailableError(f"could not publish {key}: too much contention")

    async def _put_head(
        self, key: ConfigKey, seen: _Head, head_fields: Mapping[str, Any]
    ) -> WriteOutcome:
        if not seen.exists:
            return await self._documents.put(
                _head_segments(key), head_fields, condition="false", create=True
            )
        condition = self._select.all_of(
            self._select.equals("epoch", seen.epoch), self._select.equals("version", seen.version)
        )
        return await self._documents.put(_head_segments(key), head_fields, condition=condition)

    async def _after_unknown(self, outcome: WriteOutcome, unknown: int) -> int:
        """Back off after a write whose outcome was unknown (and turned out not applied)."""
        if outcome is not WriteOutcome.UNKNOWN:
            return unknown
        unknown += 1
        if unknown > _UNKNOWN_OUTCOME_LIMIT:
            raise BackendUnavailableError("Vespa keeps failing writes (5xx or dropped connections)")
        await asyncio.sleep(self._retry.delay(unknown))
        return unknown

    async def _purge(self, key: ConfigKey) -> bool:
        write_id = uuid.uuid4().hex
        unknown = 0
        for _ in range(_CONTENTION_LIMIT):
            head = await self._read_head(key)
            if not head.exists or head.version == 0:
                # Nothing committed to purge; clear what a writer that died may have left.
                await self._documents.delete_where(self._key_selection(key, "version"))
                return False
            now = max(_now_us(), head.updated_at + 1)
            purged_head = self._document_fields(
                "head",
                key,
                epoch=head.epoch + 1,
                version=0,
                deleted=True,
                updated_at=now,
                write_id=write_id,
            )
            outcome = await self._put_head(key, head, purged_head)
            if outcome is not WriteOutcome.APPLIED:
                current = await self._read_head(key)
                if current.write_id != write_id:
                    if (current.epoch, current.version) == (head.epoch, head.version):
                        unknown = await self._after_unknown(outcome, unknown)
                    continue
            marker = self._document_fields(
                "purge", key, epoch=head.epoch, version=head.version, deleted=True, updated_at=now
            )
            await self._create_once(_purge_segments(key, head.epoch), marker)
            older = self._select.compare("epoch", "<=", head.epoch)
            await self._documents.delete_where(
                self._select.all_of(self._key_selection(key, "version"), older)
            )
            return True
        raise BackendUnavailableError(f"could not purge {key}: too much contention")

    async def _get_config(self, key: ConfigKey, version: int | None) -> ConfigEntry | None:
        head = await self._read_head(key)
        if version is None:
            return self._entry(head.fields) if head.live and head.fields else None
        if version > head.version:
            return None
        if version == head.version and head.fields:
            return self._entry(head.fields)
        stored = await self._documents.get(_version_segments(key, head.epoch, version))
        return None if stored is None else self._entry(stored)

    async def _get_config_history(self, key: ConfigKey, limit: int) -> list[ConfigEntry]:
        head = await self._read_head(key)
        if head.version == 0 or head.fields is None:
            return []
        wanted = range(head.version - 1, max(0, head.version - limit), -1)
        older = await self._read_versions(key, head.epoch, wanted)
        entries = [self._entry(head.fields), *older]
        if len(entries) < min(limit, head.version):
            # Restored imports can leave gaps; fall back to visiting the key's versions.
            entries = await self._visit_history(key, head)
        return entries[:limit]

    async def _read_versions(
        self, key: ConfigKey, epoch: int, versions: Iterable[int]
    ) -> list[ConfigEntry]:
        """The given versions of ``key`` that exist, in the order asked, fetched in parallel."""
        documents = await _gather_bounded(
            self._documents.get(_version_segments(key, epoch, version)) for version in versions
        )
        return [self._entry(fields) for fields in documents if fields is not None]

    async def _visit_history(self, key: ConfigKey, head: _Head) -> list[ConfigEntry]:
        selection = self._select.all_of(
            self._key_selection(key, "version"), self._select.equals("epoch", head.epoch)
        )
        entries = [
            self._entry(fields)
            async for fields in self._documents.visit(selection)
            if _number(fields, "version") <= head.version
        ]
        return sorted(entries, key=lambda entry: entry.version, reverse=True)

    async def _list_configs(
        self, tenant_id: str, scope: ConfigScope | None, service: str | None
    ) -> list[ConfigEntry]:
        parts = [self._select.equals("kind", "head"), self._select.equals("tenant_id", tenant_id)]
        if scope is not None:
            parts.append(self._select.equals("scope", scope.value))
        if service is not None:
            parts.append(self._select.equals("service", service))
        entries = [
            self._entry(fields)
            async for fields in self._documents.visit(self._select.all_of(*parts))
            if _head_of(fields).live
        ]
        return sorted(entries, key=lambda entry: entry.key)

    async def _list_tenants(self, include_deleted: bool) -> list[str]:
        tenants = {
            str(fields["tenant_id"])
            async for fields in self._visit_summaries(self._select.equals("kind", "head"))
            if _head_of(fields).live or (include_deleted and _head_of(fields).version > 0)
        }
        return sorted(tenants)

    async def _iter_configs(
        self, tenant_id: str, include_history: bool
    ) -> AsyncIterator[ConfigEntry]:
        if not include_history:
            for entry in await self._list_configs(tenant_id, None, None):
                yield entry
            return
        selection = self._select.all_of(
            self._select.equals("kind", "head"), self._select.equals("tenant_id", tenant_id)
        )
        heads = {
            _key_of(fields): _head_of(fields) async for fields in self._visit_summaries(selection)
        }
        for key in sorted(heads):
            head = heads[key]
            for start in range(1, head.version + 1, _PARALLEL_READS):
                stop = min(head.version + 1, start + _PARALLEL_READS)
                for entry in await self._read_versions(key, head.epoch, range(start, stop)):
                    yield entry

    async def get_stats(self) -> dict[str, Any]:
        heads: dict[ConfigKey, _Head] = {}
        versions: list[tuple[ConfigKey, int, int]] = []
        selection = self._select.any_of(
            self._select.equals("kind", "head"), self._select.equals("kind", "version")
        )
        async for fields in self._visit_summaries(selection):
            key = _key_of(fields)
            if fields.get("kind") == "head":
                heads[key] = _head_of(fields)
            else:
                versions.append((key, _number(fields, "epoch"), _number(fields, "version")))
        live = [key for key, head in heads.items() if head.live]
        per_scope = {scope.value: 0 for scope in ConfigScope}
        for key in live:
            per_scope[key.scope.value] += 1
        stored = sum(
            1
            for key, epoch, version in versions
            if key in heads and heads[key].epoch == epoch and version <= heads[key].version
        )
        return {
            "backend": self.backend_name,
            "total_configs": len(live),
            "total_versions": stored,
            "total_tenants": len({key.tenant_id for key in live}),
            "configs_per_scope": per_scope,
            "namespace": self.namespace,
            "document_type": self.document_type,
        }

    async def health_check(self) -> bool:
        """GET /state/v1/health within the timeout; True only for status "up". Never raises."""
        try:
            async with asyncio.timeout(self.timeout):
                return await self._documents.health(self.timeout)
        except Exception:
            return False

    async def _import_entries(self, tenant_id: str, entries: list[ConfigEntry], mode: str) -> int:
        if mode == "append":
            for entry in entries:
                await self._append(
                    entry.key,
                    json.dumps(entry.config_value, ensure_ascii=False, separators=(",", ":")),
                    deleted=entry.deleted,
                    updated_by=entry.updated_by,
                    comment=entry.comment,
                )
            return len(entries)
        plans: list[tuple[ConfigKey, list[ConfigEntry]]] = []
        for key, group in itertools.groupby(entries, key=lambda entry: entry.key):
            incoming = list(group)
            head = await self._read_head(key)
            stored = await self._read_versions(
                key, head.epoch, (entry.version for entry in incoming)
            )
            planned = plan_restore(incoming, {entry.version: entry for entry in stored})
            if planned:
                plans.append((key, planned))
        for key, planned in plans:
            await self._restore_key(key, planned)
        return sum(len(planned) for _, planned in plans)

    async def _restore_key(self, key: ConfigKey, planned: list[ConfigEntry]) -> None:
        head = await self._read_head(key)
        newest: Mapping[str, Any] | None = None
        for entry in planned:
            fields = self._document_fields(
                "version",
                key,
                epoch=head.epoch,
                version=entry.version,
                deleted=entry.deleted,
                created_at=epoch_micros(entry.created_at),
                updated_at=epoch_micros(entry.updated_at),
                payload=json.dumps(entry.config_value, ensure_ascii=False, separators=(",", ":")),
                audit=_audit(entry.updated_by, entry.comment),
                write_id=uuid.uuid4().hex,
            )
            await self._create_restored(key, head.epoch, entry, fields)
            newest = fields
        if (
            newest is not None
            and int(newest["version"]) > head.version
            and await self._publish(key, head, newest) is None
        ):
            raise BackendError(f"{key} was purged while it was being imported; import again")

    async def _create_restored(
        self, key: ConfigKey, epoch: int, entry: ConfigEntry, fields: Mapping[str, Any]
    ) -> None:
        stored = await self._create_once(_version_segments(key, epoch, entry.version), fields)
        if stored is fields:
            return
        existing = self._entry(stored)
        if existing.config_value != entry.config_value or existing.deleted != entry.deleted:
            raise ImportConflictError(
                f"version {entry.version} of {key} was written with another value meanwhile",
                key=key,
                version=entry.version,
            )

    async def _create_once(
        self, segments: tuple[str, ...], fields: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        """Create a document create-only; returns ``fields`` if this call stored it, else what
        is stored (unknown outcomes resolved by reading back)."""
        unknown = 0
        while True:
            outcome = await self._documents.put(segments, fields, condition="false", create=True)
            if outcome is WriteOutcome.APPLIED:
                return fields
            stored = await self._documents.get(segments)
            if stored is not None:
                return stored
            unknown = await self._after_unknown(outcome, unknown)

    async def current_cursor(self) -> str:
        now = _now_us()
        window = self._window_us()
        records = await self._feed_records(now - window)
        return _encode_cursor(
            now, [record for record in records if record.updated_at > now - window]
        )

    async def _changes_since(self, cursor: str | None, limit: int) -> ChangeBatch:
        watermark, seen = _decode_cursor(cursor)
        window = self._window_us()
        since = None if watermark is None else watermark - window
        seen_idents = {record.ident for record in seen}
        fresh = [
            record for record in await self._feed_records(since) if record.ident not in seen_idents
        ]
        ready, held = await self._split_committed(fresh)
        ready.sort(key=lambda record: (record.updated_at, record.key, record.version))
        page = ready[:limit]
        if page:
            newest = max(record.updated_at for record in page)
            watermark = newest if watermark is None else max(watermark, newest)
        if held and watermark is not None:
            # Keep the oldest held-back version inside the next poll's window (this never moves
            # the watermark back: a held record was in this poll's window).
            watermark = min(watermark, min(record.updated_at for record in held) + window - 1)
        keep = [*seen, *page]
        if watermark is not None:
            keep = [record for record in keep if record.updated_at > watermark - window]
        return ChangeBatch(
            tuple(record.change() for record in page),
            _encode_cursor(watermark, keep),
            has_more=len(ready) > limit,
        )

    async def _feed_records(self, since: int | None) -> list[_Record]:
        parts = [
            self._select.any_of(
                self._select.equals("kind", "version"), self._select.equals("kind", "purge")
            )
        ]
        if since is not None:
            parts.append(self._select.compare("updated_at", ">", since))
        return [
            _record_of(fields)
            async for fields in self._visit_summaries(self._select.all_of(*parts))
        ]

    async def _split_committed(self, records: list[_Record]) -> tuple[list[_Record], list[_Record]]:
        """Versions whose head has reached them (or that are older than a window), and the rest."""
        keys = sorted({record.key for record in records if record.kind == "version"})
        heads = dict(
            zip(keys, await _gather_bounded(self._read_head(key) for key in keys), strict=True)
        )
        expiry = _now_us() - self._window_us()
        ready: list[_Record] = []
        held: list[_Record] = []
        for record in records:
            head = heads.get(record.key)
            committed = (
                head is None
                or head.epoch > record.epoch
                or (head.epoch == record.epoch and head.version >= record.version)
            )
            (ready if committed or record.updated_at < expiry else held).append(record)
        return ready, held

    def _window_us(self) -> int:
        return int(self.change_window * 1_000_000)

    async def _read_head(self, key: ConfigKey) -> _Head:
        fields = await self._documents.get(_head_segments(key))
        return _Head(exists=False) if fields is None else _head_of(fields)

    def _visit_summaries(self, selection: str) -> AsyncIterator[dict[str, Any]]:
        field_set = f"{self.document_type}:{','.join(_SUMMARY_FIELDS)}"
        return self._documents.visit(selection, field_set=field_set)

    def _key_selection(self, key: ConfigKey, kind: str) -> str:
        return self._select.all_of(
            self._select.equals("kind", kind),
            self._select.equals("tenant_id", key.tenant_id),
            self._select.equals("scope", key.scope.value),
            self._select.equals("service", key.service),
            self._select.equals("config_key", key.config_key),
        )

    def _document_fields(
        self,
        kind: str,
        key: ConfigKey,
        *,
        epoch: int,
        version: int,
        deleted: bool,
        updated_at: int,
        created_at: int | None = None,
        payload: str | None = None,
        audit: str | None = None,
        write_id: str | None = None,
    ) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "kind": kind,
            "tenant_id": key.tenant_id,
            "scope": key.scope.value,
            "service": key.service,
            "config_key": key.config_key,
            "epoch": epoch,
            "version": version,
            "deleted": deleted,
            "updated_at": updated_at,
        }
        optional = {"created_at": created_at, "payload": payload, "audit": audit}
        optional["write_id"] = write_id
        fields.update({name: value for name, value in optional.items() if value is not None})
        return fields

    def _entry(self, fields: Mapping[str, Any]) -> ConfigEntry:
        try:
            audit = json.loads(fields.get("audit") or "{}")
            value = json.loads(fields["payload"])
            key = _key_of(fields)
            return ConfigEntry(
                tenant_id=key.tenant_id,
                scope=key.scope,
                service=key.service,
                config_key=key.config_key,
                config_value=value,
                version=int(fields["version"]),
                created_at=from_epoch_micros(int(fields["created_at"])),
                updated_at=from_epoch_micros(int(fields["updated_at"])),
                updated_by=audit.get("updated_by"),
                comment=audit.get("comment"),
                deleted=_flag(fields.get("deleted")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BackendError(f"malformed config document in Vespa: {exc!r}") from exc


def _head_segments(key: ConfigKey) -> tuple[str, ...]:
    return ("h", key.tenant_id, key.scope.value, key.service, key.config_key)


def _version_segments(key: ConfigKey, epoch: int, version: int) -> tuple[str, ...]:
    return (
        "v",
        key.tenant_id,
        key.scope.value,
        key.service,
        key.config_key,
        str(epoch),
        str(version),
    )


def _purge_segments(key: ConfigKey, epoch: int) -> tuple[str, ...]:
    return ("p", key.tenant_id, key.scope.value, key.service, key.config_key, str(epoch))


def _key_of(fields: Mapping[str, Any]) -> ConfigKey:
    try:
        return ConfigKey(
            str(fields["tenant_id"]),
            ConfigScope(fields["scope"]),
            str(fields["service"]),
            str(fields["config_key"]),
        )
    except (KeyError, ValueError) as exc:
        raise BackendError(f"malformed config document in Vespa: {exc!r}") from exc


def _head_of(fields: Mapping[str, Any]) -> _Head:
    return _Head(
        exists=True,
        epoch=_number(fields, "epoch"),
        version=_number(fields, "version"),
        deleted=_flag(fields.get("deleted")),
        updated_at=_number(fields, "updated_at"),
        created_at=_number(fields, "created_at"),
        write_id=fields.get("write_id"),
        fields=fields,
    )


def _record_of(fields: Mapping[str, Any]) -> _Record:
    return _Record(
        key=_key_of(fields),
        kind=str(fields.get("kind")),
        epoch=_number(fields, "epoch"),
        version=_number(fields, "version"),
        deleted=_flag(fields.get("deleted")),
        updated_at=_number(fields, "updated_at"),
    )


def _number(fields: Mapping[str, Any], name: str) -> int:
    """An integer field (unset: 0); BackendError when Vespa holds something else there."""
    value = fields.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BackendError(f"malformed config document in Vespa: {name}={value!r:.40}")
    return value


def _encode_cursor(watermark: int | None, records: Iterable[_Record]) -> str:
    seen = sorted({(record.updated_at, *record.ident) for record in records})
    return encode_cursor(_CURSOR_PREFIX, {"w": watermark, "s": [list(item) for item in seen]})


def _decode_cursor(cursor: str | None) -> tuple[int | None, list[_Record]]:
    if cursor is None:
        return None, []
    return decode_cursor(cursor, prefix=_CURSOR_PREFIX, backend="Vespa", parse=_cursor_state)


def _cursor_state(state: Any) -> tuple[int | None, list[_Record]]:
    watermark = state["w"]
    if watermark is not None and (isinstance(watermark, bool) or not isinstance(watermark, int)):
        raise ValueError("bad watermark")
    records = []
    for updated_at, tenant, scope, service, config_key, kind, epoch, version in state["s"]:
        key = ConfigKey(str(tenant), ConfigScope(scope), str(service), str(config_key))
        records.append(_Record(key, str(kind), int(epoch), int(version), False, int(updated_at)))
    return watermark, records


async def _gather_bounded(awaitables: Iterable[Awaitable[T]]) -> list[T]:
    """Await all, at most ``_PARALLEL_READS`` at a time, results in order."""
    semaphore = asyncio.Semaphore(_PARALLEL_READS)

    async def run(awaitable: Awaitable[T]) -> T:
        async with semaphore:
            return await awaitable

    return list(await asyncio.gather(*(run(awaitable) for awaitable in awaitables)))


def _flag(value: object) -> bool:
    return value is True or value == "true"


def _audit(updated_by: str | None, comment: str | None) -> str:
    # One JSON field, because Vespa treats an empty string as an unset field.
    return json.dumps({"updated_by": updated_by, "comment": comment}, ensure_ascii=False)


def _now_us() -> int:
    return time.time_ns() // 1000


def _app_url(app: Any) -> str:
    end_point = getattr(app, "end_point", None)
    if isinstance(end_point, str) and end_point:
        return end_point
    url = str(getattr(app, "url", "") or "")
    port = getattr(app, "port", None)
    if port and url.count(":") < 2:
        url = f"{url.rstrip('/')}:{port}"
    return url
