"""Layered typed configs: how stored layers combine into the effective config, and back.

The effective config of a tenant is built from these layers, lowest first: the schema's defaults,
the base tenant's stored value, the tenant's stored overrides, the environment. Everything here
is pure (JSON documents and pydantic model classes in, documents out): the manager reads the
stored layers and keeps the results in its cache, so a merge runs once per change, never per read.

How layers combine (``merge_layers``): a key a higher layer holds replaces the lower one's value
whole, except that a field whose type is a nested model is merged field by field when both sides
hold an object. So ``metadata`` (a dict) is one field, while ``module_config.signature`` (a field
of a nested model) is a field of its own. ``null`` in a stored layer is a value, never "remove":
values stored complete by earlier versions therefore read as full overrides.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from pydantic import BaseModel

from ._diff import leaf_types
from ._errors import InvalidConfigError
from ._typed import jsonable

Source = Literal["schema", "base", "tenant", "env"]
FieldPath = tuple[str, ...]

TENANT_FIELD: Final = "tenant_id"
_MISSING: Final[Any] = object()


@dataclass(frozen=True, slots=True)
class ExplainedField:
    """Where one field of an effective config comes from (``ConfigManager.explain``).

    ``path`` is dotted for fields of nested models (``module_config.signature``); ``value`` is
    the effective value, secrets masked unless asked; ``source`` is the layer that set it:
    ``"schema"`` (the default), ``"base"`` (the base tenant's stored value), ``"tenant"`` (the
    tenant's own overrides) or ``"env"`` (an environment variable). ``tenant_id`` and ``version``
    name the stored version the value came from (None for schema and env); ``variable`` names the
    environment variable (env only).
    """

    path: str
    value: Any
    source: Source
    tenant_id: str | None = None
    version: int | None = None
    variable: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "value": self.value,
            "source": self.source,
            "tenant_id": self.tenant_id,
            "version": self.version,
            "variable": self.variable,
        }


@dataclass(frozen=True, slots=True)
class Layer:
    """One layer of an effective config: a JSON document and where it came from."""

    source: Source
    value: Mapping[str, Any]
    tenant_id: str | None = None
    version: int | None = None
    variable: str | None = None


@functools.cache
def nested_model(model: type[BaseModel], name: str) -> type[BaseModel] | None:
    """The model class of field ``name`` when its type is (optionally) a nested model."""
    field = model.model_fields.get(name)
    if field is None:
        return None
    for kind in leaf_types(field.annotation):
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            return kind
    return None


def schema_layer(model: type[BaseModel]) -> Layer:
    """The schema's defaults as a layer (fields without a default are left out)."""
    return Layer("schema", _schema_defaults(model))


@functools.cache
def _schema_defaults(model: type[BaseModel]) -> Mapping[str, Any]:
    defaults = {}
    for name, field in model.model_fields.items():
        if name != TENANT_FIELD and not field.is_required():
            defaults[name] = jsonable(field.get_default(call_default_factory=True))
    return defaults


def without_tenant(value: Mapping[str, Any]) -> dict[str, Any]:
    """A stored value without its ``tenant_id`` (always the tenant read, never a layered value)."""
    return {name: item for name, item in value.items() if name != TENANT_FIELD}


def merge_layers(
    model: type[BaseModel], layers: Iterable[Layer]
) -> tuple[dict[str, Any], dict[FieldPath, Layer]]:
    """The layers combined, lowest first, and the layer each field (or subtree) came from."""
    document: dict[str, Any] = {}
    origins: dict[FieldPath, Layer] = {}
    for layer in layers:
        _overlay(model, document, layer.value, (), layer, origins)
    return document, origins


def _overlay(
    model: type[BaseModel] | None,
    target: dict[str, Any],
    overlay: Mapping[str, Any],
    path: FieldPath,
    layer: Layer,
    origins: dict[FieldPath, Layer],
) -> None:
    for name, value in overlay.items():
        field_path = (*path, name)
        nested = None if model is None else nested_model(model, name)
        current = target.get(name)
        if nested is not None and isinstance(value, dict) and isinstance(current, dict):
            _overlay(nested, current, value, field_path, layer, origins)
            continue
        target[name] = copy.deepcopy(value)
        depth = len(field_path)
        for known in [known for known in origins if known[:depth] == field_path]:
            del origins[known]
        origins[field_path] = layer


def origin_of(
    path: FieldPath, merged: Mapping[str, Any], origins: Mapping[FieldPath, Layer]
) -> Layer | None:
    """The layer that set ``path`` in ``merged`` (its own entry, else the nearest enclosing one),
    or None when no layer holds it (pydantic filled in a nested model's default)."""
    if not _holds(merged, path):
        return None
    for depth in range(len(path), 0, -1):
        layer = origins.get(path[:depth])
        if layer is not None:
            return layer
    return None


def _holds(document: Mapping[str, Any], path: FieldPath) -> bool:
    value: Any = document
    for name in path:
        if not isinstance(value, dict) or name not in value:
            return False
        value = value[name]
    return True


def overrides_for(
    model: type[BaseModel],
    current: Mapping[str, Any],
    inherited: Mapping[str, Any],
    environment: Mapping[str, Any],
    desired: Mapping[str, Any],
) -> dict[str, Any]:
    """What a tenant stores so that its effective config becomes ``desired``.

    ``current`` is what the tenant stores now, ``inherited`` the layers below it merged, and
    ``environment`` the environment's layer. A field is stored when it differs from the
    inherited value or was already stored (a write never drops an override: a value pinned
    equal to the default stays pinned; a merge patch with ``null`` drops it). A field equal to
    what the environment forces is the environment's doing and is left as it was.
    """
    result: dict[str, Any] = {}
    for name, want in desired.items():
        held = current.get(name, _MISSING)
        have = inherited.get(name, _MISSING)
        forced = environment.get(name, _MISSING)
        nested = nested_model(model, name)
        if (
            nested is not None
            and isinstance(want, dict)
            and (held is _MISSING or isinstance(held, dict))
            and (forced is _MISSING or isinstance(forced, dict))
        ):
            # Nothing (or null) inherited: the nested model's own defaults are what it differs
            # from, but the object is stored even if empty, to replace what is inherited.
            inner = overrides_for(
                nested,
                {} if held is _MISSING else held,
                have if isinstance(have, dict) else _schema_defaults(nested),
                {} if forced is _MISSING else forced,
                want,
            )
            if inner or not isinstance(have, dict):
                result[name] = inner
        elif forced is not _MISSING and same_json(want, forced):
            if held is not _MISSING:
                result[name] = copy.deepcopy(held)
        elif held is not _MISSING or have is _MISSING or not same_json(want, have):
            result[name] = copy.deepcopy(want)
    return result


def normalized(
    model: type[BaseModel], stored: Mapping[str, Any], effective: Mapping[str, Any]
) -> dict[str, Any]:
    """``stored`` (the top layer of ``effective``) with each value in the form the schema gives
    it in ``effective``, the validated config dumped: ``"9090"`` for a port becomes ``9090``."""
    result: dict[str, Any] = {}
    for name, value in stored.items():
        current = effective.get(name, _MISSING)
        nested = nested_model(model, name)
        if current is _MISSING:
            result[name] = copy.deepcopy(value)
        elif nested is not None and isinstance(value, dict) and isinstance(current, dict):
            result[name] = normalized(nested, value, current)
        else:
            result[name] = copy.deepcopy(current)
    return result


def same_json(left: Any, right: Any) -> bool:
    """Equal as JSON: ``1``, ``1.0`` and ``true`` differ (Python's ``==`` says they are equal)."""
    return _canonical(left) == _canonical(right)


def _canonical(value: Any) -> str:
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=True)
    except (TypeError, ValueError) as exc:
        # A value to be written, compared before the store's own check would refuse it (an int
        # too long to print, say): refused here the same way.
        raise InvalidConfigError(f"config_value is not JSON-serialisable: {exc}") from exc


def merge_patch(target: Any, patch: Any) -> Any:
    """``target`` with the RFC 7396 JSON merge patch ``patch`` applied (a new object).

    An object patch merges key by key, ``null`` removing a key; anything else replaces the
    target whole. Neither argument is changed.
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge_patch(result.get(name), value)
    return result


def explain_fields(
    model: type[BaseModel],
    effective: Mapping[str, Any],
    merged: Mapping[str, Any],
    origins: Mapping[FieldPath, Layer],
) -> list[ExplainedField]:
    """One record per field of ``effective`` (the effective config, dumped and masked as it is to
    be shown), in schema order, fields of nested models as dotted paths; ``merged`` and
    ``origins`` are what ``merge_layers`` returned for it."""
    return [
        _record(".".join(path), value, origin_of(path, merged, origins))
        for path, value in _fields(model, effective, ())
    ]


def _fields(
    model: type[BaseModel] | None, document: Mapping[str, Any], path: FieldPath
) -> Iterator[tuple[FieldPath, Any]]:
    for name, value in document.items():
        if not path and name == TENANT_FIELD:
            continue
        nested = None if model is None else nested_model(model, name)
        if nested is not None and isinstance(value, dict) and value:
            yield from _fields(nested, value, (*path, name))
        else:
            yield (*path, name), value


def _record(path: str, value: Any, layer: Layer | None) -> ExplainedField:
    if layer is None:
        # Only a value no layer holds: pydantic filled it in (a nested model's own default).
        return ExplainedField(path, value, "schema")
    return ExplainedField(path, value, layer.source, layer.tenant_id, layer.version, layer.variable)
