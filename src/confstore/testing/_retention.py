"""Retention: ``prune()`` keeps the last N versions and/or the recent ones, never the latest.

These tests run when the store declares ``capabilities.retention``, except the two that check
that bad limits are refused before any I/O, which every store must pass. Old versions are made
with a restore import that carries old timestamps, so no test waits for time to pass.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from .._errors import InvalidConfigError
from .._models import ConfigScope
from .._retention import RetentionPolicy, RetentionRule
from .._store import ConfigStore
from ._base import (
    OTHER_TENANT,
    TENANT,
    StoreTestsBase,
    delete,
    history,
    identity,
    read,
    store_state,
    versions,
    write,
)

LONG_AGO = datetime(2020, 1, 1, tzinfo=UTC)


def require_retention(store: ConfigStore) -> None:
    if not store.capabilities.retention:
        pytest.skip(f"{type(store).__name__} declares capabilities.retention=False: no prune()")


async def seed_old_versions(store: ConfigStore, count: int, *, tombstone: bool = False) -> None:
    """Versions 1..count of the default key, written in 2020, by a restore import; with
    ``tombstone`` the last of them is a delete."""
    tenant_id, scope, service, config_key = identity()
    entries = []
    for version in range(1, count + 1):
        deleted = tombstone and version == count
        entries.append(
            {
                "tenant_id": tenant_id,
                "scope": ConfigScope(scope).value,
                "service": service,
                "config_key": config_key,
                "config_value": {} if deleted else {"n": version},
                "version": version,
                "created_at": LONG_AGO.isoformat(),
                "updated_at": (LONG_AGO + timedelta(hours=version)).isoformat(),
                "deleted": deleted,
            }
        )
    assert await store.import_configs(tenant_id, {"configs": entries}) == count


class RetentionTests(StoreTestsBase):
    """prune(): what it keeps, what it removes, what it reports, and numbering after it."""

    @pytest.fixture
    def retention_store(self, config_store: ConfigStore) -> ConfigStore:
        """``config_store``, for a test that needs retention (skipped when it declares none)."""
        require_retention(config_store)
        return config_store

    async def test_keep_last_keeps_the_newest_versions(self, retention_store: ConfigStore) -> None:
        for n in range(6):
            await write(retention_store, {"n": n})
        result = await retention_store.prune(keep_last=2)
        assert versions(await history(retention_store)) == [6, 5]
        assert (result.versions_removed, result.dry_run) == (4, False)
        [key] = result.keys
        assert (key.versions, key.through_version, key.purged) == (4, 4, False)

    async def test_latest_version_is_never_removed(self, retention_store: ConfigStore) -> None:
        await write(retention_store, {"n": 1})
        await write(retention_store, {"n": 2})
        await retention_store.prune(keep_last=1, older_than=0)
        latest = await read(retention_store)
        assert latest is not None
        assert (latest.version, latest.config_value) == (2, {"n": 2})
        await retention_store.prune(older_than=0)
        assert versions(await history(retention_store)) == [2]

    async def test_older_than_removes_only_old_versions(self, retention_store: ConfigStore) -> None:
        await seed_old_versions(retention_store, 3)
        await write(retention_store, {"n": 4})
        await write(retention_store, {"n": 5})
        result = await retention_store.prune(older_than="30d")
        assert versions(await history(retention_store)) == [5, 4]
        assert result.versions_removed == 3

    async def test_a_version_either_limit_keeps_stays(self, retention_store: ConfigStore) -> None:
        await seed_old_versions(retention_store, 5)
        await write(retention_store, {"n": 6})
        await write(retention_store, {"n": 7})
        await retention_store.prune(keep_last=4, older_than=timedelta(days=1))
        # 6 and 7 are recent; 4 and 5 are among the last four.
        assert versions(await history(retention_store)) == [7, 6, 5, 4]

    async def test_dry_run_reports_what_would_go_and_changes_nothing(
        self, retention_store: ConfigStore
    ) -> None:
        for n in range(5):
            await write(retention_store, {"n": n})
        before = await store_state(retention_store)
        planned = await retention_store.prune(keep_last=2, dry_run=True)
        assert await store_state(retention_store) == before
        assert planned.dry_run is True
        done = await retention_store.prune(keep_last=2)
        assert planned.keys == done.keys
        assert planned.versions_removed == 3

    async def test_version_numbers_continue_after_a_prune(
        self, retention_store: ConfigStore
    ) -> None:
        for n in range(4):
            await write(retention_store, {"n": n})
        await retention_store.prune(keep_last=1)
        entry = await write(retention_store, {"n": "next"}, expected_version=4)
        assert entry.version == 5
        assert versions(await history(retention_store)) == [5, 4]
        assert await read(retention_store, version=2) is None

    async def test_history_shows_pruned_versions_by_where_it_starts(
        self, retention_store: ConfigStore
    ) -> None:
        for n in range(5):
            await write(retention_store, {"n": n})
        await retention_store.prune(keep_last=3)
        oldest = (await history(retention_store))[-1]
        assert oldest.version == 3
        assert oldest.created_at == (await read(retention_store)).created_at  # type: ignore[union-attr]

    async def test_stats_count_only_the_versions_kept(self, retention_store: ConfigStore) -> None:
        for n in range(5):
            await write(retention_store, {"n": n})
        await write(retention_store, {"n": 0}, config_key="other")
        await retention_store.prune(keep_last=2)
        stats = await retention_store.get_stats()
        assert (stats["total_versions"], stats["total_configs"]) == (3, 2)

    async def test_an_old_tombstone_purges_its_key_and_numbering_continues(
        self, retention_store: ConfigStore
    ) -> None:
        await seed_old_versions(retention_store, 3, tombstone=True)
        result = await retention_store.prune(deleted_older_than="30d")
        [key] = result.keys
        if not getattr(type(retention_store), "_retires_deleted_keys", True):
            # A store that cannot remember a removed key's last version keeps the tombstone.
            assert (key.purged, key.versions, key.through_version) == (False, 2, 2)
            assert versions(await history(retention_store)) == [3]
            assert (await write(retention_store, {"back": True})).version == 4
            return
        assert (key.purged, key.versions, key.through_version) == (True, 3, 3)
        assert await history(retention_store) == []
        assert await retention_store.list_tenants(include_deleted=True) == []
        entry = await write(retention_store, {"back": True}, expected_version=0)
        assert entry.version == 4
        assert entry.created_at >= datetime.now(UTC) - timedelta(minutes=10)

    async def test_a_recent_tombstone_is_kept(self, retention_store: ConfigStore) -> None:
        await write(retention_store)
        await delete(retention_store)
        result = await retention_store.prune(deleted_older_than="30d")
        assert result.keys == ()
        assert versions(await history(retention_store)) == [2, 1]

    async def test_a_live_key_is_never_purged(self, retention_store: ConfigStore) -> None:
        await seed_old_versions(retention_store, 2)
        await retention_store.prune(deleted_older_than=0)
        assert versions(await history(retention_store)) == [2, 1]

    async def test_prune_of_one_tenant_leaves_the_others(
        self, retention_store: ConfigStore
    ) -> None:
        for n in range(3):
            await write(retention_store, {"n": n})
            await write(retention_store, {"n": n}, tenant_id=OTHER_TENANT)
        result = await retention_store.prune(keep_last=1, tenant_id=TENANT)
        assert {key.key.tenant_id for key in result.keys} == {TENANT}
        assert versions(await history(retention_store)) == [3]
        assert versions(await history(retention_store, tenant_id=OTHER_TENANT)) == [3, 2, 1]

    async def test_store_policy_applies_its_most_specific_override(
        self, retention_store: ConfigStore
    ) -> None:
        for n in range(4):
            await write(retention_store, {"n": n})
            await write(retention_store, {"n": n}, scope=ConfigScope.AGENT)
            await write(retention_store, {"n": n}, tenant_id=OTHER_TENANT)
        retention_store.retention = RetentionPolicy(
            RetentionRule(keep_last=1),
            tenants={OTHER_TENANT: RetentionRule(keep_last=3)},
            scopes={ConfigScope.AGENT: RetentionRule(keep_last=2)},
        )
        try:
            await retention_store.prune()
        finally:
            retention_store.retention = None
        assert versions(await history(retention_store)) == [4]
        assert versions(await history(retention_store, scope=ConfigScope.AGENT)) == [4, 3]
        assert versions(await history(retention_store, tenant_id=OTHER_TENANT)) == [4, 3, 2]

    async def test_prune_with_nothing_to_prune_by_is_an_error(
        self, config_store: ConfigStore
    ) -> None:
        await write(config_store)
        with pytest.raises(InvalidConfigError):
            await config_store.prune()

    async def test_bad_limits_are_refused_before_anything_goes(
        self, config_store: ConfigStore
    ) -> None:
        await write(config_store)
        await write(config_store)
        bad: list[dict[str, Any]] = [
            {"keep_last": 0},
            {"keep_last": -1},
            {"keep_last": True},
            {"older_than": "soon"},
            {"older_than": -5},
            {"deleted_older_than": "3 fortnights"},
        ]
        for limits in bad:
            with pytest.raises(InvalidConfigError):
                await config_store.prune(**limits)
        assert versions(await history(config_store)) == [2, 1]

    async def test_prune_of_an_empty_store_reports_nothing(
        self, retention_store: ConfigStore
    ) -> None:
        result = await retention_store.prune(keep_last=1, deleted_older_than=0)
        assert (result.keys, result.versions_removed, result.keys_purged) == ((), 0, 0)
