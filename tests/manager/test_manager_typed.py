"""The typed-config registry (built-ins and plugins through the pluggy hook) and the storage form."""

from __future__ import annotations

from typing import Any

import pluggy
import pytest

from confstore import (
    AgentConfig,
    ConfigScope,
    DSPyModuleType,
    InvalidConfigError,
    ModuleConfig,
    RoutingConfig,
    SystemConfig,
    TelemetryConfig,
    _registry,
    _typed,
    hookspecs,
)
from confstore._typed import (
    TypedConfigSpec,
    dump_for_storage,
    load_from_storage,
    spec_for,
    typed_config_specs,
)
from confstore.hookspecs import SchemaRegistrar, hookimpl
from confstore.schemas import ConfigModel

SECRET = "sk-live-0123456789abcdef"


class WidgetConfig(ConfigModel):
    size: int = 3


class GadgetSettingsConfig(ConfigModel):
    colour: str = "red"


def test_builtin_specs_are_placed_as_designed() -> None:
    specs = typed_config_specs()
    assert {name: specs[name] for name in ("system", "agent", "routing", "telemetry")} == {
        "system": TypedConfigSpec(
            "system", SystemConfig, ConfigScope.SYSTEM, "system_config", "system"
        ),
        "agent": TypedConfigSpec("agent", AgentConfig, ConfigScope.AGENT, "agent_config", None),
        "routing": TypedConfigSpec(
            "routing", RoutingConfig, ConfigScope.ROUTING, "routing_config", "routing_agent"
        ),
        "telemetry": TypedConfigSpec(
            "telemetry", TelemetryConfig, ConfigScope.TELEMETRY, "telemetry_config", "telemetry"
        ),
    }


def test_spec_for_accepts_the_model_class_or_its_name() -> None:
    assert spec_for(RoutingConfig) is spec_for("routing")


def test_spec_for_an_unregistered_model_names_the_registered_ones() -> None:
    with pytest.raises(InvalidConfigError, match=r"registered: .*system"):
        spec_for(WidgetConfig)


def test_agent_spec_has_no_default_service() -> None:
    with pytest.raises(InvalidConfigError) as caught:
        spec_for(AgentConfig).service_for(None)
    assert caught.value.field == "service"


def test_plugin_registers_a_schema_through_the_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    class Plugin:
        @hookimpl
        def confstore_register_schemas(self, register: SchemaRegistrar) -> None:
            register(WidgetConfig, scope="system", config_key="widget", default_service="widgets")

    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    manager.register(_typed, name="confstore.schemas")
    manager.register(Plugin())
    monkeypatch.setattr(_registry, "plugin_manager", lambda: manager)
    registry = _typed._SchemaRegistry()
    assert registry.spec_for("widget") == TypedConfigSpec(
        "widget", WidgetConfig, ConfigScope.SYSTEM, "widget", "widgets"
    )
    assert registry.spec_for(SystemConfig).name == "system"


def test_registered_name_defaults_to_snake_case_without_config_suffix() -> None:
    registry = _typed._SchemaRegistry()
    registry._loaded = True
    spec = registry.register(GadgetSettingsConfig, scope="routing", config_key="gadget")
    assert spec.name == "gadget_settings"


def test_registering_a_name_twice_raises() -> None:
    registry = _typed._SchemaRegistry()
    registry._loaded = True
    registry.register(WidgetConfig, name="thing", scope="system", config_key="a")
    with pytest.raises(ValueError, match="already registered"):
        registry.register(GadgetSettingsConfig, name="thing", scope="system", config_key="b")


def test_register_rejects_a_bad_config_key() -> None:
    registry = _typed._SchemaRegistry()
    registry._loaded = True
    with pytest.raises(ValueError, match="config_key"):
        registry.register(WidgetConfig, scope="system", config_key="bad key")


def test_dump_for_storage_keeps_the_secret_intact() -> None:
    dumped = dump_for_storage(SystemConfig(llm_api_key=SECRET))  # type: ignore[arg-type]
    assert dumped["llm_api_key"] == SECRET


def test_dump_for_storage_is_json_ready() -> None:
    config = AgentConfig(
        agent_name="a",
        module_config=ModuleConfig(module_type=DSPyModuleType.REACT, signature="S"),
    )
    assert dump_for_storage(config)["module_config"]["module_type"] == "react"


def test_storage_round_trip_gives_an_equal_model_with_its_secret() -> None:
    config = SystemConfig(llm_api_key=SECRET, legacy="kept")  # type: ignore[arg-type]
    loaded = load_from_storage(SystemConfig, dump_for_storage(config))
    assert loaded == config
    assert loaded.llm_api_key is not None
    assert loaded.llm_api_key.get_secret_value() == SECRET


@pytest.mark.parametrize("placeholder", ["***", "**********"])
def test_dump_for_storage_refuses_a_masked_placeholder(placeholder: str) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        dump_for_storage(SystemConfig(llm_api_key=placeholder))  # type: ignore[arg-type]
    assert caught.value.field == "llm_api_key"


def test_load_error_names_the_field() -> None:
    with pytest.raises(InvalidConfigError) as caught:
        load_from_storage(SystemConfig, {"vespa_port": "not a port"})
    assert caught.value.field == "vespa_port"
    assert "vespa_port" in str(caught.value)


def test_load_error_names_a_nested_field_with_a_dotted_path() -> None:
    value: dict[str, Any] = {
        "agent_name": "a",
        "module_config": {"module_type": "nope", "signature": "S"},
    }
    with pytest.raises(InvalidConfigError) as caught:
        load_from_storage(AgentConfig, value)
    assert caught.value.field == "module_config.module_type"


def test_load_error_never_contains_the_secret() -> None:
    value = {"llm_api_key": SECRET, "vespa_port": SECRET, "environment": SECRET}
    with pytest.raises(InvalidConfigError) as caught:
        load_from_storage(SystemConfig, value)
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value)
    assert caught.value.__cause__ is None
