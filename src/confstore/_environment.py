"""Environment overrides of typed configs: ``CONFSTORE_<SCOPE>__<FIELD>[__<NESTED>]=value``.

They follow pydantic-settings' conventions: names are case-insensitive, ``__`` separates a nested
model's fields (``CONFSTORE_AGENT__MODULE_CONFIG__SIGNATURE``), values of complex fields (lists,
dicts, nested models) are JSON and other values are text the schema converts (``"8080"`` -> 8080,
``"true"`` -> True). A variable applies to every typed config of its scope that has the field,
for every tenant, above everything stored. Variables are read once, when the manager is built;
one that names no field, cannot be parsed or fails the schema raises InvalidConfigError naming it.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from ._diff import leaf_types
from ._errors import InvalidConfigError
from ._layers import TENANT_FIELD, Layer, nested_model
from ._models import ConfigScope
from ._typed import TypedConfigSpec, jsonable

ENV_PREFIX: Final = "CONFSTORE_"
NESTED_DELIMITER: Final = "__"
_COMPLEX_ORIGINS: Final = (list, dict, set, frozenset, tuple)


@dataclass(frozen=True, slots=True)
class _Variable:
    name: str
    scope: ConfigScope
    path: tuple[str, ...]
    text: str


class EnvironmentOverrides:
    """The override variables of one environment, checked against the typed configs."""

    def __init__(self, variables: Iterable[_Variable]) -> None:
        # Shallower paths first, so CONFSTORE_AGENT__MODULE_CONFIG__SIGNATURE lands inside
        # CONFSTORE_AGENT__MODULE_CONFIG when both are set.
        self._variables = sorted(variables, key=lambda variable: len(variable.path))
        self._layers: dict[TypedConfigSpec, tuple[Layer, ...]] = {}

    @classmethod
    def read(
        cls, environ: Mapping[str, str], specs: Iterable[TypedConfigSpec]
    ) -> EnvironmentOverrides:
        """Parse and check every override variable of ``environ``; InvalidConfigError naming the
        first bad one."""
        variables = [variable for variable in map(_parse_name, environ.items()) if variable]
        _refuse_duplicates(variables)
        overrides = cls(variables)
        specs = list(specs)
        for variable in overrides._variables:
            in_scope = [spec for spec in specs if spec.scope is variable.scope]
            matching = [spec for spec in in_scope if _field(spec.model, variable.path[0])]
            if not matching:
                names = ", ".join(spec.model.__name__ for spec in in_scope) or "no typed config"
                raise _error(variable, f"{variable.path[0]!r} is not a field of {names}")
            for spec in matching:
                _resolve(spec.model, variable)
        return overrides

    def layers(self, spec: TypedConfigSpec) -> tuple[Layer, ...]:
        """The environment's layers for ``spec``, one per variable, in the order they apply."""
        layers = self._layers.get(spec)
        if layers is None:
            layers = tuple(
                Layer("env", _resolve(spec.model, variable), variable=variable.name)
                for variable in self._variables
                if variable.scope is spec.scope and _field(spec.model, variable.path[0])
            )
            self._layers[spec] = layers
        return layers


def _parse_name(item: tuple[str, str]) -> _Variable | None:
    name, text = item
    upper = name.upper()
    if not upper.startswith(ENV_PREFIX):
        return None
    body = upper[len(ENV_PREFIX) :]
    scope_name, delimiter, rest = body.partition(NESTED_DELIMITER)
    scope = ConfigScope._value2member_map_.get(scope_name.lower())
    if not delimiter or not isinstance(scope, ConfigScope):
        _refuse_single_underscore(name, body)
        return None  # CONFSTORE_URL, CONFSTORE_DEBUG...: not an override
    variable = _Variable(name, scope, tuple(rest.lower().split(NESTED_DELIMITER)), text)
    if not all(variable.path):
        raise _error(variable, "empty field name (use one __ between names)")
    if variable.path[0] == TENANT_FIELD:
        raise _error(variable, "tenant_id is the tenant read, not a setting")
    return variable


def _refuse_single_underscore(name: str, body: str) -> None:
    """CONFSTORE_SYSTEM_LLM_MODEL is a mistyped override, never silently ignored."""
    for scope in ConfigScope:
        prefix = f"{scope.value.upper()}_"
        if body.startswith(prefix):
            meant = f"{ENV_PREFIX}{prefix}_{body[len(prefix) :]}"
            raise InvalidConfigError(
                f"environment variable {name}: an override needs __ after the scope: {meant}",
                field=body[len(prefix) :].lower(),
            )


def _refuse_duplicates(variables: list[_Variable]) -> None:
    seen: dict[tuple[ConfigScope, tuple[str, ...]], str] = {}
    for variable in variables:
        other = seen.setdefault((variable.scope, variable.path), variable.name)
        if other != variable.name:
            raise _error(variable, f"sets the same field as {other}")


def _field(model: type[BaseModel], name: str) -> str | None:
    """The field of ``model`` called ``name``, case-insensitively."""
    for field_name in model.model_fields:
        if field_name.lower() == name:
            return field_name
    return None


def _resolve(model: type[BaseModel], variable: _Variable) -> dict[str, Any]:
    """The layer document ``variable`` makes for ``model``: ``{"a": {"b": value}}``, the value
    validated by its field and in its stored (JSON) form."""
    names: list[str] = []
    for depth, part in enumerate(variable.path):
        name = _field(model, part)
        if name is None:
            raise _error(
                variable, f"{'.'.join([*names, part])!r} is not a field of {model.__name__}"
            )
        names.append(name)
        if depth < len(variable.path) - 1:
            nested = nested_model(model, name)
            if nested is None:
                path = ".".join(names)
                raise _error(variable, f"{path} is not a nested model: set it whole, as JSON")
            model = nested
    value = _validated(model.model_fields[names[-1]], variable)
    for name in reversed(names):
        value = {name: value}
    return typing.cast(dict[str, Any], value)


def _validated(field: FieldInfo, variable: _Variable) -> Any:
    annotation: Any = field.annotation
    adapter: TypeAdapter[Any] = TypeAdapter(
        Annotated[(annotation, *field.metadata)] if field.metadata else annotation
    )
    raw = _parse_text(annotation, variable)
    try:
        return jsonable(adapter.dump_python(adapter.validate_python(raw), mode="python"))
    except ValidationError as exc:
        details = exc.errors(include_url=False, include_context=False, include_input=False)
        problems = "; ".join(_problem(detail["loc"], detail["msg"]) for detail in details)
        raise _error(variable, problems) from None


def _problem(location: tuple[int | str, ...], message: str) -> str:
    return f"{'.'.join(map(str, location))}: {message}" if location else message


def _parse_text(annotation: Any, variable: _Variable) -> Any:
    """JSON for complex fields (lists, dicts, models), the text itself for the others."""
    kinds = [kind for kind in leaf_types(annotation) if kind is not type(None)]
    complex_kinds = [kind for kind in kinds if _is_complex(kind)]
    if not complex_kinds:
        return variable.text
    try:
        return json.loads(variable.text)
    except json.JSONDecodeError:
        if len(complex_kinds) < len(kinds):
            return variable.text  # a union that also takes plain text
        raise _error(variable, "this field takes JSON (a list, object or nested model)") from None


def _is_complex(kind: Any) -> bool:
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        return True
    origin = typing.get_origin(kind) or kind
    return isinstance(origin, type) and issubclass(origin, _COMPLEX_ORIGINS)


def _error(variable: _Variable, problem: str) -> InvalidConfigError:
    return InvalidConfigError(
        f"environment variable {variable.name}: {problem}", field=".".join(variable.path)
    )
