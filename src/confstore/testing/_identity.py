"""Identity and validation: what a store accepts, and what it rejects unwritten."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from .._errors import InvalidConfigError, InvalidIdentifierError
from .._models import ConfigEntry, ConfigScope
from .._store import ConfigStore
from .._validation import MAX_LIMIT, MAX_NESTING_DEPTH, MAX_VERSION
from ._base import (
    KEY,
    OTHER_TENANT,
    SCOPE,
    SERVICE,
    TENANT,
    StoreTestsBase,
    history,
    nested,
    read,
    store_state,
    versions,
    write,
)

# What undecodable bytes (a \xff in a command line, a Latin-1 file) become in Python text.
LONE_SURROGATE = "\udcff"

HOSTILE_IDENTIFIERS: tuple[object, ...] = (
    "",
    " ",
    "a b",
    "a/b",
    "../etc",
    "a\x00b",
    "a\nb",
    "tab\t",
    "é",
    "\uff41",
    "-lead",
    ".lead",
    "_lead",
    ":lead",
    "a*",
    "a'b",
    'a"b',
    "a;DROP TABLE configs",
    "a%2Fb",
    "a?b=c",
    "a#b",
    "a\\b",
    "a" * 129,
    None,
    7,
    b"bytes",
    ["list"],
)

EDGE_IDENTIFIERS = ("a", "9", "a" * 128, "a_b-c.d:e", "9lives", "A.B", "x::y", "t--", "v1.2.3")

HOSTILE_SCOPES: tuple[object, ...] = ("", "SYSTEM", "sys", "system ", "other", None, 0, "System")


def _only(field: str, value: object) -> dict[str, Any]:
    return {field: value}


async def _drain(entries: AsyncIterator[ConfigEntry]) -> list[ConfigEntry]:
    return [entry async for entry in entries]


async def _rejects_identifier(store: ConfigStore, call: Any) -> None:
    before = await store_state(store)
    with pytest.raises(InvalidIdentifierError):
        await call
    assert await store_state(store) == before


class IdentityTests(StoreTestsBase):
    """Identifiers: accepted shapes, hostile values for every method, unambiguous composites."""

    contract_area = "errors"

    async def test_scope_is_accepted_as_enum_or_string(self, config_store: ConfigStore) -> None:
        written = await config_store.set_config(TENANT, "agent", SERVICE, KEY, {"n": 1})
        entry = await config_store.get_config(TENANT, ConfigScope.AGENT, SERVICE, KEY)
        assert entry == written
        assert entry.scope is ConfigScope.AGENT

    async def test_every_method_accepts_the_scope_as_a_string(
        self, config_store: ConfigStore
    ) -> None:
        written = await write(config_store, scope="routing")
        assert await read(config_store, scope="routing") == written
        assert await read(config_store, scope="routing", version=1) == written
        assert await history(config_store, scope="routing") == [written]
        assert await config_store.list_configs(TENANT, "routing", SERVICE) == [written]
        assert await config_store.delete_config(TENANT, "routing", SERVICE, KEY) is True
        assert await config_store.delete_config(TENANT, "routing", SERVICE, KEY, purge=True)
        assert await read(config_store, scope=ConfigScope.ROUTING, version=1) is None

    async def test_every_scope_stores_its_own_config(self, config_store: ConfigStore) -> None:
        for scope in ConfigScope:
            await write(config_store, {"scope": scope.value}, scope=scope)
        for scope in ConfigScope:
            entry = await read(config_store, scope=scope.value)
            assert entry is not None
            assert entry.config_value == {"scope": scope.value}
            assert entry.version == 1

    async def test_identifiers_at_the_edges_round_trip(self, config_store: ConfigStore) -> None:
        for identifier in EDGE_IDENTIFIERS:
            value = {"id": identifier}
            await write(
                config_store, value, tenant_id=identifier, service=identifier, config_key=identifier
            )
        for identifier in EDGE_IDENTIFIERS:
            entry = await read(
                config_store, tenant_id=identifier, service=identifier, config_key=identifier
            )
            assert entry is not None
            assert (entry.tenant_id, entry.service, entry.config_key) == (identifier,) * 3
            assert entry.config_value == {"id": identifier}
        assert await config_store.list_tenants() == sorted(EDGE_IDENTIFIERS)

    async def test_set_config_rejects_hostile_identifiers(self, config_store: ConfigStore) -> None:
        for bad in HOSTILE_IDENTIFIERS:
            for field in ("tenant_id", "service", "config_key"):
                await _rejects_identifier(config_store, write(config_store, **_only(field, bad)))

    async def test_get_config_rejects_hostile_identifiers(self, config_store: ConfigStore) -> None:
        await write(config_store)
        for bad in HOSTILE_IDENTIFIERS:
            for field in ("tenant_id", "service", "config_key"):
                await _rejects_identifier(config_store, read(config_store, **_only(field, bad)))

    async def test_get_config_history_rejects_hostile_identifiers(
        self, config_store: ConfigStore
    ) -> None:
        for bad in HOSTILE_IDENTIFIERS:
            for field in ("tenant_id", "service", "config_key"):
                await _rejects_identifier(config_store, history(config_store, **_only(field, bad)))

    async def test_list_configs_rejects_hostile_identifiers(
        self, config_store: ConfigStore
    ) -> None:
        for bad in HOSTILE_IDENTIFIERS:
            await _rejects_identifier(config_store, config_store.list_configs(bad))  # type: ignore[arg-type]
            if bad is not None:  # service=None means "every service"
                await _rejects_identifier(
                    config_store,
                    config_store.list_configs(TENANT, service=bad),  # type: ignore[arg-type]
                )

    async def test_delete_config_rejects_hostile_identifiers(
        self, config_store: ConfigStore
    ) -> None:
        await write(config_store)
        for bad in HOSTILE_IDENTIFIERS:
            for field in ("tenant_id", "service", "config_key"):
                identity: dict[str, Any] = {
                    "tenant_id": TENANT,
                    "scope": SCOPE,
                    "service": SERVICE,
                    "config_key": KEY,
                    field: bad,
                }
                for purge in (False, True):
                    await _rejects_identifier(
                        config_store, config_store.delete_config(**identity, purge=purge)
                    )

    async def test_export_and_import_reject_hostile_tenants(
        self, config_store: ConfigStore
    ) -> None:
        await write(config_store)
        document = await config_store.export_configs(TENANT)
        for bad in HOSTILE_IDENTIFIERS:
            await _rejects_identifier(config_store, config_store.export_configs(bad))  # type: ignore[arg-type]
            await _rejects_identifier(config_store, _drain(config_store.iter_configs(bad)))  # type: ignore[arg-type]
            await _rejects_identifier(config_store, config_store.import_configs(bad, document))  # type: ignore[arg-type]

    async def test_every_method_rejects_unknown_scopes(self, config_store: ConfigStore) -> None:
        await write(config_store)
        for bad in HOSTILE_SCOPES:
            await _rejects_identifier(config_store, write(config_store, scope=bad))
            await _rejects_identifier(config_store, read(config_store, scope=bad))
            await _rejects_identifier(config_store, history(config_store, scope=bad))
            if bad is not None:  # scope=None means "every scope"
                await _rejects_identifier(config_store, config_store.list_configs(TENANT, bad))  # type: ignore[arg-type]
            await _rejects_identifier(
                config_store,
                config_store.delete_config(TENANT, bad, SERVICE, KEY),  # type: ignore[arg-type]
            )

    async def test_composite_identities_are_unambiguous(self, config_store: ConfigStore) -> None:
        identities = [
            ("a:b", "c", "d"),
            ("a", "b:c", "d"),
            ("a", "b", "c:d"),
            ("a:b:c", "d", "e"),
            ("a", "b", "c.d"),
            ("a", "b.c", "d"),
        ]
        for number, (tenant_id, service, config_key) in enumerate(identities):
            await write(
                config_store,
                {"n": number},
                tenant_id=tenant_id,
                service=service,
                config_key=config_key,
            )
        for number, (tenant_id, service, config_key) in enumerate(identities):
            entry = await read(
                config_store, tenant_id=tenant_id, service=service, config_key=config_key
            )
            assert entry is not None
            assert (entry.config_value, entry.version) == ({"n": number}, 1)
        assert [entry.service for entry in await config_store.list_configs("a")] == [
            "b",
            "b",
            "b.c",
            "b:c",
        ]

    async def test_identifiers_are_case_sensitive(self, config_store: ConfigStore) -> None:
        await write(
            config_store, {"case": "lower"}, tenant_id="acme", service="svc", config_key="k"
        )
        await write(
            config_store, {"case": "upper"}, tenant_id="ACME", service="SVC", config_key="K"
        )
        lower = await read(config_store, tenant_id="acme", service="svc", config_key="k")
        upper = await read(config_store, tenant_id="ACME", service="SVC", config_key="K")
        assert lower is not None
        assert upper is not None
        assert (lower.config_value, upper.config_value) == ({"case": "lower"}, {"case": "upper"})
        assert await config_store.list_tenants() == ["ACME", "acme"]

    async def test_bad_version_arguments_are_rejected(self, config_store: ConfigStore) -> None:
        await write(config_store)
        before = await store_state(config_store)
        for bad in (0, -1, "1", 1.0, True):
            with pytest.raises(InvalidConfigError):
                await read(config_store, version=bad)  # type: ignore[arg-type]
        for bad in (-1, "1", 1.0, True):
            with pytest.raises(InvalidConfigError):
                await write(config_store, expected_version=bad)  # type: ignore[arg-type]
        for bad_limit in (0, -5, "3", True):
            with pytest.raises(InvalidConfigError):
                await history(config_store, limit=bad_limit)  # type: ignore[arg-type]
        assert await store_state(config_store) == before

    async def test_versions_and_limits_beyond_the_largest_are_rejected(
        self, config_store: ConfigStore
    ) -> None:
        await write(config_store)
        before = await store_state(config_store)
        for huge in (MAX_VERSION + 1, 2**63 - 1, 2**63, 2**64, 10**400):
            with pytest.raises(InvalidConfigError):
                await read(config_store, version=huge)
            with pytest.raises(InvalidConfigError):
                await write(config_store, expected_version=huge)
        for huge in (MAX_LIMIT + 1, 2**64):
            with pytest.raises(InvalidConfigError):
                await history(config_store, limit=huge)
            with pytest.raises(InvalidConfigError):
                await config_store.changes_since(None, limit=huge)
        assert await read(config_store, version=MAX_VERSION) is None
        assert versions(await history(config_store, limit=MAX_LIMIT)) == [1]
        assert await store_state(config_store) == before

    async def test_text_that_is_not_unicode_is_rejected(self, config_store: ConfigStore) -> None:
        await write(config_store)
        before = await store_state(config_store)
        for value in ({"v": LONE_SURROGATE}, {LONE_SURROGATE: 1}, {"v": ["ok", "\ud800"]}):
            with pytest.raises(InvalidConfigError):
                await write(config_store, value)
        for field in ("updated_by", "comment"):
            with pytest.raises(InvalidConfigError):
                await write(config_store, **_only(field, f"mallory{LONE_SURROGATE}"))
            with pytest.raises(InvalidConfigError):
                await config_store.delete_config(
                    TENANT, SCOPE, SERVICE, KEY, **_only(field, LONE_SURROGATE)
                )
        assert await store_state(config_store) == before


class ValueValidationTests(StoreTestsBase):
    """Values: JSON objects with finite numbers up to max_value_bytes; anything else writes nothing."""

    contract_area = "errors"

    async def _assert_rejected(self, store: ConfigStore, value: Any) -> None:
        before = await store_state(store)
        with pytest.raises(InvalidConfigError):
            await store.set_config(TENANT, SCOPE, SERVICE, KEY, value)
        assert await store_state(store) == before

    async def test_values_that_are_not_objects_are_rejected(
        self, config_store: ConfigStore
    ) -> None:
        for value in ([], [["a", 1]], "text", '{"a": 1}', 1, None, (("a", 1),), True):
            await self._assert_rejected(config_store, value)

    async def test_nan_and_infinity_are_rejected(self, config_store: ConfigStore) -> None:
        for number in (math.nan, math.inf, -math.inf):
            await self._assert_rejected(config_store, {"x": number})
            await self._assert_rejected(config_store, {"deep": {"list": [1, number]}})

    async def test_values_nested_deeper_than_the_limit_are_rejected(
        self, config_store: ConfigStore
    ) -> None:
        for depth in (MAX_NESTING_DEPTH + 1, 990, 5000):
            await self._assert_rejected(config_store, nested(depth))
        await self._assert_rejected(config_store, {"ok": 1, "deep": nested(MAX_NESTING_DEPTH)})

    async def test_the_deepest_value_round_trips_through_export_and_import(
        self, config_store: ConfigStore
    ) -> None:
        value = nested(MAX_NESTING_DEPTH, leaf="bottom")
        await write(config_store, value)
        document = json.loads(
            json.dumps(await config_store.export_configs(TENANT, include_history=True))
        )
        assert await config_store.import_configs(OTHER_TENANT, document) == 1
        copied = await read(config_store, tenant_id=OTHER_TENANT)
        assert copied is not None
        assert copied.config_value == value

    async def test_the_secret_mask_is_refused_as_a_secret_value(
        self, config_store: ConfigStore
    ) -> None:
        for value in (
            {"password": "***"},
            {"db": {"api_key": "**********"}},
            {"auth": {"user": "u", "password": "***"}},
            {"access_tokens": ["t-1", "***"]},
            {"private_key": "***"},
            {"proxyAuth": "***"},
        ):
            await self._assert_rejected(config_store, value)
        stored = {"note": "***", "max_tokens": 3, "password": "p***w"}
        assert (await write(config_store, stored)).config_value == stored

    async def test_tuples_and_sets_are_rejected(self, config_store: ConfigStore) -> None:
        for value in ({"x": (1, 2)}, {"deep": {"x": ("a",)}}, {"x": {1, 2}}):
            await self._assert_rejected(config_store, value)

    async def test_non_string_keys_are_rejected(self, config_store: ConfigStore) -> None:
        for value in ({1: "a"}, {"deep": {2: 3}}, {None: 1}, {("a",): 1}, {True: 1}):
            await self._assert_rejected(config_store, value)

    async def test_values_that_are_not_json_are_rejected(self, config_store: ConfigStore) -> None:
        for value in (
            {"when": datetime.now(UTC)},
            {"raw": b"bytes"},
            {"object": object()},
            {"scope": ConfigScope.SYSTEM, "nested": {"f": print}},
        ):
            await self._assert_rejected(config_store, value)

    async def test_value_over_max_value_bytes_is_rejected(self, config_store: ConfigStore) -> None:
        wrapper = len('{"v":""}')
        too_big = {"v": "x" * (config_store.max_value_bytes - wrapper + 1)}
        await self._assert_rejected(config_store, too_big)

    async def test_size_limit_counts_utf8_bytes(self, config_store: ConfigStore) -> None:
        wrapper = len('{"v":""}')
        characters = (config_store.max_value_bytes - wrapper) // 2 + 1
        await self._assert_rejected(config_store, {"v": "\u00e9" * characters})

    async def test_value_of_exactly_max_value_bytes_is_stored(
        self, config_store: ConfigStore
    ) -> None:
        if not self.supports_large_values:
            pytest.skip(f"{type(self).__name__}.supports_large_values is False")
        wrapper = len('{"v":""}')
        value = {"v": "x" * (config_store.max_value_bytes - wrapper)}
        written = await write(config_store, value)
        entry = await read(config_store)
        assert entry is not None
        assert entry.config_value == value
        assert written.version == 1

    async def test_rejected_write_leaves_existing_key_unchanged(
        self, config_store: ConfigStore
    ) -> None:
        await write(config_store, {"good": True})
        await self._assert_rejected(config_store, {"bad": math.nan})
        entry = await read(config_store)
        assert entry is not None
        assert (entry.version, entry.config_value) == (1, {"good": True})

    async def test_json_values_round_trip_exactly(self, config_store: ConfigStore) -> None:
        value = {
            "text": 'h\u00e9llo \u2603 \U0001f600 "quoted" \\ back/slash\n',
            "int": 2**53 + 1,
            "negative": -7,
            "float": 0.1,
            "exp": 1e-7,
            "bools": [True, False],
            "none": None,
            "nested": {"list": [1, "two", {"three": [3.5]}], "empty": {}, "empty_list": []},
            "": "empty key",
            "key with spaces/and:colons": 1,
        }
        await write(config_store, value)
        entry = await read(config_store)
        assert entry is not None
        assert entry.config_value == value
        assert type(entry.config_value["int"]) is int
        assert type(entry.config_value["float"]) is float

    async def test_empty_object_is_a_live_value(self, config_store: ConfigStore) -> None:
        await write(config_store, {})
        entry = await read(config_store)
        assert entry is not None
        assert (entry.config_value, entry.deleted) == ({}, False)
        assert [listed.config_key for listed in await config_store.list_configs(TENANT)] == [KEY]

    async def test_audit_fields_must_be_text(self, config_store: ConfigStore) -> None:
        before = await store_state(config_store)
        for field in ("updated_by", "comment"):
            for bad in (1, b"who", ["who"]):
                with pytest.raises(InvalidConfigError):
                    await write(config_store, **_only(field, bad))
                with pytest.raises(InvalidConfigError):
                    await config_store.delete_config(
                        TENANT, SCOPE, SERVICE, KEY, **_only(field, bad)
                    )
        assert await store_state(config_store) == before

    async def test_unknown_import_mode_is_rejected(self, config_store: ConfigStore) -> None:
        await write(config_store)
        document = await config_store.export_configs(TENANT)
        before = await store_state(config_store)
        with pytest.raises(InvalidConfigError):
            await config_store.import_configs(TENANT, document, mode="merge")  # type: ignore[arg-type]
        assert await store_state(config_store) == before
