"""Listings, tenants and tenant isolation."""

from __future__ import annotations

import itertools
import operator
import random
import string
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from .._models import ConfigKey, ConfigScope
from .._store import ConfigStore
from ._base import (
    OTHER_TENANT,
    TENANT,
    StoreTestsBase,
    delete,
    history,
    property_test,
    read,
    read_feed,
    write,
)


class ListingTests(StoreTestsBase):
    """list_configs: latest live versions ordered by scope, service, key; list_tenants: sorted."""

    contract_area = "listings and stats"

    async def test_list_configs_is_ordered_by_scope_service_and_key(
        self, config_store: ConfigStore
    ) -> None:
        identities = [
            (scope, service, config_key)
            for scope in ConfigScope
            for service in ("b", "a", "a.b", "a:b", "B")
            for config_key in ("y", "x", "X", "x1")
        ]
        for scope, service, config_key in random.Random(4).sample(identities, len(identities)):
            await write(config_store, scope=scope, service=service, config_key=config_key)
        listed = await config_store.list_configs(TENANT)
        assert [(entry.scope.value, entry.service, entry.config_key) for entry in listed] == sorted(
            (scope.value, service, config_key) for scope, service, config_key in identities
        )

    async def test_list_configs_returns_the_latest_version_of_each_key(
        self, config_store: ConfigStore
    ) -> None:
        await write(config_store, {"n": 1}, config_key="a")
        await write(config_store, {"n": 2}, config_key="a")
        await write(config_store, {"n": 1}, config_key="b")
        listed = await config_store.list_configs(TENANT)
        assert [(entry.config_key, entry.version, entry.config_value) for entry in listed] == [
            ("a", 2, {"n": 2}),
            ("b", 1, {"n": 1}),
        ]
        assert listed[0] == await read(config_store, config_key="a")

    async def test_list_configs_filters_by_scope(self, config_store: ConfigStore) -> None:
        for scope in ConfigScope:
            await write(config_store, scope=scope)
        for scope in ConfigScope:
            for requested in (scope, scope.value):
                listed = await config_store.list_configs(TENANT, requested)
                assert [entry.scope for entry in listed] == [scope]

    async def test_list_configs_filters_by_service(self, config_store: ConfigStore) -> None:
        for service in ("svc", "svc2", "sv", "svc:x", "Svc"):
            await write(config_store, service=service)
            await write(config_store, service=service, scope=ConfigScope.AGENT)
        listed = await config_store.list_configs(TENANT, service="svc")
        assert [(entry.scope, entry.service) for entry in listed] == [
            (ConfigScope.AGENT, "svc"),
            (ConfigScope.SYSTEM, "svc"),
        ]

    async def test_list_configs_filters_by_scope_and_service(
        self, config_store: ConfigStore
    ) -> None:
        for scope, service in itertools.product(ConfigScope, ("one", "two")):
            await write(config_store, scope=scope, service=service)
        listed = await config_store.list_configs(TENANT, "routing", "two")
        assert [(entry.scope, entry.service) for entry in listed] == [(ConfigScope.ROUTING, "two")]

    async def test_list_configs_of_an_unknown_tenant_is_empty(
        self, config_store: ConfigStore
    ) -> None:
        await write(config_store)
        assert await config_store.list_configs("nobody") == []
        assert await config_store.list_configs(TENANT, service="nothing") == []

    async def test_list_configs_does_not_match_tenant_prefixes(
        self, config_store: ConfigStore
    ) -> None:
        for tenant_id in ("acme", "acme2", "acm", "acme:eu", "ACME", "acme.eu"):
            await write(config_store, {"tenant": tenant_id}, tenant_id=tenant_id)
        listed = await config_store.list_configs("acme")
        assert [entry.config_value for entry in listed] == [{"tenant": "acme"}]
        assert {entry.tenant_id for entry in listed} == {"acme"}

    async def test_list_tenants_is_sorted_and_unique(self, config_store: ConfigStore) -> None:
        tenants = ["zeta", "Alpha", "beta", "9x", "a:b", "a", "a.b", "a-b", "a_b"]
        for tenant_id in tenants:
            await write(config_store, tenant_id=tenant_id, config_key="one")
            await write(config_store, tenant_id=tenant_id, config_key="two")
        assert await config_store.list_tenants() == sorted(tenants)

    async def test_listings_are_not_truncated(self, config_store: ConfigStore) -> None:
        # Backends that search or aggregate often return 10 hits unless asked for more.
        tenants = [f"t{number:02}" for number in range(25)]
        for tenant_id in tenants:
            await write(config_store, tenant_id=tenant_id)
        for number in range(40):
            await write(config_store, config_key=f"k{number:02}")
        for _ in range(24):
            await write(config_store, config_key="k00")
        assert await config_store.list_tenants() == sorted([*tenants, TENANT])
        listed = await config_store.list_configs(TENANT)
        assert [entry.config_key for entry in listed] == [f"k{number:02}" for number in range(40)]
        exported = await config_store.export_configs(TENANT, include_history=True)
        assert len(exported["configs"]) == 64
        assert len(await history(config_store, config_key="k00", limit=30)) == 25
        stats = await config_store.get_stats()
        assert (stats["total_configs"], stats["total_versions"]) == (65, 89)
        assert stats["total_tenants"] == 26

    async def test_list_tenants_of_an_empty_store_is_empty(self, config_store: ConfigStore) -> None:
        assert await config_store.list_tenants() == []
        assert await config_store.list_tenants(include_deleted=True) == []

    async def test_tenant_whose_keys_are_all_deleted_is_listed_only_with_include_deleted(
        self, config_store: ConfigStore
    ) -> None:
        await write(config_store, tenant_id="gone")
        await delete(config_store, tenant_id="gone")
        await write(config_store, tenant_id="live")
        await write(config_store, tenant_id="purged")
        await delete(config_store, tenant_id="purged", purge=True)
        assert await config_store.list_tenants() == ["live"]
        assert await config_store.list_tenants(include_deleted=True) == ["gone", "live"]

    async def test_tenant_with_one_live_key_among_deleted_ones_is_listed(
        self, config_store: ConfigStore
    ) -> None:
        await write(config_store, config_key="gone")
        await write(config_store, config_key="kept")
        await delete(config_store, config_key="gone")
        assert await config_store.list_tenants() == [TENANT]


@dataclass(frozen=True)
class IsolationScenario:
    """Two confusable tenants: ``writer`` runs ``operations``; ``observer`` must see no change."""

    writer: str
    observer: str
    services: tuple[str, ...]
    config_keys: tuple[str, ...]
    operations: tuple[tuple[str, ConfigScope, str, str], ...]


_ALPHANUMERIC = string.ascii_letters + string.digits
_PART = st.builds(
    operator.add,
    st.sampled_from(_ALPHANUMERIC),
    st.text(alphabet=_ALPHANUMERIC + "_.-", max_size=8),
)
_SEPARATOR = st.sampled_from([":", ".", "-", "_", ""])


@st.composite
def _confusable_tenants(draw: Any) -> tuple[str, str]:
    """Tenant pairs a careless backend could mix up: prefixes, case, shifted separators."""
    head, tail, separator = draw(_PART), draw(_PART), draw(_SEPARATOR)
    joined = f"{head}{separator}{tail}"
    candidates = [(joined, head), (head, joined), (joined.upper(), joined.lower())]
    candidates += [(f"{head}:{tail}", f"{head}.{tail}"), (f"{head}{tail}", f"{head}:{tail}")]
    writer, observer = draw(st.sampled_from(candidates))
    if writer == observer:
        observer = f"{observer}x"
    return writer, observer


@st.composite
def isolation_scenarios(draw: Any) -> IsolationScenario:
    writer, observer = draw(_confusable_tenants())
    services = (draw(_PART), f"{draw(_PART)}:{draw(_PART)}")
    config_keys = (draw(_PART), "k")
    operation = st.tuples(
        st.sampled_from(["set", "set", "delete", "purge", "import"]),
        st.sampled_from([ConfigScope.SYSTEM, ConfigScope.AGENT]),
        st.sampled_from(services),
        st.sampled_from(config_keys),
    )
    operations = tuple(draw(st.lists(operation, min_size=1, max_size=8)))
    return IsolationScenario(writer, observer, services, config_keys, operations)


class IsolationTests(StoreTestsBase):
    """Nothing written for one tenant is visible to another, through any method."""

    contract_area = "isolation"

    _scenario_counter = itertools.count()

    async def _observe(self, store: ConfigStore, scenario: IsolationScenario) -> dict[str, Any]:
        tenant_id = scenario.observer
        view: dict[str, Any] = {
            "list": await store.list_configs(tenant_id),
            "export": (await store.export_configs(tenant_id))["configs"],
            "history": (await store.export_configs(tenant_id, include_history=True))["configs"],
            "listed": tenant_id in await store.list_tenants(),
        }
        for scope, service, config_key in itertools.product(
            (ConfigScope.SYSTEM, ConfigScope.AGENT), scenario.services, scenario.config_keys
        ):
            where = (scope.value, service, config_key)
            view[f"get {where}"] = await store.get_config(tenant_id, scope, service, config_key)
            view[f"v1 {where}"] = await store.get_config(tenant_id, scope, service, config_key, 1)
            view[f"history {where}"] = await store.get_config_history(
                tenant_id, scope, service, config_key
            )
            view[f"list {where}"] = await store.list_configs(tenant_id, scope, service)
        return view

    async def _run(self, store: ConfigStore, scenario: IsolationScenario) -> set[ConfigKey]:
        """Run the writer's operations; return the writer's keys that end up live."""
        observer_export = await store.export_configs(scenario.observer, include_history=True)
        live: set[ConfigKey] = set()
        for action, scope, service, config_key in scenario.operations:
            key = ConfigKey(scenario.writer, scope, service, config_key)
            if action == "set":
                await store.set_config(scenario.writer, scope, service, config_key, {"w": 1})
                live.add(key)
            elif action == "import":
                await store.import_configs(scenario.writer, observer_export, mode="append")
                live.update(
                    ConfigKey(
                        scenario.writer,
                        ConfigScope(raw["scope"]),
                        raw["service"],
                        raw["config_key"],
                    )
                    for raw in observer_export["configs"]
                )
            else:
                await store.delete_config(
                    scenario.writer, scope, service, config_key, purge=action == "purge"
                )
                live.discard(key)
        return live

    @property_test(scenario=isolation_scenarios())
    async def test_tenants_are_isolated(
        self, config_store: ConfigStore, scenario: IsolationScenario
    ) -> None:
        # Examples share one store: a per-example prefix keeps them apart, and keeps both
        # tenants' confusable shapes (a prefix added to both leaves prefixes and case intact).
        prefix = f"e{next(self._scenario_counter)}-"
        scenario = IsolationScenario(
            prefix + scenario.writer,
            prefix + scenario.observer,
            scenario.services,
            scenario.config_keys,
            scenario.operations,
        )
        for scope, service, config_key in itertools.product(
            (ConfigScope.SYSTEM, ConfigScope.AGENT), scenario.services[:1], scenario.config_keys
        ):
            await config_store.set_config(
                scenario.observer, scope, service, config_key, {"observer": True}
            )
        before = await self._observe(config_store, scenario)
        stats_before = await config_store.get_stats()
        cursor = await config_store.current_cursor()
        live = await self._run(config_store, scenario)
        assert await self._observe(config_store, scenario) == before
        # The counts move by exactly what the writer's own views show, and no more.
        stats_after = await config_store.get_stats()
        written = await config_store.export_configs(scenario.writer, include_history=True)
        assert stats_after["total_configs"] - stats_before["total_configs"] == len(live)
        assert stats_after["total_versions"] - stats_before["total_versions"] == len(
            written["configs"]
        )
        changes, _ = await read_feed(config_store, cursor)
        assert {change.tenant_id for change in changes} <= {scenario.writer}
        assert {entry.key for entry in await config_store.list_configs(scenario.writer)} == live
        assert (scenario.writer in await config_store.list_tenants()) == bool(live)

    async def test_same_key_in_two_tenants_is_independent(self, config_store: ConfigStore) -> None:
        await write(config_store, {"t": "a"}, tenant_id=TENANT)
        await write(config_store, {"t": "a"}, tenant_id=TENANT)
        other = await write(config_store, {"t": "b"}, tenant_id=OTHER_TENANT)
        await delete(config_store, tenant_id=TENANT)
        assert other.version == 1
        assert await read(config_store, tenant_id=OTHER_TENANT) == other
        assert await read(config_store, tenant_id=TENANT) is None
