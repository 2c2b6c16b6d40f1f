"""config_utils.get_config: the read-only, always-current flat view of a tenant's config."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest
from manager_stores import SwitchableStore

from confstore import (
    BackendUnavailableError,
    ConfigManager,
    MemoryConfigStore,
    RoutingConfig,
    SystemConfig,
    TelemetryConfig,
    get_config_manager,
)
from confstore.config_utils import get_config

SECRET = "sk-live-0123456789abcdef"


async def test_defaults_under_the_original_flat_keys(manager: ConfigManager) -> None:
    config = await get_config(manager=manager)
    assert (config.get("llm_model"), config.get("base_url"), config["vespa_url"]) == (
        "gpt-4",
        "http://localhost:11434",
        "http://localhost",
    )


async def test_is_a_read_only_mapping(manager: ConfigManager) -> None:
    config = await get_config(manager=manager)
    assert isinstance(config, Mapping)
    with pytest.raises(TypeError):
        config["llm_model"] = "x"  # type: ignore[index]


async def test_unknown_key_gives_the_default_of_get(manager: ConfigManager) -> None:
    config = await get_config(manager=manager)
    assert config.get("no_such_key", "fallback") == "fallback"
    assert config.get("no_such_key") is None


async def test_unknown_key_raises_key_error(manager: ConfigManager) -> None:
    config = await get_config(manager=manager)
    with pytest.raises(KeyError):
        config["no_such_key"]


async def test_aliases_of_the_original_system(manager: ConfigManager) -> None:
    await manager.set_system_config(
        SystemConfig(llm_model="llama3", summarizer_agent_url="http://summ:1")
    )
    config = await get_config(manager=manager)
    assert (config["local_llm_model"], config["detailed_report_agent_url"]) == (
        "llama3",
        "http://summ:1",
    )


async def test_llm_key_groups_model_url_and_real_api_key(manager: ConfigManager) -> None:
    await manager.set_system_config(SystemConfig(llm_model="m", llm_api_key=SECRET))  # type: ignore[arg-type]
    config = await get_config(manager=manager)
    assert config["llm"] == {
        "model_name": "m",
        "base_url": "http://localhost:11434",
        "api_key": SECRET,
    }


async def test_api_key_is_returned_in_clear(manager: ConfigManager) -> None:
    await manager.set_system_config(SystemConfig(llm_api_key=SECRET))  # type: ignore[arg-type]
    assert (await get_config(manager=manager))["llm_api_key"] == SECRET


async def test_repr_masks_the_api_key(manager: ConfigManager) -> None:
    await manager.set_system_config(SystemConfig(llm_api_key=SECRET))  # type: ignore[arg-type]
    text = repr(await get_config(manager=manager))
    assert SECRET not in text
    assert "'llm_api_key': '***'" in text


async def test_routing_and_telemetry_keys(manager: ConfigManager) -> None:
    await manager.set_routing_config(RoutingConfig(routing_mode="ensemble", cache_ttl_seconds=9))
    await manager.set_telemetry_config(TelemetryConfig(enabled=False, level="basic"))
    config = await get_config(manager=manager)
    assert {
        key: config[key]
        for key in (
            "routing_mode",
            "enable_caching",
            "cache_ttl_seconds",
            "telemetry_enabled",
            "telemetry_level",
        )
    } == {
        "routing_mode": "ensemble",
        "enable_caching": True,
        "cache_ttl_seconds": 9,
        "telemetry_enabled": False,
        "telemetry_level": "basic",
    }


async def test_own_later_write_shows_through_the_same_view(manager: ConfigManager) -> None:
    config = await get_config(manager=manager)
    await manager.set_system_config(SystemConfig(llm_model="gpt-4-turbo"))
    assert config["llm_model"] == "gpt-4-turbo"


async def test_other_writer_shows_through_the_same_view(
    manager: ConfigManager, store: MemoryConfigStore
) -> None:
    config = await get_config(manager=manager)
    watch = manager.watch()
    value = SystemConfig(llm_model="from-elsewhere").model_dump(mode="json")
    await store.set_config("default", "system", "system", "system_config", value)
    await asyncio.wait_for(anext(watch), 3)
    assert config["llm_model"] == "from-elsewhere"


async def test_view_is_per_tenant(manager: ConfigManager) -> None:
    await manager.set_system_config(SystemConfig(tenant_id="a", llm_model="ma"))
    config = await get_config("b", manager=manager)
    assert config["llm_model"] == "gpt-4"


async def test_uses_the_process_wide_manager_by_default() -> None:
    await get_config_manager("memory://config-utils").set_system_config(SystemConfig(llm_model="z"))
    assert (await get_config())["llm_model"] == "z"


async def test_backend_down_and_never_read_raises(switchable: SwitchableStore) -> None:
    switchable.down = True
    manager = ConfigManager(switchable)
    with pytest.raises(BackendUnavailableError):
        await get_config(manager=manager)
    await manager.close()


async def test_view_keeps_the_last_values_after_the_manager_closes(
    store: MemoryConfigStore,
) -> None:
    manager = ConfigManager(store)
    await manager.set_system_config(SystemConfig(llm_model="kept"))
    config = await get_config(manager=manager)
    await manager.close()
    assert config["llm_model"] == "kept"


async def test_iterates_the_flat_keys_and_aliases(manager: ConfigManager) -> None:
    config = await get_config(manager=manager)
    keys = set(config)
    assert {"llm_model", "llm", "local_llm_model", "telemetry_level", "vespa_port"} <= keys
    assert len(config) == len(keys)
    assert dict(config)["vespa_port"] == 8080
