"""``import_configs`` on SQLite checks the document into rows, with the entry path's results.

The SQLite store checks a document held in memory straight into rows (no ConfigEntry per
entry), all of it before the transaction starts. Here every document goes into two copies of
one database: through ``import_configs``, and through the base class's path (every entry
validated into a ConfigEntry, then written), which other backends keep. Both must give the same
result or error and leave the same rows, heads and change feed.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any, Literal

import pytest
from _sqlite_tables import CHANGES, table_rows
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from confstore import (
    ConfigEntry,
    ConfigStore,
    ConfigStoreError,
    ImportConflictError,
    ImportFormatError,
    open_store,
)
from confstore.backends import sqlite as sqlite_module

TENANT = "acme"
Mode = Literal["restore", "append"]
STAMP = "2026-01-01T00:00:00.000000+00:00"


def raw_entry(config_key: str = "a", version: int = 1, **changes: Any) -> dict[str, Any]:
    entry = {
        "tenant_id": "elsewhere",
        "scope": "system",
        "service": "svc",
        "config_key": config_key,
        "config_value": {"v": version},
        "version": version,
        "created_at": STAMP,
        "updated_at": "2026-01-02T00:00:00.000000+00:00",
        "updated_by": "ops",
        "comment": None,
        "deleted": False,
    }
    return {**entry, **changes}


HOSTILE: list[Any] = [
    raw_entry(scope="bogus"),
    raw_entry(service="bad name"),
    raw_entry(config_value={"x": float("nan")}),
    raw_entry(config_value={"x": (1, 2)}),
    raw_entry(config_value={1: "int key"}),
    raw_entry(config_value="text"),
    raw_entry(config_value={"api_key": "***"}),
    raw_entry(deleted=True),
    raw_entry(version=0),
    raw_entry(version="3"),
    raw_entry(updated_at="2025-01-01T00:00:00+00:00"),
    {key: value for key, value in raw_entry().items() if key != "config_value"},
    raw_entry("system_config", 1, config_value={"vespa_port": "not a port"}),
    5,
    None,
]
ACCEPTED: list[Any] = [
    raw_entry("c", 1, created_at="2026-01-01T00:00:00", updated_at="2026-01-01T00:00:01"),
    raw_entry("c", 2, created_at="2026-01-01T01:00:00+01:00", updated_by="\u00e9quipe"),
    raw_entry("c", 3, config_value={}, deleted=True, comment="gone"),
    raw_entry("system_config", 1, config_value={"llm_model": "m"}),
    raw_entry("d", 1, config_value={"s": "\U0001f600 \u2028", "f": [0.1, -0.0, 1e-7]}),
]

# Keys "a" and "b", versions 1-3, two values each: versions given twice, out of order, equal to
# what is stored or not.
good_entries = st.builds(
    lambda key, version, value: raw_entry(key, version, config_value={"v": value}),
    st.sampled_from(["a", "b"]),
    st.integers(min_value=1, max_value=3),
    st.integers(min_value=1, max_value=2),
)
WRAPPERS = {
    "list": lambda configs: configs,
    "configs": lambda configs: {"configs": configs},
    "export": lambda configs: {
        "format": "confstore-export",
        "format_version": 1,
        "configs": configs,
    },
    "other format": lambda configs: {"format": "other", "configs": configs},
}


@st.composite
def documents(draw: st.DrawFn) -> Any:
    """About half are valid (given versions twice or conflicting aside); the others hold one
    hostile entry somewhere."""
    configs = draw(st.lists(good_entries | st.sampled_from(ACCEPTED), max_size=12))
    if draw(st.booleans()):
        at = draw(st.integers(min_value=0, max_value=len(configs)))
        configs.insert(at, draw(st.sampled_from(HOSTILE)))
    wrapper = draw(st.sampled_from(["list", "configs", "export", "export", "other format"]))
    return WRAPPERS[wrapper](configs)


def stored(path: Path, mode: Mode) -> list[list[Any]]:
    """Every version, head and change (without the times an append stamps, and commit times)
    in the database at ``path``."""
    times = "" if mode == "append" else ", created_at, updated_at"
    return table_rows(
        path,
        "SELECT seq, tenant_id, scope, service, config_key, version, value, updated_by, "
        f"comment, deleted{times} FROM config_versions ORDER BY seq",
        "SELECT tenant_id, scope, service, config_key, latest_version, deleted, "
        f"version_count{times.replace(', updated_at', '')} FROM config_heads ORDER BY config_key",
        CHANGES,
    )


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding versions 1 and 2 of key "a" ({"v": 1} each)."""
    path = tmp_path_factory.mktemp("template") / "template.db"

    async def fill() -> None:
        async with open_store(f"sqlite:///{path}") as store:
            for _ in range(2):
                await store.set_config(TENANT, "system", "svc", "a", {"v": 1})

    asyncio.run(fill())
    return path


async def import_outcome(path: Path, document: Any, mode: Mode, *, reference: bool) -> object:
    """What importing ``document`` returns or raises, through import_configs or the base
    class's path."""
    async with open_store(f"sqlite:///{path}") as store:
        try:
            if reference:
                return await ConfigStore._import_document(store, TENANT, document, mode)
            return await store.import_configs(TENANT, document, mode=mode)
        except ConfigStoreError as exc:
            return type(exc), str(exc)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(document=documents(), mode=st.sampled_from(["restore", "append"]))
async def test_rows_and_errors_equal_the_entry_path(
    document: Any, mode: Mode, template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_module, "ROW_CHUNK", 3)  # several chunks in both paths
    imported, reference = tmp_path / "imported.db", tmp_path / "reference.db"
    shutil.copyfile(template, imported)
    shutil.copyfile(template, reference)
    result = await import_outcome(imported, document, mode, reference=False)
    assert result == await import_outcome(reference, document, mode, reference=True)
    assert stored(imported, mode) == stored(reference, mode)
    imported.unlink()
    reference.unlink()


@pytest.mark.parametrize(
    ("configs", "error", "message"),
    [
        (
            [raw_entry("b", 1), raw_entry("b", 1), raw_entry(scope="bogus")],
            ImportFormatError,
            "configs[1]: version 1 of acme/system/svc/b appears twice",
        ),
        (
            [
                raw_entry("a", 1, config_value={"v": "clash"}),
                raw_entry("b", 1),
                raw_entry(version=0),
            ],
            ImportFormatError,
            "configs[2] (acme/system/svc/a version 0): entry field 'version' must be",
        ),
        (
            [raw_entry("system_config", 1, config_value={"vespa_port": "x"}), raw_entry("b", 1)],
            ImportFormatError,
            "configs[0] (acme/system/svc/system_config version 1): ",
        ),
        (
            [raw_entry("b", 1), raw_entry("a", 1, config_value={"v": "clash"})],
            ImportConflictError,
            "version 1 of acme/system/svc/a is already stored with a different value",
        ),
    ],
    ids=["twice before malformed", "malformed after a conflict", "typed config", "conflict"],
)
async def test_a_bad_document_writes_nothing_and_names_the_entry(
    template: Path, tmp_path: Path, configs: list[Any], error: type[Exception], message: str
) -> None:
    path = tmp_path / "store.db"
    shutil.copyfile(template, path)
    before = stored(path, "restore")
    async with open_store(f"sqlite:///{path}") as store:
        with pytest.raises(error) as raised:
            await store.import_configs(TENANT, configs)
    assert str(raised.value).startswith(message)
    assert stored(path, "restore") == before


async def test_common_entries_become_rows_without_an_entry_object(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[object] = []
    from_dict = ConfigEntry.from_dict

    def counting_from_dict(data: Any) -> ConfigEntry:
        built.append(data)
        return from_dict(data)

    monkeypatch.setattr(ConfigEntry, "from_dict", counting_from_dict)
    configs = [raw_entry(key, version) for key in ("a", "b") for version in (1, 2, 3)]
    async with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        assert await store.import_configs(TENANT, {"configs": configs[::-1]}) == 6
        history = await store.get_config_history(TENANT, "system", "svc", "a")
    assert built == []
    assert [entry.version for entry in history] == [3, 2, 1]
    assert history[0].to_dict() == {**configs[2], "tenant_id": TENANT}
    versions = stored(tmp_path / "store.db", "restore")[0]
    assert [row[4:6] for row in versions] == [
        (entry["config_key"], entry["version"]) for entry in configs
    ]
