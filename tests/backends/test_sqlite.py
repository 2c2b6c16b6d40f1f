"""SQLiteConfigStore: URLs and options, lifecycle, the contract on a real file, import/export, change feed."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from confstore import (
    BackendUnavailableError,
    ChangeKind,
    ConfigScope,
    ImportConflictError,
    ImportFormatError,
    InvalidConfigError,
    InvalidIdentifierError,
    VersionConflictError,
    open_store,
)
from confstore.backends.sqlite import SCHEMA_VERSION, SQLiteConfigStore

SYSTEM = ConfigScope.SYSTEM


def read_pragma(path: Path, pragma: str) -> Any:
    with sqlite3.connect(path) as connection:
        return connection.execute(f"PRAGMA {pragma}").fetchone()[0]


# URLs, options, lifecycle


def test_relative_url_is_resolved_against_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store("sqlite:///data/config/config.db")
    assert isinstance(store, SQLiteConfigStore)
    assert store.path == "data/config/config.db"


def test_absolute_url_keeps_its_path(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/abs.db")
    assert isinstance(store, SQLiteConfigStore)
    assert store.path == f"{tmp_path}/abs.db"


def test_file_store_is_persistent_and_shared(db_path: Path) -> None:
    capabilities = SQLiteConfigStore(db_path).capabilities
    assert capabilities.persistent
    assert capabilities.shared


def test_memory_store_is_neither_persistent_nor_shared() -> None:
    store = open_store("sqlite://:memory:")
    assert isinstance(store, SQLiteConfigStore)
    assert store.path == ":memory:"
    assert not store.capabilities.persistent
    assert not store.capabilities.shared


def test_url_options_reach_the_store(tmp_path: Path) -> None:
    store = open_store(
        f"sqlite:///{tmp_path}/o.db?timeout=2.5&synchronous=normal&max_value_bytes=2048"
    )
    assert isinstance(store, SQLiteConfigStore)
    assert (store.timeout, store.synchronous, store.max_value_bytes) == (2.5, "NORMAL", 2048)


def test_busy_timeout_is_an_alias_of_timeout(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/o.db", busy_timeout=0.5)
    assert isinstance(store, SQLiteConfigStore)
    assert store.timeout == 0.5


def test_synchronous_is_full_by_default(db_path: Path) -> None:
    assert SQLiteConfigStore(db_path).synchronous == "FULL"


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///x.db?unknown=1",
        "sqlite:///x.db?synchronous=OFF",
        "sqlite:///x.db?timeout=-1",
        "sqlite:///x.db?timeout=soon",
        "sqlite:///x.db?max_value_bytes=0",
        "sqlite://somehost/x.db",
        "sqlite://",
    ],
)
def test_bad_url_or_option_raises_invalid_config(url: str) -> None:
    with pytest.raises(InvalidConfigError):
        open_store(url)


def test_constructor_does_no_io(tmp_path: Path) -> None:
    SQLiteConfigStore(tmp_path / "not" / "yet" / "config.db")
    assert list(tmp_path.iterdir()) == []


async def test_initialize_creates_the_wal_file_and_schema(db_path: Path) -> None:
    async with SQLiteConfigStore(db_path):
        assert await asyncio.to_thread(db_path.exists)
        assert read_pragma(db_path, "journal_mode") == "wal"
        assert read_pragma(db_path, "user_version") == SCHEMA_VERSION


async def test_initialize_is_idempotent(store: SQLiteConfigStore) -> None:
    await store.set_config("t", SYSTEM, "svc", "key", {"a": 1})
    await store.initialize()
    assert (await store.get_stats())["total_versions"] == 1


async def test_data_survives_close_and_reopen(db_path: Path) -> None:
    async with SQLiteConfigStore(db_path) as first:
        await first.set_config("t", SYSTEM, "svc", "key", {"a": 1})
    async with SQLiteConfigStore(db_path) as second:
        entry = await second.get_config("t", SYSTEM, "svc", "key")
    assert entry is not None
    assert entry.config_value == {"a": 1}


async def test_close_is_idempotent_and_the_store_can_be_initialized_again(db_path: Path) -> None:
    store = SQLiteConfigStore(db_path)
    await store.initialize()
    await store.set_config("t", SYSTEM, "svc", "key", {"a": 1})
    await store.close()
    await store.close()
    await store.initialize()
    try:
        assert (await store.set_config("t", SYSTEM, "svc", "key", {"a": 2})).version == 2
    finally:
        await store.close()


async def test_methods_of_a_store_that_is_not_open_raise_backend_unavailable(
    db_path: Path,
) -> None:
    store = SQLiteConfigStore(db_path)
    with pytest.raises(BackendUnavailableError):
        await store.get_config("t", SYSTEM, "svc", "key")
    with pytest.raises(BackendUnavailableError):
        await store.set_config("t", SYSTEM, "svc", "key", {"a": 1})


async def test_close_waits_for_queued_writes(db_path: Path) -> None:
    store = SQLiteConfigStore(db_path)
    await store.initialize()
    writes = [
        asyncio.ensure_future(store.set_config("t", SYSTEM, "svc", "key", {"n": n}))
        for n in range(20)
    ]
    await asyncio.sleep(0)  # let every write queue up behind the first batch
    await store.close()
    assert sorted(write.result().version for write in writes) == list(range(1, 21))


async def test_health_check_is_true_when_open_and_false_when_closed(db_path: Path) -> None:
    store = SQLiteConfigStore(db_path)
    assert await store.health_check() is False
    async with store:
        assert await store.health_check() is True
    assert await store.health_check() is False


# The contract on a real file


async def test_versions_start_at_one_and_keep_created_at(store: SQLiteConfigStore) -> None:
    first = await store.set_config("t", SYSTEM, "svc", "key", {"a": 1}, updated_by="me")
    second = await store.set_config("t", SYSTEM, "svc", "key", {"a": 2}, comment="why")
    assert (first.version, second.version) == (1, 2)
    assert second.created_at == first.created_at
    assert second.updated_at >= first.updated_at
    assert (first.updated_by, second.comment) == ("me", "why")


async def test_timestamps_are_utc_aware_and_round_trip_exactly(store: SQLiteConfigStore) -> None:
    written = await store.set_config("t", SYSTEM, "svc", "key", {"a": 1})
    read = await store.get_config("t", SYSTEM, "svc", "key")
    assert read == written
    assert read.updated_at.utcoffset() is not None
    assert read.updated_at.utcoffset().seconds == 0


async def test_expected_version_writes_when_it_matches(store: SQLiteConfigStore) -> None:
    await store.set_config("t", SYSTEM, "svc", "key", {"a": 1}, expected_version=0)
    entry = await store.set_config("t", SYSTEM, "svc", "key", {"a": 2}, expected_version=1)
    assert entry.version == 2


async def test_expected_version_conflict_reports_both_versions_and_writes_nothing(
    store: SQLiteConfigStore,
) -> None:
    await store.set_config("t", SYSTEM, "svc", "key", {"a": 1})
    with pytest.raises(VersionConflictError) as caught:
        await store.set_config("t", SYSTEM, "svc", "key", {"a": 2}, expected_version=3)
    assert (caught.value.expected, caught.value.actual) == (3, 1)
    assert (await store.get_stats())["total_versions"] == 1


async def test_expected_version_zero_conflicts_with_a_tombstoned_key(
    store: SQLiteConfigStore,
) -> None:
    await store.set_config("t", SYSTEM, "svc", "key", {"a": 1})
    await store.delete_config("t", SYSTEM, "svc", "key")
    with pytest.raises(VersionConflictError) as caught:
        await store.set_config("t", SYSTEM, "svc", "key", {"a": 2}, expected_version=0)
    assert caught.value.actual == 2


async def test_get_config_by_version_and_absent_version(store: SQLiteConfigStore) -> None:
    await store.set_config("t", SYSTEM, "svc", "key", {"a": 1})
    await store.set_config("t", SYSTEM, "svc", "key", {"a": 2})
    first = await store.get_config("t", SYSTEM, "svc", "key", version=1)
    assert first is not None
    assert first.config_value == {"a": 1}
    assert await store.get_config("t", SYSTEM, "svc", "key", version=3) is None
    assert await store.get_config("t", SYSTEM, "svc", "other") is None


async def test_values_round_trip_unchanged(store: SQLiteConfigStore) -> None:
    value = {
        "text": "héllo \u2603 'quoted' \"double\"; DROP TABLE config_versions; --",
        "nested": {"list": [1, 2.5, None, True, {"deep": []}]},
        "big": 2**62,
    }
    await store.set_config("t", SYSTEM, "svc", "key", value)
    entry = await store.get_config("t", SYSTEM, "svc", "key")
    assert entry is not None
    assert entry.config_value == value


async def test_changing_a_returned_value_does_not_change_the_store(
    store: SQLiteConfigStore,
) -> None:
    value = {"a": {"b": 1}}
    written = await store.set_config("t", SYSTEM, "svc", "key", value)
    written.config_value["a"]["b"] = 2
    value["a"]["b"] = 3
    entry = await store.get_config("t", SYSTEM, "svc", "key")
    assert entry is not None
    assert entry.config_value == {"a": {"b": 1}}


async def test_value_over_max_value_bytes_is_rejected_before_writing(db_path: Path) -> None:
    async with open_store(f"sqlite:///{db_path}?max_value_bytes=64") as store:
        with pytest.raises(InvalidConfigError):
            await store.set_config("t", SYSTEM, "svc", "key", {"a": "x" * 64})
        assert (await store.get_stats())["total_versions"] == 0


async def test_history_is_newest_first_with_tombstones_and_limit(
    store: SQLiteConfigStore,
) -> None:
    for number in range(3):
        await store.set_config("t", SYSTEM, "svc", "key", {"n": number})
    await store.delete_config("t", SYSTEM, "svc", "key")
    history = await store.get_config_history("t", SYSTEM, "svc", "key", limit=3)
    assert [entry.version for entry in history] == [4, 3, 2]
    assert history[0].deleted
    assert history[0].config_value == {}


async def test_delete_writes_a_tombstone_and_a_later_write_continues_numbering(
    store: SQLiteConfigStore,
) -> None:
    await store.set_config("t", SYSTEM, "svc", "key", {"a": 1})
    assert await store.delete_config("t", SYSTEM, "svc", "key") is True
    assert await store.get_config("t", SYSTEM, "svc", "key") is None
    assert await store.delete_config("t", SYSTEM, "svc", "key") is False
    entry = await store.set_config("t", SYSTEM, "svc", "key", {"a": 2})
    assert entry.version == 3


async def test_delete_of_an_absent_key_returns_false(store: SQLiteConfigStore) -> None:
    assert await store.delete_config("t", SYSTEM, "svc", "key") is False
    assert await store.delete_config("t", SYSTEM, "svc", "key", purge=True) is False


async def test_purge_removes_every_version_and_numbering_restarts(
    store: SQLiteConfigStore,
) -> None:
    await store.set_config("t", SYSTEM, "svc", "key", {"a": 1})
    await store.set_config("t", SYSTEM, "svc", "key", {"a": 2})
    assert await store.delete_config("t", SYSTEM, "svc", "key", purge=True) is True
    assert await store.get_config_history("t", SYSTEM, "svc", "key") == []
    assert (await store.get_stats())["total_versions"] == 0
    assert (await store.set_config("t", SYSTEM, "svc", "key", {"a": 3})).version == 1


async def test_list_configs_is_ordered_filtered_and_skips_deleted(
    store: SQLiteConfigStore,
) -> None:
    await store.set_config("t", "telemetry", "b", "k", {"n": 1})
    await store.set_config("t", "agent", "z", "k2", {"n": 2})
    await store.set_config("t", "agent", "z", "k1", {"n": 3})
    await store.set_config("t", "agent", "a", "k", {"n": 4})
    await store.set_config("t", "agent", "a", "gone", {"n": 5})
    await store.delete_config("t", "agent", "a", "gone")
    await store.set_config("other", "agent", "a", "k", {"n": 6})
    listed = await store.list_configs("t")
    assert [(e.scope.value, e.service, e.config_key) for e in listed] == [
        ("agent", "a", "k"),
        ("agent", "z", "k1"),
        ("agent", "z", "k2"),
        ("telemetry", "b", "k"),
    ]
    assert [e.config_key for e in await store.list_configs("t", "agent", "z")] == ["k1", "k2"]
    assert [e.service for e in await store.list_configs("t", scope="telemetry")] == ["b"]


async def test_list_configs_returns_the_latest_version(store: SQLiteConfigStore) -> None:
    await store.set_config("t", SYSTEM, "svc", "key", {"n": 1})
    await store.set_config("t", SYSTEM, "svc", "key", {"n": 2})
    [entry] = await store.list_configs("t")
    assert (entry.version, entry.config_value) == (2, {"n": 2})


async def test_list_tenants_is_sorted_and_skips_tenants_with_only_deleted_keys(
    store: SQLiteConfigStore,
) -> None:
    for tenant in ("zeta", "alpha", "gone"):
        await store.set_config(tenant, SYSTEM, "svc", "key", {"a": 1})
    await store.delete_config("gone", SYSTEM, "svc", "key")
    assert await store.list_tenants() == ["alpha", "zeta"]


async def test_stats_count_live_keys_versions_tenants_and_scopes(
    store: SQLiteConfigStore,
) -> None:
    await store.set_config("t1", SYSTEM, "svc", "a", {"n": 1})
    await store.set_config("t1", SYSTEM, "svc", "a", {"n": 2})
    await store.set_config("t1", "agent", "bot", "b", {"n": 1})
    await store.set_config("t2", "routing", "r", "c", {"n": 1})
    await store.delete_config("t2", "routing", "r", "c")
    stats = await store.get_stats()
    assert stats == {
        "backend": "sqlite",
        "total_configs": 2,
        "total_versions": 5,
        "total_tenants": 1,
        "configs_per_scope": {"system": 1, "agent": 1, "routing": 0, "telemetry": 0},
    }


async def test_a_second_handle_reads_what_the_first_wrote(db_path: Path) -> None:
    async with SQLiteConfigStore(db_path) as writer, SQLiteConfigStore(db_path) as reader:
        await writer.set_config("t", SYSTEM, "svc", "key", {"a": 1})
        entry = await reader.get_config("t", SYSTEM, "svc", "key")
    assert entry is not None
    assert entry.config_value == {"a": 1}


async def test_memory_store_keeps_the_whole_contract_in_one_connection() -> None:
    async with open_store("sqlite://:memory:") as store:
        await store.set_config("t", SYSTEM, "svc", "key", {"a": 1})
        await store.set_config("t", SYSTEM, "svc", "key", {"a": 2})
        assert [e.version for e in await store.get_config_history("t", SYSTEM, "svc", "key")] == [
            2,
            1,
        ]


# Identifiers

HOSTILE_IDENTIFIERS = [
    "",
    "x" * 129,
    "it's",
    'say "hi"',
    "a; DROP TABLE config_versions; --",
    "' OR '1'='1",
    "tab\there",
    "new\nline",
    "nul\x00byte",
    "a/b",
    "..\\up",
    "caf\u00e9",
    "\u2603",
    "-leading-dash",
    " space",
    "%",
]


@pytest.mark.parametrize("hostile", HOSTILE_IDENTIFIERS)
@pytest.mark.parametrize("position", ["tenant_id", "service", "config_key"])
async def test_hostile_identifier_is_rejected_by_every_key_method(
    store: SQLiteConfigStore, hostile: str, position: str
) -> None:
    parts = {"tenant_id": "t", "service": "svc", "config_key": "key"}
    parts[position] = hostile
    key = (parts["tenant_id"], SYSTEM, parts["service"], parts["config_key"])
    calls = [
        lambda: store.set_config(*key, {"a": 1}),
        lambda: store.set_config(*key, {"a": 1}, expected_version=0),
        lambda: store.get_config(*key),
        lambda: store.get_config(*key, version=1),
        lambda: store.get_config_history(*key),
        lambda: store.delete_config(*key),
        lambda: store.delete_config(*key, purge=True),
    ]
    for call in calls:
        with pytest.raises(InvalidIdentifierError):
            await call()
    assert (await store.get_stats())["total_versions"] == 0


@pytest.mark.parametrize("hostile", HOSTILE_IDENTIFIERS)
async def test_hostile_tenant_is_rejected_by_every_tenant_method(
    store: SQLiteConfigStore, hostile: str
) -> None:
    calls = [
        lambda: store.list_configs(hostile),
        lambda: store.export_configs(hostile),
        lambda: store.import_configs(hostile, {"configs": []}),
    ]
    for call in calls:
        with pytest.raises(InvalidIdentifierError):
            await call()
    with pytest.raises(InvalidIdentifierError):
        await store.list_configs("t", service=hostile)
    with pytest.raises(InvalidIdentifierError):
        [entry async for entry in store.iter_configs(hostile)]


async def test_hostile_scope_is_rejected(store: SQLiteConfigStore) -> None:
    for scope in ("System", "system'--", "", "other"):
        with pytest.raises(InvalidIdentifierError):
            await store.set_config("t", scope, "svc", "key", {"a": 1})
        with pytest.raises(InvalidIdentifierError):
            await store.list_configs("t", scope=scope)


async def test_colons_cannot_make_two_keys_collide(store: SQLiteConfigStore) -> None:
    await store.set_config("a:b", SYSTEM, "c", "key", {"which": 1})
    await store.set_config("a", SYSTEM, "b:c", "key", {"which": 2})
    await store.set_config("t", SYSTEM, "a:b", "c", {"which": 3})
    await store.set_config("t", SYSTEM, "a", "b:c", {"which": 4})
    found = [
        await store.get_config("a:b", SYSTEM, "c", "key"),
        await store.get_config("a", SYSTEM, "b:c", "key"),
        await store.get_config("t", SYSTEM, "a:b", "c"),
        await store.get_config("t", SYSTEM, "a", "b:c"),
    ]
    assert [(e.version, e.config_value["which"]) for e in found if e] == [
        (1, 1),
        (1, 2),
        (1, 3),
        (1, 4),
    ]


# Export and import


async def _seed(store: SQLiteConfigStore, tenant: str = "src") -> None:
    await store.set_config(tenant, SYSTEM, "svc", "a", {"n": 1}, updated_by="op")
    await store.set_config(tenant, SYSTEM, "svc", "a", {"n": 2}, comment="second")
    await store.set_config(tenant, "agent", "bot", "b", {"n": 1})
    await store.delete_config(tenant, "agent", "bot", "b")
    await store.set_config(tenant, "routing", "r", "c", {"n": 1})


async def test_export_without_history_has_the_latest_live_versions_in_order(
    store: SQLiteConfigStore,
) -> None:
    await _seed(store)
    document = await store.export_configs("src")
    assert document["format"] == "confstore-export"
    assert document["include_history"] is False
    assert [(c["scope"], c["config_key"], c["version"]) for c in document["configs"]] == [
        ("routing", "c", 1),
        ("system", "a", 2),
    ]


async def test_export_with_history_has_every_version_in_export_order(
    store: SQLiteConfigStore,
) -> None:
    await _seed(store)
    document = await store.export_configs("src", include_history=True)
    assert [(c["scope"], c["config_key"], c["version"]) for c in document["configs"]] == [
        ("agent", "b", 1),
        ("agent", "b", 2),
        ("routing", "c", 1),
        ("system", "a", 1),
        ("system", "a", 2),
    ]


async def test_restore_into_another_tenant_keeps_versions_timestamps_and_audit_fields(
    store: SQLiteConfigStore,
) -> None:
    await _seed(store)
    document = await store.export_configs("src", include_history=True)
    assert await store.import_configs("dst", document) == 5
    source = await store.get_config_history("src", SYSTEM, "svc", "a")
    copied = await store.get_config_history("dst", SYSTEM, "svc", "a")
    assert [(e.version, e.config_value, e.created_at, e.updated_at) for e in copied] == [
        (e.version, e.config_value, e.created_at, e.updated_at) for e in source
    ]
    assert (copied[1].updated_by, copied[0].comment) == ("op", "second")
    assert await store.get_config("dst", "agent", "bot", "b") is None


async def test_reimporting_an_export_writes_nothing(store: SQLiteConfigStore) -> None:
    await _seed(store)
    document = await store.export_configs("src", include_history=True)
    cursor = await store.current_cursor()
    assert await store.import_configs("src", document) == 0
    assert (await store.changes_since(cursor)).changes == ()


async def test_conflicting_restore_writes_nothing(store: SQLiteConfigStore) -> None:
    await store.set_config("dst", "routing", "r", "c", {"n": "different"})
    await _seed(store)
    document = await store.export_configs("src", include_history=True)
    before = await store.get_stats()
    with pytest.raises(ImportConflictError):
        await store.import_configs("dst", document)
    assert await store.get_stats() == before
    assert await store.get_config("dst", SYSTEM, "svc", "a") is None


@pytest.mark.parametrize(
    "document",
    [
        {"format": "other", "format_version": 1, "configs": []},
        {"configs": [{"scope": "system"}]},
        {"configs": "nope"},
        [{"tenant_id": "x", "scope": "system", "service": "bad/name", "config_key": "k"}],
    ],
)
async def test_malformed_import_writes_nothing(store: SQLiteConfigStore, document: Any) -> None:
    await _seed(store)
    valid = (await store.export_configs("src"))["configs"]
    if isinstance(document, dict) and isinstance(document.get("configs"), list):
        document = {**document, "configs": valid + document["configs"]}
    before = await store.get_stats()
    with pytest.raises(ImportFormatError):
        await store.import_configs("dst", document)
    assert await store.get_stats() == before


async def test_append_import_adds_versions_on_top(store: SQLiteConfigStore) -> None:
    await _seed(store)
    await store.set_config("dst", SYSTEM, "svc", "a", {"n": "mine"})
    document = await store.export_configs("src", include_history=True)
    assert await store.import_configs("dst", document, mode="append") == 5
    history = await store.get_config_history("dst", SYSTEM, "svc", "a")
    assert [(e.version, e.config_value) for e in history] == [
        (3, {"n": 2}),
        (2, {"n": 1}),
        (1, {"n": "mine"}),
    ]
    assert history[0].created_at == history[2].created_at


async def test_original_system_export_shape_is_accepted(store: SQLiteConfigStore) -> None:
    document = {
        "tenant_id": "old",
        "configs": [
            {
                "tenant_id": "old",
                "scope": "system",
                "service": "system",
                "config_key": "system_config",
                "config_value": {"llm_model": "m"},
                "version": 3,
                "created_at": "2024-01-02T03:04:05",
                "updated_at": "2024-01-03T03:04:05",
            }
        ],
    }
    assert await store.import_configs("new", document) == 1
    entry = await store.get_config("new", SYSTEM, "system", "system_config")
    assert entry is not None
    assert entry.version == 3
    assert entry.created_at.year == 2024
    assert (await store.set_config("new", SYSTEM, "system", "system_config", {})).version == 4


async def test_restore_fills_missing_old_versions_without_moving_the_latest(
    store: SQLiteConfigStore,
) -> None:
    await _seed(store)
    document = await store.export_configs("src", include_history=True)
    only_latest = {**document, "configs": [c for c in document["configs"] if c["version"] == 2]}
    await store.import_configs("dst", only_latest)
    assert await store.import_configs("dst", document) == 3
    entry = await store.get_config("dst", SYSTEM, "svc", "a")
    assert entry is not None
    assert entry.version == 2
    assert (await store.get_stats())["total_versions"] == 10


async def test_iter_configs_streams_across_pages_in_export_order(
    store: SQLiteConfigStore,
) -> None:
    configs = [
        {
            "scope": "system",
            "service": "svc",
            "config_key": f"key-{number % 3}",
            "config_value": {"n": number},
            "version": number // 3 + 1,
            "created_at": "2025-01-01T00:00:00+00:00",
            "updated_at": "2025-01-01T00:00:00+00:00",
            "tenant_id": "bulk",
        }
        for number in range(2500)
    ]
    assert await store.import_configs("bulk", {"configs": configs}) == 2500
    streamed = [entry async for entry in store.iter_configs("bulk", include_history=True)]
    assert len(streamed) == 2500
    assert [(e.config_key, e.version) for e in streamed] == sorted(
        (e.config_key, e.version) for e in streamed
    )
    latest = [entry async for entry in store.iter_configs("bulk")]
    assert [(e.config_key, e.version) for e in latest] == [
        ("key-0", 834),
        ("key-1", 833),
        ("key-2", 833),
    ]


# Change feed


async def test_change_feed_reports_sets_deletes_and_purges_in_order(
    store: SQLiteConfigStore,
) -> None:
    await store.set_config("t", SYSTEM, "svc", "key", {"a": 1})
    await store.set_config("t", SYSTEM, "svc", "key", {"a": 2})
    await store.delete_config("t", SYSTEM, "svc", "key")
    await store.delete_config("t", SYSTEM, "svc", "key", purge=True)
    batch = await store.changes_since(None)
    assert [(c.kind, c.version) for c in batch.changes] == [
        (ChangeKind.SET, 1),
        (ChangeKind.SET, 2),
        (ChangeKind.DELETE, 3),
        (ChangeKind.PURGE, 3),
    ]
    assert batch.has_more is False
    assert batch.changes[0].key.config_key == "key"


async def test_change_feed_pages_with_the_returned_cursor(store: SQLiteConfigStore) -> None:
    for number in range(5):
        await store.set_config("t", SYSTEM, "svc", "key", {"n": number})
    first = await store.changes_since(None, limit=3)
    second = await store.changes_since(first.cursor, limit=3)
    assert [c.version for c in first.changes] == [1, 2, 3]
    assert first.has_more
    assert [c.version for c in second.changes] == [4, 5]
    assert not second.has_more
    assert (await store.changes_since(second.cursor)).changes == ()


async def test_current_cursor_skips_earlier_writes(store: SQLiteConfigStore) -> None:
    await store.set_config("t", SYSTEM, "svc", "key", {"n": 1})
    cursor = await store.current_cursor()
    await store.set_config("t", SYSTEM, "svc", "key", {"n": 2})
    assert [c.version for c in (await store.changes_since(cursor)).changes] == [2]


async def test_change_feed_of_one_handle_sees_writes_of_another(db_path: Path) -> None:
    async with SQLiteConfigStore(db_path) as writer, SQLiteConfigStore(db_path) as follower:
        cursor = await follower.current_cursor()
        await writer.set_config("t", SYSTEM, "svc", "key", {"n": 1})
        await writer.delete_config("t", SYSTEM, "svc", "key", purge=True)
        batch = await follower.changes_since(cursor)
    assert [(c.kind, c.version) for c in batch.changes] == [
        (ChangeKind.SET, 1),
        (ChangeKind.PURGE, 1),
    ]


@pytest.mark.parametrize("cursor", ["abc", "-1", "1.5", "", "\u0661", "9" * 5000])
async def test_a_cursor_this_store_did_not_issue_is_rejected(
    store: SQLiteConfigStore, cursor: str
) -> None:
    with pytest.raises(InvalidConfigError):
        await store.changes_since(cursor)
