"""The usage examples of the system confstore replaces, with ``await`` added."""

from __future__ import annotations

import json
from pathlib import Path

from confstore import (
    AgentConfig,
    ConfigManager,
    ConfigScope,
    DSPyModuleType,
    ModuleConfig,
    SystemConfig,
)


async def test_system_config_defaults_when_nothing_is_stored(manager: ConfigManager) -> None:
    system_config = await manager.get_system_config(tenant_id="default")
    assert system_config.llm_model == "gpt-4"


async def test_updated_system_config_is_read_back(manager: ConfigManager) -> None:
    system_config = await manager.get_system_config(tenant_id="default")
    system_config.llm_model = "gpt-4-turbo"
    await manager.set_system_config(system_config)
    assert (await manager.get_system_config(tenant_id="default")).llm_model == "gpt-4-turbo"


async def test_manager_needs_no_explicit_initialize(sqlite_url: str) -> None:
    manager = ConfigManager(url=sqlite_url)
    try:
        await manager.set_system_config(SystemConfig(llm_model="claude-3"))
        assert (await manager.get_system_config()).llm_model == "claude-3"
    finally:
        await manager.close()


async def test_missing_agent_config_is_none(manager: ConfigManager) -> None:
    assert (
        await manager.get_agent_config(tenant_id="default", agent_name="text_analysis_agent")
        is None
    )


async def test_agent_config_as_documented(manager: ConfigManager) -> None:
    new_config = AgentConfig(
        agent_name="my_agent",
        module_config=ModuleConfig(
            module_type=DSPyModuleType.CHAIN_OF_THOUGHT, signature="MySignature"
        ),
    )
    await manager.set_agent_config(
        tenant_id="default", agent_name="my_agent", agent_config=new_config
    )
    stored = await manager.get_agent_config(tenant_id="default", agent_name="my_agent")
    assert stored == new_config


async def test_agent_config_history_lists_versions_newest_first(manager: ConfigManager) -> None:
    config = AgentConfig(
        agent_name="a", module_config=ModuleConfig(module_type="predict", signature="S")
    )
    await manager.set_agent_config("default", "a", config)
    config.llm_model = "claude-3"
    await manager.set_agent_config("default", "a", config)
    history = await manager.get_agent_config_history("default", "a")
    assert [entry.version for entry in history] == [2, 1]
    assert history[0].config_value["llm_model"] == "claude-3"


async def test_tenants_are_isolated(manager: ConfigManager) -> None:
    await manager.set_system_config(
        SystemConfig(
            tenant_id="tenant_a", llm_model="gpt-4", vespa_url="http://vespa-a.example.com"
        )
    )
    await manager.set_system_config(
        SystemConfig(
            tenant_id="tenant_b", llm_model="claude-3", vespa_url="http://vespa-b.example.com"
        )
    )
    config_a = await manager.get_system_config("tenant_a")
    config_b = await manager.get_system_config("tenant_b")
    assert (config_a.tenant_id, config_a.llm_model, config_a.vespa_url) == (
        "tenant_a",
        "gpt-4",
        "http://vespa-a.example.com",
    )
    assert (config_b.tenant_id, config_b.llm_model, config_b.vespa_url) == (
        "tenant_b",
        "claude-3",
        "http://vespa-b.example.com",
    )


async def test_defaults_of_an_unknown_tenant_carry_its_tenant_id(manager: ConfigManager) -> None:
    assert (await manager.get_system_config("tenant_c")).tenant_id == "tenant_c"


async def test_history_and_specific_versions_through_store(manager: ConfigManager) -> None:
    # The first value differs from the schema's default: a tenant stores only what differs.
    for model in ("gpt-4o", "gpt-4-turbo", "claude-3"):
        await manager.set_system_config(SystemConfig(llm_model=model))
    history = await manager.store.get_config_history(
        tenant_id="default",
        scope=ConfigScope.SYSTEM,
        service="system",
        config_key="system_config",
        limit=10,
    )
    assert [entry.version for entry in history] == [3, 2, 1]
    old_entry = await manager.store.get_config(
        tenant_id="default",
        scope=ConfigScope.SYSTEM,
        service="system",
        config_key="system_config",
        version=1,
    )
    assert old_entry is not None
    assert old_entry.config_value["llm_model"] == "gpt-4o"


async def test_export_then_import_into_a_fresh_store(
    manager: ConfigManager, tmp_path: Path, sqlite_url: str
) -> None:
    await manager.set_system_config(SystemConfig(llm_model="gpt-4"))
    await manager.set_system_config(SystemConfig(llm_model="gpt-4-turbo"))
    export_data = await manager.store.export_configs(tenant_id="default", include_history=True)
    backup = tmp_path / "configs_backup.json"
    backup.write_text(json.dumps(export_data, indent=2))
    import_data = json.loads(backup.read_text())
    async with ConfigManager(url=sqlite_url) as restored:
        imported_count = await restored.store.import_configs(
            tenant_id="default", configs=import_data
        )
        assert imported_count == 2
        assert (await restored.get_system_config()).llm_model == "gpt-4-turbo"


async def test_health_check_and_stats(manager: ConfigManager) -> None:
    await manager.set_system_config(SystemConfig(tenant_id="a"))
    await manager.set_system_config(SystemConfig(tenant_id="a", llm_model="claude-3"))
    await manager.set_system_config(SystemConfig(tenant_id="b"))
    assert await manager.store.health_check() is True
    stats = await manager.store.get_stats()
    assert (stats["total_configs"], stats["total_versions"], stats["total_tenants"]) == (2, 3, 2)
    assert stats["configs_per_scope"]["system"] == 2


async def test_routing_and_telemetry_configs_round_trip(manager: ConfigManager) -> None:
    routing = await manager.get_routing_config()
    routing.routing_mode = "ensemble"
    await manager.set_routing_config(routing)
    telemetry = await manager.get_telemetry_config()
    telemetry.level = "verbose"
    await manager.set_telemetry_config(telemetry)
    assert (await manager.get_routing_config()).routing_mode == "ensemble"
    assert (await manager.get_telemetry_config()).level == "verbose"


async def test_routing_config_is_stored_where_the_design_says(manager: ConfigManager) -> None:
    from confstore import RoutingConfig

    await manager.set_routing_config(RoutingConfig(routing_mode="hybrid"), tenant_id="t")
    entry = await manager.store.get_config("t", "routing", "routing_agent", "routing_config")
    assert entry is not None
    assert entry.config_value["routing_mode"] == "hybrid"
