"""Dict-like access to a tenant's configuration, under the flat keys of the original system.

    from confstore.config_utils import get_config

    config = await get_config()            # tenant "default", the process-wide manager
    config.get("llm_model")                # "gpt-4"
    config["llm"]                          # {"model_name", "base_url", "api_key"}

The mapping is a read-only view over the manager's cache, so it is always current: a later write,
by this process or (through the change feed, within the poll interval) by another, shows through
the same object. Reading it does no I/O. If the manager stops caching the tenant (it was closed
or reset), the view keeps answering with the last values it saw.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

from pydantic import BaseModel, SecretStr

from ._manager import NOT_CACHED, ConfigManager, get_config_manager
from ._secrets import SECRET_MASK
from .schemas import RoutingConfig, SystemConfig, TelemetryConfig

_SOURCES: Final[dict[str, type[BaseModel]]] = {
    "system": SystemConfig,
    "routing": RoutingConfig,
    "telemetry": TelemetryConfig,
}

# Flat key -> (source, attribute). System fields come first and keep their own names.
_KEYS: Final[dict[str, tuple[str, str]]] = {
    **{name: ("system", name) for name in SystemConfig.model_fields},
    "local_llm_model": ("system", "llm_model"),
    "detailed_report_agent_url": ("system", "summarizer_agent_url"),
    "llm": ("system", "llm"),
    "routing_mode": ("routing", "routing_mode"),
    "enable_caching": ("routing", "enable_caching"),
    "cache_ttl_seconds": ("routing", "cache_ttl_seconds"),
    "telemetry_enabled": ("telemetry", "enabled"),
    "telemetry_level": ("telemetry", "level"),
}


async def get_config(
    tenant_id: str = "default", *, manager: ConfigManager | None = None
) -> ConfigView:
    """A read-only, always-current mapping of the tenant's config (see the module docstring).

    Reads the tenant's system, routing and telemetry configs through ``manager`` (default: the
    process-wide one), so it raises BackendUnavailableError if the backend is down and they were
    never read.
    """
    manager = manager or get_config_manager()
    models = {
        "system": await manager.get_system_config(tenant_id),
        "routing": await manager.get_routing_config(tenant_id),
        "telemetry": await manager.get_telemetry_config(tenant_id),
    }
    return ConfigView(manager, tenant_id, models)


class ConfigView(Mapping[str, Any]):
    """A tenant's configuration under flat keys; see ``get_config``.

    ``view["llm_api_key"]`` returns the real secret (callers pass it to their LLM client), but
    ``repr(view)`` masks it. Unknown keys raise KeyError; ``.get(key, default)`` works as for dict.
    """

    def __init__(
        self, manager: ConfigManager, tenant_id: str, models: Mapping[str, BaseModel]
    ) -> None:
        self._manager = manager
        self.tenant_id = tenant_id
        self._last_seen = dict(models)

    def __getitem__(self, key: str) -> Any:
        try:
            source, attribute = _KEYS[key]
        except (KeyError, TypeError):
            raise KeyError(key) from None
        model = self._current(source)
        if attribute == "llm":
            return {
                "model_name": model.llm_model,
                "base_url": model.base_url,
                "api_key": _revealed(model.llm_api_key),
            }
        return _revealed(getattr(model, attribute))

    def __iter__(self) -> Iterator[str]:
        return iter(_KEYS)

    def __len__(self) -> int:
        return len(_KEYS)

    def __contains__(self, key: object) -> bool:
        return key in _KEYS

    def __repr__(self) -> str:
        shown = {key: self._masked(key) for key in _KEYS}
        return f"ConfigView(tenant_id={self.tenant_id!r}, {shown!r})"

    def _masked(self, key: str) -> Any:
        value = self[key]
        if key == "llm_api_key" and value is not None:
            return SECRET_MASK
        if key == "llm" and value["api_key"] is not None:
            return {**value, "api_key": SECRET_MASK}
        return value

    def _current(self, source: str) -> Any:
        cached = self._manager._peek(_SOURCES[source], self.tenant_id)
        if cached is not NOT_CACHED:
            self._last_seen[source] = cached
        return self._last_seen[source]


def _revealed(value: Any) -> Any:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


__all__ = ["ConfigView", "get_config"]
