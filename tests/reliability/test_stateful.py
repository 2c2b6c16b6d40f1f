"""A hypothesis state machine drives real stores against a simple model of the contract."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from confstore import ConfigKey, ConfigScope, ConfigStore, VersionConflictError, open_store

T = TypeVar("T")

KEYS = st.builds(
    ConfigKey,
    tenant_id=st.sampled_from(["t1", "t2", "t1:x"]),
    scope=st.sampled_from([ConfigScope.SYSTEM, ConfigScope.AGENT]),
    service=st.sampled_from(["svc", "x:svc"]),
    config_key=st.sampled_from(["k", "k.2"]),
)
VALUES = st.dictionaries(
    st.text(min_size=1, max_size=4),
    st.one_of(
        st.integers(),
        st.text(max_size=5),
        st.booleans(),
        st.none(),
        st.lists(st.integers(), max_size=3),
    ),
    max_size=3,
)


class StoreMachine(RuleBasedStateMachine):
    """Model: for each key the list of (value, deleted) versions, version n at index n - 1."""

    open_url: Callable[[Path], str] = staticmethod(lambda directory: "memory://")  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.directory = tempfile.TemporaryDirectory()
        self.store: ConfigStore = open_store(self.open_url(Path(self.directory.name)))
        self.run(self.store.initialize())
        self.model: dict[ConfigKey, list[tuple[dict[str, Any], bool]]] = {}

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    def teardown(self) -> None:
        self.run(self.store.close())
        self.loop.close()
        self.directory.cleanup()

    def latest_version(self, key: ConfigKey) -> int:
        return len(self.model.get(key, []))

    def live(self, key: ConfigKey) -> bool:
        history = self.model.get(key)
        return bool(history) and not history[-1][1]

    @rule(key=KEYS, value=VALUES)
    def set_config(self, key: ConfigKey, value: dict[str, Any]) -> None:
        entry = self.run(self.store.set_config(*_parts(key), value))
        self.model.setdefault(key, []).append((value, False))
        assert entry.version == self.latest_version(key)
        assert entry.config_value == value

    @rule(key=KEYS, value=VALUES, offset=st.integers(-2, 2))
    def compare_and_set(self, key: ConfigKey, value: dict[str, Any], offset: int) -> None:
        expected = max(0, self.latest_version(key) + offset)
        if expected == self.latest_version(key):
            entry = self.run(self.store.set_config(*_parts(key), value, expected_version=expected))
            self.model.setdefault(key, []).append((value, False))
            assert entry.version == expected + 1
        else:
            with pytest.raises(VersionConflictError) as caught:
                self.run(self.store.set_config(*_parts(key), value, expected_version=expected))
            assert (caught.value.expected, caught.value.actual) == (
                expected,
                self.latest_version(key),
            )

    @rule(key=KEYS)
    def delete(self, key: ConfigKey) -> None:
        was_live = self.live(key)
        assert self.run(self.store.delete_config(*_parts(key))) is was_live
        if was_live:
            self.model[key].append(({}, True))

    @rule(key=KEYS)
    def purge(self, key: ConfigKey) -> None:
        existed = key in self.model
        assert self.run(self.store.delete_config(*_parts(key), purge=True)) is existed
        self.model.pop(key, None)

    @rule(key=KEYS)
    def get_latest(self, key: ConfigKey) -> None:
        entry = self.run(self.store.get_config(*_parts(key)))
        if self.live(key):
            assert entry is not None
            assert (entry.version, entry.config_value) == (
                self.latest_version(key),
                self.model[key][-1][0],
            )
        else:
            assert entry is None

    @precondition(lambda self: bool(self.model))
    @rule(data=st.data())
    def get_version(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.model)))
        version = data.draw(st.integers(1, self.latest_version(key) + 1))
        entry = self.run(self.store.get_config(*_parts(key), version=version))
        if version > self.latest_version(key):
            assert entry is None
        else:
            assert entry is not None
            assert (entry.config_value, entry.deleted) == self.model[key][version - 1]

    @rule(key=KEYS, limit=st.integers(1, 4))
    def history(self, key: ConfigKey, limit: int) -> None:
        history = self.run(self.store.get_config_history(*_parts(key), limit=limit))
        expected = list(enumerate(self.model.get(key, []), start=1))[::-1][:limit]
        assert [(e.version, (e.config_value, e.deleted)) for e in history] == expected

    @invariant()
    def listings_and_stats_match_the_model(self) -> None:
        live = sorted(key for key in self.model if self.live(key))
        tenants = sorted({key.tenant_id for key in live})
        assert self.run(self.store.list_tenants()) == tenants
        for tenant in tenants:
            listed = self.run(self.store.list_configs(tenant))
            assert [entry.key for entry in listed] == [
                key for key in live if key.tenant_id == tenant
            ]
        stats = self.run(self.store.get_stats())
        assert stats["total_configs"] == len(live)
        assert stats["total_versions"] == sum(len(history) for history in self.model.values())
        assert stats["total_tenants"] == len(tenants)


def _parts(key: ConfigKey) -> tuple[str, ConfigScope, str, str]:
    return key.tenant_id, key.scope, key.service, key.config_key


MACHINE_SETTINGS = settings(
    max_examples=25,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class MemoryStoreMachine(StoreMachine):
    open_url = staticmethod(lambda directory: "memory://")


class SQLiteStoreMachine(StoreMachine):
    open_url = staticmethod(lambda directory: f"sqlite:///{directory / 'stateful.db'}")


TestMemoryStoreStateMachine = MemoryStoreMachine.TestCase
TestMemoryStoreStateMachine.settings = MACHINE_SETTINGS
TestSQLiteStoreStateMachine = SQLiteStoreMachine.TestCase
TestSQLiteStoreStateMachine.settings = MACHINE_SETTINGS
