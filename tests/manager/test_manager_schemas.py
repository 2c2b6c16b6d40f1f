"""The typed schemas: fields and defaults of the original system, validation, extras, secrets."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from confstore import (
    AgentConfig,
    DSPyModuleType,
    ModuleConfig,
    OptimizerConfig,
    OptimizerType,
    RoutingConfig,
    SystemConfig,
    TelemetryConfig,
)

SECRET = "sk-live-0123456789abcdef"


def test_system_config_defaults_match_the_original_system() -> None:
    config = SystemConfig()
    assert config.model_dump() == {
        "tenant_id": "default",
        "routing_agent_url": "http://localhost:8001",
        "video_agent_url": "http://localhost:8002",
        "text_agent_url": "http://localhost:8003",
        "summarizer_agent_url": "http://localhost:8004",
        "text_analysis_agent_url": "http://localhost:8005",
        "search_backend": "vespa",
        "vespa_url": "http://localhost",
        "vespa_port": 8080,
        "elasticsearch_url": None,
        "llm_model": "gpt-4",
        "base_url": "http://localhost:11434",
        "llm_api_key": None,
        "phoenix_url": "http://localhost:6006",
        "phoenix_collector_endpoint": "localhost:4317",
        "video_processing_profiles": [],
        "environment": "development",
        "metadata": {},
    }


def test_routing_config_defaults_match_the_original_system() -> None:
    config = RoutingConfig()
    assert config.model_dump() == {
        "tenant_id": "default",
        "routing_mode": "tiered",
        "enable_fast_path": True,
        "enable_slow_path": True,
        "enable_fallback": True,
        "fast_path_confidence_threshold": 0.7,
        "slow_path_confidence_threshold": 0.6,
        "max_routing_time_ms": 1000,
        "gliner_model": "urchade/gliner_large-v2.1",
        "gliner_threshold": 0.3,
        "gliner_device": "cpu",
        "gliner_labels": [],
        "llm_provider": "local",
        "llm_routing_model": "smollm3:3b",
        "llm_endpoint": "http://localhost:11434",
        "llm_temperature": 0.1,
        "llm_max_tokens": 150,
        "use_chain_of_thought": True,
        "enable_auto_optimization": True,
        "optimization_interval_seconds": 3600,
        "min_samples_for_optimization": 100,
        "dspy_enabled": True,
        "dspy_max_bootstrapped_demos": 10,
        "dspy_max_labeled_demos": 50,
        "enable_caching": True,
        "cache_ttl_seconds": 300,
        "max_cache_size": 1000,
        "metadata": {},
    }


def test_telemetry_config_defaults_match_the_original_system() -> None:
    config = TelemetryConfig()
    assert config.model_dump() == {
        "tenant_id": "default",
        "enabled": True,
        "level": "detailed",
        "environment": "development",
        "phoenix_enabled": True,
        "phoenix_endpoint": "localhost:4317",
        "phoenix_use_tls": False,
        "tenant_project_template": "cogniverse-{tenant_id}-{service}",
        "max_cached_tenants": 100,
        "tenant_cache_ttl_seconds": 3600,
        "max_queue_size": 2048,
        "max_export_batch_size": 512,
        "export_timeout_millis": 30000,
        "schedule_delay_millis": 500,
        "use_sync_export": False,
        "service_name": "video-search",
        "service_version": "1.0.0",
        "metadata": {},
    }


def test_agent_config_documented_example_needs_only_name_and_module() -> None:
    config = AgentConfig(
        agent_name="my_agent",
        module_config=ModuleConfig(
            module_type=DSPyModuleType.CHAIN_OF_THOUGHT, signature="MySignature"
        ),
    )
    assert config.model_dump(exclude={"agent_name", "module_config"}) == {
        "agent_version": "1.0.0",
        "agent_description": "",
        "agent_url": None,
        "capabilities": [],
        "skills": [],
        "optimizer_config": None,
        "llm_model": "gpt-4",
        "llm_base_url": None,
        "llm_api_key": None,
        "llm_temperature": 0.7,
        "llm_max_tokens": None,
        "thinking_enabled": True,
        "visual_analysis_enabled": True,
        "max_processing_time": 300,
        "metadata": {},
    }
    assert config.module_config.model_dump() == {
        "module_type": DSPyModuleType.CHAIN_OF_THOUGHT,
        "signature": "MySignature",
        "max_retries": 3,
        "temperature": 0.7,
        "max_tokens": None,
        "custom_params": {},
    }


def test_optimizer_config_defaults() -> None:
    config = OptimizerConfig(optimizer_type=OptimizerType.MIPRO_V2)
    assert config.model_dump() == {
        "optimizer_type": OptimizerType.MIPRO_V2,
        "max_bootstrapped_demos": 4,
        "max_labeled_demos": 16,
        "num_trials": 10,
        "metric": None,
        "teacher_settings": {},
        "custom_params": {},
    }


def test_enum_values_are_those_of_the_original_system() -> None:
    assert [member.value for member in DSPyModuleType] == [
        "predict",
        "chain_of_thought",
        "react",
        "multi_chain_comparison",
        "program_of_thought",
    ]
    assert [member.value for member in OptimizerType] == [
        "bootstrap_few_shot",
        "labeled_few_shot",
        "bootstrap_few_shot_with_random_search",
        "copro",
        "mipro_v2",
    ]


def test_unknown_module_type_raises_value_error() -> None:
    with pytest.raises(ValueError, match="invalid"):
        DSPyModuleType("invalid")


@pytest.mark.parametrize(
    ("model", "field", "value"),
    [
        (SystemConfig, "environment", "prod"),
        (SystemConfig, "search_backend", "solr"),
        (SystemConfig, "vespa_port", 0),
        (SystemConfig, "vespa_port", 65536),
        (RoutingConfig, "routing_mode", "random"),
        (RoutingConfig, "fast_path_confidence_threshold", 1.5),
        (RoutingConfig, "slow_path_confidence_threshold", -0.1),
        (TelemetryConfig, "level", "everything"),
    ],
)
def test_enumerated_and_bounded_fields_reject_bad_values(
    model: type[SystemConfig | RoutingConfig | TelemetryConfig], field: str, value: object
) -> None:
    with pytest.raises(ValidationError) as caught:
        model.model_validate({field: value})
    assert [error["loc"] for error in caught.value.errors()] == [(field,)]


def test_assignment_is_validated() -> None:
    config = SystemConfig()
    with pytest.raises(ValidationError):
        config.environment = "prod"  # type: ignore[assignment]
    assert config.environment == "development"


def test_assignment_of_a_valid_value_works() -> None:
    config = SystemConfig()
    config.llm_model = "gpt-4-turbo"
    assert config.llm_model == "gpt-4-turbo"


def test_unknown_stored_keys_are_kept() -> None:
    config = SystemConfig.model_validate({"llm_model": "x", "legacy_flag": True})
    assert config.model_dump()["legacy_flag"] is True


def test_secret_is_a_secretstr_holding_the_real_value() -> None:
    config = SystemConfig(llm_api_key=SECRET)  # type: ignore[arg-type]
    assert isinstance(config.llm_api_key, SecretStr)
    assert config.llm_api_key.get_secret_value() == SECRET


@pytest.mark.parametrize("render", [repr, str])
def test_secret_never_shown_by_repr_or_str(render: object) -> None:
    config = AgentConfig(
        agent_name="a",
        module_config=ModuleConfig(module_type=DSPyModuleType.PREDICT, signature="S"),
        llm_api_key=SECRET,  # type: ignore[arg-type]
    )
    assert SECRET not in render(config)  # type: ignore[operator]


def test_secret_masked_in_json_dump() -> None:
    dumped = SystemConfig(llm_api_key=SECRET).model_dump_json()  # type: ignore[arg-type]
    assert SECRET not in dumped
    assert '"llm_api_key":"***"' in dumped


def test_failed_assignment_error_never_echoes_the_input() -> None:
    config = SystemConfig()
    with pytest.raises(ValidationError) as caught:
        config.vespa_port = SECRET  # type: ignore[assignment]
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value)
