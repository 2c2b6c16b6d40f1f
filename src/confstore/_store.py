"""The store contract: ``ConfigStore``, the async ABC every backend implements.

Public methods validate their arguments before any I/O (so every backend rejects the same bad input
with the same typed error) and then call a protected abstract method that does the backend's work.
A backend author implements the abstract methods; each one's docstring is its contract.
"""

from __future__ import annotations

import abc
import asyncio
import json
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, ClassVar, Self, TextIO, TypeVar

from ._errors import InvalidConfigError, UnsupportedOperationError
from ._export import (
    IMPORT_MODES,
    ImportMode,
    build_export_document,
    checked_entries,
    export_header,
    ordered_entries,
    parse_import_document,
)
from ._models import ChangeBatch, ConfigEntry, ConfigKey, ConfigScope, utc_now
from ._retention import (
    KeyPrune,
    PruneResult,
    RetentionPolicy,
    RetentionRule,
    VersionInfo,
    plan_key_prune,
)
from ._url import StoreURL
from ._validation import (
    DEFAULT_MAX_VALUE_BYTES,
    encode_value,
    validate_identifier,
    validate_key,
    validate_limit,
    validate_optional_text,
    validate_scope,
    validate_version,
)

DEFAULT_CHANGE_LIMIT = 1000
_EXPORT_CHUNK_CHARACTERS = 64 * 1024


@dataclass(frozen=True, slots=True)
class StoreCapabilities:
    """What a store offers beyond the core contract (which is never optional).

    persistent: data survives ``close()`` and a reopen of the same URL.
    shared: several handles (processes, hosts) opened on the same URL see one another's writes.
    retention: ``prune()`` works (the conformance suite's retention tests run).
    """

    persistent: bool = False
    shared: bool = False
    retention: bool = False


_Store = TypeVar("_Store", bound="ConfigStore")


async def nothing_to_remove() -> None:
    """The ``remove`` of an area that vanishes with its handles (a private in-memory store)."""


@dataclass(frozen=True, slots=True)
class IsolatedArea:
    """A new, empty part of a backend that tests may write to: see ``ConfigStore.isolated_area``.

    ``url`` opens handles on the area and nothing else (``open_store(area.url)``, as often as
    needed: each is another process or host on the same area). ``description`` says what the area
    is, for reports and never with a password (``"schema conformance_x in PostgreSQL at db:5432,
    database app"``). ``await remove()`` deletes the area and everything written to it; it may be
    awaited once every handle on the area is closed, and again (then it does nothing).
    """

    url: StoreURL
    description: str
    remove: Callable[[], Awaitable[None]] = nothing_to_remove

    @classmethod
    def removed_by(
        cls,
        url: StoreURL,
        description: str,
        store_class: type[_Store],
        remove: Callable[[_Store], Awaitable[object]],
    ) -> IsolatedArea:
        """An area whose ``remove()`` opens a handle on ``url`` with ``open_store`` (so with
        every option of the URL, as the tests' handles are opened), not initialised, awaits
        ``remove(handle)`` and closes the handle: ``IsolatedArea.removed_by(area_url,
        description, cls, cls.drop_everything)``."""

        async def remove_area() -> None:
            from ._registry import open_store  # the registry imports this module

            handle = open_store(url)
            try:
                if not isinstance(handle, store_class):
                    raise InvalidConfigError(
                        f"{url} opens a {type(handle).__name__}, not a {store_class.__name__}",
                        field="url",
                    )
                await remove(handle)
            finally:
                await handle.close()

        return cls(url, description, remove_area)

    @classmethod
    def with_suffix(
        cls,
        url: StoreURL,
        option: str,
        default: str,
        name: str,
        describe: Callable[[str], str],
        store_class: type[_Store],
        remove: Callable[[_Store], Awaitable[object]],
    ) -> IsolatedArea:
        """``removed_by`` an area whose URL option ``option`` (a namespace, an index prefix) is
        the URL's own value (else ``default``), ``-`` and ``name``; ``describe(value)`` says
        what the area is."""
        value = f"{url.options.get(option) or default}-{name}"
        return cls.removed_by(
            url.with_options(**{option: value}), describe(value), store_class, remove
        )


class ConfigStore(abc.ABC):
    """Async, versioned, multi-tenant config storage. Constructors do no I/O.

    Use ``async with store:`` (initialize, then close) or call ``initialize()``/``close()``.
    Every method raises only confstore exceptions; a backend that cannot be reached raises
    BackendUnavailableError (or BackendTimeoutError), never reports a config as absent.
    """

    backend_name: ClassVar[str] = "unknown"
    #: Whether retention removes an old deleted key entirely (remembering its last version so
    #: the numbering goes on); a store that cannot keeps only the key's tombstone instead.
    _retires_deleted_keys: ClassVar[bool] = True

    def __init__(self, *, max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES) -> None:
        self.max_value_bytes = validate_version(max_value_bytes, name="max_value_bytes")
        #: The store's retention policy: what ``prune()`` applies when given no limits.
        self.retention: RetentionPolicy | None = None

    @property
    def capabilities(self) -> StoreCapabilities:
        """What this store offers beyond the core contract; see StoreCapabilities."""
        return StoreCapabilities()

    @classmethod
    def isolated_area(cls, url: StoreURL, name: str) -> IsolatedArea | None:
        """A new, empty area of the backend ``url`` points at, apart from the data ``url`` opens,
        or None when this backend cannot make one (the default).

        ``confstore conformance URL`` runs each test in an area of its own, so certifying a store
        on a live server never reads or writes its data: a namespace, an index or key prefix, a
        schema, a scratch file. ``name`` is new for every call: 1-40 lower-case ASCII letters,
        digits and ``-``, starting with a letter (``conformance-1f2e3d4c-0042``); build the area's
        identity from it. Keep every other part of ``url`` (server, credentials, TLS, timeouts),
        so the tests run with the user's settings. No I/O: the first handle initialised on
        ``IsolatedArea.url`` creates the area, and ``IsolatedArea.remove`` deletes it. A store
        that returns None is run by ``confstore conformance`` only with ``--allow-shared``.
        Raise PermissionDeniedError when ``url`` visibly opens a read-only store (SQLite's
        ``mode=ro``); a server that refuses writes says so when the area is first written.
        """
        return None

    async def backend_version(self) -> str | None:
        """What the backend says it is, name and version (``"PostgreSQL 18.1"``, ``"Vespa 8.600.12"``),
        or None when it does not say (the default). Needs an initialised store; may raise
        BackendError. ``confstore conformance`` prints it in its report."""
        return None

    @abc.abstractmethod
    async def initialize(self) -> None:
        """Create tables, indexes or schemas, or check them; idempotent."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections and sessions; idempotent. The store may be initialised again."""

    async def __aenter__(self) -> Self:
        await self.initialize()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def set_config(
        self,
        tenant_id: str,
        scope: ConfigScope | str,
        service: str,
        config_key: str,
        config_value: dict[str, Any],
        *,
        expected_version: int | None = None,
        updated_by: str | None = None,
        comment: str | None = None,
    ) -> ConfigEntry:
        """Append a new version of a config and return it.

        With ``expected_version=N`` the write happens only if the latest version is N (0: the key
        must not exist; a tombstoned key exists), else VersionConflictError and nothing is written.
        Raises InvalidIdentifierError or InvalidConfigError before any I/O.
        """
        key = validate_key(tenant_id, scope, service, config_key)
        value, value_json = encode_value(config_value, self.max_value_bytes)
        if expected_version is not None:
            validate_version(expected_version, name="expected_version", allow_zero=True)
        written = self._set_config(
            key,
            value,
            value_json,
            expected_version=expected_version,
            # Most writes give neither: no call for them (this is every store's write path).
            updated_by=None
            if updated_by is None
            else validate_optional_text("updated_by", updated_by),
            comment=None if comment is None else validate_optional_text("comment", comment),
        )
        # A write that completed at once (SQLite's lone writes on the loop) is its entry: no
        # coroutine to create and await for it.
        if isinstance(written, ConfigEntry):
            return written
        return await written

    async def get_config(
        self,
        tenant_id: str,
        scope: ConfigScope | str,
        service: str,
        config_key: str,
        version: int | None = None,
    ) -> ConfigEntry | None:
        """The latest live version, or exactly ``version`` (tombstones included).

        None when the key or that version does not exist, or (latest) when the key is deleted.
        """
        key = validate_key(tenant_id, scope, service, config_key)
        if version is not None:
            validate_version(version)
        return await self._get_config(key, version)

    async def get_config_history(
        self,
        tenant_id: str,
        scope: ConfigScope | str,
        service: str,
        config_key: str,
        limit: int = 10,
    ) -> list[ConfigEntry]:
        """Up to ``limit`` versions of a key, newest first, tombstones included."""
        key = validate_key(tenant_id, scope, service, config_key)
        return await self._get_config_history(key, validate_limit(limit))

    async def list_configs(
        self,
        tenant_id: str,
        scope: ConfigScope | str | None = None,
        service: str | None = None,
    ) -> list[ConfigEntry]:
        """The latest live version of each matching key, ordered by scope, service, config_key."""
        validate_identifier("tenant_id", tenant_id)
        checked_scope = None if scope is None else validate_scope(scope)
        if service is not None:
            validate_identifier("service", service)
        return await self._list_configs(tenant_id, checked_scope, service)

    async def delete_config(
        self,
        tenant_id: str,
        scope: ConfigScope | str,
        service: str,
        config_key: str,
        *,
        purge: bool = False,
        updated_by: str | None = None,
        comment: str | None = None,
    ) -> bool:
        """Delete a key: write a tombstone version, or with ``purge=True`` remove every version.

        Returns True if a live key was tombstoned or anything was purged. Deleting a key that is
        absent or already deleted writes nothing and returns False.
        """
        key = validate_key(tenant_id, scope, service, config_key)
        return await self._delete_config(
            key,
            purge=bool(purge),
            updated_by=validate_optional_text("updated_by", updated_by),
            comment=validate_optional_text("comment", comment),
        )

    async def list_tenants(self, *, include_deleted: bool = False) -> list[str]:
        """Tenants with at least one live key, sorted.

        With ``include_deleted=True``: every tenant with a stored version, also one whose keys
        are all deleted (its history is still there, e.g. for a migration). Purged keys count
        for nothing.
        """
        return await self._list_tenants(bool(include_deleted))

    async def iter_configs(
        self, tenant_id: str, *, include_history: bool = False
    ) -> AsyncIterator[ConfigEntry]:
        """Stream a tenant's entries in export order (scope, service, config_key, version).

        Without history: the latest live version of each key. With history: every version,
        tombstones included. Memory stays bounded however many versions there are.
        """
        validate_identifier("tenant_id", tenant_id)
        async for entry in self._iter_configs(tenant_id, bool(include_history)):
            yield entry

    async def export_configs(self, tenant_id: str, include_history: bool = False) -> dict[str, Any]:
        """The export document of a tenant (see schemas/export.schema.json)."""
        entries = [
            entry async for entry in self.iter_configs(tenant_id, include_history=include_history)
        ]
        return build_export_document(tenant_id, include_history, entries)

    async def write_export(
        self, tenant_id: str, stream: TextIO, *, include_history: bool = False
    ) -> int:
        """Write the export document of a tenant to ``stream`` as JSON; return the entry count.

        Entries are streamed (memory stays bounded however many versions there are) and written
        from a worker thread in chunks, so a slow file does not block the event loop.
        Exports are backups: secrets are kept intact.
        """
        count = 0
        async for chunk, written in self._export_text(tenant_id, include_history):
            await asyncio.to_thread(stream.write, chunk)
            count = written
        return count

    async def export_chunks(
        self, tenant_id: str, *, include_history: bool = False
    ) -> AsyncIterator[str]:
        """The export document of a tenant as JSON text, in chunks of about 64 KiB.

        The first chunk comes once the store has answered (so an outage raises before any text
        is produced), and memory stays bounded however many versions there are.
        """
        async for chunk, _ in self._export_text(tenant_id, include_history):
            yield chunk

    async def _export_text(
        self, tenant_id: str, include_history: bool
    ) -> AsyncIterator[tuple[str, int]]:
        """Chunks of the export document, each with the number of entries written so far."""
        validate_identifier("tenant_id", tenant_id)
        header = json.dumps(export_header(tenant_id, include_history), indent=2, ensure_ascii=False)
        chunk = [header[: -len("\n}")] + ',\n  "configs": [']
        pending = 0
        count = 0
        async for entry in self.iter_configs(tenant_id, include_history=include_history):
            text = json.dumps(entry.to_dict(), ensure_ascii=False)
            chunk.append((",\n    " if count else "\n    ") + text)
            pending += len(text)
            count += 1
            if pending >= _EXPORT_CHUNK_CHARACTERS:
                yield "".join(chunk), count
                chunk.clear()
                pending = 0
        chunk.append("\n  ]\n}\n")
        yield "".join(chunk), count

    async def import_configs(
        self,
        tenant_id: str,
        configs: Mapping[str, Any] | list[Any],
        *,
        mode: ImportMode = "restore",
    ) -> int:
        """Import an export document into ``tenant_id`` and return how many versions were written.

        restore: versions, timestamps and audit fields are kept; versions already stored with the
        same value are skipped (re-importing writes nothing); a stored version with another value
        raises ImportConflictError. append: each entry, in version order, becomes a new version.
        The whole document is validated first: ImportFormatError and nothing written if malformed.
        """
        validate_identifier("tenant_id", tenant_id)
        if mode not in IMPORT_MODES:
            raise InvalidConfigError(
                f"mode must be one of {', '.join(IMPORT_MODES)}, got {mode!r}", field="mode"
            )
        return await self._import_document(tenant_id, configs, mode)

    async def import_entries(
        self,
        tenant_id: str,
        entries: Iterable[Any] | AsyncIterable[Any],
        *,
        mode: ImportMode = "restore",
    ) -> int:
        """Import entries given one at a time, as ``import_configs`` imports a document's list.

        ``entries`` is an iterable or async iterable of entries in their export form (the items
        of an export document's ``configs``), for example what ``ExportFileReader.entries()``
        reads from a file. The rules are import_configs' rules: each entry is validated and
        moved into ``tenant_id``; a malformed entry or a version given twice raises
        ImportFormatError and a restore conflict ImportConflictError, and then nothing is
        written. Entries may come in any order. An exception raised by ``entries`` itself
        propagates as it is, and writes nothing either. Returns how many versions were written.

        Memory depends on the store: SQLite writes entries as they come inside one transaction,
        so it stays bounded however many there are; the default collects them first.
        """
        validate_identifier("tenant_id", tenant_id)
        if mode not in IMPORT_MODES:
            raise InvalidConfigError(
                f"mode must be one of {', '.join(IMPORT_MODES)}, got {mode!r}", field="mode"
            )
        return await self._import_raw_entries(tenant_id, entries, mode)

    @abc.abstractmethod
    async def get_stats(self) -> dict[str, Any]:
        """Counts for operators: ``total_configs`` (live keys), ``total_versions`` (all stored
        versions, tombstones included), ``total_tenants`` (tenants with a live key),
        ``configs_per_scope`` ({scope value: live keys}, every scope present) and ``backend``."""

    @abc.abstractmethod
    async def health_check(self) -> bool:
        """True when the backend answers. Never raises; bounded by a timeout."""

    async def changes_since(
        self, cursor: str | None = None, *, limit: int = DEFAULT_CHANGE_LIMIT
    ) -> ChangeBatch:
        """Committed writes after ``cursor`` (None: from the beginning), oldest first.

        Every committed write, from any handle, process or host, appears at least once, in version
        order per key. Pass the returned ``cursor`` back to continue; ``has_more`` says another
        page is ready now. Raises InvalidConfigError for a cursor this store did not issue, and
        CursorExpiredError for one older than what the store still keeps.
        """
        return await self._changes_since(cursor, validate_limit(limit))

    async def wait_for_changes(self, cursor: str | None, timeout: float) -> None:
        """Return once a write after ``cursor`` may have been committed, or after ``timeout`` s.

        Followers of the feed (``ConfigManager``, ``confstore watch``) call it between
        ``changes_since`` polls. Waking without a change is allowed; sleeping past a change for
        longer than ``timeout`` is not. The default sleeps ``timeout``; a backend that can be told
        of commits (LISTEN/NOTIFY, a watch stream, server-sent events) overrides it to return at
        once. May raise BackendError; a follower treats that like a failed poll.
        """
        await asyncio.sleep(timeout)

    async def prune(
        self,
        *,
        keep_last: int | None = None,
        older_than: timedelta | float | str | None = None,
        deleted_older_than: timedelta | float | str | None = None,
        tenant_id: str | None = None,
        dry_run: bool = False,
        policy: RetentionPolicy | None = None,
    ) -> PruneResult:
        """Remove old versions (all tenants, or ``tenant_id``'s) and report what went.

        A version is kept when it is one of its key's ``keep_last`` newest or was written less
        than ``older_than`` ago (a timedelta, seconds, or text like ``90d``); the latest version
        of a key is never removed. A key whose latest version is a tombstone written
        ``deleted_older_than`` ago or earlier is removed entirely. Version numbers are never
        reused: the next write of a pruned or purged key continues after its last version.
        Instead of limits, ``policy`` (a RetentionPolicy, with per-tenant and per-scope
        overrides) may be given; given neither, the store's ``retention`` policy applies.
        ``dry_run=True`` reports what would go and changes nothing. Raises InvalidConfigError
        for bad limits, limits and a policy together, or nothing to prune by, and
        UnsupportedOperationError when the store does not declare ``capabilities.retention``.
        """
        if tenant_id is not None:
            validate_identifier("tenant_id", tenant_id)
        given = RetentionRule.parse(keep_last, older_than, deleted_older_than)
        if policy is not None and not isinstance(policy, RetentionPolicy):
            raise InvalidConfigError("policy must be a RetentionPolicy", field="policy")
        if policy is not None and not given.is_empty:
            raise InvalidConfigError("give limits or a policy, not both", field="policy")
        if not given.is_empty:
            policy = RetentionPolicy(given)
        policy = policy or self.retention
        if policy is None or all(rule.is_empty for rule in policy.rules()):
            raise InvalidConfigError(
                "prune needs keep_last, older_than or deleted_older_than, or a retention "
                "policy (policy=, or store.retention)",
                field="keep_last",
            )
        if not self.capabilities.retention:
            raise UnsupportedOperationError(
                f"the {self.backend_name} store does not support retention (prune)"
            )
        return await self._prune(policy, tenant_id, bool(dry_run))

    async def _prune(
        self, policy: RetentionPolicy, tenant_id: str | None, dry_run: bool
    ) -> PruneResult:
        """Apply ``policy`` (limits validated) to every key of ``tenant_id`` (None: every tenant).

        This default plans from ``iter_configs`` with ``plan_key_prune`` and removes through
        ``_remove_versions``, one key at a time, so a backend needs only that primitive; a
        backend that can do it in bulk overrides this.
        """
        now = utc_now()
        tenants = [tenant_id] if tenant_id is not None else await self._list_tenants(True)
        report: list[KeyPrune] = []
        for tenant in tenants:
            key: ConfigKey | None = None
            stored: list[VersionInfo] = []
            async for entry in self._iter_configs(tenant, True):
                if entry.key != key:
                    await self._prune_key(key, stored, policy, now, dry_run, report)
                    key, stored = entry.key, []
                stored.append(VersionInfo(entry.version, entry.updated_at, entry.deleted))
            await self._prune_key(key, stored, policy, now, dry_run, report)
        return PruneResult(tuple(report), dry_run)

    async def _prune_key(
        self,
        key: ConfigKey | None,
        stored: list[VersionInfo],
        policy: RetentionPolicy,
        now: datetime,
        dry_run: bool,
        report: list[KeyPrune],
    ) -> None:
        if key is None:
            return
        planned, versions = plan_key_prune(
            key, stored, policy.rule_for(key), now, retire=self._retires_deleted_keys
        )
        if planned is None:
            return
        if not dry_run:
            latest = stored[-1].version
            if not await self._remove_versions(key, versions, purge=planned.purged, latest=latest):
                return
        report.append(planned)

    async def _remove_versions(
        self, key: ConfigKey, versions: list[int], *, purge: bool, latest: int
    ) -> bool:
        """Remove ``versions`` of ``key`` (never its latest, ``latest``); with ``purge`` the
        key's every version, only if ``latest`` is still its latest (a tombstone), remembering
        ``latest`` so the next write is ``latest + 1``. False when the key changed meanwhile
        and nothing was removed. Stores that declare ``capabilities.retention`` implement it
        (or override ``_prune``)."""
        raise UnsupportedOperationError(
            f"the {self.backend_name} store does not support retention (prune)"
        )

    @abc.abstractmethod
    async def current_cursor(self) -> str:
        """A cursor at the present end of the change feed: changes_since(it) reports only later writes."""

    @abc.abstractmethod
    def _set_config(
        self,
        key: ConfigKey,
        value: dict[str, Any],
        value_json: str,
        *,
        expected_version: int | None,
        updated_by: str | None,
        comment: str | None,
    ) -> ConfigEntry | Awaitable[ConfigEntry]:
        """Append the next version of ``key`` (value already validated, ``value_json`` its JSON).

        The version must be unique even with concurrent writers on other handles and hosts:
        latest + 1, and ``created_at`` taken from version 1 (now for a new key). Honour
        ``expected_version`` atomically with the write, raising VersionConflictError(expected, actual).
        An ``async def`` (an awaitable of the entry) is the usual form; a store whose write can
        complete without waiting may return the entry itself, already committed.
        """

    @abc.abstractmethod
    async def _get_config(self, key: ConfigKey, version: int | None) -> ConfigEntry | None:
        """Latest version unless it is a tombstone (then None), or exactly ``version``."""

    @abc.abstractmethod
    async def _get_config_history(self, key: ConfigKey, limit: int) -> list[ConfigEntry]:
        """Up to ``limit`` versions, newest first, tombstones included."""

    @abc.abstractmethod
    async def _list_configs(
        self, tenant_id: str, scope: ConfigScope | None, service: str | None
    ) -> list[ConfigEntry]:
        """Latest live version of each matching key, ordered by scope, service, config_key."""

    @abc.abstractmethod
    async def _delete_config(
        self, key: ConfigKey, *, purge: bool, updated_by: str | None, comment: str | None
    ) -> bool:
        """Tombstone (a new version, empty value, ``deleted=True``) if the key is live, or purge
        every version. True if something was deleted or purged; must not race with writers."""

    @abc.abstractmethod
    async def _list_tenants(self, include_deleted: bool) -> list[str]:
        """See list_tenants: tenants with a live key, or with any stored version, sorted."""

    @abc.abstractmethod
    def _iter_configs(self, tenant_id: str, include_history: bool) -> AsyncIterator[ConfigEntry]:
        """An async generator of entries in export order (see iter_configs)."""

    @abc.abstractmethod
    async def _import_entries(
        self, tenant_id: str, entries: list[ConfigEntry], mode: ImportMode
    ) -> int:
        """Write validated entries (already moved into ``tenant_id``, ordered by key and version).

        restore: use confstore's ``plan_restore`` per key, then write what it returns with the
        entries' own versions and timestamps; conflicts found before anything is written.
        append: each entry becomes latest + 1 with the current time. Return versions written.
        """

    async def _import_document(self, tenant_id: str, document: object, mode: ImportMode) -> int:
        """Check and write ``import_configs``' document (``tenant_id`` and ``mode`` are valid).

        The default validates the whole document into entries (``parse_import_document``), then
        hands them to ``_import_entries``. A backend may override it to check the document into
        rows instead (``import_document_rows``: the same checks, errors and order), as SQLite
        does; either way nothing is written unless every entry is valid.
        """
        entries = parse_import_document(tenant_id, document, max_value_bytes=self.max_value_bytes)
        if not entries:
            return 0
        return await self._import_entries(tenant_id, entries, mode)

    async def _import_raw_entries(
        self, tenant_id: str, entries: Iterable[Any] | AsyncIterable[Any], mode: ImportMode
    ) -> int:
        """Check and write ``import_entries``' raw entries (``tenant_id`` and ``mode`` are valid).

        The default checks them one at a time (``checked_entries``) into ``_import_stream``; a
        backend may override it to check and write them a list of rows at a time
        (``checked_row_chunks``), as SQLite does.
        """
        checked = checked_entries(tenant_id, entries, self.max_value_bytes)
        return await self._import_stream(tenant_id, checked, mode)

    async def _import_stream(
        self, tenant_id: str, entries: AsyncIterator[ConfigEntry], mode: ImportMode
    ) -> int:
        """Write validated entries (already moved into ``tenant_id``) as ``entries`` yields them.

        ``entries`` comes in any order and raises ImportFormatError when a later entry is bad;
        then nothing may be written. Two entries may name the same version: that is an
        ImportFormatError too. Restore and append follow ``_import_entries``. A backend with
        transactions overrides this to write as entries arrive and roll back on any error (SQLite
        does), so memory stays bounded. This default collects every entry first, checks for
        versions given twice, and hands them to ``_import_entries`` ordered by key and version.
        """
        collected = ordered_entries([entry async for entry in entries])
        if not collected:
            return 0
        return await self._import_entries(tenant_id, collected, mode)

    @abc.abstractmethod
    async def _changes_since(self, cursor: str | None, limit: int) -> ChangeBatch:
        """See changes_since; ``limit`` is already validated."""
