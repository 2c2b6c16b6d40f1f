"""Layered typed configs: schema defaults < base tenant < tenant overrides < environment, what a
tenant stores, explain, the safety of base writes, and base changes reaching cached tenants."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from manager_stores import GatedStore, SwitchableStore

from confstore import (
    AgentConfig,
    ChangeBatch,
    ConfigManager,
    CursorExpiredError,
    ExplainedField,
    InheritanceError,
    InvalidConfigError,
    MemoryConfigStore,
    ModuleConfig,
    OptimizerConfig,
    SystemConfig,
)
from confstore.config_utils import get_config

SECRET = "sk-live-0123456789abcdef"
SYSTEM = ("system", "system", "system_config")
WAIT = 3.0


def agent(**fields: object) -> AgentConfig:
    module = ModuleConfig(module_type="react", signature="S")  # type: ignore[arg-type]
    return AgentConfig(agent_name="bot", module_config=module, **fields)  # type: ignore[arg-type]


async def stored_value(manager: ConfigManager, tenant_id: str) -> dict[str, object] | None:
    entry = await manager.store.get_config(tenant_id, *SYSTEM)
    return None if entry is None else entry.config_value


def sources(records: list[ExplainedField]) -> dict[str, tuple[object, ...]]:
    return {r.path: (r.value, r.source, r.tenant_id, r.version, r.variable) for r in records}


async def test_a_tenant_with_nothing_stored_reads_the_base_values(manager: ConfigManager) -> None:
    await manager.set_system_config(SystemConfig(llm_model="gpt-4o"))
    config = await manager.get_system_config("acme")
    assert (config.tenant_id, config.llm_model) == ("acme", "gpt-4o")


async def test_a_tenant_stores_only_what_differs_and_follows_the_rest(
    manager: ConfigManager,
) -> None:
    await manager.set_system_config(SystemConfig(llm_model="gpt-4o"))
    await manager.set_system_config(
        SystemConfig(tenant_id="acme", llm_model="gpt-4o", vespa_port=9)
    )
    assert await stored_value(manager, "acme") == {"vespa_port": 9, "tenant_id": "acme"}
    await manager.set_system_config(SystemConfig(llm_model="claude-3"))
    config = await manager.get_system_config("acme")
    assert (config.llm_model, config.vespa_port) == ("claude-3", 9)


async def test_the_base_tenant_stores_what_differs_from_the_schema(
    manager: ConfigManager,
) -> None:
    await manager.set_system_config(SystemConfig(llm_model="gpt-4o"))
    assert await stored_value(manager, "default") == {"llm_model": "gpt-4o", "tenant_id": "default"}


async def test_every_layer_in_order_of_priority(
    store: MemoryConfigStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONFSTORE_SYSTEM__LLM_MODEL", "from-env")
    async with ConfigManager(store) as manager:
        await manager.set_system_config(SystemConfig(llm_model="base", base_url="http://base"))
        await manager.patch(SystemConfig, "acme", {"llm_model": "tenant", "base_url": "http://t"})
        await manager.patch(SystemConfig, "acme", {"phoenix_url": "http://t"})
        await manager.set_system_config(SystemConfig(llm_model="base", vespa_url="http://base"))
        config = await manager.get_system_config("acme")
        assert (config.llm_model, config.base_url, config.vespa_url, config.vespa_port) == (
            "from-env",  # env > tenant > base > schema
            "http://t",  # tenant > base
            "http://base",  # base > schema
            8080,  # schema
        )
        explained = sources(await manager.explain(SystemConfig, "acme"))
    assert explained["llm_model"] == (
        "from-env",
        "env",
        None,
        None,
        "CONFSTORE_SYSTEM__LLM_MODEL",
    )
    assert explained["base_url"] == ("http://t", "tenant", "acme", 2, None)
    assert explained["vespa_url"] == ("http://base", "base", "default", 2, None)
    assert explained["vespa_port"] == (8080, "schema", None, None, None)


async def test_only_base_writes_reach_other_tenants(manager: ConfigManager) -> None:
    await manager.set_system_config(SystemConfig(tenant_id="a", llm_model="from-a"))
    assert (await manager.get_system_config("b")).llm_model == "gpt-4"
    assert (await manager.get_system_config("default")).llm_model == "gpt-4"


async def test_inherit_false_keeps_tenants_on_their_own(store: MemoryConfigStore) -> None:
    async with ConfigManager(store, inherit=False) as manager:
        await manager.set_system_config(SystemConfig(llm_model="gpt-4o"))
        assert (await manager.get_system_config("acme")).llm_model == "gpt-4"
        await manager.set_system_config(SystemConfig(tenant_id="acme", vespa_port=9))
        stored = await stored_value(manager, "acme")
    assert stored is not None
    assert stored["llm_model"] == "gpt-4"  # stored complete, as before layering


async def test_a_base_tenant_can_be_named(store: MemoryConfigStore) -> None:
    async with ConfigManager(store, base_tenant="platform") as manager:
        await manager.set_system_config(SystemConfig(tenant_id="platform", llm_model="p"))
        assert (await manager.get_system_config("acme")).llm_model == "p"
        assert (await manager.get_system_config("default")).llm_model == "p"


async def test_a_value_stored_complete_by_an_earlier_version_is_a_full_override(
    manager: ConfigManager,
) -> None:
    legacy = SystemConfig(tenant_id="acme").model_dump(mode="json")
    await manager.store.set_config("acme", *SYSTEM, legacy)
    await manager.set_system_config(SystemConfig(llm_model="gpt-4o", elasticsearch_url="http://es"))
    config = await manager.get_system_config("acme")
    assert (config.llm_model, config.elasticsearch_url) == ("gpt-4", None)


async def test_a_pinned_value_equal_to_the_default_survives_a_later_set(
    manager: ConfigManager,
) -> None:
    await manager.patch(SystemConfig, "acme", {"llm_model": "gpt-4"})
    config = await manager.get_system_config("acme")
    config.vespa_port = 9
    await manager.set_system_config(config)
    await manager.set_system_config(SystemConfig(llm_model="gpt-4o"))
    assert (await manager.get_system_config("acme")).llm_model == "gpt-4"
    await manager.patch(SystemConfig, "acme", {"llm_model": None})
    assert (await manager.get_system_config("acme")).llm_model == "gpt-4o"


async def test_set_does_not_store_values_the_environment_forces(
    store: MemoryConfigStore,
) -> None:
    environ = {"CONFSTORE_SYSTEM__LLM_MODEL": "from-env"}
    async with ConfigManager(store, environ=environ) as manager:
        config = await manager.get_system_config("acme")
        config.vespa_port = 9
        await manager.set_system_config(config)
        assert await stored_value(manager, "acme") == {"vespa_port": 9, "tenant_id": "acme"}


async def test_update_makes_overrides_only_of_what_it_changed(manager: ConfigManager) -> None:
    await manager.set_system_config(SystemConfig(llm_model="old-base"))

    async def change_port_while_the_base_moves(config: SystemConfig) -> None:
        await manager.set_system_config(SystemConfig(llm_model="new-base"))
        config.vespa_port = 9

    await manager.update(SystemConfig, "acme", change_port_while_the_base_moves)
    assert await stored_value(manager, "acme") == {"vespa_port": 9, "tenant_id": "acme"}
    assert (await manager.get_system_config("acme")).llm_model == "new-base"


async def test_an_agent_inherits_a_base_agent_of_the_same_name(manager: ConfigManager) -> None:
    await manager.set_agent_config("default", "bot", agent(llm_model="base-model"))
    await manager.patch(AgentConfig, "acme", {"module_config": {"signature": "T"}}, "bot")
    config = await manager.get_agent_config("acme", "bot")
    assert config is not None
    assert (config.llm_model, config.module_config.signature) == ("base-model", "T")
    assert await manager.get_agent_config("acme", "other") is None


async def test_invalid_merged_result_is_refused_and_nothing_written(
    manager: ConfigManager,
) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        await manager.patch(AgentConfig, "acme", {"module_config": {"signature": "T"}}, "bot")
    assert caught.value.field == "agent_name"
    assert await manager.store.get_config("acme", "agent", "bot", "agent_config") is None


async def test_base_write_breaking_a_tenant_is_refused_listing_tenants_and_fields(
    manager: ConfigManager,
) -> None:
    base = agent(optimizer_config=OptimizerConfig(optimizer_type="copro"))  # type: ignore[arg-type]
    await manager.set_agent_config("default", "bot", base)
    await manager.patch(AgentConfig, "acme", {"optimizer_config": {"num_trials": 3}}, "bot")
    await manager.patch(AgentConfig, "beta", {"optimizer_config": {"metric": "f1"}}, "bot")
    await manager.patch(AgentConfig, "gamma", {"llm_model": "m"}, "bot")
    with pytest.raises(InheritanceError) as caught:
        await manager.patch(AgentConfig, "default", {"optimizer_config": None}, "bot")
    assert caught.value.tenants == {
        "acme": ["optimizer_config.optimizer_type"],
        "beta": ["optimizer_config.optimizer_type"],
    }
    assert "acme (optimizer_config.optimizer_type)" in str(caught.value)
    history = await manager.store.get_config_history("default", "agent", "bot", "agent_config")
    assert len(history) == 1
    with pytest.raises(InheritanceError):
        await manager.delete(AgentConfig, "default", "bot")
    assert await manager.store.get_config("default", "agent", "bot", "agent_config") is not None


async def test_base_write_is_allowed_when_tenants_override_what_it_breaks(
    manager: ConfigManager,
) -> None:
    base = agent(optimizer_config=OptimizerConfig(optimizer_type="copro"))  # type: ignore[arg-type]
    await manager.set_agent_config("default", "bot", base)
    await manager.patch(AgentConfig, "acme", {"llm_model": "m"}, "bot")
    await manager.patch(AgentConfig, "default", {"optimizer_config": None}, "bot")
    config = await manager.get_agent_config("acme", "bot")
    assert config is not None
    assert config.optimizer_config is None


async def test_a_base_change_reaches_a_cached_tenant_and_rebuilds_it_once(
    manager: ConfigManager,
) -> None:
    first = await manager.get_system_config("acme")
    assert await manager.get_system_config("acme") is first
    await manager.store.set_config("default", *SYSTEM, {"llm_model": "from-elsewhere"})
    await manager.refresh()
    second = await manager.get_system_config("acme")
    assert second is not first
    assert second.llm_model == "from-elsewhere"
    assert await manager.get_system_config("acme") is second


async def test_cached_effective_reads_do_no_io(switchable: SwitchableStore) -> None:
    async with ConfigManager(switchable, poll_interval=60) as manager:
        await manager.get_system_config("acme")
        reads = switchable.reads
        for tenant in ("acme", "default", "acme"):
            await manager.get_system_config(tenant)
        assert switchable.reads == reads


class ExpiringGatedStore(GatedStore):
    """A GatedStore whose next change-feed request, once asked, finds the cursor expired."""

    expire_next = False

    async def _changes_since(self, cursor: str | None, limit: int) -> ChangeBatch:
        if self.expire_next:
            self.expire_next = False
            raise CursorExpiredError("older than the retained feed")
        return await super()._changes_since(cursor, limit)


async def test_a_read_racing_a_cache_reset_keeps_the_base_it_inherits() -> None:
    store = ExpiringGatedStore()
    async with ConfigManager(store, poll_interval=60) as manager:
        await store.set_config("default", *SYSTEM, {"llm_model": "base"})
        await manager.refresh()
        await manager.get_system_config("default")
        gate = store.gate("acme")
        read = asyncio.create_task(manager.get_system_config("acme"))
        await gate.entered.wait()
        store.expire_next = True
        await manager.refresh()  # the cache starts over while acme's read is under way
        gate.release.set()
        assert (await read).llm_model == "base"
        assert (await manager.get_system_config("acme")).llm_model == "base"


async def test_watch_reports_a_base_change_to_an_inheriting_tenant(
    manager: ConfigManager,
) -> None:
    await manager.patch(SystemConfig, "acme", {"llm_model": "own"})
    await manager.refresh()  # so that the watch starts after acme's own write
    watch = manager.watch(tenant_id="acme")
    await manager.store.set_config("default", *SYSTEM, {"llm_model": "ignored-by-acme"})
    await manager.store.set_config("default", *SYSTEM, {"vespa_port": 9})
    event = await asyncio.wait_for(anext(watch), WAIT)
    assert (event.tenant_id, event.inherited_from, event.version) == ("acme", "default", 2)
    assert event.entry is not None
    assert event.entry.config_value == {"vespa_port": 9}
    await watch.aclose()


async def test_explain_masks_secrets_unless_asked(manager: ConfigManager) -> None:
    await manager.set_system_config(SystemConfig(llm_api_key=SECRET))  # type: ignore[arg-type]
    masked = sources(await manager.explain(SystemConfig, "acme"))
    assert masked["llm_api_key"][:2] == ("***", "base")
    assert SECRET not in repr(masked)
    shown = sources(await manager.explain(SystemConfig, "acme", show_secrets=True))
    assert shown["llm_api_key"][0] == SECRET


async def test_explain_gives_nested_fields_dotted_paths(manager: ConfigManager) -> None:
    await manager.set_agent_config("default", "bot", agent())
    await manager.patch(AgentConfig, "acme", {"module_config": {"signature": "T"}}, "bot")
    explained = sources(await manager.explain(AgentConfig, "acme", "bot"))
    assert explained["module_config.signature"] == ("T", "tenant", "acme", 1, None)
    assert explained["module_config.module_type"] == ("react", "base", "default", 1, None)
    assert "tenant_id" not in explained
    assert await manager.explain(AgentConfig, "acme", "nobody") == []


async def test_check_finds_a_tenant_a_direct_base_write_broke(manager: ConfigManager) -> None:
    await manager.set_agent_config("default", "bot", agent())
    await manager.patch(AgentConfig, "acme", {"llm_model": "m"}, "bot")
    assert await manager.check() == []
    await manager.store.delete_config("default", "agent", "bot", "agent_config")
    problems = await manager.check()
    assert [(str(key), error.field) for key, error in problems] == [
        ("acme/agent/bot/agent_config", "agent_name")
    ]


async def test_rollback_is_checked_against_the_current_base(manager: ConfigManager) -> None:
    await manager.set_agent_config("default", "bot", agent())
    await manager.patch(AgentConfig, "acme", {"module_config": {"signature": "T"}}, "bot")
    await manager.patch(AgentConfig, "acme", {"llm_model": "m"}, "bot")
    await manager.store.delete_config("default", "agent", "bot", "agent_config", purge=True)
    await manager.patch(
        AgentConfig,
        "acme",
        {"agent_name": "bot", "module_config": agent().module_config.model_dump(mode="json")},
        "bot",
    )
    with pytest.raises(InvalidConfigError):
        await manager.rollback("acme", "agent", "bot", "agent_config", to_version=1)
    assert len(await manager.store.get_config_history("acme", "agent", "bot", "agent_config")) == 3


async def test_export_and_import_carry_the_overrides_as_stored(
    manager: ConfigManager, sqlite_url: str, tmp_path: Path
) -> None:
    await manager.set_system_config(SystemConfig(llm_model="gpt-4o"))
    await manager.patch(SystemConfig, "acme", {"vespa_port": 9})
    document = json.loads(json.dumps(await manager.store.export_configs("acme")))
    async with ConfigManager(url=sqlite_url) as restored:
        await restored.store.import_configs("acme", document)
        entry = await restored.store.get_config("acme", *SYSTEM)
        assert entry is not None
        assert entry.config_value == {"vespa_port": 9, "tenant_id": "acme"}
        assert (await restored.get_system_config("acme")).llm_model == "gpt-4"


async def test_the_flat_view_follows_the_base(manager: ConfigManager) -> None:
    view = await get_config("acme", manager=manager)
    await manager.set_system_config(SystemConfig(llm_model="gpt-4o"))
    await manager.get_system_config("acme")
    assert view["llm_model"] == "gpt-4o"
