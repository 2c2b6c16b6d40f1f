"""Stats, health, change feed, concurrency, several handles and persistence."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from .._errors import BackendError, InvalidConfigError, VersionConflictError
from .._models import ChangeKind, ConfigScope
from .._store import ConfigStore
from ._base import (
    OTHER_TENANT,
    TENANT,
    ReopenConfigStore,
    StoreTestsBase,
    await_feed,
    changes_of,
    default_key,
    delete,
    history,
    read,
    read_feed,
    require_persistent,
    require_shared,
    unique,
    versions,
    write,
)

_SAMPLE_ENTRY = {
    "scope": "system",
    "service": "svc",
    "config_key": "key",
    "config_value": {"n": 1},
    "version": 1,
    "created_at": "2024-01-01T00:00:00+00:00",
    "updated_at": "2024-01-01T00:00:00+00:00",
}


class StatsTests(StoreTestsBase):
    """get_stats counts exactly: live keys, stored versions, tenants, live keys per scope."""

    contract_area = "listings and stats"

    async def test_stats_of_an_empty_store(self, config_store: ConfigStore) -> None:
        stats = await config_store.get_stats()
        assert stats["total_configs"] == 0
        assert stats["total_versions"] == 0
        assert stats["total_tenants"] == 0
        assert stats["configs_per_scope"] == {scope.value: 0 for scope in ConfigScope}

    async def test_stats_name_the_backend(self, config_store: ConfigStore) -> None:
        stats = await config_store.get_stats()
        assert stats["backend"] == config_store.backend_name
        assert isinstance(stats["backend"], str)
        assert stats["backend"]

    async def test_stats_count_exactly(self, config_store: ConfigStore) -> None:
        await write(config_store, config_key="a")
        await write(config_store, config_key="a")
        await write(config_store, config_key="b", scope="agent")
        await write(config_store, config_key="c", scope="agent", tenant_id=OTHER_TENANT)
        await write(config_store, config_key="gone", scope="routing", tenant_id="third")
        await delete(config_store, config_key="gone", scope="routing", tenant_id="third")
        await write(config_store, config_key="purged")
        await delete(config_store, config_key="purged", purge=True)
        stats = await config_store.get_stats()
        assert stats["total_configs"] == 3
        assert stats["total_versions"] == 6
        assert stats["total_tenants"] == 2
        assert stats["configs_per_scope"] == {
            "system": 1,
            "agent": 2,
            "routing": 0,
            "telemetry": 0,
        }

    async def test_stats_count_every_version_of_a_key(self, config_store: ConfigStore) -> None:
        for _ in range(4):
            await write(config_store)
        stats = await config_store.get_stats()
        assert (stats["total_configs"], stats["total_versions"]) == (1, 4)

    async def test_stats_count_restored_versions(self, config_store: ConfigStore) -> None:
        await write(config_store)
        await write(config_store)
        document = await config_store.export_configs(TENANT, include_history=True)
        await config_store.import_configs(OTHER_TENANT, document)
        stats = await config_store.get_stats()
        assert (stats["total_configs"], stats["total_versions"], stats["total_tenants"]) == (
            2,
            4,
            2,
        )


class HealthTests(StoreTestsBase):
    """health_check answers True for a working store and never raises."""

    contract_area = "lifecycle"

    async def test_health_check_of_an_open_store_is_true(self, config_store: ConfigStore) -> None:
        assert await config_store.health_check() is True

    async def test_health_check_after_close_does_not_raise(self, config_store: ConfigStore) -> None:
        await config_store.close()
        assert isinstance(await config_store.health_check(), bool)

    async def test_initialize_is_idempotent(self, config_store: ConfigStore) -> None:
        written = await write(config_store)
        await config_store.initialize()
        await config_store.initialize()
        assert await read(config_store) == written

    async def test_close_is_idempotent(self, config_store: ConfigStore) -> None:
        await config_store.close()
        await config_store.close()

    async def test_a_closed_store_can_be_initialised_again(self, config_store: ConfigStore) -> None:
        await config_store.close()
        await config_store.initialize()
        written = await write(config_store, config_key="after-reopen")
        assert await read(config_store, config_key="after-reopen") == written


class UnreachableBackendTests(StoreTestsBase):
    """A backend that does not answer: errors, never "absent"; health_check False, in bounded time."""

    contract_area = "errors"

    async def test_initialize_of_an_unreachable_backend_raises_a_backend_error(
        self, unreachable_config_store: ConfigStore
    ) -> None:
        async with asyncio.timeout(self.unreachable_timeout):
            with pytest.raises(BackendError):
                await unreachable_config_store.initialize()

    async def test_health_check_of_an_unreachable_backend_is_false(
        self, unreachable_config_store: ConfigStore
    ) -> None:
        async with asyncio.timeout(self.unreachable_timeout):
            assert await unreachable_config_store.health_check() is False

    async def test_reads_from_an_unreachable_backend_raise_backend_errors(
        self, unreachable_config_store: ConfigStore
    ) -> None:
        store = unreachable_config_store
        reads: list[Callable[[], Awaitable[object]]] = [
            lambda: read(store),
            lambda: read(store, version=1),
            lambda: history(store),
            lambda: store.list_configs(TENANT),
            store.list_tenants,
            store.get_stats,
            lambda: store.export_configs(TENANT),
            lambda: store.changes_since(None),
            store.current_cursor,
        ]
        await self._assert_backend_errors(reads)

    async def test_writes_to_an_unreachable_backend_raise_backend_errors(
        self, unreachable_config_store: ConfigStore
    ) -> None:
        store = unreachable_config_store
        document = {"configs": [{**_SAMPLE_ENTRY, "tenant_id": TENANT}]}
        writes: list[Callable[[], Awaitable[object]]] = [
            lambda: write(store),
            lambda: write(store, expected_version=0),
            lambda: delete(store),
            lambda: delete(store, purge=True),
            lambda: store.import_configs(TENANT, document),
        ]
        await self._assert_backend_errors(writes)

    async def _assert_backend_errors(self, calls: list[Callable[[], Awaitable[object]]]) -> None:
        for call in calls:
            async with asyncio.timeout(self.unreachable_timeout):
                with pytest.raises(BackendError):
                    await call()


class ChangeFeedTests(StoreTestsBase):
    """changes_since / current_cursor report every committed write, in version order per key."""

    contract_area = "change feed"

    async def test_feed_reports_every_write_in_order(self, config_store: ConfigStore) -> None:
        cursor = await config_store.current_cursor()
        await write(config_store)
        await write(config_store)
        await delete(config_store)
        changes, _ = await read_feed(config_store, cursor)
        assert [(change.kind, change.version) for change in changes] == [
            (ChangeKind.SET, 1),
            (ChangeKind.SET, 2),
            (ChangeKind.DELETE, 3),
        ]
        assert {change.key for change in changes} == {default_key()}

    async def test_feed_from_the_beginning_includes_earlier_writes(
        self, config_store: ConfigStore
    ) -> None:
        await write(config_store)
        changes, _ = await read_feed(config_store, None)
        assert [(change.key, change.version) for change in changes] == [(default_key(), 1)]

    async def test_current_cursor_skips_earlier_writes(self, config_store: ConfigStore) -> None:
        await write(config_store, config_key="before")
        cursor = await config_store.current_cursor()
        await write(config_store, config_key="after")
        changes, _ = await read_feed(config_store, cursor)
        assert [change.key.config_key for change in changes] == ["after"]

    async def test_feed_continues_from_the_returned_cursor(self, config_store: ConfigStore) -> None:
        await write(config_store, config_key="one")
        first, cursor = await read_feed(config_store, await config_store.current_cursor())
        assert first == []
        await write(config_store, config_key="two")
        second, cursor = await read_feed(config_store, cursor)
        assert [change.key.config_key for change in second] == ["two"]
        third, _ = await read_feed(config_store, cursor)
        assert set(third) <= set(second)  # at least once: a redelivery is allowed, nothing new

    async def test_feed_reports_a_purge(self, config_store: ConfigStore) -> None:
        await write(config_store)
        await write(config_store)
        cursor = await config_store.current_cursor()
        await delete(config_store, purge=True)
        changes, _ = await read_feed(config_store, cursor)
        assert [(change.key, change.kind) for change in changes] == [
            (default_key(), ChangeKind.PURGE)
        ]
        assert changes[0].version in (0, 2)

    async def test_feed_keeps_version_order_per_key(self, config_store: ConfigStore) -> None:
        cursor = await config_store.current_cursor()
        for _ in range(3):
            for config_key in ("a", "b", "c"):
                await write(config_store, config_key=config_key)
        changes, _ = await read_feed(config_store, cursor)
        for config_key in ("a", "b", "c"):
            key = default_key(config_key=config_key)
            assert [change.version for change in changes_of(changes, key)] == [1, 2, 3]

    async def test_feed_pages_by_limit(self, config_store: ConfigStore) -> None:
        cursor = await config_store.current_cursor()
        for number in range(5):
            await write(config_store, config_key=f"k{number}")
        batch = await config_store.changes_since(cursor, limit=2)
        assert len(batch.changes) == 2
        assert batch.has_more is True
        rest, _ = await read_feed(config_store, batch.cursor, limit=2)
        keys = [change.key.config_key for change in unique((*batch.changes, *rest))]
        assert keys == [f"k{number}" for number in range(5)]

    async def test_feed_rejects_a_foreign_cursor(self, config_store: ConfigStore) -> None:
        for cursor in ("not a cursor!", "\x00", "-1", "cursor/../../etc", "\u00b2", "9" * 5000):
            with pytest.raises(InvalidConfigError):
                await config_store.changes_since(cursor)

    async def test_feed_rejects_a_bad_limit(self, config_store: ConfigStore) -> None:
        for limit in (0, -1, "10"):
            with pytest.raises(InvalidConfigError):
                await config_store.changes_since(None, limit=limit)  # type: ignore[arg-type]

    async def test_feed_cursor_is_text(self, config_store: ConfigStore) -> None:
        cursor = await config_store.current_cursor()
        assert isinstance(cursor, str)
        batch = await config_store.changes_since(cursor)
        assert isinstance(batch.cursor, str)
        assert (batch.changes, batch.has_more) == ((), False)

    async def test_feed_reports_nothing_for_failed_writes(self, config_store: ConfigStore) -> None:
        await write(config_store)
        cursor = await config_store.current_cursor()
        with pytest.raises(VersionConflictError):
            await write(config_store, expected_version=0)
        assert await delete(config_store, config_key="absent") is False
        changes, _ = await read_feed(config_store, cursor)
        assert changes == []


class ConcurrencyTests(StoreTestsBase):
    """Concurrent writers never share, skip or overwrite a version."""

    contract_area = "concurrency"

    async def test_concurrent_writers_on_one_key_get_every_version_once(
        self, config_store: ConfigStore
    ) -> None:
        writers = self.concurrent_writers
        written = await asyncio.gather(
            *(write(config_store, {"writer": number}) for number in range(writers))
        )
        assert sorted(versions(written)) == list(range(1, writers + 1))
        stored = await history(config_store, limit=writers + 10)
        assert versions(stored) == list(range(writers, 0, -1))
        by_version = {entry.version: entry.config_value for entry in written}
        assert {entry.version: entry.config_value for entry in stored} == by_version

    async def test_concurrent_writers_on_many_keys_all_land(
        self, config_store: ConfigStore
    ) -> None:
        await asyncio.gather(
            *(
                write(config_store, {"n": number}, config_key=f"k{number % 5}")
                for number in range(20)
            )
        )
        listed = await config_store.list_configs(TENANT)
        assert [(entry.config_key, entry.version) for entry in listed] == [
            (f"k{number}", 4) for number in range(5)
        ]

    async def test_concurrent_deletes_write_one_tombstone(self, config_store: ConfigStore) -> None:
        await write(config_store)
        outcomes = await asyncio.gather(*(delete(config_store) for _ in range(10)))
        assert sorted(outcomes) == [False] * 9 + [True]
        assert [entry.deleted for entry in await history(config_store)] == [True, False]

    async def test_concurrent_create_only_writes_have_one_winner(
        self, config_store: ConfigStore
    ) -> None:
        outcomes = await asyncio.gather(
            *(write(config_store, {"n": number}, expected_version=0) for number in range(10)),
            return_exceptions=True,
        )
        winners = [outcome for outcome in outcomes if not isinstance(outcome, BaseException)]
        assert len(winners) == 1
        assert all(
            isinstance(outcome, VersionConflictError)
            for outcome in outcomes
            if outcome not in winners
        )
        assert versions(await history(config_store)) == [1]


class SharedStorageTests(StoreTestsBase):
    """A second handle on the same storage (another process or host) sees every write."""

    contract_area = "several handles"

    async def test_peer_reads_a_write(
        self, config_store: ConfigStore, config_store_peer: ConfigStore
    ) -> None:
        require_shared(config_store)
        written = await write(config_store, {"from": "first"})
        assert await read(config_store_peer) == written
        assert await config_store_peer.list_tenants() == [TENANT]

    async def test_peer_sees_a_delete(
        self, config_store: ConfigStore, config_store_peer: ConfigStore
    ) -> None:
        require_shared(config_store)
        await write(config_store)
        assert await delete(config_store_peer) is True
        assert await read(config_store) is None
        assert versions(await history(config_store)) == [2, 1]

    async def test_writers_on_two_handles_never_share_a_version(
        self, config_store: ConfigStore, config_store_peer: ConfigStore
    ) -> None:
        require_shared(config_store)
        half = max(1, self.concurrent_writers // 2)
        written = await asyncio.gather(
            *(write(config_store, {"handle": 1, "n": number}) for number in range(half)),
            *(write(config_store_peer, {"handle": 2, "n": number}) for number in range(half)),
        )
        assert sorted(versions(written)) == list(range(1, 2 * half + 1))
        stored = await history(config_store_peer, limit=2 * half + 10)
        assert {entry.version: entry.config_value for entry in stored} == {
            entry.version: entry.config_value for entry in written
        }

    async def test_create_only_on_two_handles_has_one_winner(
        self, config_store: ConfigStore, config_store_peer: ConfigStore
    ) -> None:
        require_shared(config_store)
        outcomes = await asyncio.gather(
            *(
                write(handle, {"n": number}, expected_version=0)
                for number in range(5)
                for handle in (config_store, config_store_peer)
            ),
            return_exceptions=True,
        )
        assert sum(not isinstance(outcome, BaseException) for outcome in outcomes) == 1
        assert versions(await history(config_store)) == [1]

    async def test_change_feed_of_a_peer_sees_a_write(
        self, config_store: ConfigStore, config_store_peer: ConfigStore
    ) -> None:
        require_shared(config_store)
        cursor = await config_store_peer.current_cursor()
        await write(config_store, {"n": 1})
        await write(config_store, {"n": 2})
        await delete(config_store)
        key = default_key()
        changes = await await_feed(
            config_store_peer,
            cursor,
            lambda seen: len(changes_of(seen, key)) >= 3,
            self.change_feed_latency,
        )
        reported = [change.version for change in changes_of(changes, key)]
        assert sorted(set(reported)) == [1, 2, 3]
        assert reported == sorted(reported)

    async def test_a_cursor_from_one_handle_works_on_a_peer(
        self, config_store: ConfigStore, config_store_peer: ConfigStore
    ) -> None:
        require_shared(config_store)
        await write(config_store, config_key="before")
        cursor = await config_store.current_cursor()
        await write(config_store, config_key="after")
        changes = await await_feed(
            config_store_peer,
            cursor,
            lambda seen: any(change.key.config_key == "after" for change in seen),
            self.change_feed_latency,
        )
        assert [change.key.config_key for change in changes] == ["after"]

    async def test_change_feed_of_a_peer_sees_a_purge(
        self, config_store: ConfigStore, config_store_peer: ConfigStore
    ) -> None:
        require_shared(config_store)
        await write(config_store)
        cursor = await config_store_peer.current_cursor()
        await delete(config_store, purge=True)
        changes = await await_feed(
            config_store_peer,
            cursor,
            lambda seen: any(change.kind is ChangeKind.PURGE for change in seen),
            self.change_feed_latency,
        )
        assert [change.kind for change in changes_of(changes, default_key())] == [ChangeKind.PURGE]


class PersistenceTests(StoreTestsBase):
    """Data survives close() and a reopen of the same storage."""

    contract_area = "persistence"

    async def test_writes_survive_a_reopen(
        self, config_store: ConfigStore, reopen_config_store: ReopenConfigStore
    ) -> None:
        require_persistent(config_store)
        await write(config_store, {"n": 1}, updated_by="alice", comment="first")
        await write(config_store, {"n": 2}, scope="agent", tenant_id=OTHER_TENANT)
        before = await config_store.export_configs(TENANT, include_history=True)
        await config_store.close()
        reopened = await reopen_config_store()
        after = await reopened.export_configs(TENANT, include_history=True)
        assert after["configs"] == before["configs"]
        assert await reopened.list_tenants() == [TENANT, OTHER_TENANT]

    async def test_tombstones_survive_a_reopen(
        self, config_store: ConfigStore, reopen_config_store: ReopenConfigStore
    ) -> None:
        require_persistent(config_store)
        await write(config_store)
        await delete(config_store)
        await config_store.close()
        reopened = await reopen_config_store()
        assert await read(reopened) is None
        assert [entry.deleted for entry in await history(reopened)] == [True, False]

    async def test_numbering_continues_after_a_reopen(
        self, config_store: ConfigStore, reopen_config_store: ReopenConfigStore
    ) -> None:
        require_persistent(config_store)
        first = await write(config_store)
        await write(config_store)
        await config_store.close()
        reopened = await reopen_config_store()
        entry = await write(reopened, expected_version=2)
        assert entry.version == 3
        assert entry.created_at == first.created_at

    async def test_stats_survive_a_reopen(
        self, config_store: ConfigStore, reopen_config_store: ReopenConfigStore
    ) -> None:
        require_persistent(config_store)
        await write(config_store)
        await write(config_store, config_key="other")
        await delete(config_store, config_key="other")
        before = await config_store.get_stats()
        await config_store.close()
        reopened = await reopen_config_store()
        assert await reopened.get_stats() == before
