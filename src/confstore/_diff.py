"""Field-level differences between two config values, with secrets masked."""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, SecretStr

from ._secrets import SECRET_MASK, secret_name_paths

DiffKind = Literal["added", "removed", "changed"]


@dataclass(frozen=True, slots=True)
class ConfigDiff:
    """One changed field: ``path`` is dotted, with list indexes as ``[i]`` (``metadata.tags[2]``).

    ``old`` is None for an added field and ``new`` is None for a removed one (``kind`` tells
    them apart from a field set to null). Secret values appear as ``"***"``.
    """

    path: str
    old: Any
    new: Any
    kind: DiffKind = "changed"


def diff_values(
    old: dict[str, Any],
    new: dict[str, Any],
    *,
    secret_paths: Collection[str] = frozenset(),
    reveal_secrets: bool = False,
) -> list[ConfigDiff]:
    """The field-level changes from ``old`` to ``new``, sorted by path.

    Dicts are compared key by key and lists index by index, recursively; anything else is compared
    whole. A secret (a value at or under a path in ``secret_paths``, the secret fields of a typed
    config, or under a key named like a secret in either value) is shown as ``"***"`` but still
    reported when it changed, so a rotated key shows ``"***" -> "***"``; ``reveal_secrets=True``
    shows secrets in clear.
    """
    hidden: frozenset[str] = frozenset()
    if not reveal_secrets:
        hidden = frozenset(secret_paths).union(secret_name_paths(old), secret_name_paths(new))
    masker = _Masker(hidden)
    changes = [masker.mask(change) for change in _walk("", old, new)]
    return sorted(changes, key=lambda change: change.path)


@functools.cache
def secret_paths_for(model: type[BaseModel]) -> frozenset[str]:
    """Dotted paths of the SecretStr fields of ``model``, nested models included."""
    return frozenset(_secret_paths(model, ""))


def _secret_paths(model: type[BaseModel], prefix: str) -> Iterator[str]:
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        for kind in leaf_types(field.annotation):
            if kind is SecretStr:
                yield path
            elif isinstance(kind, type) and issubclass(kind, BaseModel):
                yield from _secret_paths(kind, f"{path}.")


def leaf_types(annotation: Any) -> Iterator[Any]:
    """The classes an annotation can hold: unions and Annotated are opened, generics are not."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        yield from leaf_types(typing.get_args(annotation)[0])
    elif origin is typing.Union or origin is types.UnionType:
        for argument in typing.get_args(annotation):
            yield from leaf_types(argument)
    else:
        yield annotation


def _walk(path: str, old: Any, new: Any) -> Iterator[ConfigDiff]:
    if isinstance(old, dict) and isinstance(new, dict):
        for name in old.keys() | new.keys():
            child = f"{path}.{name}" if path else str(name)
            if name not in new:
                yield ConfigDiff(child, old[name], None, "removed")
            elif name not in old:
                yield ConfigDiff(child, None, new[name], "added")
            else:
                yield from _walk(child, old[name], new[name])
    elif isinstance(old, list) and isinstance(new, list):
        for index in range(max(len(old), len(new))):
            child = f"{path}[{index}]"
            if index >= len(new):
                yield ConfigDiff(child, old[index], None, "removed")
            elif index >= len(old):
                yield ConfigDiff(child, None, new[index], "added")
            else:
                yield from _walk(child, old[index], new[index])
    elif type(old) is not type(new) or old != new:
        yield ConfigDiff(path, old, new)


class _Masker:
    def __init__(self, secret_paths: frozenset[str]) -> None:
        self.secret_paths = secret_paths

    def mask(self, change: ConfigDiff) -> ConfigDiff:
        if not self.secret_paths:
            return change
        old = self._redact(change.path, change.old)
        new = self._redact(change.path, change.new)
        return ConfigDiff(change.path, old, new, change.kind)

    def _redact(self, path: str, value: Any) -> Any:
        """``value`` with every secret at or under ``path`` replaced by the mask."""
        if self._is_secret(path):
            return None if value is None else SECRET_MASK
        if isinstance(value, dict):
            return {name: self._redact(f"{path}.{name}", item) for name, item in value.items()}
        if isinstance(value, list):
            return [self._redact(f"{path}[{index}]", item) for index, item in enumerate(value)]
        return value

    def _is_secret(self, path: str) -> bool:
        return any(
            path == secret or path.startswith((f"{secret}.", f"{secret}["))
            for secret in self.secret_paths
        )
