"""The emulator's selection parser, and the client's escaping of string literals into it."""

from __future__ import annotations

from typing import Any

import pytest
from confstore_vespa._client import SelectionBuilder, selection_string
from confstore_vespa.emulator import DEFAULT_SCHEMA
from confstore_vespa.emulator._selection_parser import (
    DocumentView,
    SelectionError,
    matches,
    parse_selection,
)
from hypothesis import given, settings
from hypothesis import strategies as st


def document(**fields: Any) -> DocumentView:
    return DocumentView("ns", "config_metadata", "key/1", fields)


def select(selection: str, **fields: Any) -> bool:
    return matches(parse_selection(selection, DEFAULT_SCHEMA), document(**fields))


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        ("config_metadata.version == 3", True),
        ("config_metadata.version != 3", False),
        ("config_metadata.version < 4 and config_metadata.version >= 3", True),
        ("config_metadata.version > 3 or config_metadata.tenant_id == 'acme'", True),
        ("not config_metadata.version == 3", False),
        ("NOT config_metadata.version == 2 AND true", True),
        ("config_metadata", True),
        ("false or config_metadata.version == 3", True),
        ("(config_metadata.version == 2 or config_metadata.version == 3) and false", False),
        ("id.namespace == 'ns' and id.specific == 'key/1'", True),
        ("id == 'id:ns:config_metadata::key/1'", True),
        ('config_metadata.tenant_id = "ac*"', True),
        ('config_metadata.tenant_id =~ "^a.m"', True),
    ],
)
def test_selections_evaluate_like_vespa(selection: str, expected: bool) -> None:
    assert select(selection, version=3, tenant_id="acme") is expected


def test_not_binds_tighter_than_and_which_binds_tighter_than_or() -> None:
    # or(and(not(a), b), c) with a=true, b=true, c=false -> false
    selection = "not true and true or false"
    assert select(selection) is False


def test_a_missing_field_is_null() -> None:
    assert select("config_metadata.tenant_id == null", version=1) is True
    assert select("config_metadata.tenant_id != null", version=1) is False


def test_ordering_against_a_missing_field_matches_neither_way() -> None:
    assert select("config_metadata.version < 5") is False
    assert select("not config_metadata.version < 5") is False


def test_strings_compare_case_sensitively() -> None:
    assert select("config_metadata.tenant_id == 'Acme'", tenant_id="acme") is False


def test_a_string_never_equals_a_number() -> None:
    assert select("config_metadata.tenant_id == 3", tenant_id="3") is False


@pytest.mark.parametrize(
    "selection",
    [
        "",
        "config_metadata.version ==",
        "config_metadata.unknown == 1",
        "config_metadata.version",
        "'a string'",
        "config_metadata.version == 1 config_metadata.version == 2",
        "(config_metadata.version == 1",
        "config_metadata.tenant_id == 'unterminated",
        'config_metadata.tenant_id == "\\u0041"',
        'config_metadata.tenant_id == "\\x4"',
        "config_metadata.tenant_id == 'tab\there'",
        "id.user == 3",
        "config_metadata.version == 1 && true",
    ],
)
def test_what_the_parser_does_not_understand_is_an_error(selection: str) -> None:
    with pytest.raises(SelectionError):
        parse_selection(selection, DEFAULT_SCHEMA)


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        (r'"a\"b"', 'a"b'),
        (r"'a\'b'", "a'b"),
        (r'"back\\slash"', "back\\slash"),
        (r'"\n\r\t\f"', "\n\r\t\f"),
        (r'"\x41\x7e"', "A~"),
    ],
)
def test_string_literal_escapes(literal: str, value: str) -> None:
    assert select(f"config_metadata.tenant_id == {literal}", tenant_id=value) is True


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_any_text_survives_escaping_into_a_selection(value: str) -> None:
    literal = selection_string(value)
    assert literal.isascii()
    decoded = value.encode("utf-8").decode("latin-1")
    # \xHH escapes stand for UTF-8 bytes; the emulator decodes each to one code point.
    selection = f"config_metadata.tenant_id == {literal}"
    assert select(selection, tenant_id=decoded) is True


@given(st.text(alphabet=st.characters(codec="ascii"), min_size=1))
def test_escaped_text_never_changes_the_shape_of_a_selection(value: str) -> None:
    builder = SelectionBuilder("config_metadata")
    selection = builder.all_of(builder.equals("tenant_id", value), builder.equals("version", 1))
    assert select(selection, tenant_id=value, version=1) is True
    assert select(selection, tenant_id=value + "x", version=1) is False
