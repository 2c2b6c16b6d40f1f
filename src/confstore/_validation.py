"""Checks every store runs before any I/O: identifiers, scopes, values, versions."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from json.scanner import make_scanner
from typing import Any, cast

from ._errors import InvalidConfigError, InvalidIdentifierError, short_repr
from ._models import ConfigKey, ConfigScope
from ._secrets import SECRET_MASK, refuse_masked_secrets

IDENTIFIER_MAX_LENGTH = 128
DEFAULT_MAX_VALUE_BYTES = 1024 * 1024
# The largest version: the largest integer every JSON reader keeps exact (JavaScript, jq), so a
# version in an export, an ETag or a web page is never rounded to another one.
MAX_VERSION = 2**53 - 1
# The largest limit: the largest integer every backend's query takes (a signed 64-bit integer).
MAX_LIMIT = 2**63 - 1
# The deepest a value may nest, counting the value itself as level 1: deep enough for any
# configuration, shallow enough that every JSON library (several stop at 128 or 200 levels) and
# every export, import and migration handles it.
MAX_NESTING_DEPTH = 100
MAX_TEXT_LENGTH = 4096

_VALIDATED_KEYS_LIMIT = 4096
_VALIDATED_KEYS: dict[tuple[object, ...], ConfigKey] = {}

# Canonical JSON text of a value; one encoder (json.dumps with options builds one per call).
encode_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def _not_serialisable(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# ``encode_json`` without its per-call set-up (two Python frames and a fresh C encoder per call,
# which json.dumps builds too): the C encoder, built once, gives the same text and the same
# errors, except that it keeps no state between calls, so it does not look for circular
# references: a circular value recurses until RecursionError, and is then encoded again with
# ``encode_json`` to tell which it was. Its result is a sequence of chunks to join.
_canonical_chunks: Callable[[object, int], Iterable[str]]
try:
    from _json import encode_basestring as _encode_string
    from _json import make_encoder as _make_encoder
except ImportError:  # not CPython

    def _canonical_chunks(value: object, level: int) -> Iterable[str]:
        return (encode_json(value),)

else:
    _canonical_chunks = _make_encoder(
        None, _not_serialisable, _encode_string, None, ":", ",", False, False, False
    )
# ``json.loads`` of canonical text, without its checks and frames: the decoder's scanner.
_parse_canonical: Callable[[str, int], tuple[Any, int]] = make_scanner(
    cast(Any, json.JSONDecoder())
)

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
    """A version number: an int from 1 (0 with ``allow_zero``) to MAX_VERSION."""
    return _bounded_int(version, name, 0 if allow_zero else 1, MAX_VERSION)


def validate_limit(limit: object, *, name: str = "limit") -> int:
    """A count of items to return: an int from 1 to MAX_LIMIT."""
    return _bounded_int(limit, name, 1, MAX_LIMIT)


def parse_count(text: str) -> int | None:
    """The number ``text`` spells in ASCII digits, or None (also for more digits than any
    version, position or limit has: 2^63-1 has 19, and int() raises past 4,300)."""
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        return None
    return int(text)


def parse_sequence_cursor(cursor: str | None, store: str) -> int:
    """A change-feed cursor that is a position in a sequence: its ASCII digits (None is 0).

    Anything else raises InvalidConfigError naming ``store``: other digits (``"\\u0661"``) and
    more of them than a 64-bit position has (int() of thousands raises ValueError).
    """
    if cursor is None:
        return 0
    position = parse_count(cursor) if isinstance(cursor, str) else None
    if position is not None:
        return position
    raise InvalidConfigError(
        f"not a change-feed cursor of the {store} store: {short_repr(cursor)}", field="cursor"
    )


def _bounded_int(value: object, name: str, lowest: int, highest: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lowest <= value <= highest:
        raise InvalidConfigError(
            f"{name} must be an integer from {lowest} to {highest}, got {short_repr(value)}",
            field=name,
        )
    return value


def validate_optional_text(
    name: str, value: object, max_length: int = MAX_TEXT_LENGTH
) -> str | None:
    """None, or a str of at most ``max_length`` characters that is valid Unicode."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidConfigError(f"{name} must be a str or None", field=name)
    if len(value) > max_length:
        raise InvalidConfigError(f"{name} is longer than {max_length} characters", field=name)
    if not value.isascii():
        _require_unicode(value, name)
    return value


def _require_unicode(text: str, name: str) -> int:
    """The UTF-8 size of ``text``; InvalidConfigError if it holds a lone surrogate, which no
    backend can store (it is what undecodable bytes, such as ``\\xff`` in a command line, become)."""
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidConfigError(
            f"{name} is not valid Unicode text: it holds the lone surrogate "
            f"{text[exc.start]!r} (undecodable input?)",
            field=name,
        ) from None


def encode_value(
    value: object, max_bytes: int = DEFAULT_MAX_VALUE_BYTES
) -> tuple[dict[str, Any], str]:
    """Validate a config value and return ``(a private copy, its canonical JSON text)``.

    A value is a JSON object: a dict with str keys whose contents survive a JSON round trip
    unchanged (so no tuples, no non-str keys, no NaN or infinity, no lone surrogates), nested at
    most MAX_NESTING_DEPTH levels, at most ``max_bytes`` as UTF-8, and no key named like a
    secret holding the mask ``***`` (see ``refuse_masked_secrets``).
    """
    text = _canonical_text(value, max_bytes)
    try:
        decoded = (
            _plain_dict(value)
            if len(text) <= _COPY_WITHOUT_DECODING
            else _decoded_copy(text, value)
        )
    except _NotPlain:
        decoded = _decoded_copy(text, value)
    if _may_hold_mask(text):
        refuse_masked_secrets(decoded)
    return decoded, text


def _decoded_copy(text: str, value: object) -> dict[str, Any]:
    """``value``'s copy decoded from its canonical ``text``; InvalidConfigError if that differs
    from ``value``."""
    decoded: dict[str, Any] = _parse_canonical(text, 0)[0]
    if decoded != value:
        raise InvalidConfigError(
            "config_value does not survive a JSON round trip unchanged "
            "(use lists, not tuples or sets, and str keys at every level)"
        )
    return decoded


# Values whose text is at most this long are copied by _plain_dict (cheaper than decoding
# the text for a small value; the C decoder is the faster of the two for larger ones).
_COPY_WITHOUT_DECODING = 2048
_PLAIN_ATOMS = frozenset((str, int, float, bool, type(None)))


class _NotPlain(Exception):
    """A value holds something other than _plain_dict's types."""


def _plain_dict(value: object) -> dict[str, Any]:
    """A copy of ``value`` when it is a dict holding only dicts with str keys, lists, str, int,
    float, bool and None, of exactly those types (no subclasses): the types whose canonical
    JSON text (already made, so finite, encodable and at most MAX_NESTING_DEPTH deep) decodes
    back to an equal value. _NotPlain when it holds anything else: decode the text and compare
    instead."""
    if type(value) is not dict:
        raise _NotPlain
    copy = {}
    for key, item in value.items():
        if type(key) is not str:
            raise _NotPlain
        kind = type(item)
        if kind in _PLAIN_ATOMS:
            copy[key] = item
        elif kind is dict:
            copy[key] = _plain_dict(item)
        elif kind is list:
            copy[key] = _plain_list(item)
        else:
            raise _NotPlain
    return copy


def _plain_list(value: list[Any]) -> list[Any]:
    copy = []
    for item in value:
        kind = type(item)
        if kind in _PLAIN_ATOMS:
            copy.append(item)
        elif kind is dict:
            copy.append(_plain_dict(item))
        elif kind is list:
            copy.append(_plain_list(item))
        else:
            raise _NotPlain
    return copy


def parsed_value_text(value: object, max_bytes: int = DEFAULT_MAX_VALUE_BYTES) -> str:
    """``encode_value``'s checks and canonical text for a value that was just parsed from JSON
    text (by the ``json`` module), without the private copy.

    Such a value holds only dicts with str keys, lists, str, int, float, bool and None, so it
    survives a JSON round trip unchanged whenever it can be encoded: the round trip is skipped.
    Every other check stays, and several rest on the encoding itself: NaN and infinity (the
    ``json`` module parses ``NaN`` and ``1e999``) and ints too long to print fail to encode; lone
    surrogates (``"\\ud800"``) fail the UTF-8 size; then depth and the secrets rule.
    """
    text = _canonical_text(value, max_bytes)
    if _may_hold_mask(text):
        refuse_masked_secrets(value)
    return text


def _may_hold_mask(text: str) -> bool:
    """Whether ``text`` holds the secrets' mask ``***``: one character looked for first (a
    memchr), since looking for three scans the whole text even when it holds no ``*``."""
    return "*" in text and SECRET_MASK in text


def _canonical_text(value: object, max_bytes: int) -> str:
    """The canonical JSON text of a value, checked for type, encodability, size and depth."""
    if not isinstance(value, dict):
        raise InvalidConfigError(f"config_value must be a dict, not {type(value).__name__}")
    try:
        try:
            text = "".join(_canonical_chunks(value, 0))
        except RecursionError:
            text = encode_json(value)  # too deep, or circular (ValueError)
    except RecursionError:
        raise _too_deep() from None
    except (TypeError, ValueError) as exc:
        raise InvalidConfigError(f"config_value is not JSON-serialisable: {exc}") from exc
    size = len(text) if text.isascii() else _require_unicode(text, "config_value")
    if size > max_bytes:
        raise InvalidConfigError(
            f"config_value is {size} bytes serialised; the limit is {max_bytes}"
        )
    # Each level needs a bracket and its closing one, so a value with few brackets (or a text
    # too short to hold that many) is never walked.
    if len(text) > 2 * MAX_NESTING_DEPTH and text.count("{") + text.count("[") > MAX_NESTING_DEPTH:
        check_nesting_depth(value)
    return text


def check_nesting_depth(value: object, limit: int = MAX_NESTING_DEPTH) -> None:
    """InvalidConfigError if objects and lists in ``value`` nest more than ``limit`` levels
    (``value`` itself is level 1). Iterative, so any depth is measured without recursion."""
    level: list[dict[Any, Any] | list[Any]] = [value] if isinstance(value, dict | list) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            raise _too_deep(limit)
        below: list[dict[Any, Any] | list[Any]] = []
        for item in level:
            children = item.values() if isinstance(item, dict) else item
            below.extend(child for child in children if isinstance(child, dict | list))
        level = below


def _too_deep(limit: int = MAX_NESTING_DEPTH) -> InvalidConfigError:
    return InvalidConfigError(
        f"config_value nests objects and lists deeper than {limit} levels, the limit"
    )
