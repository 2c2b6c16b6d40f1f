"""A restore import keeps heads and the change feed exactly as the per-row trigger would.

A restore drops the maintenance trigger inside its transaction and writes heads and changes a
chunk at a time. Here the same entries go into two copies of one database: through
``import_entries`` (chunks of three rows), and one row at a time through the trigger.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from _sqlite_tables import CHANGES, table_rows
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from confstore import ImportConflictError, open_store
from confstore import _export as export_module
from confstore.backends.sqlite import _INSERT_VERSION, _MAINTAIN_TRIGGER

KEYS = ("stored", "emptied", "new-a", "new-b")
CREATED = ("2026-01-01T00:00:00.000000+00:00", "2026-01-02T00:00:00.000000+00:00")

imported_entries = st.lists(
    st.tuples(
        st.sampled_from(KEYS),
        st.integers(min_value=1, max_value=12),
        st.booleans(),
        st.sampled_from(CREATED),
    ),
    max_size=25,
    unique_by=lambda item: (item[0], item[1]),
)


def raw_entry(config_key: str, version: int, deleted: bool, created_at: str) -> dict[str, Any]:
    return {
        "scope": "system",
        "service": "svc",
        "config_key": config_key,
        "config_value": {} if deleted else {"v": version},
        "version": version,
        "created_at": created_at,
        "updated_at": "2026-01-03T00:00:00.000000+00:00",
        "deleted": deleted,
    }


def row(entry: dict[str, Any]) -> tuple[Any, ...]:
    text = "{}" if entry["deleted"] else f'{{"v":{entry["version"]}}}'
    return (
        "acme",
        "system",
        "svc",
        entry["config_key"],
        text,
        entry["version"],
        entry["created_at"],
        entry["updated_at"],
        None,
        None,
        int(entry["deleted"]),
    )


def maintained(path: Path) -> list[list[Any]]:
    """The heads, the change feed (without commit times) and the schema's triggers."""
    return table_rows(
        path,
        "SELECT * FROM config_heads ORDER BY config_key",
        CHANGES,
        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'",
    )


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with a key of three versions, and a key that retention emptied."""
    path = tmp_path_factory.mktemp("template") / "template.db"

    async def fill() -> None:
        async with open_store(f"sqlite:///{path}") as store:
            for version in range(1, 4):
                await store.set_config("acme", "system", "svc", "stored", {"v": version})
                await store.set_config("acme", "system", "svc", "emptied", {"v": version})

    asyncio.run(fill())
    with sqlite3.connect(path) as connection:
        # What retention leaves of a key whose versions all went: its head, version_count 0.
        connection.execute("DELETE FROM config_versions WHERE config_key = 'emptied'")
        connection.execute("UPDATE config_heads SET version_count = 0 WHERE config_key = 'emptied'")
    connection.close()
    return path


# The versions an import adds to the template, in the order they were stored.
VERSIONS = "SELECT * FROM config_versions WHERE config_key != 'stored' OR version > 3 ORDER BY seq"
property_settings = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


async def assert_import_equals_the_trigger(
    template: Path, folder: Path, entries: list[dict[str, Any]], new: list[dict[str, Any]]
) -> None:
    """Restore ``entries`` into a copy of ``template``; insert ``new`` (the versions it should
    write) one row at a time through the trigger into another copy; both hold the same versions
    in the same order, the same heads and the same changes."""
    imported, reference = folder / "imported.db", folder / "reference.db"
    shutil.copyfile(template, imported)
    shutil.copyfile(template, reference)
    async with open_store(f"sqlite:///{imported}") as store:
        assert await store.import_entries("acme", entries) == len(new)
    with sqlite3.connect(reference) as connection:
        connection.executemany(_INSERT_VERSION, [row(entry) for entry in new])
    connection.close()
    assert table_rows(imported, VERSIONS) == table_rows(reference, VERSIONS)
    assert maintained(imported) == maintained(reference)
    imported.unlink()
    reference.unlink()


@property_settings
@given(items=imported_entries)
async def test_heads_and_changes_equal_the_triggers_row_by_row(
    items: list[tuple[str, int, bool, str]],
    template: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Versions 1-3 of "stored" are there already: importing them would conflict.
    entries = [raw_entry(*item) for item in items if item[0] != "stored" or item[1] > 3]
    monkeypatch.setattr(export_module, "ROW_CHUNK", 3)
    await assert_import_equals_the_trigger(template, tmp_path, entries, entries)


@property_settings
@given(items=imported_entries)
async def test_a_restore_over_stored_versions_equals_the_triggers_row_by_row(
    items: list[tuple[str, int, bool, str]],
    template: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Versions already stored (the same, so skipped) anywhere in a multi-row statement: the
    statement stops at the first, keeps the rows before it, and the rest go one at a time."""
    # Versions 1-3 of "stored" are there with these values: importing them again skips them.
    entries = [
        raw_entry(*item) for item in items if item[0] != "stored" or item[1] > 3 or not item[2]
    ]
    new = [entry for entry in entries if entry["config_key"] != "stored" or entry["version"] > 3]
    monkeypatch.setattr(export_module, "ROW_CHUNK", 8)  # statements of up to 8 rows
    await assert_import_equals_the_trigger(template, tmp_path, entries, new)


async def test_a_failed_restore_leaves_the_trigger_in_place(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    async with open_store(url) as store:
        await store.set_config("acme", "system", "svc", "key", {"v": 1})
        clash = raw_entry("key", 1, False, CREATED[0]) | {"config_value": {"v": "other"}}
        with pytest.raises(ImportConflictError):
            await store.import_entries("acme", [raw_entry("other", 1, False, CREATED[0]), clash])
        # The trigger still keeps heads for writes that follow.
        await store.set_config("acme", "system", "svc", "key", {"v": 2})
        assert (await store.get_stats())["total_versions"] == 2
    heads, changes, triggers = maintained(tmp_path / "store.db")
    assert [head[3:5] for head in heads] == [("key", 2)]
    assert [change[4:] for change in changes] == [("key", "set", 1), ("key", "set", 2)]
    assert [name for name, _ in triggers] == ["config_versions_maintain"]
    expected = _MAINTAIN_TRIGGER.replace("IF NOT EXISTS ", "")
    assert triggers[0][1].split() == expected.split()
