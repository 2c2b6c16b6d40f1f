"""Tombstones and purge: a delete is a new version, a purge removes every version."""

from __future__ import annotations

from typing import Any

from .._models import ConfigScope
from .._store import ConfigStore
from ._base import (
    OTHER_TENANT,
    TENANT,
    StoreTestsBase,
    delete,
    history,
    read,
    store_state,
    versions,
    write,
)


class DeletionTests(StoreTestsBase):
    """A delete is a new version with deleted=True; purge removes every version of the key."""

    contract_area = "tombstones"

    async def test_delete_of_a_live_key_returns_true(self, config_store: ConfigStore) -> None:
        await write(config_store)
        assert await delete(config_store) is True

    async def test_delete_writes_a_tombstone_version(self, config_store: ConfigStore) -> None:
        first = await write(config_store, {"a": 1})
        await delete(config_store, updated_by="bob", comment="retired")
        tombstone = await read(config_store, version=2)
        assert tombstone is not None
        assert (tombstone.deleted, tombstone.config_value) == (True, {})
        assert (tombstone.updated_by, tombstone.comment) == ("bob", "retired")
        assert tombstone.created_at == first.created_at
        assert tombstone.updated_at >= first.updated_at

    async def test_latest_read_of_a_deleted_key_is_none(self, config_store: ConfigStore) -> None:
        await write(config_store)
        await delete(config_store)
        assert await read(config_store) is None

    async def test_versions_before_a_tombstone_stay_readable(
        self, config_store: ConfigStore
    ) -> None:
        await write(config_store, {"a": 1})
        await delete(config_store)
        entry = await read(config_store, version=1)
        assert entry is not None
        assert (entry.config_value, entry.deleted) == ({"a": 1}, False)

    async def test_history_keeps_the_tombstone_and_what_came_before(
        self, config_store: ConfigStore
    ) -> None:
        await write(config_store, {"a": 1})
        await write(config_store, {"a": 2})
        await delete(config_store)
        entries = await history(config_store)
        assert versions(entries) == [3, 2, 1]
        assert [entry.deleted for entry in entries] == [True, False, False]

    async def test_deleted_key_leaves_listings(self, config_store: ConfigStore) -> None:
        await write(config_store, config_key="kept")
        await write(config_store, config_key="gone")
        await delete(config_store, config_key="gone")
        assert [entry.config_key for entry in await config_store.list_configs(TENANT)] == ["kept"]
        assert await config_store.list_configs(TENANT, ConfigScope.SYSTEM, "svc") == [
            await read(config_store, config_key="kept")
        ]

    async def test_deleted_key_leaves_stats(self, config_store: ConfigStore) -> None:
        await write(config_store, config_key="kept")
        await write(config_store, config_key="gone")
        await delete(config_store, config_key="gone")
        stats = await config_store.get_stats()
        assert stats["total_configs"] == 1
        assert stats["configs_per_scope"]["system"] == 1
        assert stats["total_versions"] == 3

    async def test_tenant_with_only_deleted_keys_leaves_tenants(
        self, config_store: ConfigStore
    ) -> None:
        await write(config_store, tenant_id=TENANT)
        await write(config_store, tenant_id=OTHER_TENANT)
        await delete(config_store, tenant_id=OTHER_TENANT)
        assert await config_store.list_tenants() == [TENANT]
        assert (await config_store.get_stats())["total_tenants"] == 1

    async def test_delete_of_a_missing_key_returns_false_and_writes_nothing(
        self, config_store: ConfigStore
    ) -> None:
        await write(config_store, config_key="other")
        before = await store_state(config_store)
        assert await delete(config_store) is False
        assert await store_state(config_store) == before
        assert await history(config_store) == []

    async def test_delete_of_a_deleted_key_returns_false_and_writes_nothing(
        self, config_store: ConfigStore
    ) -> None:
        await write(config_store)
        await delete(config_store)
        before = await store_state(config_store)
        assert await delete(config_store) is False
        assert await store_state(config_store) == before
        assert versions(await history(config_store)) == [2, 1]

    async def test_write_after_delete_continues_the_numbering(
        self, config_store: ConfigStore
    ) -> None:
        first = await write(config_store)
        await delete(config_store)
        revived = await write(config_store, {"back": True})
        assert (revived.version, revived.deleted) == (3, False)
        assert revived.created_at == first.created_at
        assert await read(config_store) == revived
        assert [entry.config_key for entry in await config_store.list_configs(TENANT)] == ["key"]

    async def test_purge_removes_every_version(self, config_store: ConfigStore) -> None:
        await write(config_store)
        await write(config_store)
        await delete(config_store)
        assert await delete(config_store, purge=True) is True
        assert await history(config_store) == []
        assert await read(config_store) is None
        for version in (1, 2, 3):
            assert await read(config_store, version=version) is None

    async def test_purge_of_a_live_key_leaves_listings_and_stats(
        self, config_store: ConfigStore
    ) -> None:
        await write(config_store, config_key="kept")
        await write(config_store, config_key="gone")
        await write(config_store, config_key="gone")
        await delete(config_store, config_key="gone", purge=True)
        stats = await config_store.get_stats()
        assert (stats["total_configs"], stats["total_versions"]) == (1, 1)
        assert [entry.config_key for entry in await config_store.list_configs(TENANT)] == ["kept"]

    async def test_purge_of_a_tombstoned_key_returns_true(self, config_store: ConfigStore) -> None:
        await write(config_store)
        await delete(config_store)
        assert await delete(config_store, purge=True) is True
        assert (await config_store.get_stats())["total_versions"] == 0

    async def test_purge_of_a_missing_key_returns_false(self, config_store: ConfigStore) -> None:
        await write(config_store, config_key="other")
        before = await store_state(config_store)
        assert await delete(config_store, purge=True) is False
        assert await store_state(config_store) == before

    async def test_write_after_purge_starts_again_at_version_1(
        self, config_store: ConfigStore
    ) -> None:
        await write(config_store)
        await write(config_store)
        await delete(config_store, purge=True)
        entry = await write(config_store, {"fresh": True}, expected_version=0)
        assert entry.version == 1
        assert versions(await history(config_store)) == [1]

    async def test_purge_touches_only_its_key(self, config_store: ConfigStore) -> None:
        neighbours: list[dict[str, Any]] = [
            {"tenant_id": OTHER_TENANT},
            {"config_key": "key2"},
            {"config_key": "ke"},
            {"service": "svc2"},
            {"scope": ConfigScope.AGENT},
        ]
        for identity in neighbours:
            await write(config_store, {"neighbour": True}, **identity)
        await write(config_store)
        await delete(config_store, purge=True)
        for identity in neighbours:
            entry = await read(config_store, **identity)
            assert entry is not None, identity
            assert entry.config_value == {"neighbour": True}

    async def test_delete_touches_only_its_key(self, config_store: ConfigStore) -> None:
        await write(config_store, tenant_id=OTHER_TENANT)
        await write(config_store, config_key="key2")
        await write(config_store)
        await delete(config_store)
        assert await read(config_store, tenant_id=OTHER_TENANT) is not None
        assert await read(config_store, config_key="key2") is not None
