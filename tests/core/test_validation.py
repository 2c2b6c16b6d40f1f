"""Identifier and value validation, shared by every store."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from confstore import ConfigScope, InvalidConfigError, InvalidIdentifierError
from confstore._validation import (
    encode_value,
    parsed_value_text,
    validate_identifier,
    validate_key,
    validate_scope,
)

HOSTILE_IDENTIFIERS = [
    "",
    " ",
    "a b",
    "a'b",
    'a"b',
    "x'; DROP TABLE configs; --",
    "a/b",
    "a\\b",
    "../etc",
    "a\nb",
    "a\x00b",
    "tab\t",
    "ünïcödé",
    "a" * 129,
    "_leading",
    "-leading",
    ".leading",
    ":leading",
    "a*b",
    "a?b",
    "a%2Fb",
    "a#b",
    "a\u202eb",
]


@pytest.mark.parametrize("value", HOSTILE_IDENTIFIERS)
def test_hostile_identifiers_are_rejected(value: str) -> None:
    with pytest.raises(InvalidIdentifierError) as caught:
        validate_identifier("tenant_id", value)
    assert caught.value.field == "tenant_id"
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("value", ["a", "A1", "tenant_a", "my-agent.v2", "a:b", "0", "x" * 128])
def test_valid_identifiers_are_accepted(value: str) -> None:
    assert validate_identifier("service", value) == value


@pytest.mark.parametrize("value", [None, 1, b"abc", ["a"]])
def test_non_string_identifiers_are_rejected(value: object) -> None:
    with pytest.raises(InvalidIdentifierError, match="must be a str"):
        validate_identifier("config_key", value)


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=140))
def test_any_accepted_identifier_uses_only_the_safe_alphabet(value: str) -> None:
    try:
        validate_identifier("tenant_id", value)
    except InvalidIdentifierError:
        return
    assert 1 <= len(value) <= 128
    assert value[0].isascii()
    assert value[0].isalnum()
    assert all(c.isascii() and (c.isalnum() or c in "_-.:") for c in value)


def test_scope_accepts_enum_and_value() -> None:
    assert validate_scope(ConfigScope.AGENT) is ConfigScope.AGENT
    assert validate_scope("routing") is ConfigScope.ROUTING


@pytest.mark.parametrize("value", ["SYSTEM", "unknown", "", None, 1])
def test_bad_scope_is_rejected(value: object) -> None:
    with pytest.raises(InvalidIdentifierError, match="scope"):
        validate_scope(value)


def test_validate_key_keeps_ambiguous_looking_parts_apart() -> None:
    assert validate_key("a:b", "system", "c", "k") != validate_key("a", "system", "b:c", "k")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ([1, 2], "must be a dict"),
        ("{}", "must be a dict"),
        ({"x": math.nan}, "not JSON-serialisable"),
        ({"x": math.inf}, "not JSON-serialisable"),
        ({"x": object()}, "not JSON-serialisable"),
        ({"x": (1, 2)}, "round trip"),
        ({"x": {1: "a"}}, "round trip"),
        ({1: "a"}, "round trip"),
        ({"x": {1, 2}}, "not JSON-serialisable"),
    ],
)
def test_bad_values_are_rejected(value: object, reason: str) -> None:
    with pytest.raises(InvalidConfigError, match=reason):
        encode_value(value)


def test_circular_value_is_rejected() -> None:
    value: dict[str, object] = {}
    value["self"] = value
    with pytest.raises(InvalidConfigError):
        encode_value(value)


def test_value_size_limit_counts_utf8_bytes() -> None:
    encode_value({"x": "é" * 40}, max_bytes=100)
    with pytest.raises(InvalidConfigError, match="bytes serialised"):
        encode_value({"x": "é" * 60}, max_bytes=100)


def test_encoded_value_is_a_private_copy() -> None:
    original = {"nested": {"a": [1, 2]}}
    copy, text = encode_value(original)
    original["nested"]["a"].append(3)  # type: ignore[index]
    assert copy == {"nested": {"a": [1, 2]}}
    assert text == '{"nested":{"a":[1,2]}}'


def test_validated_keys_are_remembered_without_weakening_checks() -> None:
    first = validate_key("acme", "system", "svc", "key")
    assert validate_key("acme", ConfigScope.SYSTEM, "svc", "key") is first

    class Sneaky(str):
        pass

    with pytest.raises(InvalidIdentifierError):
        validate_key(Sneaky("acme"), "system", "svc", "key")
    with pytest.raises(InvalidIdentifierError, match="scope"):
        validate_key("acme", ["system"], "svc", "key")
    with pytest.raises(InvalidIdentifierError, match="scope"):
        validate_key("acme", "SYSTEM", "svc", "key")


@pytest.mark.parametrize("text", ["\ud800", "a\udfffb"])
def test_a_value_with_a_lone_surrogate_is_invalid_config(text: str) -> None:
    # Such text has no UTF-8 form, so no backend could store it: a typed error, not UnicodeError.
    with pytest.raises(InvalidConfigError, match="surrogate"):
        encode_value({"v": text})
    with pytest.raises(InvalidConfigError):
        encode_value({text: 1})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)


@given(st.dictionaries(st.text(), json_values, max_size=6))
def test_a_parsed_value_gets_the_canonical_text_set_config_stores(value: dict[str, Any]) -> None:
    parsed = json.loads(json.dumps(value))  # infinity and lone surrogates come through too
    assert outcome(parsed_value_text, parsed) == outcome(lambda v: encode_value(v)[1], parsed)


def outcome(encode: Callable[[Any], str], value: Any) -> str:
    """The text ``encode`` gives ``value``, or its error."""
    try:
        return encode(value)
    except InvalidConfigError as exc:
        return f"error: {exc}"
