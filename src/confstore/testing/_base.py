"""The base every group of conformance tests builds on: capability flags and shared helpers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.strategies import SearchStrategy

from .._models import ChangeBatch, ConfigChange, ConfigEntry, ConfigKey, ConfigScope
from .._store import ConfigStore

TENANT = "tenant-a"
OTHER_TENANT = "tenant-b"
SCOPE = ConfigScope.SYSTEM
SERVICE = "svc"
KEY = "key"

ReopenConfigStore = Callable[[], Awaitable[ConfigStore]]

# Timestamps a store writes must be close to the test's clock; the slack allows for a remote
# backend whose clock drifts a little, not for a store that invents or shifts timestamps.
CLOCK_SLACK = timedelta(minutes=10)


class StoreTestsBase:
    """Capability flags and helpers shared by every ``*Tests`` group of the suite.

    Classes whose name ends in ``Tests`` are abstract groups and are never collected; any other
    subclass (``TestMyStore``) is collected unless it sets ``__test__`` itself.
    """

    __test__ = False

    #: The store accepts a value of exactly ``max_value_bytes`` (1 MiB by default).
    supports_large_values: ClassVar[bool] = True
    #: Tasks the concurrency tests start on one key; the contract asks for 50.
    concurrent_writers: ClassVar[int] = 50
    #: Seconds within which a write through one handle shows in another handle's change feed.
    change_feed_latency: ClassVar[float] = 0.0
    #: Seconds within which any call to an unreachable backend must return or raise.
    unreachable_timeout: ClassVar[float] = 30.0
    #: Examples per hypothesis property test; stores may be remote emulators, so keep it small.
    hypothesis_max_examples: ClassVar[int] = 25
    #: ``{"test_name": "why"}``: tests expected to fail for this store, run as strict xfail.
    known_gaps: ClassVar[Mapping[str, str]] = {}
    #: The part of the contract a group's tests check, as ``confstore conformance`` reports it.
    contract_area: ClassVar[str] = "other"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__test__" not in cls.__dict__:
            cls.__test__ = not cls.__name__.endswith("Tests")
        # Hypothesis settings are fixed when a test is decorated, so each class gets its own
        # decorated copy of every property test, with its own hypothesis_max_examples.
        for name in dir(cls):
            body = getattr(getattr(cls, name), "_confstore_property_body", None)
            if body is not None:
                strategies = body._confstore_strategies
                decorated = settings(
                    max_examples=cls.hypothesis_max_examples,
                    deadline=None,
                    # No shrinking: each example is many store round trips (stores may be
                    # remote emulators) and shrinking a failure runs hundreds more.
                    phases=[Phase.explicit, Phase.reuse, Phase.generate],
                    suppress_health_check=[
                        HealthCheck.function_scoped_fixture,
                        HealthCheck.differing_executors,
                        HealthCheck.too_slow,
                    ],
                )(given(**strategies)(body))
                setattr(decorated, "_confstore_property_body", body)  # noqa: B010
                setattr(cls, name, decorated)


def property_test(**strategies: SearchStrategy[Any]) -> Callable[[Any], Any]:
    """Mark an async test as a hypothesis property test with ``strategies`` for its arguments.

    The test class applies ``given`` and its own ``hypothesis_max_examples`` (see StoreTestsBase).
    """

    def mark(body: Any) -> Any:
        body._confstore_strategies = strategies
        body._confstore_property_body = body
        return body

    return mark


def identity(
    tenant_id: str = TENANT,
    scope: ConfigScope | str = SCOPE,
    service: str = SERVICE,
    config_key: str = KEY,
) -> tuple[str, ConfigScope | str, str, str]:
    """A config's identity: the suite's default one, with any part replaced."""
    return tenant_id, scope, service, config_key


async def write(
    store: ConfigStore,
    value: dict[str, Any] | None = None,
    *,
    expected_version: int | None = None,
    updated_by: str | None = None,
    comment: str | None = None,
    **parts: Any,
) -> ConfigEntry:
    """set_config on ``identity(**parts)``; the value defaults to ``{"n": 1}``."""
    return await store.set_config(
        *identity(**parts),
        {"n": 1} if value is None else value,
        expected_version=expected_version,
        updated_by=updated_by,
        comment=comment,
    )


async def read(
    store: ConfigStore, *, version: int | None = None, **parts: Any
) -> ConfigEntry | None:
    return await store.get_config(*identity(**parts), version)


async def history(store: ConfigStore, *, limit: int = 100, **parts: Any) -> list[ConfigEntry]:
    return await store.get_config_history(*identity(**parts), limit)


async def delete(
    store: ConfigStore,
    *,
    purge: bool = False,
    updated_by: str | None = None,
    comment: str | None = None,
    **parts: Any,
) -> bool:
    return await store.delete_config(
        *identity(**parts), purge=purge, updated_by=updated_by, comment=comment
    )


def nested(depth: int, leaf: Any = 1) -> dict[str, Any]:
    """A value whose objects and lists nest ``depth`` levels (the value itself is level 1)."""
    value: Any = leaf
    for level in range(depth - 1):
        value = {"d": value} if level % 2 else [value]
    return {"d": value}


def versions(entries: Iterable[ConfigEntry]) -> list[int]:
    return [entry.version for entry in entries]


async def store_state(
    store: ConfigStore, tenants: Iterable[str] = (TENANT, OTHER_TENANT)
) -> dict[str, Any]:
    """Everything observable about ``tenants`` (and the store's counts), to compare before/after."""
    stats = await store.get_stats()
    exports = {}
    for tenant_id in tenants:
        document = await store.export_configs(tenant_id, include_history=True)
        exports[tenant_id] = document["configs"]
    return {"stats": stats, "tenants": await store.list_tenants(), "exports": exports}


async def read_feed(
    store: ConfigStore, cursor: str | None = None, *, limit: int = 1000
) -> tuple[list[ConfigChange], str]:
    """Every change after ``cursor`` available now, following pages, and the cursor after them.

    The feed delivers at least once, so a repeated change is dropped (the first delivery stays):
    tests check what was delivered and in which order, not how often.
    """
    changes: list[ConfigChange] = []
    while True:
        batch: ChangeBatch = await store.changes_since(cursor, limit=limit)
        changes.extend(batch.changes)
        cursor = batch.cursor
        if not batch.has_more:
            return unique(changes), cursor


def unique(changes: Iterable[ConfigChange]) -> list[ConfigChange]:
    return list(dict.fromkeys(changes))


async def await_feed(
    store: ConfigStore,
    cursor: str | None,
    done: Callable[[list[ConfigChange]], bool],
    latency: float,
) -> list[ConfigChange]:
    """Read the feed after ``cursor`` until ``done(changes)`` or ``latency`` seconds have passed.

    With ``latency == 0`` (the default) the feed is read exactly once: the write must be visible.
    """
    deadline = time.monotonic() + latency
    seen: list[ConfigChange] = []
    while True:
        changes, cursor = await read_feed(store, cursor)
        seen.extend(changes)
        if done(seen) or time.monotonic() >= deadline:
            return seen
        await asyncio.sleep(min(0.05, latency))


def changes_of(changes: Iterable[ConfigChange], key: ConfigKey) -> list[ConfigChange]:
    return [change for change in changes if change.key == key]


def default_key(
    tenant_id: str = TENANT,
    scope: ConfigScope = SCOPE,
    service: str = SERVICE,
    config_key: str = KEY,
) -> ConfigKey:
    return ConfigKey(tenant_id, scope, service, config_key)


def assert_utc(moment: datetime) -> None:
    assert isinstance(moment, datetime)
    assert moment.tzinfo is not None, f"{moment!r} is naive"
    assert moment.utcoffset() == timedelta(0), f"{moment!r} is not UTC"


def assert_recent(moment: datetime) -> None:
    now = datetime.now(UTC)
    assert now - CLOCK_SLACK <= moment <= now + CLOCK_SLACK, f"{moment} is not close to {now}"


def require_shared(store: ConfigStore) -> None:
    if not store.capabilities.shared:
        pytest.skip(
            f"{type(store).__name__} declares capabilities.shared=False: "
            "no second handle on the same storage"
        )


def require_persistent(store: ConfigStore) -> None:
    if not store.capabilities.persistent:
        pytest.skip(
            f"{type(store).__name__} declares capabilities.persistent=False: "
            "data does not survive a reopen"
        )


def entry_without_tenant(entry: ConfigEntry) -> dict[str, Any]:
    data = entry.to_dict()
    del data["tenant_id"]
    return data
