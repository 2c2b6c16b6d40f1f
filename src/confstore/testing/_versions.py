"""Versioning, history and compare-and-set."""

from __future__ import annotations

import asyncio

import pytest

from .._errors import VersionConflictError
from .._store import ConfigStore
from ._base import (
    TENANT,
    StoreTestsBase,
    assert_recent,
    assert_utc,
    delete,
    history,
    read,
    store_state,
    versions,
    write,
)


class VersioningTests(StoreTestsBase):
    """Versions start at 1 and go up by one; timestamps are UTC; entries belong to the caller."""

    contract_area = "versions"

    async def test_first_write_is_version_1(self, config_store: ConfigStore) -> None:
        entry = await write(config_store, {"a": 1})
        assert (entry.version, entry.config_value, entry.deleted) == (1, {"a": 1}, False)

    async def test_each_write_adds_one_to_the_version(self, config_store: ConfigStore) -> None:
        written = [await write(config_store, {"n": number}) for number in range(1, 6)]
        assert versions(written) == [1, 2, 3, 4, 5]

    async def test_writing_the_same_value_again_adds_a_version(
        self, config_store: ConfigStore
    ) -> None:
        await write(config_store, {"same": True})
        again = await write(config_store, {"same": True})
        assert again.version == 2
        assert versions(await history(config_store)) == [2, 1]

    async def test_keys_are_versioned_independently(self, config_store: ConfigStore) -> None:
        await write(config_store, config_key="first")
        await write(config_store, config_key="first")
        second = await write(config_store, config_key="second")
        assert second.version == 1

    async def test_get_returns_the_latest_version(self, config_store: ConfigStore) -> None:
        for number in range(1, 4):
            await write(config_store, {"n": number})
        entry = await read(config_store)
        assert entry is not None
        assert (entry.version, entry.config_value) == (3, {"n": 3})

    async def test_get_with_version_returns_that_version(self, config_store: ConfigStore) -> None:
        for number in range(1, 4):
            await write(config_store, {"n": number}, comment=f"c{number}")
        entry = await read(config_store, version=2)
        assert entry is not None
        assert (entry.version, entry.config_value, entry.comment) == (2, {"n": 2}, "c2")

    async def test_get_of_a_version_never_written_is_none(self, config_store: ConfigStore) -> None:
        await write(config_store)
        assert await read(config_store, version=2) is None
        assert await read(config_store, version=99) is None

    async def test_get_of_a_missing_key_is_none(self, config_store: ConfigStore) -> None:
        await write(config_store, config_key="present")
        assert await read(config_store, config_key="absent") is None
        assert await read(config_store, config_key="absent", version=1) is None

    async def test_set_returns_what_get_reads(self, config_store: ConfigStore) -> None:
        written = await write(config_store, {"a": [1, 2]}, updated_by="alice", comment="why")
        assert await read(config_store) == written
        assert await read(config_store, version=1) == written
        assert (written.updated_by, written.comment) == ("alice", "why")

    async def test_entries_carry_their_identity(self, config_store: ConfigStore) -> None:
        written = await config_store.set_config("t-1", "routing", "router", "rules", {"a": 1})
        assert (written.tenant_id, written.scope.value, written.service, written.config_key) == (
            "t-1",
            "routing",
            "router",
            "rules",
        )

    async def test_created_at_is_kept_across_versions(self, config_store: ConfigStore) -> None:
        first = await write(config_store)
        for _ in range(3):
            later = await write(config_store)
            assert later.created_at == first.created_at
        assert {entry.created_at for entry in await history(config_store)} == {first.created_at}

    async def test_updated_at_moves_with_each_version(self, config_store: ConfigStore) -> None:
        first = await write(config_store)
        # Let the clock move on, so a store with millisecond timestamps can show the difference.
        await asyncio.sleep(0.01)
        second = await write(config_store)
        assert first.updated_at == first.created_at
        assert second.updated_at > first.updated_at
        stored = await read(config_store, version=1)
        assert stored is not None
        assert stored.updated_at == first.updated_at

    async def test_timestamps_are_utc_and_current(self, config_store: ConfigStore) -> None:
        written = await write(config_store)
        entries = [
            written,
            await read(config_store),
            *await history(config_store),
            *await config_store.list_configs(TENANT),
        ]
        for entry in entries:
            assert entry is not None
            for moment in (entry.created_at, entry.updated_at):
                assert_utc(moment)
                assert_recent(moment)

    async def test_audit_fields_belong_to_their_version(self, config_store: ConfigStore) -> None:
        await write(config_store, updated_by="alice", comment="first")
        await write(config_store)
        first, second = await read(config_store, version=1), await read(config_store, version=2)
        assert first is not None
        assert second is not None
        assert (first.updated_by, first.comment) == ("alice", "first")
        assert (second.updated_by, second.comment) == (None, None)

    async def test_returned_entries_are_detached(self, config_store: ConfigStore) -> None:
        written = await write(config_store, {"list": [1], "nested": {"a": 1}})
        returned = [
            written,
            await read(config_store),
            await read(config_store, version=1),
            *await history(config_store),
            *await config_store.list_configs(TENANT),
        ]
        for entry in returned:
            assert entry is not None
            entry.config_value["list"].append(2)
            entry.config_value["nested"]["a"] = 2
            entry.config_value["added"] = True
        stored = await read(config_store)
        assert stored is not None
        assert stored.config_value == {"list": [1], "nested": {"a": 1}}

    async def test_caller_changing_its_value_after_a_write_changes_nothing(
        self, config_store: ConfigStore
    ) -> None:
        value = {"list": [1], "nested": {"a": 1}}
        await write(config_store, value)
        value["list"].append(2)  # type: ignore[attr-defined]
        value["nested"]["a"] = 2  # type: ignore[index]
        stored = await read(config_store)
        assert stored is not None
        assert stored.config_value == {"list": [1], "nested": {"a": 1}}


class HistoryTests(StoreTestsBase):
    """History is newest first, tombstones included, limited to the newest ``limit`` versions."""

    contract_area = "history"

    async def test_history_is_newest_first(self, config_store: ConfigStore) -> None:
        for number in range(1, 6):
            await write(config_store, {"n": number})
        entries = await history(config_store)
        assert versions(entries) == [5, 4, 3, 2, 1]
        assert [entry.config_value["n"] for entry in entries] == [5, 4, 3, 2, 1]

    async def test_history_limit_keeps_the_newest(self, config_store: ConfigStore) -> None:
        for number in range(1, 6):
            await write(config_store, {"n": number})
        assert versions(await history(config_store, limit=2)) == [5, 4]
        assert versions(await history(config_store, limit=1)) == [5]

    async def test_history_limit_defaults_to_10(self, config_store: ConfigStore) -> None:
        for number in range(1, 13):
            await write(config_store, {"n": number})
        entries = await config_store.get_config_history(TENANT, "system", "svc", "key")
        assert versions(entries) == list(range(12, 2, -1))

    async def test_history_of_a_missing_key_is_empty(self, config_store: ConfigStore) -> None:
        await write(config_store, config_key="present")
        assert await history(config_store, config_key="absent") == []

    async def test_history_entries_equal_versioned_reads(self, config_store: ConfigStore) -> None:
        for number in range(1, 4):
            await write(config_store, {"n": number}, updated_by=f"u{number}")
        for entry in await history(config_store):
            assert await read(config_store, version=entry.version) == entry


class CompareAndSetTests(StoreTestsBase):
    """expected_version: 0 = create-only; a mismatch raises VersionConflictError and writes nothing."""

    contract_area = "compare-and-set"

    async def test_expected_version_0_creates_a_new_key(self, config_store: ConfigStore) -> None:
        entry = await write(config_store, {"a": 1}, expected_version=0)
        assert entry.version == 1

    async def test_expected_version_0_conflicts_with_an_existing_key(
        self, config_store: ConfigStore
    ) -> None:
        await write(config_store)
        with pytest.raises(VersionConflictError) as caught:
            await write(config_store, {"a": 2}, expected_version=0)
        assert (caught.value.expected, caught.value.actual) == (0, 1)

    async def test_expected_version_0_conflicts_with_a_tombstoned_key(
        self, config_store: ConfigStore
    ) -> None:
        await write(config_store)
        await delete(config_store)
        with pytest.raises(VersionConflictError) as caught:
            await write(config_store, expected_version=0)
        assert (caught.value.expected, caught.value.actual) == (0, 2)

    async def test_matching_expected_version_writes(self, config_store: ConfigStore) -> None:
        await write(config_store)
        await write(config_store)
        entry = await write(config_store, {"a": 3}, expected_version=2)
        assert (entry.version, entry.config_value) == (3, {"a": 3})

    async def test_stale_expected_version_conflicts(self, config_store: ConfigStore) -> None:
        for _ in range(3):
            await write(config_store)
        with pytest.raises(VersionConflictError) as caught:
            await write(config_store, expected_version=2)
        assert (caught.value.expected, caught.value.actual) == (2, 3)

    async def test_expected_version_ahead_of_latest_conflicts(
        self, config_store: ConfigStore
    ) -> None:
        await write(config_store)
        with pytest.raises(VersionConflictError) as caught:
            await write(config_store, expected_version=5)
        assert (caught.value.expected, caught.value.actual) == (5, 1)

    async def test_expected_version_on_a_missing_key_conflicts(
        self, config_store: ConfigStore
    ) -> None:
        with pytest.raises(VersionConflictError) as caught:
            await write(config_store, expected_version=1)
        assert (caught.value.expected, caught.value.actual) == (1, 0)
        assert await history(config_store) == []

    async def test_conflict_writes_nothing(self, config_store: ConfigStore) -> None:
        await write(config_store, {"a": 1})
        before = await store_state(config_store)
        cursor = await config_store.current_cursor()
        with pytest.raises(VersionConflictError):
            await write(config_store, {"a": 2}, expected_version=0)
        with pytest.raises(VersionConflictError):
            await write(config_store, {"a": 2}, expected_version=7)
        assert await store_state(config_store) == before
        assert (await config_store.changes_since(cursor)).changes == ()

    async def test_expected_version_of_a_tombstone_writes_after_it(
        self, config_store: ConfigStore
    ) -> None:
        await write(config_store)
        await delete(config_store)
        entry = await write(config_store, {"back": True}, expected_version=2)
        assert (entry.version, entry.config_value) == (3, {"back": True})

    async def test_concurrent_compare_and_set_has_one_winner(
        self, config_store: ConfigStore
    ) -> None:
        await write(config_store)
        attempts = [
            write(config_store, {"writer": number}, expected_version=1) for number in range(10)
        ]
        outcomes = await asyncio.gather(*attempts, return_exceptions=True)
        winners = [outcome for outcome in outcomes if not isinstance(outcome, BaseException)]
        losers = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        assert len(winners) == 1
        assert all(isinstance(loser, VersionConflictError) for loser in losers), losers
        assert [getattr(loser, "actual", None) for loser in losers] == [2] * len(losers)
        assert versions(await history(config_store)) == [2, 1]
