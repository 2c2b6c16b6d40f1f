"""The quick check of an import entry accepts, rejects and stores exactly what the full one does.

``ImportChecks.rows`` takes an entry of the common shape in a few lookups and, for a value just
parsed from JSON text, without the value's JSON round trip; everything else goes to
``ImportChecks.entry``. Hostile entries are generated from JSON text, as a file would give them.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from confstore import ExportFileReader, ImportFormatError, open_store
from confstore._export import ImportChecks, TimestampMemo, entry_row

TENANT = "acme"
DEEP = "[" * 100 + "]" * 100  # with the object around it: 101 levels, one past the limit

MEMBERS: dict[str, list[str | None]] = {
    "scope": ['"system"', '"agent"', '"bogus"', "3", "null", None],
    "service": ['"svc"', '"bad name"', '""', '"' + "s" * 129 + '"', "5", None],
    "config_key": ['"key"', '"system_config"', '"agent_config"', '"k:1"', '"-k"', None],
    "config_value": [
        '{"a":1}',
        '{"a": 0.1, "b": [1, 2.5e-7, -0.0], "c": {"d": null, "e": true}}',
        '{"a":NaN}',
        '{"a":-Infinity}',
        '{"a":1e999}',
        '{"a":"\\ud800"}',
        '{"\\udfff":1}',
        '{"a":"\\ud83d\\ude00 \\u00e9 \\u0000 \\u2028"}',
        '{"a":' + DEEP + "}",
        '{"a":' + DEEP[1:-1] + "}",
        '{"api_key":"***"}',
        '{"nested":{"password":"**********"}}',
        '{"note":"***"}',
        '{"note":"*","password":"a*b"}',
        '{"token":"x***"}',
        '{"a":' + "9" * 400 + "}",
        '{"a":"' + "x" * 2000 + '"}',
        '{"llm_model":"m","temperature":0.5}',
        "{}",
        "[]",
        '"text"',
        None,
    ],
    "version": ["1", "7", "0", "-1", str(2**53 - 1), str(2**53), "true", '"3"', "1.0", None],
    "created_at": [
        '"2026-01-01T00:00:00+00:00"',
        '"2026-01-01T00:00:00Z"',
        '"2026-01-01T01:00:00.5+01:00"',
        '"2026-01-01T00:00:00"',
        '"0001-01-01T00:00:00+00:00"',
        '"2026-02-30T00:00:00.000000+00:00"',
        '"2026-01-01T24:00:00.000000+00:00"',
        '"2026-01-01T00:60:00.000000+00:00"',
        '"2026-01-01T00:00:00.000000+00:00"',
        '"9999-12-31T23:59:59-01:00"',
        '"not a time"',
        "5",
        "[]",
        None,
    ],
    "updated_at": [
        '"2026-01-01T00:00:00+00:00"',
        '"2026-01-02T00:00:00.000001+00:00"',
        '"2025-12-31T23:59:59.999999+00:00"',
        '"2026-13-01T00:00:00.000000+00:00"',
        '"2026-01-01T00:00:00.000000-00:00"',
        '"2026-01-01T00:00:00"',
        '"2026-01-01"',
        "null",
        '{"t": 1}',
        None,
    ],
    "updated_by": ['"ops"', '"\\u00e9quipe"', '"\\ud800"', '"a\\u0000b"', "3", "null", None],
    "comment": ['"why"', '"' + "c" * 4097 + '"', '"\\udc00x"', "[]", "null", None],
    "deleted": ["false", "true", "null", "0", '"yes"', None],
}


def entry_text(choices: dict[str, str | None]) -> str:
    return "{" + ", ".join(f'"{name}": {text}' for name, text in choices.items() if text) + "}"


entry_texts = st.fixed_dictionaries(
    {name: st.sampled_from(options) for name, options in MEMBERS.items()}
).map(entry_text)


def outcome(check: Any) -> tuple[str, Any]:
    try:
        return "row", check()
    except ImportFormatError as exc:
        return "error", str(exc)


def full_check(raw: Any, position: int = 4, max_bytes: int = 1 << 20) -> tuple[str, Any]:
    checks = ImportChecks(TENANT, max_bytes)

    def check() -> Any:
        row = entry_row(checks.entry(raw, position), TimestampMemo())
        checks.finish()
        return row

    return outcome(check)


def quick_check(
    raw: Any, parsed: bool, position: int = 4, max_bytes: int = 1 << 20
) -> tuple[str, Any]:
    checks = ImportChecks(TENANT, max_bytes)

    def check() -> Any:
        [row] = checks.rows([raw], position, parsed=parsed)
        checks.finish()
        return row

    return outcome(check)


@settings(max_examples=400, deadline=None)
@given(text=entry_texts)
def test_quick_rows_match_the_full_check_for_any_entry_parsed_from_json(text: str) -> None:
    raw = json.loads(text)
    expected = full_check(raw)
    assert quick_check(raw, parsed=True) == expected
    assert quick_check(raw, parsed=False) == expected


def good_entry(**changes: Any) -> dict[str, Any]:
    raw = {
        "scope": "system",
        "service": "svc",
        "config_key": "key",
        "config_value": {"a": 1},
        "version": 1,
        "created_at": "2026-01-01T00:00:00+00:00",
        "updated_at": "2026-01-01T00:00:00+00:00",
    }
    return {**raw, **changes}


@pytest.mark.parametrize(
    "value",
    [{"a": (1, 2)}, {1: "a"}, {"a": {None: 1}}, {"a": float("nan")}, {"a": {1, 2}}],
    ids=["tuple", "int key", "None key", "nan", "set"],
)
def test_a_value_not_parsed_from_json_still_gets_the_round_trip(value: dict[Any, Any]) -> None:
    raw = good_entry(config_value=value)
    kind, message = quick_check(raw, parsed=False)
    assert kind == "error"
    assert (kind, message) == full_check(raw)


@pytest.mark.parametrize(
    ("name", "text"),
    [(name, text) for name, options in MEMBERS.items() for text in options if text],
)
def test_each_member_of_an_otherwise_good_entry_gets_the_full_checks_verdict(
    name: str, text: str
) -> None:
    raw = good_entry(**{name: json.loads(text)})
    expected = full_check(raw)
    assert quick_check(raw, parsed=True) == expected
    assert quick_check(raw, parsed=False) == expected


@pytest.mark.parametrize("value_text", ['{"a":"xxxxxxxxxxx"}', '{"a":"\u00e9xxxxxxxxx"}'])
@pytest.mark.parametrize("max_bytes", [17, 18, 19, 20])
def test_the_size_limit_is_the_same_on_the_quick_path(value_text: str, max_bytes: int) -> None:
    raw = good_entry(config_value=json.loads(value_text))
    expected = full_check(raw, max_bytes=max_bytes)
    assert quick_check(raw, parsed=True, max_bytes=max_bytes) == expected
    assert quick_check(raw, parsed=False, max_bytes=max_bytes) == expected


# Entries sharing their created_at and often their minute, as versions of one key do; the
# created_at as exports write it, or another form of the same time that is remembered as such.
SIBLING_TEXTS = [
    json.dumps(
        good_entry(
            version=version,
            created_at=created_at,
            updated_at=f"2026-01-01T00:0{version % 2}:0{version}.00000{version}+00:00",
        )
    )
    for version in range(1, 5)
    for created_at in ("2026-01-01T00:00:00.000000+00:00", "2026-01-01T00:00:00Z")
]


@settings(max_examples=200, deadline=None)
@given(texts=st.lists(st.sampled_from(SIBLING_TEXTS) | entry_texts, min_size=2, max_size=6))
def test_one_check_of_many_entries_matches_the_full_check_of_each(texts: list[str]) -> None:
    raws = [json.loads(text) for text in texts]
    full, memo = ImportChecks(TENANT, 1 << 20), TimestampMemo()
    expected = outcome(
        lambda: [entry_row(full.entry(raw, at), memo) for at, raw in enumerate(raws)]
    )
    assert outcome(lambda: ImportChecks(TENANT, 1 << 20).rows(raws, 0, parsed=True)) == expected


def test_rows_name_the_position_of_a_bad_entry_in_a_list() -> None:
    raws = [good_entry(version=version) for version in range(1, 6)]
    raws[3] = good_entry(version=4, config_value={"a": float("inf")})
    with pytest.raises(ImportFormatError, match=r"configs\[13\] \(acme/system/svc/key version 4\)"):
        ImportChecks(TENANT, 1 << 20).rows(raws, 10, parsed=True)


def test_a_typed_config_is_validated_against_its_schema_on_the_quick_path_too() -> None:
    checks = ImportChecks(TENANT, 1 << 20)
    raws = [
        good_entry(config_key="system_config", config_value={"vespa_port": "not a port"}, version=1)
    ]
    checks.rows(raws, 0, parsed=True)
    with pytest.raises(ImportFormatError, match=r"configs\[0\]"):
        checks.finish()


async def test_an_integer_too_long_to_convert_is_an_import_format_error() -> None:
    text = '{"configs": [{"config_value": {"a": ' + "1" * 5000 + "}}]}"
    with pytest.raises(ImportFormatError, match="invalid JSON"):
        async for _ in ExportFileReader(io.StringIO(text)).entries():
            pass


async def test_values_and_audit_text_are_stored_exactly_as_set_config_stores_them(
    tmp_path: Path,
) -> None:
    """Through a file and the multi-row insert: escapes, non-BMP text, a NUL in audit text."""
    value = {"a": '\U0001f600 \u00e9 \x00 \u2028 "q" \\', "b": [0.1, -0.0, 2**60, 1e-7], "c": {}}
    configs = [
        {**good_entry(version=1, config_value=value), "comment": "nul \x00 inside"},
        {**good_entry(version=2, config_value=value), "updated_by": "\u00e9quipe"},
        {**good_entry(version=3, config_value={}), "deleted": True},
    ]
    path = tmp_path / "export.json"
    path.write_text(json.dumps({"configs": configs}), encoding="utf-8")
    async with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        with path.open(encoding="utf-8") as stream:
            assert await store.import_entries(TENANT, ExportFileReader(stream).entries()) == 3
        first, second, tombstone = [
            await store.get_config(TENANT, "system", "svc", "key", version=version)
            for version in (1, 2, 3)
        ]
        set_entry = await store.set_config(TENANT, "system", "svc", "other", value)
    assert first is not None
    assert second is not None
    assert tombstone is not None
    assert first.config_value == value == set_entry.config_value
    assert first.comment == "nul \x00 inside"
    assert second.updated_by == "\u00e9quipe"
    assert tombstone.deleted
