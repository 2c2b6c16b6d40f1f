"""Stores that each break one clause of the contract, to show the conformance suite catches them.

Each one subclasses the reference MemoryConfigStore and breaks exactly one thing.
"""

from __future__ import annotations

import asyncio
import bisect
import copy
import itertools
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from confstore import (
    ChangeBatch,
    ChangeKind,
    ConfigChange,
    ConfigEntry,
    ConfigKey,
    ConfigScope,
    MemoryConfigStore,
    VersionConflictError,
    plan_restore,
)


class ReusedVersionsStore(MemoryConfigStore):
    """Reads the latest version, yields, then writes latest + 1: concurrent writers collide."""

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
        history = self._data.versions.get(key, [])
        latest = history[-1].version if history else 0
        if expected_version is not None and expected_version != latest:
            raise VersionConflictError(expected_version, latest, key=key)
        await asyncio.sleep(0)  # another writer reads the same latest version here
        now = datetime.now(UTC)
        entry = ConfigEntry(
            *(key.tenant_id, key.scope, key.service, key.config_key),
            config_value=value,
            version=latest + 1,
            created_at=history[0].created_at if history else now,
            updated_at=now,
            updated_by=updated_by,
            comment=comment,
        )
        self._data.versions.setdefault(key, []).append(entry)
        self._data.changes.append(ConfigChange(key, ChangeKind.SET, entry.version))
        return _detached(entry)


def _detached(entry: ConfigEntry) -> ConfigEntry:
    return replace(entry, config_value=copy.deepcopy(entry.config_value))


class TenantPrefixLeakStore(MemoryConfigStore):
    """Lists a tenant's configs by prefix, so "acme" also lists "acme2" and "acme:eu"."""

    async def _list_configs(
        self, tenant_id: str, scope: ConfigScope | None, service: str | None
    ) -> list[ConfigEntry]:
        return [
            _detached(entry)
            for key, entry in self._latest_live()
            if key.tenant_id.startswith(tenant_id)
            and (scope is None or key.scope == scope)
            and (service is None or key.service == service)
        ]


class OldestFirstHistoryStore(MemoryConfigStore):
    """Returns history oldest first."""

    async def _get_config_history(self, key: ConfigKey, limit: int) -> list[ConfigEntry]:
        return list(reversed(await super()._get_config_history(key, limit)))


class IgnoredTombstoneStore(MemoryConfigStore):
    """A latest read skips the tombstone and returns the last live version."""

    async def _get_config(self, key: ConfigKey, version: int | None) -> ConfigEntry | None:
        if version is None:
            live = [entry for entry in self._data.versions.get(key, []) if not entry.deleted]
            return _detached(live[-1]) if live else None
        return await super()._get_config(key, version)


class IgnoredExpectedVersionStore(MemoryConfigStore):
    """Writes whatever expected_version says."""

    async def _set_config(self, key: ConfigKey, *args: Any, **options: Any) -> ConfigEntry:
        return await super()._set_config(key, *args, **{**options, "expected_version": None})


class NonIdempotentImportStore(MemoryConfigStore):
    """A restore rewrites versions that are already stored and counts them as written."""

    async def _import_entries(self, tenant_id: str, entries: list[ConfigEntry], mode: Any) -> int:
        if mode == "append":
            return await super()._import_entries(tenant_id, entries, mode)
        for key, group in itertools.groupby(entries, key=lambda entry: entry.key):
            incoming = list(group)
            stored = {entry.version: entry for entry in self._data.versions.get(key, [])}
            plan_restore(incoming, stored)
            merged = {**stored, **{entry.version: entry for entry in incoming}}
            self._data.versions[key] = [merged[version] for version in sorted(merged)]
            for entry in incoming:
                self._data.changes.append(ConfigChange(key, ChangeKind.SET, entry.version))
        return len(entries)


class WrongStatsStore(MemoryConfigStore):
    """Counts deleted keys as configs."""

    async def get_stats(self) -> dict[str, Any]:
        stats = await super().get_stats()
        stats["total_configs"] = len(self._data.versions)
        return stats


class LatestForVersionedReadStore(MemoryConfigStore):
    """A read of a specific version returns the latest one."""

    async def _get_config(self, key: ConfigKey, version: int | None) -> ConfigEntry | None:
        return await super()._get_config(key, None)


class LostCreatedAtStore(MemoryConfigStore):
    """Gives every version its own created_at."""

    def _append(
        self,
        key: ConfigKey,
        value: dict[str, Any],
        updated_by: str | None,
        comment: str | None,
        *,
        deleted: bool,
    ) -> ConfigEntry:
        entry = super()._append(key, value, updated_by, comment, deleted=deleted)
        fixed = replace(entry, created_at=entry.updated_at)
        self._data.versions[key][-1] = fixed
        return fixed


class AttachedEntriesStore(MemoryConfigStore):
    """Hands out the stored entry itself, so a caller's change to its value changes the store."""

    async def _get_config(self, key: ConfigKey, version: int | None) -> ConfigEntry | None:
        found = await super()._get_config(key, version)
        if found is None:
            return None
        return next(entry for entry in self._data.versions[key] if entry.version == found.version)


class UnsortedTenantsStore(MemoryConfigStore):
    """Lists tenants in the order they first wrote."""

    async def _list_tenants(self, include_deleted: bool) -> list[str]:
        live = set(await super()._list_tenants(include_deleted))
        ordered = dict.fromkeys(key.tenant_id for key in self._data.versions)
        return [tenant_id for tenant_id in ordered if tenant_id in live]


class SilentPurgeStore(MemoryConfigStore):
    """Purges without telling the change feed."""

    async def _delete_config(
        self, key: ConfigKey, *, purge: bool, updated_by: str | None, comment: str | None
    ) -> bool:
        if purge and key in self._data.versions:
            del self._data.versions[key]
            return True
        return await super()._delete_config(
            key, purge=purge, updated_by=updated_by, comment=comment
        )


class NaiveTimestampStore(MemoryConfigStore):
    """Returns naive timestamps from reads."""

    async def _get_config(self, key: ConfigKey, version: int | None) -> ConfigEntry | None:
        entry = await super()._get_config(key, version)
        if entry is None:
            return None
        return replace(
            entry,
            created_at=entry.created_at.replace(tzinfo=None),
            updated_at=entry.updated_at.replace(tzinfo=None),
        )


class PartialImportStore(MemoryConfigStore):
    """A restore writes key by key, so a conflict on a later key leaves earlier keys written."""

    async def _import_entries(self, tenant_id: str, entries: list[ConfigEntry], mode: Any) -> int:
        if mode == "append":
            return await super()._import_entries(tenant_id, entries, mode)
        written = 0
        for key, group in itertools.groupby(entries, key=lambda entry: entry.key):
            stored = {entry.version: entry for entry in self._data.versions.get(key, [])}
            for entry in plan_restore(group, stored):
                history = self._data.versions.setdefault(key, [])
                bisect.insort(history, entry, key=lambda kept: kept.version)
                self._data.changes.append(ConfigChange(key, ChangeKind.SET, entry.version))
                written += 1
        return written


class EmptyValueIsAbsentStore(MemoryConfigStore):
    """Mistakes a live empty value for a deleted key."""

    async def _get_config(self, key: ConfigKey, version: int | None) -> ConfigEntry | None:
        entry = await super()._get_config(key, version)
        if version is None and entry is not None and not entry.config_value:
            return None
        return entry


class NewestFirstFeedStore(MemoryConfigStore):
    """Reports each page of the change feed newest first."""

    async def _changes_since(self, cursor: str | None, limit: int) -> ChangeBatch:
        batch = await super()._changes_since(cursor, limit)
        return replace(batch, changes=tuple(reversed(batch.changes)))


class CachingHandleStore(MemoryConfigStore):
    """Each handle caches the latest entry it wrote or read, and misses other handles' writes."""

    def __init__(self, name: str | None = None, **options: Any) -> None:
        super().__init__(name, **options)
        self._cache: dict[ConfigKey, ConfigEntry] = {}

    async def _set_config(self, key: ConfigKey, *args: Any, **kwargs: Any) -> ConfigEntry:
        entry = await super()._set_config(key, *args, **kwargs)
        self._cache[key] = _detached(entry)
        return entry

    async def _get_config(self, key: ConfigKey, version: int | None) -> ConfigEntry | None:
        if version is None and key in self._cache:
            return _detached(self._cache[key])
        entry = await super()._get_config(key, version)
        if version is None and entry is not None:
            self._cache[key] = _detached(entry)
        return entry

    async def _delete_config(self, key: ConfigKey, **options: Any) -> bool:
        self._cache.pop(key, None)
        return await super()._delete_config(key, **options)


class HandleLocalFeedStore(MemoryConfigStore):
    """Each handle's change feed reports only the writes made through that handle."""

    def __init__(self, name: str | None = None, **options: Any) -> None:
        super().__init__(name, **options)
        self._own_changes: set[int] = set()

    async def _set_config(self, *args: Any, **kwargs: Any) -> ConfigEntry:
        start = len(self._data.changes)
        entry = await super()._set_config(*args, **kwargs)
        self._remember_since(start)
        return entry

    async def _delete_config(self, *args: Any, **kwargs: Any) -> bool:
        start = len(self._data.changes)
        deleted = await super()._delete_config(*args, **kwargs)
        self._remember_since(start)
        return deleted

    async def _import_entries(self, *args: Any, **kwargs: Any) -> int:
        start = len(self._data.changes)
        written = await super()._import_entries(*args, **kwargs)
        self._remember_since(start)
        return written

    def _remember_since(self, start: int) -> None:
        self._own_changes.update(id(change) for change in self._data.changes[start:])

    async def _changes_since(self, cursor: str | None, limit: int) -> ChangeBatch:
        batch = await super()._changes_since(cursor, limit)
        own = tuple(change for change in batch.changes if id(change) in self._own_changes)
        return replace(batch, changes=own)


class FirstPageOnlyStore(MemoryConfigStore):
    """Lists only the first 10 matches, as a search backend does when not asked for more."""

    async def _list_configs(
        self, tenant_id: str, scope: ConfigScope | None, service: str | None
    ) -> list[ConfigEntry]:
        return (await super()._list_configs(tenant_id, scope, service))[:10]


@dataclass(frozen=True)
class BrokenStore:
    store_class: type[MemoryConfigStore]
    #: A test that must be among those failing: the one whose name states the broken clause.
    caught_by: str


BROKEN_STORES = [
    BrokenStore(ReusedVersionsStore, "test_concurrent_writers_on_one_key_get_every_version_once"),
    BrokenStore(TenantPrefixLeakStore, "test_list_configs_does_not_match_tenant_prefixes"),
    BrokenStore(OldestFirstHistoryStore, "test_history_is_newest_first"),
    BrokenStore(IgnoredTombstoneStore, "test_latest_read_of_a_deleted_key_is_none"),
    BrokenStore(IgnoredExpectedVersionStore, "test_stale_expected_version_conflicts"),
    BrokenStore(NonIdempotentImportStore, "test_reimporting_the_same_document_writes_nothing"),
    BrokenStore(WrongStatsStore, "test_stats_count_exactly"),
    BrokenStore(LatestForVersionedReadStore, "test_get_with_version_returns_that_version"),
    BrokenStore(LostCreatedAtStore, "test_created_at_is_kept_across_versions"),
    BrokenStore(AttachedEntriesStore, "test_returned_entries_are_detached"),
    BrokenStore(UnsortedTenantsStore, "test_list_tenants_is_sorted_and_unique"),
    BrokenStore(SilentPurgeStore, "test_feed_reports_a_purge"),
    BrokenStore(NaiveTimestampStore, "test_timestamps_are_utc_and_current"),
    BrokenStore(PartialImportStore, "test_conflicting_restore_raises_and_writes_nothing"),
    BrokenStore(EmptyValueIsAbsentStore, "test_empty_object_is_a_live_value"),
    BrokenStore(NewestFirstFeedStore, "test_feed_reports_every_write_in_order"),
    BrokenStore(CachingHandleStore, "test_peer_sees_a_delete"),
    BrokenStore(HandleLocalFeedStore, "test_change_feed_of_a_peer_sees_a_write"),
    BrokenStore(FirstPageOnlyStore, "test_listings_are_not_truncated"),
]
