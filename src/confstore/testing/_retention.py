"""Retention: ``prune()`` keeps the last N versions and/or the recent ones, never the latest.

These tests run when the store declares ``capabilities.retention``; old versions are made with a
restore import that carries old timestamps, so no test waits for time to pass.
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

    @pytest.fixture(autouse=True)
    def _needs_retention(self, config_store: ConfigStore) -> None:
        require_retention(config_store)

    async def test_keep_last_keeps_the_newest_versions(self, config_store: ConfigStore) -> None:
        for n in range(6):
            await write(config_store, {"n": n})
        result = await config_store.prune(keep_last=2)
        assert versions(await history(config_store)) == [6, 5]
        assert (result.versions_removed, result.dry_run) == (4, False)
        [key] = result.keys
        assert (key.versions, key.through_version, key.purged) == (4, 4, False)

    async def test_latest_version_is_never_removed(self, config_store: ConfigStore) -> None:
        await write(config_store, {"n": 1})
        await write(config_store, {"n": 2})
        await config_store.prune(keep_last=1, older_than=0)
        latest = await read(config_store)
        assert latest is not None
        assert (latest.version, latest.config_value) == (2, {"n": 2})
        await config_store.prune(older_than=0)
        assert versions(await history(config_store)) == [2]

    async def test_older_than_removes_only_old_versions(self, config_store: ConfigStore) -> None:
        await seed_old_versions(config_store, 3)
        await write(config_store, {"n": 4})
        await write(config_store, {"n": 5})
        result = await config_store.prune(older_than="30d")
        assert versions(await history(config_store)) == [5, 4]
        assert result.versions_removed == 3

    async def test_a_version_either_limit_keeps_stays(self, config_store: ConfigStore) -> None:
        await seed_old_versions(config_store, 5)
        await write(config_store, {"n": 6})
        await write(config_store, {"n": 7})
        await config_store.prune(keep_last=4, older_than=timedelta(days=1))
        # 6 and 7 are recent; 4 and 5 are among the last four.
        assert versions(await history(config_store)) == [7, 6, 5, 4]

    async def test_dry_run_reports_what_would_go_and_changes_nothing(
        self, config_store: ConfigStore
    ) -> None:
        for n in range(5):
            await write(config_store, {"n": n})
        before = await store_state(config_store)
        planned = await config_store.prune(keep_last=2, dry_run=True)
        assert await store_state(config_store) == before
        assert planned.dry_run is True
        done = await config_store.prune(keep_last=2)
        assert planned.keys == done.keys
        assert planned.versions_removed == 3

    async def test_version_numbers_continue_after_a_prune(self, config_store: ConfigStore) -> None:
        for n in range(4):
            await write(config_store, {"n": n})
        await config_store.prune(keep_last=1)
        entry = await write(config_store, {"n": "next"}, expected_version=4)
        assert entry.version == 5
        assert versions(await history(config_store)) == [5, 4]
        assert await read(config_store, version=2) is None

    async def test_history_shows_pruned_versions_by_where_it_starts(
        self, config_store: ConfigStore
    ) -> None:
        for n in range(5):
            await write(config_store, {"n": n})
        await config_store.prune(keep_last=3)
        oldest = (await history(config_store))[-1]
        assert oldest.version == 3
        assert oldest.created_at == (await read(config_store)).created_at  # type: ignore[union-attr]

    async def test_stats_count_only_the_versions_kept(self, config_store: ConfigStore) -> None:
        for n in range(5):
            await write(config_store, {"n": n})
        await write(config_store, {"n": 0}, config_key="other")
        await config_store.prune(keep_last=2)
        stats = await config_store.get_stats()
        assert (stats["total_versions"], stats["total_configs"]) == (3, 2)

    async def test_an_old_tombstone_purges_its_key_and_numbering_continues(
        self, config_store: ConfigStore
    ) -> None:
        await seed_old_versions(config_store, 3, tombstone=True)
        result = await config_store.prune(deleted_older_than="30d")
        [key] = result.keys
        assert (key.purged, key.versions, key.through_version) == (True, 3, 3)
        assert await history(config_store) == []
        assert await config_store.list_tenants(include_deleted=True) == []
        entry = await write(config_store, {"back": True}, expected_version=0)
        assert entry.version == 4
        assert entry.created_at >= datetime.now(UTC) - timedelta(minutes=10)

    async def test_a_recent_tombstone_is_kept(self, config_store: ConfigStore) -> None:
        await write(config_store)
        await delete(config_store)
        result = await config_store.prune(deleted_older_than="30d")
        assert result.keys == ()
        assert versions(await history(config_store)) == [2, 1]

    async def test_a_live_key_is_never_purged(self, config_store: ConfigStore) -> None:
        await seed_old_versions(config_store, 2)
        await config_store.prune(deleted_older_than=0)
        assert versions(await history(config_store)) == [2, 1]

    async def test_prune_of_one_tenant_leaves_the_others(self, config_store: ConfigStore) -> None:
        for n in range(3):
            await write(config_store, {"n": n})
            await write(config_store, {"n": n}, tenant_id=OTHER_TENANT)
        result = await config_store.prune(keep_last=1, tenant_id=TENANT)
        assert {key.key.tenant_id for key in result.keys} == {TENANT}
        assert versions(await history(config_store)) == [3]
        assert versions(await history(config_store, tenant_id=OTHER_TENANT)) == [3, 2, 1]

    async def test_store_policy_applies_its_most_specific_override(
        self, config_store: ConfigStore
    ) -> None:
        for n in range(4):
            await write(config_store, {"n": n})
            await write(config_store, {"n": n}, scope=ConfigScope.AGENT)
            await write(config_store, {"n": n}, tenant_id=OTHER_TENANT)
        config_store.retention = RetentionPolicy(
            RetentionRule(keep_last=1),
            tenants={OTHER_TENANT: RetentionRule(keep_last=3)},
            scopes={ConfigScope.AGENT: RetentionRule(keep_last=2)},
        )
        try:
            await config_store.prune()
        finally:
            config_store.retention = None
        assert versions(await history(config_store)) == [4]
        assert versions(await history(config_store, scope=ConfigScope.AGENT)) == [4, 3]
        assert versions(await history(config_store, tenant_id=OTHER_TENANT)) == [4, 3, 2]

    async def test_prune_with_nothing_to_prune_by_is_an_error(
        self, config_store: ConfigStore
    ) -> None:
        await write(config_store)
        with pytest.raises(InvalidConfigError):
            await config_store.prune()

    @pytest.mark.parametrize(
        "limits",
        [
            {"keep_last": 0},
            {"keep_last": -1},
            {"keep_last": True},
            {"older_than": "soon"},
            {"older_than": -5},
            {"deleted_older_than": "3 fortnights"},
        ],
    )
    async def test_bad_limits_are_refused_before_anything_goes(
        self, config_store: ConfigStore, limits: dict[str, Any]
    ) -> None:
        await write(config_store)
        await write(config_store)
        with pytest.raises(InvalidConfigError):
            await config_store.prune(**limits)
        assert versions(await history(config_store)) == [2, 1]

    async def test_prune_of_an_empty_store_reports_nothing(self, config_store: ConfigStore) -> None:
        result = await config_store.prune(keep_last=1, deleted_older_than=0)
        assert (result.keys, result.versions_removed, result.keys_purged) == ((), 0, 0)
