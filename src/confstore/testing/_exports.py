"""Export and import (the document is described by schemas/export.schema.json)."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from .._errors import ImportConflictError, ImportFormatError
from .._export import IMPORT_MODES
from .._models import ConfigScope, parse_timestamp
from .._store import ConfigStore
from .._validation import MAX_NESTING_DEPTH, MAX_VERSION
from ._base import (
    OTHER_TENANT,
    TENANT,
    StoreTestsBase,
    assert_recent,
    delete,
    entry_without_tenant,
    history,
    nested,
    read,
    read_feed,
    store_state,
    versions,
    write,
)

RESTORED_TENANT = "restored"


async def _write_sample(store: ConfigStore, tenant_id: str = TENANT) -> None:
    """Two keys with history: one live with three versions, one deleted, in two scopes."""
    await write(store, {"n": 1}, tenant_id=tenant_id, updated_by="alice", comment="create")
    await write(store, {"n": 2}, tenant_id=tenant_id, updated_by="bob")
    await write(store, {"n": 3}, tenant_id=tenant_id, comment="third")
    await write(store, {"gone": True}, tenant_id=tenant_id, scope="agent", service="bot")
    await delete(store, tenant_id=tenant_id, scope="agent", service="bot", updated_by="carol")


def _legacy_entry(config_key: str, version: int, value: dict[str, Any]) -> dict[str, Any]:
    """An entry as the original system exported it: no audit fields, naive timestamps."""
    return {
        "tenant_id": "legacy-tenant",
        "scope": "telemetry",
        "service": "telemetry",
        "config_key": config_key,
        "config_value": value,
        "version": version,
        "created_at": "2024-01-02T03:04:05.123456",
        "updated_at": f"2024-01-0{version + 1}T03:04:05.123456",
    }


def _malformed_documents(valid: dict[str, Any]) -> list[Any]:
    """Documents that must be rejected whole; each keeps a valid first entry."""
    first = valid["configs"][0]

    def with_second(**changes: Any) -> dict[str, Any]:
        document = copy.deepcopy(valid)
        document["configs"] = [first, {**first, "config_key": "second", **changes}]
        return document

    documents: list[Any] = [
        "not a document",
        42,
        {"format": "something-else", "format_version": 1, "configs": [first]},
        {"format": "confstore-export", "format_version": 99, "configs": [first]},
        {"format": "confstore-export", "format_version": 1},
        {"format": "confstore-export", "format_version": 1, "configs": {"a": first}},
        {**valid, "configs": [first, "not an entry"]},
        with_second(scope="nowhere"),
        with_second(version=0),
        with_second(version="2"),
        with_second(config_key="bad key"),
        with_second(service=None),
        with_second(config_value=[1, 2]),
        with_second(config_value={"x": float("nan")}),
        with_second(created_at="yesterday"),
        with_second(updated_at=None),
        with_second(deleted="yes"),
        with_second(deleted=True),
        with_second(updated_at="2000-01-01T00:00:00+00:00"),
        {**valid, "configs": [first, first]},
        with_second(version=MAX_VERSION + 1),
        with_second(version=2**63),
        with_second(updated_at="9999-12-31T23:59:59-01:00"),
        with_second(created_at="0001-01-01T00:00:00+01:00"),
        with_second(comment="\udcff"),
        with_second(updated_by="mallory\udcff"),
        with_second(config_value={"v": "\ud800"}),
        with_second(config_value=nested(MAX_NESTING_DEPTH + 1)),
        with_second(config_value={"db": {"password": "***"}}),
    ]
    return documents


class ExportImportTests(StoreTestsBase):
    """The export document, and restore / append imports that validate everything first."""

    contract_area = "export/import"

    async def test_export_document_has_the_format_header(self, config_store: ConfigStore) -> None:
        await write(config_store)
        document = await config_store.export_configs(TENANT)
        assert document["format"] == "confstore-export"
        assert document["format_version"] == 1
        assert document["tenant_id"] == TENANT
        assert document["include_history"] is False
        assert_recent(parse_timestamp(document["exported_at"]))
        assert json.loads(json.dumps(document)) == document

    async def test_export_without_history_has_the_latest_live_versions(
        self, config_store: ConfigStore
    ) -> None:
        await _write_sample(config_store)
        document = await config_store.export_configs(TENANT)
        latest = await read(config_store)
        assert latest is not None
        assert document["configs"] == [latest.to_dict()]

    async def test_export_with_history_has_every_version_in_order(
        self, config_store: ConfigStore
    ) -> None:
        await _write_sample(config_store)
        document = await config_store.export_configs(TENANT, include_history=True)
        expected = [
            *reversed(await history(config_store, scope="agent", service="bot")),
            *reversed(await history(config_store)),
        ]
        assert document["include_history"] is True
        assert document["configs"] == [entry.to_dict() for entry in expected]

    async def test_export_is_ordered_by_scope_service_key_and_version(
        self, config_store: ConfigStore
    ) -> None:
        for scope, service, config_key in [
            ("telemetry", "a", "a"),
            ("agent", "b", "b"),
            ("agent", "b", "a"),
            ("agent", "a", "z"),
            ("system", "a", "a"),
        ]:
            await write(config_store, scope=scope, service=service, config_key=config_key)
            await write(config_store, scope=scope, service=service, config_key=config_key)
        for include_history in (False, True):
            document = await config_store.export_configs(TENANT, include_history)
            order = [
                (raw["scope"], raw["service"], raw["config_key"], raw["version"])
                for raw in document["configs"]
            ]
            assert order == sorted(order)
            assert len(order) == (10 if include_history else 5)

    async def test_export_of_an_unknown_tenant_is_empty(self, config_store: ConfigStore) -> None:
        await write(config_store)
        assert (await config_store.export_configs("nobody", include_history=True))["configs"] == []

    async def test_export_holds_only_its_tenant(self, config_store: ConfigStore) -> None:
        await _write_sample(config_store, TENANT)
        await _write_sample(config_store, f"{TENANT}:x")
        await _write_sample(config_store, TENANT.upper())
        document = await config_store.export_configs(TENANT, include_history=True)
        assert {raw["tenant_id"] for raw in document["configs"]} == {TENANT}
        assert len(document["configs"]) == 5

    async def test_restore_round_trip_keeps_versions_timestamps_and_audit_fields(
        self, config_store: ConfigStore
    ) -> None:
        await _write_sample(config_store)
        document = await config_store.export_configs(TENANT, include_history=True)
        assert await config_store.import_configs(RESTORED_TENANT, document) == 5
        restored = await config_store.export_configs(RESTORED_TENANT, include_history=True)
        assert [
            {key: value for key, value in raw.items() if key != "tenant_id"}
            for raw in restored["configs"]
        ] == [
            {key: value for key, value in raw.items() if key != "tenant_id"}
            for raw in document["configs"]
        ]
        original, copied = (
            await history(config_store),
            await history(config_store, tenant_id=RESTORED_TENANT),
        )
        assert [entry_without_tenant(entry) for entry in copied] == [
            entry_without_tenant(entry) for entry in original
        ]

    async def test_restore_keeps_tombstones_deleted(self, config_store: ConfigStore) -> None:
        await _write_sample(config_store)
        document = await config_store.export_configs(TENANT, include_history=True)
        await config_store.import_configs(RESTORED_TENANT, document)
        assert (
            await read(config_store, tenant_id=RESTORED_TENANT, scope="agent", service="bot")
            is None
        )
        assert [entry.config_key for entry in await config_store.list_configs(RESTORED_TENANT)] == [
            "key"
        ]

    async def test_restored_keys_continue_their_numbering(self, config_store: ConfigStore) -> None:
        await _write_sample(config_store)
        document = await config_store.export_configs(TENANT, include_history=True)
        await config_store.import_configs(RESTORED_TENANT, document)
        next_entry = await write(config_store, tenant_id=RESTORED_TENANT, expected_version=3)
        assert next_entry.version == 4
        original = await read(config_store, version=1)
        assert original is not None
        assert next_entry.created_at == original.created_at

    async def test_reimporting_the_same_document_writes_nothing(
        self, config_store: ConfigStore
    ) -> None:
        await _write_sample(config_store)
        document = await config_store.export_configs(TENANT, include_history=True)
        before = await store_state(config_store)
        cursor = await config_store.current_cursor()
        assert await config_store.import_configs(TENANT, document) == 0
        assert await store_state(config_store) == before
        assert (await config_store.changes_since(cursor)).changes == ()

    async def test_second_restore_into_another_tenant_writes_nothing(
        self, config_store: ConfigStore
    ) -> None:
        await _write_sample(config_store)
        document = await config_store.export_configs(TENANT, include_history=True)
        assert await config_store.import_configs(RESTORED_TENANT, document) == 5
        assert await config_store.import_configs(RESTORED_TENANT, document) == 0
        assert len(await history(config_store, tenant_id=RESTORED_TENANT)) == 3

    async def test_restore_writes_only_the_missing_versions(
        self, config_store: ConfigStore
    ) -> None:
        for number in (1, 2, 3):
            await write(config_store, {"n": number})
        document = await config_store.export_configs(TENANT, include_history=True)
        await config_store.import_configs(
            RESTORED_TENANT, {**document, "configs": document["configs"][:1]}
        )
        assert await config_store.import_configs(RESTORED_TENANT, document) == 2
        assert versions(await history(config_store, tenant_id=RESTORED_TENANT)) == [3, 2, 1]

    async def test_conflicting_restore_raises_and_writes_nothing(
        self, config_store: ConfigStore
    ) -> None:
        await write(config_store, {"n": 1}, config_key="a")
        await write(config_store, {"n": 1}, config_key="b")
        document = await config_store.export_configs(TENANT, include_history=True)
        await write(config_store, {"other": True}, tenant_id=RESTORED_TENANT, config_key="b")
        before = await store_state(config_store, (TENANT, RESTORED_TENANT))
        with pytest.raises(ImportConflictError):
            await config_store.import_configs(RESTORED_TENANT, document)
        assert await store_state(config_store, (TENANT, RESTORED_TENANT)) == before
        assert await read(config_store, tenant_id=RESTORED_TENANT, config_key="a") is None

    async def test_restore_conflicts_when_deletion_differs(self, config_store: ConfigStore) -> None:
        await write(config_store, {})
        await write(config_store, {})
        document = await config_store.export_configs(TENANT, include_history=True)
        await write(config_store, {}, tenant_id=RESTORED_TENANT)
        await delete(config_store, tenant_id=RESTORED_TENANT)
        with pytest.raises(ImportConflictError):
            await config_store.import_configs(RESTORED_TENANT, document)
        assert versions(await history(config_store, tenant_id=RESTORED_TENANT)) == [2, 1]

    async def test_append_adds_versions_on_top(self, config_store: ConfigStore) -> None:
        await write(config_store, {"source": 1})
        await write(config_store, {"source": 2}, updated_by="alice")
        document = await config_store.export_configs(TENANT, include_history=True)
        await write(config_store, {"target": 1}, tenant_id=OTHER_TENANT)
        assert await config_store.import_configs(OTHER_TENANT, document, mode="append") == 2
        entries = await history(config_store, tenant_id=OTHER_TENANT)
        assert [(entry.version, entry.config_value) for entry in entries] == [
            (3, {"source": 2}),
            (2, {"source": 1}),
            (1, {"target": 1}),
        ]
        assert entries[0].created_at == entries[-1].created_at
        assert_recent(entries[0].updated_at)
        assert entries[0].updated_at >= entries[1].updated_at >= entries[2].updated_at

    async def test_append_of_the_same_document_twice_writes_twice(
        self, config_store: ConfigStore
    ) -> None:
        await write(config_store)
        document = await config_store.export_configs(TENANT)
        assert await config_store.import_configs(OTHER_TENANT, document, mode="append") == 1
        assert await config_store.import_configs(OTHER_TENANT, document, mode="append") == 1
        assert versions(await history(config_store, tenant_id=OTHER_TENANT)) == [2, 1]

    async def test_append_of_a_tombstone_deletes_the_key(self, config_store: ConfigStore) -> None:
        await write(config_store)
        await delete(config_store)
        document = await config_store.export_configs(TENANT, include_history=True)
        assert await config_store.import_configs(OTHER_TENANT, document, mode="append") == 2
        assert await read(config_store, tenant_id=OTHER_TENANT) is None
        assert await config_store.list_tenants() == []

    async def test_import_moves_entries_into_the_tenant_argument(
        self, config_store: ConfigStore
    ) -> None:
        await _write_sample(config_store)
        document = await config_store.export_configs(TENANT, include_history=True)
        await config_store.import_configs(OTHER_TENANT, document)
        assert {entry.tenant_id for entry in await config_store.list_configs(OTHER_TENANT)} == {
            OTHER_TENANT
        }
        assert versions(await history(config_store)) == [3, 2, 1]
        assert await config_store.list_tenants() == [TENANT, OTHER_TENANT]

    async def test_malformed_documents_raise_and_write_nothing(
        self, config_store: ConfigStore
    ) -> None:
        await write(config_store, {"n": 1})
        valid = await config_store.export_configs(TENANT, include_history=True)
        before = await store_state(config_store, (TENANT, OTHER_TENANT))
        for document in _malformed_documents(valid):
            for mode in IMPORT_MODES:
                with pytest.raises(ImportFormatError):
                    await config_store.import_configs(OTHER_TENANT, document, mode=mode)
        assert await store_state(config_store, (TENANT, OTHER_TENANT)) == before

    async def test_an_invalid_typed_config_is_refused_whole(
        self, config_store: ConfigStore
    ) -> None:
        await write(config_store, {"n": 1})
        valid = await config_store.export_configs(TENANT, include_history=True)
        typed = {
            **valid["configs"][0],
            "scope": "system",
            "service": "system",
            "config_key": "system_config",
        }
        before = await store_state(config_store, (TENANT, OTHER_TENANT))
        for bad in ({"vespa_port": "not a port"}, {"llm_api_key": "***"}):
            document = {**valid, "configs": [valid["configs"][0], {**typed, "config_value": bad}]}
            for mode in IMPORT_MODES:
                with pytest.raises(ImportFormatError, match="system_config"):
                    await config_store.import_configs(OTHER_TENANT, document, mode=mode)
        assert await store_state(config_store, (TENANT, OTHER_TENANT)) == before
        fixed = {**typed, "version": 2, "config_value": {"vespa_port": 8081}}
        document = {**valid, "configs": [{**typed, "config_value": {"vespa_port": "x"}}, fixed]}
        assert await config_store.import_configs(OTHER_TENANT, document) == 2

    async def test_the_original_export_shape_is_accepted(self, config_store: ConfigStore) -> None:
        document = {
            "tenant_id": "legacy-tenant",
            "exported_at": "2024-02-01T00:00:00",
            "configs": [
                _legacy_entry("telemetry_config", 1, {"enabled": False}),
                _legacy_entry("telemetry_config", 2, {"enabled": True}),
            ],
        }
        assert await config_store.import_configs(TENANT, document) == 2
        entries = await config_store.get_config_history(
            TENANT, ConfigScope.TELEMETRY, "telemetry", "telemetry_config"
        )
        assert [(entry.version, entry.config_value) for entry in entries] == [
            (2, {"enabled": True}),
            (1, {"enabled": False}),
        ]
        assert entries[0].created_at == parse_timestamp("2024-01-02T03:04:05.123456+00:00")
        assert entries[0].updated_at == parse_timestamp("2024-01-03T03:04:05.123456+00:00")
        assert (entries[0].updated_by, entries[0].comment, entries[0].deleted) == (
            None,
            None,
            False,
        )

    async def test_import_of_an_empty_document_writes_nothing(
        self, config_store: ConfigStore
    ) -> None:
        empty = await config_store.export_configs(TENANT)
        assert await config_store.import_configs(TENANT, empty) == 0
        assert await config_store.import_configs(TENANT, empty, mode="append") == 0
        assert (await config_store.get_stats())["total_versions"] == 0

    async def test_imports_are_reported_by_the_change_feed(self, config_store: ConfigStore) -> None:
        await _write_sample(config_store)
        document = await config_store.export_configs(TENANT, include_history=True)
        cursor = await config_store.current_cursor()
        await config_store.import_configs(RESTORED_TENANT, document)
        changes, _ = await read_feed(config_store, cursor)
        reported = {(change.key.service, change.version) for change in changes}
        assert reported >= {("svc", 1), ("svc", 2), ("svc", 3), ("bot", 1), ("bot", 2)}
        assert {change.tenant_id for change in changes} == {RESTORED_TENANT}

    async def test_import_accepts_a_bare_list_of_entries(self, config_store: ConfigStore) -> None:
        await _write_sample(config_store)
        document = await config_store.export_configs(TENANT, include_history=True)
        assert await config_store.import_configs(RESTORED_TENANT, document["configs"]) == 5
        assert versions(await history(config_store, tenant_id=RESTORED_TENANT)) == [3, 2, 1]

    async def test_exported_values_are_detached(self, config_store: ConfigStore) -> None:
        await write(config_store, {"list": [1]})
        for include_history in (False, True):
            document = await config_store.export_configs(TENANT, include_history)
            document["configs"][0]["config_value"]["list"].append(2)
        stored = await read(config_store)
        assert stored is not None
        assert stored.config_value == {"list": [1]}

    async def test_iter_configs_streams_the_export_entries(self, config_store: ConfigStore) -> None:
        await _write_sample(config_store)
        for include_history in (False, True):
            streamed = [
                entry.to_dict()
                async for entry in config_store.iter_configs(
                    TENANT, include_history=include_history
                )
            ]
            document = await config_store.export_configs(TENANT, include_history)
            assert streamed == document["configs"]

    async def test_import_entries_restores_a_stream_in_any_order(
        self, config_store: ConfigStore
    ) -> None:
        await _write_sample(config_store)
        document = await config_store.export_configs(TENANT, include_history=True)
        entries = list(reversed(document["configs"]))
        assert await config_store.import_entries(RESTORED_TENANT, _stream(entries)) == 5
        original, copied = (
            await history(config_store),
            await history(config_store, tenant_id=RESTORED_TENANT),
        )
        assert [entry_without_tenant(entry) for entry in copied] == [
            entry_without_tenant(entry) for entry in original
        ]
        assert await config_store.import_entries(RESTORED_TENANT, entries) == 0

    async def test_import_entries_that_go_wrong_midway_write_nothing(
        self, config_store: ConfigStore
    ) -> None:
        await _write_sample(config_store)
        entries = (await config_store.export_configs(TENANT, include_history=True))["configs"]
        before = await store_state(config_store, (TENANT, RESTORED_TENANT))
        with pytest.raises(ImportFormatError):
            await config_store.import_entries(RESTORED_TENANT, [*entries, {"version": 1}])
        with pytest.raises(ImportFormatError):
            await config_store.import_entries(RESTORED_TENANT, _stream([*entries, entries[0]]))
        with pytest.raises(ConnectionError):
            await config_store.import_entries(RESTORED_TENANT, _stream(entries, fail=True))
        assert await store_state(config_store, (TENANT, RESTORED_TENANT)) == before

    async def test_import_entries_appends_in_version_order(self, config_store: ConfigStore) -> None:
        for number in (1, 2, 3):
            await write(config_store, {"n": number})
        entries = (await config_store.export_configs(TENANT, include_history=True))["configs"]
        shuffled = [entries[2], entries[0], entries[1]]
        assert await config_store.import_entries(TENANT, _stream(shuffled), mode="append") == 3
        stored = await history(config_store)
        assert [entry.config_value["n"] for entry in stored] == [3, 2, 1, 3, 2, 1]


async def _stream(entries: list[Any], *, fail: bool = False) -> AsyncIterator[Any]:
    """``entries`` as an async iterator that, with ``fail``, raises ConnectionError at the end."""
    for entry in entries:
        yield entry
    if fail:
        raise ConnectionError("the source of the entries went away")
