"""The registry of typed configs (which pydantic model lives where) and their storage form.

Built-in schemas register through the ``confstore_register_schemas`` hook, exactly as plugin
schemas do; ``register_typed_config`` registers one in-process (tests, applications).
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import pydantic_core
from pydantic import BaseModel, SecretStr, ValidationError

from ._diff import secret_paths_for
from ._errors import InvalidConfigError
from ._models import ConfigScope
from ._secrets import SECRET_MASK, refuse_masked_secrets
from ._validation import check_nesting_depth, validate_identifier, validate_scope
from .hookspecs import SchemaRegistrar, hookimpl

ModelT = TypeVar("ModelT", bound=BaseModel)

_MAX_REPORTED_ERRORS = 5


@dataclass(frozen=True, slots=True)
class TypedConfigSpec:
    """Where a typed config lives: (tenant_id, ``scope``, service, ``config_key``).

    ``default_service`` is the service used when the caller names none; without one (agents,
    whose service is the agent name) the caller must always name it.
    """

    name: str
    model: type[BaseModel]
    scope: ConfigScope
    config_key: str
    default_service: str | None = None

    def service_for(self, service: str | None) -> str:
        """``service``, else the default one; InvalidConfigError when neither exists."""
        if service is not None:
            return service
        if self.default_service is None:
            raise InvalidConfigError(
                f"{self.name} configs have no default service: name the service", field="service"
            )
        return self.default_service

    @property
    def has_tenant_field(self) -> bool:
        return "tenant_id" in self.model.model_fields


class _SchemaRegistry:
    def __init__(self) -> None:
        self._by_name: dict[str, TypedConfigSpec] = {}
        self._by_model: dict[type[BaseModel], TypedConfigSpec] = {}
        self._loaded = False
        self._lock = threading.RLock()

    def register(
        self,
        model: type[BaseModel],
        *,
        name: str | None = None,
        scope: ConfigScope | str,
        config_key: str,
        default_service: str | None = None,
    ) -> TypedConfigSpec:
        """Make ``model`` a typed config stored at (scope, service, config_key) in this process.

        ``name`` (default: the class name without a ``Config`` suffix, in snake case) is how the
        CLI and ``spec_for`` refer to it. A name or model registered twice raises ValueError.
        """
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise TypeError(f"a typed config must be a pydantic model class, got {model!r}")
        spec = TypedConfigSpec(
            name=name or default_schema_name(model),
            model=model,
            scope=validate_scope(scope),
            config_key=validate_identifier("config_key", config_key),
            default_service=(
                None if default_service is None else validate_identifier("service", default_service)
            ),
        )
        with self._lock:
            if spec.name in self._by_name:
                raise ValueError(f"a typed config named {spec.name!r} is already registered")
            if model in self._by_model:
                raise ValueError(f"{model.__name__} is already registered as a typed config")
            self._by_name[spec.name] = spec
            self._by_model[model] = spec
        return spec

    def specs(self) -> dict[str, TypedConfigSpec]:
        self._load()
        return dict(self._by_name)

    def spec_for(self, model_or_name: type[BaseModel] | str) -> TypedConfigSpec:
        if not self._loaded:
            self._load()
        if isinstance(model_or_name, str):
            spec = self._by_name.get(model_or_name)
        else:
            spec = self._by_model.get(model_or_name)
        if spec is None:
            label = getattr(model_or_name, "__name__", model_or_name)
            known = ", ".join(sorted(self._by_name)) or "none"
            raise InvalidConfigError(
                f"{label!s} is not a registered typed config (registered: {known})",
                field="model",
            )
        return spec

    def _load(self) -> None:
        from ._registry import plugin_manager

        with self._lock:
            if self._loaded:
                return
            self._loaded = True
            plugin_manager().hook.confstore_register_schemas(register=self._register_from_hook)

    def _register_from_hook(
        self,
        model: type[Any],
        *,
        scope: str,
        config_key: str,
        default_service: str | None = None,
        name: str | None = None,
    ) -> None:
        self.register(
            model, name=name, scope=scope, config_key=config_key, default_service=default_service
        )


schema_registry = _SchemaRegistry()


register_typed_config = schema_registry.register


def typed_config_specs() -> dict[str, TypedConfigSpec]:
    """Every registered typed config (built-ins, plugins, in-process), by name."""
    return schema_registry.specs()


def spec_for(model_or_name: type[BaseModel] | str) -> TypedConfigSpec:
    """The spec of a registered model class or name; InvalidConfigError naming the known ones."""
    return schema_registry.spec_for(model_or_name)


def spec_at(scope: ConfigScope | str, config_key: str) -> TypedConfigSpec | None:
    """The typed config stored at (scope, any service, config_key), if one is registered there."""
    for spec in schema_registry.specs().values():
        if spec.scope == scope and spec.config_key == config_key:
            return spec
    return None


def default_schema_name(model: type[BaseModel]) -> str:
    """``RoutingConfig`` -> ``routing``, ``MyPluginConfig`` -> ``my_plugin``."""
    base = model.__name__.removesuffix("Config") or model.__name__
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", base).lower()


def dump_for_storage(config: BaseModel) -> dict[str, Any]:
    """The JSON-ready value stored for ``config``: every field and extra, secrets in clear.

    Raises InvalidConfigError when a value cannot be stored as JSON, nests deeper than values
    may, or a secret holds a mask placeholder (``"***"``) instead of a secret.
    """
    try:
        dumped = config.model_dump(mode="python", warnings=False)
        check_nesting_depth(dumped)
        data = jsonable(dumped)
    except pydantic_core.PydanticSerializationError:
        raise InvalidConfigError(
            f"{type(config).__name__} holds a value that cannot be stored as JSON"
        ) from None
    refuse_masked_secrets(data, secret_paths_for(type(config)))
    if not isinstance(data, dict):
        raise InvalidConfigError(f"{type(config).__name__} does not dump to a JSON object")
    non_finite = next(_non_finite_paths(data, ""), None)
    if non_finite is not None:
        raise InvalidConfigError(
            f"{non_finite}: JSON has no NaN or infinity; use a finite number", field=non_finite
        )
    return data


def jsonable(value: Any) -> Any:
    """``value`` (model fields, defaults) as JSON-ready data, secrets in clear."""
    return pydantic_core.to_jsonable_python(_reveal(value))


def load_stored(spec: TypedConfigSpec, tenant_id: str, value: dict[str, Any]) -> BaseModel:
    """A stored value of ``spec``'s typed config as a model, as every read builds it: the
    ``tenant_id`` field (schemas that have one) is the tenant it is stored under."""
    if spec.has_tenant_field:
        value = {**value, "tenant_id": tenant_id}
    return load_from_storage(spec.model, value)


def load_from_storage(model: type[ModelT], value: object) -> ModelT:
    """Validate a stored value as ``model``; InvalidConfigError naming the field, secrets masked."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise invalid_config_error(model, exc, value) from None


def invalid_fields(model: type[BaseModel], value: object) -> list[str]:
    """The fields (dotted paths) that keep ``value`` from validating as ``model``; [] if valid."""
    try:
        model.model_validate(value)
    except ValidationError as exc:
        return [_location(detail["loc"]) for detail in exc.errors(include_url=False)]
    return []


def invalid_config_error(
    model: type[BaseModel], error: ValidationError, value: object = None
) -> InvalidConfigError:
    """An InvalidConfigError for a failed validation, built from locations and messages only.

    pydantic's own text can echo input; this one never does, and any secret of ``value`` that
    a message might still contain is replaced by the mask.
    """
    details = error.errors(include_url=False, include_context=False, include_input=False)
    fields = [_location(detail["loc"]) for detail in details]
    problems = [
        f"{field}: {detail['msg']}"
        for field, detail in zip(fields, details[:_MAX_REPORTED_ERRORS], strict=False)
    ]
    if len(details) > _MAX_REPORTED_ERRORS:
        problems.append(f"and {len(details) - _MAX_REPORTED_ERRORS} more")
    message = f"invalid {model.__name__}: " + "; ".join(problems)
    for secret in _secret_strings(model, value):
        message = message.replace(secret, SECRET_MASK)
    return InvalidConfigError(message, field=fields[0] if fields else None)


def _location(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path or "<root>"


def _reveal(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict):
        return {key: _reveal(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_reveal(item) for item in value]
    return value


def _non_finite_paths(value: Any, path: str) -> Iterator[str]:
    if isinstance(value, float) and not math.isfinite(value):
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _non_finite_paths(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _non_finite_paths(item, f"{path}[{index}]")


def _value_at(data: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(data, Mapping):
            return None
        data = data.get(part)
    return data


def _secret_strings(model: type[BaseModel], value: object) -> Iterator[str]:
    for path in secret_paths_for(model):
        secret = _value_at(value, path)
        if isinstance(secret, SecretStr):
            secret = secret.get_secret_value()
        if isinstance(secret, str) and secret:
            yield secret


@hookimpl
def confstore_register_schemas(register: SchemaRegistrar) -> None:
    """Register confstore's built-in typed configs."""
    from .schemas import AgentConfig, RoutingConfig, SystemConfig, TelemetryConfig

    builtins = (
        (SystemConfig, ConfigScope.SYSTEM, "system_config", "system"),
        (AgentConfig, ConfigScope.AGENT, "agent_config", None),
        (RoutingConfig, ConfigScope.ROUTING, "routing_config", "routing_agent"),
        (TelemetryConfig, ConfigScope.TELEMETRY, "telemetry_config", "telemetry"),
    )
    for model, scope, config_key, default_service in builtins:
        register(model, scope=scope.value, config_key=config_key, default_service=default_service)
