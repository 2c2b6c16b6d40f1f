"""MemoryConfigStore: the whole contract in process memory; the reference implementation.

``memory://`` gives a private store; ``memory://NAME`` a store shared by every handle opened with
that name in this process (it lives until the process ends), which is how tests model several hosts.
"""

from __future__ import annotations

import bisect
import copy
import itertools
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from .._errors import CursorExpiredError, VersionConflictError
from .._export import ImportMode, plan_restore
from .._models import (
    ChangeBatch,
    ChangeKind,
    ConfigChange,
    ConfigEntry,
    ConfigKey,
    ConfigScope,
    utc_now,
)
from .._options import StoreOptions
from .._store import ConfigStore, IsolatedArea, StoreCapabilities
from .._url import StoreURL
from .._validation import parse_sequence_cursor, validate_version

# The change feed keeps at least this many of the newest changes (and at most twice as many).
DEFAULT_FEED_MAX_CHANGES = 100_000


@dataclass
class _MemoryData:
    versions: dict[ConfigKey, list[ConfigEntry]] = field(default_factory=dict)
    # Keys removed by retention, with their last version: the next write continues after it.
    retired: dict[ConfigKey, int] = field(default_factory=dict)
    changes: list[ConfigChange] = field(default_factory=list)
    # Changes dropped from the front of ``changes``: a cursor is an index into the whole feed.
    changes_dropped: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class MemoryConfigStore(ConfigStore):
    """Keeps every version in memory. Not persistent unless named (then it lives per process)."""

    backend_name: ClassVar[str] = "memory"
    _shared: ClassVar[dict[str, _MemoryData]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        name: str | None = None,
        *,
        max_value_bytes: int = 1024 * 1024,
        feed_max_changes: int = DEFAULT_FEED_MAX_CHANGES,
    ) -> None:
        super().__init__(max_value_bytes=max_value_bytes)
        self.feed_max_changes = validate_version(feed_max_changes, name="feed_max_changes")
        self.name = name or None
        if self.name is None:
            self._data = _MemoryData()
        else:
            with self._shared_lock:
                self._data = self._shared.setdefault(self.name, _MemoryData())

    @classmethod
    def from_url(cls, url: StoreURL, **options: Any) -> MemoryConfigStore:
        reader = StoreOptions("memory", options)
        max_value_bytes = reader.take_int("max_value_bytes", 1024 * 1024, minimum=1)
        feed_max_changes = reader.take_int("feed_max_changes", DEFAULT_FEED_MAX_CHANGES, minimum=1)
        reader.finish()
        return cls(
            url.host or url.path or None,
            max_value_bytes=max_value_bytes,
            feed_max_changes=feed_max_changes,
        )

    @property
    def capabilities(self) -> StoreCapabilities:
        named = self.name is not None
        return StoreCapabilities(persistent=named, shared=named, retention=True)

    @classmethod
    def isolated_area(cls, url: StoreURL, name: str) -> IsolatedArea:
        """``memory://NAME``: a new name; ``memory://`` is private to each handle anyway."""
        if not (url.host or url.path):
            return IsolatedArea(url, "a private memory store per handle")

        async def remove() -> None:
            with cls._shared_lock:
                cls._shared.pop(name, None)

        return IsolatedArea(replace(url, host=name, path=""), f"memory store {name!r}", remove)

    async def initialize(self) -> None:
        return None

    async def close(self) -> None:
        return None

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
        with self._data.lock:
            history = self._data.versions.get(key, [])
            latest = history[-1].version if history else 0
            if expected_version is not None and expected_version != latest:
                raise VersionConflictError(expected_version, latest, key=key)
            return _detached(self._append(key, value, updated_by, comment, deleted=False))

    async def _get_config(self, key: ConfigKey, version: int | None) -> ConfigEntry | None:
        history = self._data.versions.get(key)
        if not history:
            return None
        if version is None:
            latest = history[-1]
            return None if latest.deleted else _detached(latest)
        index = bisect.bisect_left(history, version, key=lambda entry: entry.version)
        if index < len(history) and history[index].version == version:
            return _detached(history[index])
        return None

    async def _get_config_history(self, key: ConfigKey, limit: int) -> list[ConfigEntry]:
        history = self._data.versions.get(key, [])
        return [_detached(entry) for entry in history[::-1][:limit]]

    async def _list_configs(
        self, tenant_id: str, scope: ConfigScope | None, service: str | None
    ) -> list[ConfigEntry]:
        return [
            _detached(entry)
            for key, entry in self._latest_live()
            if key.tenant_id == tenant_id
            and (scope is None or key.scope == scope)
            and (service is None or key.service == service)
        ]

    async def _delete_config(
        self, key: ConfigKey, *, purge: bool, updated_by: str | None, comment: str | None
    ) -> bool:
        with self._data.lock:
            history = self._data.versions.get(key)
            if not history:
                return False
            if purge:
                del self._data.versions[key]
                self._data.retired.pop(key, None)
                self._record(ConfigChange(key, ChangeKind.PURGE, history[-1].version))
                return True
            if history[-1].deleted:
                return False
            self._append(key, {}, updated_by, comment, deleted=True)
            return True

    async def _list_tenants(self, include_deleted: bool) -> list[str]:
        if include_deleted:
            return sorted(
                {key.tenant_id for key, history in list(self._data.versions.items()) if history}
            )
        return sorted({key.tenant_id for key, _ in self._latest_live()})

    async def _iter_configs(
        self, tenant_id: str, include_history: bool
    ) -> AsyncIterator[ConfigEntry]:
        keys = sorted(key for key in list(self._data.versions) if key.tenant_id == tenant_id)
        for key in keys:
            history = list(self._data.versions.get(key, []))
            if include_history:
                for entry in history:
                    yield _detached(entry)
            elif history and not history[-1].deleted:
                yield _detached(history[-1])

    async def _import_entries(
        self, tenant_id: str, entries: list[ConfigEntry], mode: ImportMode
    ) -> int:
        with self._data.lock:
            if mode == "append":
                for entry in entries:
                    self._append(
                        entry.key,
                        entry.config_value,
                        entry.updated_by,
                        entry.comment,
                        deleted=entry.deleted,
                    )
                return len(entries)
            planned = []
            for key, group in itertools.groupby(entries, key=lambda entry: entry.key):
                stored = {entry.version: entry for entry in self._data.versions.get(key, [])}
                planned.extend(plan_restore(group, stored))
            for entry in planned:
                history = self._data.versions.setdefault(entry.key, [])
                bisect.insort(history, entry, key=lambda stored: stored.version)
                kind = ChangeKind.DELETE if entry.deleted else ChangeKind.SET
                self._record(ConfigChange(entry.key, kind, entry.version))
            return len(planned)

    async def get_stats(self) -> dict[str, Any]:
        live = [key for key, _ in self._latest_live()]
        per_scope = {scope.value: 0 for scope in ConfigScope}
        for key in live:
            per_scope[key.scope.value] += 1
        return {
            "backend": self.backend_name,
            "total_configs": len(live),
            "total_versions": sum(len(history) for history in list(self._data.versions.values())),
            "total_tenants": len({key.tenant_id for key in live}),
            "configs_per_scope": per_scope,
        }

    async def health_check(self) -> bool:
        return True

    async def current_cursor(self) -> str:
        with self._data.lock:
            return str(self._data.changes_dropped + len(self._data.changes))

    async def _changes_since(self, cursor: str | None, limit: int) -> ChangeBatch:
        with self._data.lock:
            dropped = self._data.changes_dropped
            start = dropped if cursor is None else parse_sequence_cursor(cursor, "memory")
            if start < dropped:
                raise CursorExpiredError(
                    f"cursor {cursor} is older than the {len(self._data.changes)} changes the "
                    "memory store keeps"
                )
            changes = self._data.changes[start - dropped : start - dropped + limit]
            end = start + len(changes)
            more = end < dropped + len(self._data.changes)
        return ChangeBatch(tuple(changes), str(end), has_more=more)

    async def _remove_versions(
        self, key: ConfigKey, versions: list[int], *, purge: bool, latest: int
    ) -> bool:
        with self._data.lock:
            history = self._data.versions.get(key)
            if not history or (purge and history[-1].version != latest):
                return False
            if purge:
                del self._data.versions[key]
                self._data.retired[key] = latest
                self._record(ConfigChange(key, ChangeKind.PURGE, latest))
                return True
            removed = set(versions) - {history[-1].version}
            history[:] = [entry for entry in history if entry.version not in removed]
            return True

    def _record(self, change: ConfigChange) -> None:
        """Append to the change feed, dropping the oldest changes beyond the bound; the caller
        holds the lock."""
        changes = self._data.changes
        changes.append(change)
        if len(changes) > 2 * self.feed_max_changes:
            excess = len(changes) - self.feed_max_changes
            del changes[:excess]
            self._data.changes_dropped += excess

    def _append(
        self,
        key: ConfigKey,
        value: dict[str, Any],
        updated_by: str | None,
        comment: str | None,
        *,
        deleted: bool,
    ) -> ConfigEntry:
        """Write latest + 1; the caller holds the lock."""
        history = self._data.versions.setdefault(key, [])
        retired = 0 if history else self._data.retired.pop(key, 0)
        now = utc_now()
        entry = ConfigEntry(
            tenant_id=key.tenant_id,
            scope=key.scope,
            service=key.service,
            config_key=key.config_key,
            config_value=value,
            version=history[-1].version + 1 if history else retired + 1,
            created_at=history[0].created_at if history else now,
            updated_at=now,
            updated_by=updated_by,
            comment=comment,
            deleted=deleted,
        )
        history.append(entry)
        kind = ChangeKind.DELETE if deleted else ChangeKind.SET
        self._record(ConfigChange(key, kind, entry.version))
        return entry

    def _latest_live(self) -> list[tuple[ConfigKey, ConfigEntry]]:
        return sorted(
            (key, history[-1])
            for key, history in list(self._data.versions.items())
            if history and not history[-1].deleted
        )


def _detached(entry: ConfigEntry) -> ConfigEntry:
    """A copy whose value the caller may change without changing what is stored."""
    return replace(entry, config_value=copy.deepcopy(entry.config_value))
