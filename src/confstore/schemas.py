"""Typed configuration schemas (pydantic v2), with the fields and defaults of the system confstore
replaces, so configs it stored load unchanged.

Every model keeps unknown stored keys (``extra="allow"``), validates assignments
(``cfg.llm_model = ...``) and never echoes input in validation errors. Secrets are ``SecretStr``:
repr, str and JSON dumps show a mask; ``confstore``'s storage form keeps the real value.
Where each model is stored is registered in ``confstore._typed`` (see ``ConfigManager``).
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    SerializationInfo,
)

from ._sealing import note_change
from ._secrets import SECRET_MASK

# Serialisation context key: ``model_dump(mode="json", context={REVEAL_SECRETS: True})`` shows
# secrets in clear; without it JSON dumps show the mask.
REVEAL_SECRETS = "confstore_reveal_secrets"


def _secret_to_json(value: SecretStr, info: SerializationInfo) -> str:
    context = info.context
    if isinstance(context, dict) and context.get(REVEAL_SECRETS):
        return value.get_secret_value()
    return SECRET_MASK


Secret = Annotated[SecretStr, PlainSerializer(_secret_to_json, when_used="json")]
"""A secret string: masked in repr, str, errors and JSON dumps unless secrets are revealed."""

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Port = Annotated[int, Field(ge=1, le=65535)]


class ConfigModel(BaseModel):
    """Base of confstore's typed configs; plugin schemas should derive from it too.

    Besides the model settings above, a ConfigModel reports in-place changes to ConfigManager's
    cache, which can then hand out cached instances without copying them (see ``_sealing``).
    """

    model_config = ConfigDict(
        extra="allow",
        validate_assignment=True,
        hide_input_in_errors=True,
    )

    __confstore_sealable__: ClassVar[bool] = True

    def __setattr__(self, name: str, value: Any) -> None:
        note_change(self)
        super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        note_change(self)
        super().__delattr__(name)


class DSPyModuleType(enum.StrEnum):
    """The DSPy module an agent runs."""

    PREDICT = "predict"
    CHAIN_OF_THOUGHT = "chain_of_thought"
    REACT = "react"
    MULTI_CHAIN_COMPARISON = "multi_chain_comparison"
    PROGRAM_OF_THOUGHT = "program_of_thought"


class OptimizerType(enum.StrEnum):
    """The DSPy optimizer used to tune an agent's module."""

    BOOTSTRAP_FEW_SHOT = "bootstrap_few_shot"
    LABELED_FEW_SHOT = "labeled_few_shot"
    BOOTSTRAP_FEW_SHOT_WITH_RANDOM_SEARCH = "bootstrap_few_shot_with_random_search"
    COPRO = "copro"
    MIPRO_V2 = "mipro_v2"


class SystemConfig(ConfigModel):
    """Infrastructure settings of a tenant: agent URLs, search backend, LLM, telemetry endpoints.

    Stored at (SYSTEM, "system", "system_config").
    """

    tenant_id: str = "default"
    routing_agent_url: str = "http://localhost:8001"
    video_agent_url: str = "http://localhost:8002"
    text_agent_url: str = "http://localhost:8003"
    summarizer_agent_url: str = "http://localhost:8004"
    text_analysis_agent_url: str = "http://localhost:8005"
    search_backend: Literal["vespa", "elasticsearch"] = "vespa"
    vespa_url: str = "http://localhost"
    vespa_port: Port = 8080
    elasticsearch_url: str | None = None
    llm_model: str = "gpt-4"
    base_url: str = "http://localhost:11434"
    llm_api_key: Secret | None = None
    phoenix_url: str = "http://localhost:6006"
    phoenix_collector_endpoint: str = "localhost:4317"
    video_processing_profiles: list[str] = Field(default_factory=list)
    environment: Literal["development", "staging", "production"] = "development"
    metadata: dict[str, Any] = Field(default_factory=dict)


class RoutingConfig(ConfigModel):
    """How the routing agent picks an agent. Stored at (ROUTING, service, "routing_config")."""

    tenant_id: str = "default"
    routing_mode: Literal["tiered", "ensemble", "hybrid", "single"] = "tiered"
    enable_fast_path: bool = True
    enable_slow_path: bool = True
    enable_fallback: bool = True
    fast_path_confidence_threshold: Probability = 0.7
    slow_path_confidence_threshold: Probability = 0.6
    max_routing_time_ms: int = 1000
    gliner_model: str = "urchade/gliner_large-v2.1"
    gliner_threshold: float = 0.3
    gliner_device: str = "cpu"
    gliner_labels: list[str] = Field(default_factory=list)
    llm_provider: str = "local"
    llm_routing_model: str = "smollm3:3b"
    llm_endpoint: str = "http://localhost:11434"
    llm_temperature: float = 0.1
    llm_max_tokens: int = 150
    use_chain_of_thought: bool = True
    enable_auto_optimization: bool = True
    optimization_interval_seconds: int = 3600
    min_samples_for_optimization: int = 100
    dspy_enabled: bool = True
    dspy_max_bootstrapped_demos: int = 10
    dspy_max_labeled_demos: int = 50
    enable_caching: bool = True
    cache_ttl_seconds: int = 300
    max_cache_size: int = 1000
    metadata: dict[str, Any] = Field(default_factory=dict)


class TelemetryConfig(ConfigModel):
    """Tracing and export settings. Stored at (TELEMETRY, service, "telemetry_config")."""

    tenant_id: str = "default"
    enabled: bool = True
    level: Literal["disabled", "basic", "detailed", "verbose"] = "detailed"
    environment: str = "development"
    phoenix_enabled: bool = True
    phoenix_endpoint: str = "localhost:4317"
    phoenix_use_tls: bool = False
    tenant_project_template: str = "cogniverse-{tenant_id}-{service}"
    max_cached_tenants: int = 100
    tenant_cache_ttl_seconds: int = 3600
    max_queue_size: int = 2048
    max_export_batch_size: int = 512
    export_timeout_millis: int = 30000
    schedule_delay_millis: int = 500
    use_sync_export: bool = False
    service_name: str = "video-search"
    service_version: str = "1.0.0"
    metadata: dict[str, Any] = Field(default_factory=dict)


class ModuleConfig(ConfigModel):
    """The DSPy module of an agent and its settings."""

    module_type: DSPyModuleType
    signature: str
    max_retries: int = 3
    temperature: float = 0.7
    max_tokens: int | None = None
    custom_params: dict[str, Any] = Field(default_factory=dict)


class OptimizerConfig(ConfigModel):
    """The DSPy optimizer of an agent and its settings."""

    optimizer_type: OptimizerType
    max_bootstrapped_demos: int = 4
    max_labeled_demos: int = 16
    num_trials: int = 10
    metric: str | None = None
    teacher_settings: dict[str, Any] = Field(default_factory=dict)
    custom_params: dict[str, Any] = Field(default_factory=dict)


class AgentConfig(ConfigModel):
    """An agent's DSPy module, optimizer and LLM settings; at (AGENT, agent_name, "agent_config").

    Only ``agent_name`` and ``module_config`` are required (the original system also required
    version, description, URL, capabilities and skills, which broke its own documented example).
    """

    agent_name: str
    module_config: ModuleConfig
    agent_version: str = "1.0.0"
    agent_description: str = ""
    agent_url: str | None = None
    capabilities: list[str] = Field(default_factory=list)
    skills: list[Any] = Field(default_factory=list)
    optimizer_config: OptimizerConfig | None = None
    llm_model: str = "gpt-4"
    llm_base_url: str | None = None
    llm_api_key: Secret | None = None
    llm_temperature: float = 0.7
    llm_max_tokens: int | None = None
    thinking_enabled: bool = True
    visual_analysis_enabled: bool = True
    max_processing_time: int = 300
    metadata: dict[str, Any] = Field(default_factory=dict)


__all__ = [
    "REVEAL_SECRETS",
    "AgentConfig",
    "ConfigModel",
    "DSPyModuleType",
    "ModuleConfig",
    "OptimizerConfig",
    "OptimizerType",
    "RoutingConfig",
    "Secret",
    "SystemConfig",
    "TelemetryConfig",
]
