"""``StoreOptions``: typed reading of backend options, which arrive as URL strings or keywords."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._errors import InvalidConfigError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class StoreOptions:
    """Options for one store: ``take_*`` reads and removes one; ``finish()`` rejects leftovers.

    Every malformed or unknown option raises InvalidConfigError naming it.
    """

    def __init__(self, backend: str, options: Mapping[str, Any]) -> None:
        self._backend = backend
        self._options = dict(options)

    def take_str(self, name: str, default: str | None = None) -> str | None:
        value = self._options.pop(name, default)
        if value is not None and not isinstance(value, str):
            raise self._error(name, value, "a string")
        return value

    def take_float(self, name: str, default: float, *, minimum: float = 0.0) -> float:
        value = self._options.pop(name, default)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise self._error(name, value, "a number") from None
        if not number >= minimum or number == float("inf"):
            raise self._error(name, value, f"a finite number >= {minimum}")
        return number

    def take_int(self, name: str, default: int, *, minimum: int = 0) -> int:
        value = self._options.pop(name, default)
        if isinstance(value, bool):
            raise self._error(name, value, "an integer")
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise self._error(name, value, "an integer") from None
        if number < minimum:
            raise self._error(name, value, f"an integer >= {minimum}")
        return number

    def take_bool(self, name: str, default: bool) -> bool:
        value = self._options.pop(name, default)
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise self._error(name, value, "true or false")

    def take_any(self, name: str, default: Any = None) -> Any:
        return self._options.pop(name, default)

    def finish(self) -> None:
        """Raise InvalidConfigError if an option was given that no ``take_*`` call read."""
        if self._options:
            unknown = ", ".join(sorted(self._options))
            raise InvalidConfigError(
                f"unknown option(s) for the {self._backend} store: {unknown}", field=unknown
            )

    def _error(self, name: str, value: object, expected: str) -> InvalidConfigError:
        return InvalidConfigError(
            f"option {name!r} of the {self._backend} store must be {expected}, got {value!r}",
            field=name,
        )
