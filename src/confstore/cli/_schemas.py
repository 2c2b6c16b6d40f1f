"""The CLI's view of typed configs: which one lives where, validation, secrets, diffs, schemas."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from dataclasses import asdict
from typing import Any

from .._diff import SECRET_MASK, diff_values, secret_paths_for
from .._errors import InvalidConfigError
from .._models import ConfigEntry, ConfigScope
from .._typed import (
    TypedConfigSpec,
    dump_for_storage,
    load_from_storage,
    spec_for,
    typed_config_specs,
)
from ._common import CliError, ExitCode

# Keys whose values are secrets whatever schema they belong to. "token" only as the end of a
# name (access_token, authToken) so that counters such as max_tokens stay visible.
_SECRET_NAME = re.compile(r"api_?key|password|passwd|secret|token$", re.IGNORECASE)


def is_secret_name(name: str) -> bool:
    return _SECRET_NAME.search(name) is not None


def mask_secrets(value: Any, secret_paths: Collection[str] = (), path: str = "") -> Any:
    """A copy of ``value`` with secrets replaced by ``***`` (unset secrets stay null).

    A secret is a field at one of ``secret_paths`` (dotted, lists as ``[i]``: ``llm_api_key``)
    or any key named like a secret (``*api_key*``, ``*password*``, ``*secret*``, ``*token``).
    """
    if isinstance(value, dict):
        masked = {}
        for name, item in value.items():
            item_path = f"{path}.{name}" if path else str(name)
            secret = item_path in secret_paths or is_secret_name(str(name))
            masked[name] = (
                SECRET_MASK
                if secret and item is not None
                else (mask_secrets(item, secret_paths, item_path))
            )
        return masked
    if isinstance(value, list):
        return [mask_secrets(item, secret_paths, f"{path}[{i}]") for i, item in enumerate(value)]
    return value


def secret_name_paths(value: Any) -> Iterator[str]:
    """The paths (as ``mask_secrets`` writes them) of the keys in ``value`` named like secrets."""
    return (path for path, _ in _secret_named_items(value, ""))


def _secret_named_items(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for name, item in value.items():
            item_path = f"{path}.{name}" if path else str(name)
            if is_secret_name(str(name)):
                yield item_path, item
            else:
                yield from _secret_named_items(item, item_path)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _secret_named_items(item, f"{path}[{index}]")


def refuse_masked_secrets(value: Any) -> None:
    """InvalidConfigError if a key named like a secret holds ``***``, the mask this CLI prints.

    Writing back a value copied from masked output would replace the secret with the mask:
    the system confstore replaces lost users' API keys that way.
    """
    for path, item in _secret_named_items(value, ""):
        if item == SECRET_MASK:
            raise InvalidConfigError(
                f"{path} holds the mask {SECRET_MASK}, not a secret; give the real value "
                "(see --show-secrets) or null",
                field=path,
            )


def spec_named(name: str) -> TypedConfigSpec:
    try:
        return spec_for(name)
    except InvalidConfigError as exc:
        raise CliError(f"not found: {exc}", ExitCode.NOT_FOUND) from None


def spec_at(scope: ConfigScope | str, config_key: str) -> TypedConfigSpec | None:
    """The typed config stored at (scope, any service, config_key), if one is registered there."""
    for spec in typed_config_specs().values():
        if spec.scope == scope and spec.config_key == config_key:
            return spec
    return None


def validated_value(
    type_name: str | None, tenant_id: str, scope: str, config_key: str, value: Any
) -> Any:
    """``value`` as it should be stored: checked and completed by its typed config, if it has one.

    The typed config is ``type_name``'s, else the one registered at (scope, config_key). Its
    ``tenant_id`` field, when the value leaves it out, is the tenant written to.
    Raises InvalidConfigError naming the offending field (secrets masked), also when a secret
    holds the mask ``***`` instead of a value.
    """
    refuse_masked_secrets(value)
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
    secret_paths: frozenset[str] = frozenset()
    if not show_secrets:
        secret_paths = secret_paths_of(new).union(
            secret_name_paths(old.config_value), secret_name_paths(new.config_value)
        )
    changes = diff_values(old.config_value, new.config_value, secret_paths=secret_paths)
    return [asdict(change) for change in changes]


def typed_config_rows() -> list[tuple[str, str, str, str]]:
    """(name, scope, service, config_key) of every typed config, for ``confstore schema``."""
    return [
        (spec.name, spec.scope.value, spec.default_service or "(any, required)", spec.config_key)
        for spec in sorted(typed_config_specs().values(), key=lambda spec: spec.name)
    ]


def json_schema_of(name: str) -> dict[str, Any]:
    return spec_named(name).model.model_json_schema()
