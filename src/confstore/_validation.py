"""Checks every store runs before any I/O: identifiers, scopes, values, versions."""

from __future__ import annotations

import json
import re
from typing import Any

from ._errors import InvalidConfigError, InvalidIdentifierError
from ._models import ConfigKey, ConfigScope

IDENTIFIER_MAX_LENGTH = 128
DEFAULT_MAX_VALUE_BYTES = 1024 * 1024

_VALIDATED_KEYS_LIMIT = 4096
_VALIDATED_KEYS: dict[tuple[object, ...], ConfigKey] = {}

_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}", re.ASCII)


def validate_identifier(field: str, value: object) -> str:
    """Return ``value`` if it is a valid identifier, else raise InvalidIdentifierError.

    Valid: 1-128 ASCII letters, digits and ``_ - . :``, starting with a letter or digit.
    """
    if type(value) is not str:
        raise InvalidIdentifierError(field, value, f"must be a str, not {type(value).__name__}")
    if not value:
        raise InvalidIdentifierError(field, value, "must not be empty")
    if len(value) > IDENTIFIER_MAX_LENGTH:
        raise InvalidIdentifierError(
            field, value, f"longer than {IDENTIFIER_MAX_LENGTH} characters"
        )
    if _IDENTIFIER.fullmatch(value) is None:
        raise InvalidIdentifierError(
            field,
            value,
            "use ASCII letters, digits and '_', '-', '.', ':', starting with a letter or digit",
        )
    return value


def validate_scope(value: object) -> ConfigScope:
    """Accept a ConfigScope or its string value."""
    if isinstance(value, ConfigScope):
        return value
    if type(value) is str:
        try:
            return ConfigScope(value)
        except ValueError:
            pass
    allowed = ", ".join(scope.value for scope in ConfigScope)
    raise InvalidIdentifierError("scope", value, f"must be one of {allowed}")


def validate_key(
    tenant_id: object, scope: object, service: object, config_key: object
) -> ConfigKey:
    """Validate the four parts of a config's identity; InvalidIdentifierError names the bad one.

    Keys validated before are remembered (a bounded cache), since every read and write of a hot
    key would otherwise run the same checks again.
    """
    parts = (tenant_id, scope, service, config_key)
    if (
        type(tenant_id) is str
        and type(service) is str
        and type(config_key) is str
        and isinstance(scope, str)
    ):
        known = _VALIDATED_KEYS.get(parts)
        if known is not None:
            return known
    key = ConfigKey(
        validate_identifier("tenant_id", tenant_id),
        validate_scope(scope),
        validate_identifier("service", service),
        validate_identifier("config_key", config_key),
    )
    if len(_VALIDATED_KEYS) >= _VALIDATED_KEYS_LIMIT:
        _VALIDATED_KEYS.clear()
    _VALIDATED_KEYS[parts] = key
    return key


def validate_version(version: object, *, name: str = "version", allow_zero: bool = False) -> int:
    lowest = 0 if allow_zero else 1
    if isinstance(version, bool) or not isinstance(version, int) or version < lowest:
        raise InvalidConfigError(
            f"{name} must be an integer >= {lowest}, got {version!r}", field=name
        )
    return version


def validate_limit(limit: object) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidConfigError(f"limit must be a positive integer, got {limit!r}", field="limit")
    return limit


def validate_optional_text(name: str, value: object, max_length: int = 4096) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidConfigError(f"{name} must be a str or None", field=name)
    if len(value) > max_length:
        raise InvalidConfigError(f"{name} is longer than {max_length} characters", field=name)
    return value


def encode_value(
    value: object, max_bytes: int = DEFAULT_MAX_VALUE_BYTES
) -> tuple[dict[str, Any], str]:
    """Validate a config value and return ``(a private copy, its canonical JSON text)``.

    A value is a JSON object: a dict with str keys whose contents survive a JSON round trip
    unchanged (so no tuples, no non-str keys, no NaN or infinity), at most ``max_bytes`` as UTF-8.
    """
    if not isinstance(value, dict):
        raise InvalidConfigError(f"config_value must be a dict, not {type(value).__name__}")
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidConfigError(f"config_value is not JSON-serialisable: {exc}") from exc
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidConfigError(
            f"config_value is not valid Unicode text (a lone surrogate?): {exc.reason}"
        ) from exc
    if size > max_bytes:
        raise InvalidConfigError(
            f"config_value is {size} bytes serialised; the limit is {max_bytes}"
        )
    decoded = json.loads(text)
    if decoded != value:
        raise InvalidConfigError(
            "config_value does not survive a JSON round trip unchanged "
            "(use lists, not tuples or sets, and str keys at every level)"
        )
    return decoded, text
