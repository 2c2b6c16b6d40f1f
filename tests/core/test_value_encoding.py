"""encode_value against the standard json module: the same canonical text, the same errors.

encode_value runs a C encoder it builds once instead of ``json.dumps``'s per-call one, and
parses with the decoder's scanner instead of ``json.loads`` (or, for a small value of the JSON
types exactly, copies it without parsing); these tests hold it to what the standard functions
say about the same value.
"""

from __future__ import annotations

import collections
import enum
import json
import math
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from confstore import InvalidConfigError
from confstore._validation import MAX_NESTING_DEPTH, encode_value


def standard_outcome(value: object) -> tuple[str, Any] | Exception:
    """What the json module makes of ``value``: (text, parsed back), or its error."""
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        return exc
    return text, json.loads(text)


def has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),  # NaN and infinity included: both must be refused
    st.text(),  # lone surrogates included: refused, they have no UTF-8 form
    st.sets(st.integers(), max_size=2),
    st.tuples(st.integers()),
)
keys = st.one_of(st.text(), st.integers(), st.booleans(), st.none(), st.floats())
values = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(keys, values, max_size=5))
def test_encode_value_agrees_with_the_json_module(value: dict[Any, Any]) -> None:
    standard = standard_outcome(value)
    if isinstance(standard, Exception):
        with pytest.raises(InvalidConfigError) as raised:
            encode_value(value)
        assert str(standard) in str(raised.value)
        return
    text, parsed = standard
    if parsed != value:
        with pytest.raises(InvalidConfigError, match="round trip"):
            encode_value(value)
        return
    if has_lone_surrogate(text):
        # The json module encodes lone surrogates; no backend can store them.
        with pytest.raises(InvalidConfigError, match="surrogate"):
            encode_value(value)
        return
    copy, encoded = encode_value(value)
    assert encoded == text
    assert copy == value


@pytest.mark.parametrize(
    "value",
    [
        {"x": math.nan},
        {"x": -math.inf},
        {"x": object()},
        {"x": {1, 2}},
        {"x": b"bytes"},
        {(1, 2): "tuple key"},
    ],
)
def test_unserialisable_values_give_the_json_modules_message(value: dict[Any, Any]) -> None:
    standard = standard_outcome(value)
    assert isinstance(standard, Exception)
    with pytest.raises(InvalidConfigError, match="not JSON-serialisable") as raised:
        encode_value(value)
    assert str(raised.value) == f"config_value is not JSON-serialisable: {standard}"


def test_a_circular_value_is_named_circular_every_time() -> None:
    value: dict[str, Any] = {"list": []}
    value["list"].append(value)
    for _ in range(3):  # no state is left behind by a failed encoding
        with pytest.raises(InvalidConfigError, match="Circular reference detected"):
            encode_value(value)
    assert encode_value({"list": [{}]})[1] == '{"list":[{}]}'


def test_the_same_object_twice_is_not_circular() -> None:
    shared = {"a": 1}
    copy, text = encode_value({"x": shared, "y": [shared, shared]})
    assert text == '{"x":{"a":1},"y":[{"a":1},{"a":1}]}'
    assert copy["x"] is not copy["y"][0]


def test_a_value_deeper_than_the_interpreter_allows_is_too_deep_not_circular() -> None:
    value: dict[str, Any] = {}
    inner = value
    for _ in range(5000):
        inner["a"] = inner = {}
    with pytest.raises(InvalidConfigError, match=f"deeper than {MAX_NESTING_DEPTH} levels"):
        encode_value(value)


json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),  # -0.0 included
    st.text(alphabet=st.characters(blacklist_categories=["Cs"])),
)
json_values = st.recursive(
    json_leaves,
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(), children, max_size=6)
    ),
    max_leaves=40,
)


def same_types(left: object, right: object) -> bool:
    """Equal, and of the same type at every level (1 == 1.0 == True would not do)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        assert isinstance(right, dict)
        return list(left) == list(right) and all(same_types(left[key], right[key]) for key in left)
    if isinstance(left, list):
        assert isinstance(right, list)
        return len(left) == len(right) and all(map(same_types, left, right))
    if isinstance(left, float):
        return math.copysign(1.0, left) == math.copysign(1.0, cast(float, right)) and left == right
    return left == right


def containers(value: object) -> list[int]:
    """The ids of the dicts and lists in ``value``."""
    if isinstance(value, dict):
        return [id(value)] + [found for item in value.values() for found in containers(item)]
    if isinstance(value, list):
        return [id(value)] + [found for item in value for found in containers(item)]
    return []


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(), json_values, max_size=8))
def test_the_copy_is_what_decoding_the_text_gives_type_for_type(value: dict[str, Any]) -> None:
    # Small values are copied without decoding their text, larger ones by decoding it: both
    # must give exactly what a reader of the stored text gets, sharing nothing with the input.
    copy, text = encode_value(value)
    assert same_types(copy, json.loads(text))
    assert not set(containers(copy)) & set(containers(value))


def test_a_large_value_is_copied_type_for_type_too() -> None:
    value = {f"key{n}": {"list": [n, n + 0.5, -0.0, None, True, "x" * 20]} for n in range(200)}
    copy, text = encode_value(value)
    assert len(text) > 8192
    assert same_types(copy, json.loads(text))
    assert not set(containers(copy)) & set(containers(value))


class Level(enum.IntEnum):
    HIGH = 2


class Name(str):
    pass


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"level": Level.HIGH}, {"level": 2}),
        ({"name": Name("n")}, {"name": "n"}),
        ({"nested": collections.OrderedDict(a=[Level.HIGH])}, {"nested": {"a": [2]}}),
    ],
)
def test_subclasses_of_json_types_are_stored_and_copied_as_their_json(
    value: dict[str, Any], expected: dict[str, Any]
) -> None:
    copy, text = encode_value(value)
    assert json.loads(text) == expected
    assert same_types(copy, expected)


@pytest.mark.parametrize(
    "value",
    [{"x": (1, 2)}, {"x": {1: "int key"}}, {"x": [{True: 1}]}, {"x": [1.0, {"y": {None: 0}}]}],
)
def test_values_that_change_in_a_round_trip_are_refused(value: dict[str, Any]) -> None:
    with pytest.raises(InvalidConfigError, match="round trip"):
        encode_value(value)
