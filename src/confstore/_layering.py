"""How one ConfigManager layers typed configs: who inherits from whom, and the environment.

``Layering`` turns stored entries into effective configs, explanations and the overrides a tenant
stores, and checks a base value against the tenants that inherit it. It does no I/O and keeps no
cache: the manager reads the entries, caches what this builds and follows the change feed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from pydantic import BaseModel

from ._diff import secret_paths_for
from ._environment import EnvironmentOverrides
from ._errors import InvalidConfigError
from ._layers import (
    TENANT_FIELD,
    ExplainedField,
    Layer,
    Source,
    explain_fields,
    merge_layers,
    normalized,
    overrides_for,
    schema_layer,
)
from ._models import ConfigEntry
from ._secrets import mask_secrets, refuse_masked_secrets
from ._typed import (
    TypedConfigSpec,
    dump_for_storage,
    invalid_fields,
    load_stored,
    typed_config_specs,
)
from ._validation import validate_identifier

DEFAULT_BASE_TENANT: Final = "default"
_MAX_LISTED_TENANTS: Final = 10

# A stored entry, or a value about to be stored.
StoredValue = ConfigEntry | dict[str, Any]


class Layering:
    """Schema defaults < ``base_tenant``'s stored value < the tenant's overrides < environment.

    With ``inherit=False`` no tenant inherits: each reads and stores its config complete. The
    environment (``CONFSTORE_<SCOPE>__<FIELD>`` variables of ``environ``) is read and checked
    here, once: a bad variable raises InvalidConfigError naming it.
    """

    def __init__(self, *, inherit: bool, base_tenant: str, environ: Mapping[str, str]) -> None:
        self.inherit = bool(inherit)
        self.base_tenant = validate_identifier("base_tenant", base_tenant)
        self.environment = EnvironmentOverrides.read(environ, typed_config_specs().values())

    def base_for(self, tenant_id: str) -> str | None:
        """The tenant whose stored configs ``tenant_id`` inherits, if it inherits any."""
        return self.base_tenant if self.inherit and tenant_id != self.base_tenant else None

    def is_base(self, tenant_id: str) -> bool:
        return self.inherit and tenant_id == self.base_tenant

    def layers(
        self,
        spec: TypedConfigSpec,
        tenant_id: str,
        own: StoredValue | None,
        base: StoredValue | None,
        *,
        environment: bool = True,
    ) -> list[Layer]:
        """The layers of the tenant's effective config, lowest first."""
        layers = [schema_layer(spec.model)]
        if base is not None:
            layers.append(_layer_of(spec, "base", self.base_tenant, base))
        if own is not None:
            source: Source = "base" if self.is_base(tenant_id) else "tenant"
            layers.append(_layer_of(spec, source, tenant_id, own))
        if environment:
            layers.extend(self.environment.layers(spec))
        return layers

    def effective_document(
        self,
        spec: TypedConfigSpec,
        tenant_id: str,
        own: ConfigEntry | None,
        base: ConfigEntry | None,
    ) -> dict[str, Any]:
        """The layers merged, not validated (to compare two effective configs)."""
        return merge_layers(spec.model, self.layers(spec, tenant_id, own, base))[0]

    def build(
        self,
        spec: TypedConfigSpec,
        tenant_id: str,
        own: ConfigEntry | None,
        base: ConfigEntry | None,
    ) -> BaseModel | None:
        """A fresh effective model; nothing stored: the defaults, or None when there are none."""
        if own is None and base is None and not has_defaults(spec):
            return None
        return _validated(spec, tenant_id, self.effective_document(spec, tenant_id, own, base))

    def explain(
        self,
        spec: TypedConfigSpec,
        tenant_id: str,
        own: ConfigEntry | None,
        base: ConfigEntry | None,
        *,
        show_secrets: bool,
    ) -> list[ExplainedField]:
        """Where each field of the effective config comes from; [] when there is no config."""
        if own is None and base is None and not has_defaults(spec):
            return []
        merged, origins = merge_layers(spec.model, self.layers(spec, tenant_id, own, base))
        shown = dump_for_storage(_validated(spec, tenant_id, merged))
        if not show_secrets:
            shown = mask_secrets(shown, secret_paths_for(spec.model))
        return explain_fields(spec.model, shown, merged, origins)

    def stored_form(
        self, spec: TypedConfigSpec, tenant_id: str, value: object, base: ConfigEntry | None
    ) -> dict[str, Any]:
        """``value`` as the tenant stores it (each value in the form its schema gives it), once
        the effective config it makes without the environment (which may change) validates."""
        if not isinstance(value, dict):
            raise InvalidConfigError(
                f"a stored {spec.name} config is a JSON object, got {type(value).__name__}"
            )
        if spec.has_tenant_field:
            value = {**value, TENANT_FIELD: tenant_id}
        refuse_masked_secrets(value, secret_paths_for(spec.model))
        merged, _ = merge_layers(
            spec.model, self.layers(spec, tenant_id, value, base, environment=False)
        )
        effective = dump_for_storage(_validated(spec, tenant_id, merged))
        return normalized(spec.model, value, effective)

    def overrides(
        self,
        spec: TypedConfigSpec,
        current: dict[str, Any],
        base: ConfigEntry | None,
        desired: dict[str, Any],
    ) -> dict[str, Any]:
        """What a tenant storing ``current`` stores for its effective config to be ``desired``
        (see ``overrides_for``)."""
        inherited, _ = merge_layers(
            spec.model, self.layers(spec, "", None, base, environment=False)
        )
        environment, _ = merge_layers(spec.model, self.environment.layers(spec))
        return overrides_for(
            spec.model,
            _without_tenant(spec, current),
            inherited,
            environment,
            _without_tenant(spec, desired),
        )

    def inheritance_failures(
        self, spec: TypedConfigSpec, base: dict[str, Any] | None, entries: Iterable[ConfigEntry]
    ) -> dict[str, list[str]]:
        """The tenants of ``entries`` (their stored overrides) whose effective config would fail
        validation over ``base`` (None: no base value), with the failing fields."""
        failures = {}
        for entry in entries:
            merged, _ = merge_layers(
                spec.model, self.layers(spec, entry.tenant_id, entry, base, environment=False)
            )
            if spec.has_tenant_field:
                merged[TENANT_FIELD] = entry.tenant_id
            fields = invalid_fields(spec.model, merged)
            if fields:
                failures[entry.tenant_id] = fields
        return failures


def inheritance_message(spec: TypedConfigSpec, service: str, failures: dict[str, list[str]]) -> str:
    listed = [
        f"{tenant} ({', '.join(fields)})"
        for tenant, fields in sorted(failures.items())[:_MAX_LISTED_TENANTS]
    ]
    if len(failures) > _MAX_LISTED_TENANTS:
        listed.append(f"and {len(failures) - _MAX_LISTED_TENANTS} more")
    return (
        f"refused: this {spec.name} config for {spec.scope.value}/{service}/{spec.config_key} of "
        f"the base tenant would make the effective config of {len(failures)} inheriting "
        f"tenant(s) invalid, so nothing was written: {'; '.join(listed)}"
    )


def has_defaults(spec: TypedConfigSpec) -> bool:
    return not any(field.is_required() for field in spec.model.model_fields.values())


def _validated(spec: TypedConfigSpec, tenant_id: str, document: dict[str, Any]) -> BaseModel:
    return load_stored(spec, tenant_id, document)


def _layer_of(spec: TypedConfigSpec, source: Source, tenant_id: str, stored: StoredValue) -> Layer:
    """A stored entry as a layer, or a value about to be stored (no version yet)."""
    if isinstance(stored, ConfigEntry):
        value = _without_tenant(spec, stored.config_value)
        return Layer(source, value, stored.tenant_id, stored.version)
    return Layer(source, _without_tenant(spec, stored), tenant_id)


def _without_tenant(spec: TypedConfigSpec, value: dict[str, Any]) -> dict[str, Any]:
    """A stored value without ``tenant_id``: it is always the tenant read, never inherited."""
    if not spec.has_tenant_field:
        return value
    return {name: item for name, item in value.items() if name != TENANT_FIELD}
