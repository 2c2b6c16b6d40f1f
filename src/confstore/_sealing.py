"""Copy-on-write protection for the typed configs ConfigManager caches.

A cached read hands out the cached model itself (copying a pydantic model per read would cost
many times the lookup). To keep callers from changing the cache through it, the cached model is
*sealed*: the model, its nested models and its dicts and lists are registered, and the first
in-place change to any of them (attribute assignment, ``cfg.metadata["k"] = v``, ``append``...)
breaks the seal before it happens. Breaking tells the cache to drop that model, so the caller
keeps a private, changed object and the next read builds a fresh one from the stored value.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any, SupportsIndex

from pydantic import BaseModel

# id(model) -> seal, for the models of cached configs. The cache holds every registered model
# alive until it releases the seal, so an id cannot be reused while it is registered.
_SEALED: dict[int, Seal] = {}

SEALABLE_ATTRIBUTE = "__confstore_sealable__"


class Seal:
    """The objects of one cached config; ``on_break`` runs once, at the first change to any."""

    __slots__ = ("broken", "model_ids", "on_break")

    def __init__(self, on_break: Callable[[], None]) -> None:
        self.broken = False
        self.model_ids: list[int] = []
        self.on_break = on_break

    def break_(self) -> None:
        if not self.broken:
            self.release()
            self.on_break()

    def release(self) -> None:
        """Stop watching (the cache no longer holds these objects); ``on_break`` never runs."""
        self.broken = True
        for model_id in self.model_ids:
            if _SEALED.get(model_id) is self:
                del _SEALED[model_id]
        self.model_ids.clear()


def note_change(model: BaseModel) -> None:
    """Called by a sealable model before one of its attributes changes."""
    if _SEALED:
        seal = _SEALED.get(id(model))
        if seal is not None:
            seal.break_()


def seal(model: BaseModel, on_break: Callable[[], None]) -> Seal | None:
    """Seal ``model`` in place and return the seal, or None if it cannot be sealed.

    A model can be sealed when it and every model nested in it report changes (their class sets
    ``__confstore_sealable__``, as ``confstore.schemas.ConfigModel`` does); the caller must then
    hand out copies instead.
    """
    if not _is_sealable(model):
        return None
    new_seal = Seal(on_break)
    _seal_model(model, new_seal)
    return new_seal


def _is_sealable(value: Any) -> bool:
    if isinstance(value, BaseModel):
        if not getattr(type(value), SEALABLE_ATTRIBUTE, False):
            return False
        return all(_is_sealable(item) for item in _model_values(value))
    if isinstance(value, dict):
        return all(_is_sealable(item) for item in value.values())
    if isinstance(value, list | tuple):
        return all(_is_sealable(item) for item in value)
    return True


def _model_values(model: BaseModel) -> Iterable[Any]:
    yield from model.__dict__.values()
    if model.__pydantic_extra__:
        yield from model.__pydantic_extra__.values()


def _seal_model(model: BaseModel, model_seal: Seal) -> None:
    _SEALED.setdefault(id(model), model_seal)
    model_seal.model_ids.append(id(model))
    # Assigning through __dict__ skips validation on purpose: the values are the ones just
    # validated, now wrapped so that changing them in place is noticed.
    for fields in (model.__dict__, model.__pydantic_extra__ or {}):
        for name, value in fields.items():
            fields[name] = _track(value, model_seal)


def _track(value: Any, model_seal: Seal) -> Any:
    if isinstance(value, BaseModel):
        _seal_model(value, model_seal)
        return value
    if isinstance(value, dict):
        return TrackedDict(
            model_seal, {key: _track(item, model_seal) for key, item in value.items()}
        )
    if isinstance(value, list):
        return TrackedList(model_seal, [_track(item, model_seal) for item in value])
    if type(value) is tuple:
        return tuple(_track(item, model_seal) for item in value)
    return value


class TrackedDict(dict[Any, Any]):
    """A dict of a cached config: its first change breaks the seal. Copies are plain dicts."""

    __slots__ = ("_seal",)

    def __init__(self, model_seal: Seal, items: dict[Any, Any]) -> None:
        super().__init__(items)
        self._seal = model_seal

    def _changing(self) -> None:
        self._seal.break_()

    def __setitem__(self, key: Any, value: Any) -> None:
        self._changing()
        super().__setitem__(key, value)

    def __delitem__(self, key: Any) -> None:
        self._changing()
        super().__delitem__(key)

    def __ior__(self, other: Any) -> TrackedDict:  # type: ignore[misc]
        self._changing()
        super().__ior__(other)
        return self

    def clear(self) -> None:
        self._changing()
        super().clear()

    def pop(self, *args: Any) -> Any:
        self._changing()
        return super().pop(*args)

    def popitem(self) -> tuple[Any, Any]:
        self._changing()
        return super().popitem()

    def setdefault(self, key: Any, default: Any = None) -> Any:
        self._changing()
        return super().setdefault(key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._changing()
        super().update(*args, **kwargs)

    def __copy__(self) -> dict[Any, Any]:
        return dict(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[Any, Any]:
        return {copy.deepcopy(key, memo): copy.deepcopy(item, memo) for key, item in self.items()}

    def __reduce__(self) -> tuple[Any, ...]:
        return (dict, (dict(self),))


class TrackedList(list[Any]):
    """A list of a cached config: its first change breaks the seal. Copies are plain lists."""

    __slots__ = ("_seal",)

    def __init__(self, model_seal: Seal, items: list[Any]) -> None:
        super().__init__(items)
        self._seal = model_seal

    def _changing(self) -> None:
        self._seal.break_()

    def __setitem__(self, index: Any, value: Any) -> None:
        self._changing()
        super().__setitem__(index, value)

    def __delitem__(self, index: Any) -> None:
        self._changing()
        super().__delitem__(index)

    def __iadd__(self, other: Iterable[Any]) -> TrackedList:  # type: ignore[misc]
        self._changing()
        super().__iadd__(other)
        return self

    def __imul__(self, count: SupportsIndex) -> TrackedList:
        self._changing()
        super().__imul__(count)
        return self

    def append(self, item: Any) -> None:
        self._changing()
        super().append(item)

    def extend(self, items: Iterable[Any]) -> None:
        self._changing()
        super().extend(items)

    def insert(self, index: SupportsIndex, item: Any) -> None:
        self._changing()
        super().insert(index, item)

    def pop(self, index: SupportsIndex = -1) -> Any:
        self._changing()
        return super().pop(index)

    def remove(self, item: Any) -> None:
        self._changing()
        super().remove(item)

    def clear(self) -> None:
        self._changing()
        super().clear()

    def sort(self, *args: Any, **kwargs: Any) -> None:
        self._changing()
        super().sort(*args, **kwargs)

    def reverse(self) -> None:
        self._changing()
        super().reverse()

    def __copy__(self) -> list[Any]:
        return list(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> list[Any]:
        return [copy.deepcopy(item, memo) for item in self]

    def __reduce__(self) -> tuple[Any, ...]:
        return (list, (list(self),))
