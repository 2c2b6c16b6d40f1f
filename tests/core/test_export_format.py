"""The export document: entry JSON form, validation of imports, restore planning."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from confstore import ConfigEntry, ConfigScope, ImportConflictError, ImportFormatError, plan_restore
from confstore._export import build_export_document, parse_import_document

SCHEMA_PATH = Path(__file__).parents[2] / "schemas" / "export.schema.json"
T0 = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)


def entry(version: int = 1, value: dict[str, Any] | None = None, **changes: Any) -> ConfigEntry:
    fields: dict[str, Any] = {
        "tenant_id": "acme",
        "scope": ConfigScope.SYSTEM,
        "service": "system",
        "config_key": "system_config",
        "config_value": {"llm_model": "gpt-4"} if value is None else value,
        "version": version,
        "created_at": T0,
        "updated_at": T0,
        "updated_by": "ops",
        "comment": "why",
        "deleted": False,
    }
    fields.update(changes)
    return ConfigEntry(**fields)


def parse(document: object) -> list[ConfigEntry]:
    return parse_import_document("target", document, max_value_bytes=1024)


def test_entry_round_trips_through_its_json_form() -> None:
    original = entry(3)
    data = json.loads(json.dumps(original.to_dict()))
    assert data["created_at"] == "2026-01-02T03:04:05.000006+00:00"
    assert ConfigEntry.from_dict(data) == original


def test_export_document_has_the_documented_header() -> None:
    document = build_export_document("acme", True, [entry(1)])
    assert document["format"] == "confstore-export"
    assert document["format_version"] == 1
    assert document["tenant_id"] == "acme"
    assert document["include_history"] is True
    assert datetime.fromisoformat(document["exported_at"]).tzinfo is not None
    assert document["configs"] == [entry(1).to_dict()]


def test_import_moves_entries_into_the_target_tenant_in_key_and_version_order() -> None:
    document = build_export_document("acme", True, [entry(2), entry(1), entry(1, service="b")])
    parsed = parse(document)
    assert [(e.tenant_id, e.service, e.version) for e in parsed] == [
        ("target", "b", 1),
        ("target", "system", 1),
        ("target", "system", 2),
    ]


def test_original_system_shape_is_accepted_with_naive_timestamps_as_utc() -> None:
    old = {
        "tenant_id": "default",
        "export_timestamp": "2025-05-01T10:00:00",
        "configs": [
            {
                "tenant_id": "default",
                "scope": "system",
                "service": "system",
                "config_key": "system_config",
                "config_value": {"llm_model": "gpt-4"},
                "version": 1,
                "created_at": "2025-05-01T09:00:00",
                "updated_at": "2025-05-01T09:30:00",
            }
        ],
    }
    [parsed] = parse(old)
    assert parsed.created_at == datetime(2025, 5, 1, 9, tzinfo=UTC)
    assert (parsed.updated_by, parsed.comment, parsed.deleted) == (None, None, False)


def test_a_bare_list_of_entries_is_accepted() -> None:
    assert len(parse([entry(1).to_dict()])) == 1


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("text", "must be a JSON object"),
        ({"format": "other", "configs": []}, "unknown format"),
        ({"format": "confstore-export", "format_version": 2, "configs": []}, "format_version"),
        ({"configs": "nope"}, "'configs' list"),
        ({}, "'configs' list"),
        ({"configs": [1]}, "must be a JSON object"),
        ({"configs": [{**entry().to_dict(), "scope": "bogus"}]}, "unknown scope"),
        ({"configs": [{**entry().to_dict(), "version": 0}]}, "positive integer"),
        ({"configs": [{**entry().to_dict(), "version": True}]}, "positive integer"),
        ({"configs": [{**entry().to_dict(), "created_at": "yesterday"}]}, "ISO 8601"),
        ({"configs": [{**entry().to_dict(), "config_value": [1]}]}, "must be a dict"),
        ({"configs": [{**entry().to_dict(), "service": "bad service"}]}, "invalid service"),
        ({"configs": [{**entry().to_dict(), "config_value": {"x": "y" * 2000}}]}, "limit is 1024"),
        ({"configs": [{**entry().to_dict(), "deleted": True}]}, "tombstone but has a value"),
        ({"configs": [entry(1).to_dict(), entry(1).to_dict()]}, "appears twice"),
        (
            {"configs": [{**entry().to_dict(), "created_at": "2027-01-01T00:00:00+00:00"}]},
            "updated_at before created_at",
        ),
    ],
)
def test_malformed_documents_raise_import_format_error(document: object, message: str) -> None:
    with pytest.raises(ImportFormatError, match=message):
        parse(document)


def test_plan_restore_skips_equal_versions_and_keeps_missing_ones() -> None:
    stored = {1: entry(1)}
    assert plan_restore([entry(1), entry(2)], stored) == [entry(2)]


def test_plan_restore_ignores_audit_fields_but_not_values() -> None:
    assert plan_restore([entry(1, updated_by="someone else")], {1: entry(1)}) == []
    with pytest.raises(ImportConflictError) as caught:
        plan_restore([entry(1, value={"llm_model": "other"})], {1: entry(1)})
    assert caught.value.version == 1


def test_export_schema_file_describes_the_document() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    required = set(schema["required"])
    assert required == {
        "format",
        "format_version",
        "tenant_id",
        "include_history",
        "exported_at",
        "configs",
    }
    entry_schema = schema["$defs"]["entry"]
    assert set(entry_schema["properties"]) == set(entry().to_dict())


async def test_write_export_streams_the_same_document_export_configs_builds(tmp_path: Path) -> None:
    from confstore import MemoryConfigStore

    async with MemoryConfigStore() as store:
        for version in range(3):
            await store.set_config(
                "acme", "agent", f"agent{version}", "agent_config", {"n": version}
            )
        await store.delete_config("acme", "agent", "agent1", "agent_config")
        path = tmp_path / "export.json"
        with path.open("w", encoding="utf-8") as stream:
            count = await store.write_export("acme", stream, include_history=True)
        built = await store.export_configs("acme", include_history=True)
    written = json.loads(path.read_text(encoding="utf-8"))
    assert count == 4
    assert {**written, "exported_at": None} == {**built, "exported_at": None}


def test_cursor_codec_round_trips_and_rejects_foreign_cursors() -> None:
    from confstore import InvalidConfigError, decode_cursor, encode_cursor

    cursor = encode_cursor("t1.", {"w": 5, "s": [[1, "a"]]})
    assert decode_cursor(cursor, prefix="t1.", backend="Test", parse=lambda state: state["w"]) == 5
    for foreign in ("x1." + cursor[3:], "t1.!!!", "t1." + "e30=", 7):
        with pytest.raises(InvalidConfigError, match="not a change-feed cursor of the Test store"):
            decode_cursor(foreign, prefix="t1.", backend="Test", parse=lambda state: state["w"])


def test_epoch_micros_keep_every_microsecond() -> None:
    from confstore import epoch_micros, from_epoch_micros

    assert epoch_micros(T0) == 1767323045000006
    assert from_epoch_micros(epoch_micros(T0)) == T0
