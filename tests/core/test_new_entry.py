"""``new_entry``: the write path's constructor of ConfigEntry, held to the dataclass's own."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle
from datetime import UTC, datetime

import pytest

from confstore import ConfigEntry, ConfigScope
from confstore._models import new_entry

MOMENT = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
FIELDS = (
    "t",
    ConfigScope.AGENT,
    "svc",
    "k",
    {"api_key": "secret", "n": [1, 2.5]},
    7,
    MOMENT,
    MOMENT.replace(microsecond=8),
    "ann",
    "a comment",
    False,
)


def test_its_parameters_are_the_dataclass_fields_in_order() -> None:
    parameters = list(inspect.signature(new_entry).parameters)
    assert parameters == [item.name for item in dataclasses.fields(ConfigEntry)]


@pytest.mark.parametrize("deleted", [False, True])
def test_it_builds_the_entry_the_dataclass_builds(deleted: bool) -> None:
    fields = (*FIELDS[:-1], deleted)
    made, expected = new_entry(*fields), ConfigEntry(*fields)
    assert type(made) is ConfigEntry
    assert made == expected
    assert repr(made) == repr(expected)  # secrets masked as in the dataclass's repr
    assert made.to_dict() == expected.to_dict()
    assert dataclasses.astuple(made) == dataclasses.astuple(expected)
    assert pickle.loads(pickle.dumps(made)) == expected
    assert copy.copy(made) == expected
    assert dataclasses.replace(made, version=8) == dataclasses.replace(expected, version=8)


def test_the_entry_it_builds_is_immutable() -> None:
    made = new_entry(*FIELDS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.version = 8  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del made.config_value
    assert made.version == 7
