"""The CLI's view of typed configs: which one lives where, validation, secrets, diffs, schemas."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from .._diff import diff_values, secret_paths_for
from .._errors import InvalidConfigError
from .._models import ConfigEntry
from .._typed import (
    TypedConfigSpec,
    dump_for_storage,
    load_from_storage,
    spec_at,
    spec_for,
    typed_config_specs,
)
from .._validation import check_nesting_depth
from ._common import CliError, ExitCode


def spec_named(name: str) -> TypedConfigSpec:
    try:
        return spec_for(name)
    except InvalidConfigError as exc:
        raise CliError(f"not found: {exc}", ExitCode.NOT_FOUND) from None


def validated_value(
    type_name: str | None, tenant_id: str, scope: str, config_key: str, value: Any
) -> Any:
    """``value`` as it should be stored: checked and completed by its typed config, if it has one.

    The typed config is ``type_name``'s, else the one registered at (scope, config_key). Its
    ``tenant_id`` field, when the value leaves it out, is the tenant written to.
    Raises InvalidConfigError naming the offending field (secrets masked), also when a secret
    holds the mask ``***`` instead of a value or the value nests too deep.
    """
    check_nesting_depth(value)
    spec = spec_named(type_name) if type_name else spec_at(scope, config_key)
    if spec is None or not isinstance(value, dict):
        return value  # untyped; the store itself rejects a value that is not an object
    if spec.has_tenant_field and "tenant_id" not in value:
        value = {**value, "tenant_id": tenant_id}
    return dump_for_storage(load_from_storage(spec.model, value))


def secret_paths_of(entry: ConfigEntry) -> frozenset[str]:
    """The secret fields of the typed config stored where ``entry`` is (none if untyped)."""
    spec = spec_at(entry.scope, entry.config_key)
    return frozenset() if spec is None else secret_paths_for(spec.model)


def field_changes(
    old: ConfigEntry, new: ConfigEntry, *, show_secrets: bool
) -> list[dict[str, Any]]:
    """Field-level changes from ``old`` to ``new`` (path, old, new, kind), secrets masked unless asked."""
    changes = diff_values(
        old.config_value,
        new.config_value,
        secret_paths=secret_paths_of(new),
        reveal_secrets=show_secrets,
    )
    return [asdict(change) for change in changes]


def typed_config_rows() -> list[tuple[str, str, str, str]]:
    """(name, scope, service, config_key) of every typed config, for ``confstore schema``."""
    return [
        (spec.name, spec.scope.value, spec.default_service or "(any, required)", spec.config_key)
        for spec in sorted(typed_config_specs().values(), key=lambda spec: spec.name)
    ]


def json_schema_of(name: str) -> dict[str, Any]:
    return spec_named(name).model.model_json_schema()
