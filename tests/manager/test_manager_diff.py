"""Field-level diffs: paths, kinds, ordering and secret masking."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from confstore import AgentConfig, ConfigDiff, ConfigManager, SystemConfig
from confstore._diff import diff_values, secret_paths_for


def test_changed_scalar_is_reported_with_old_and_new() -> None:
    assert diff_values({"a": 1, "b": 2}, {"a": 1, "b": 3}) == [ConfigDiff("b", 2, 3)]


def test_nested_paths_are_dotted_and_list_indexes_bracketed() -> None:
    old = {"m": {"tags": ["x", "y"]}}
    new = {"m": {"tags": ["x", "z", "w"]}}
    assert diff_values(old, new) == [
        ConfigDiff("m.tags[1]", "y", "z"),
        ConfigDiff("m.tags[2]", None, "w", "added"),
    ]


def test_added_and_removed_keys_are_told_apart_from_null() -> None:
    assert diff_values({"gone": None}, {"new": None}) == [
        ConfigDiff("gone", None, None, "removed"),
        ConfigDiff("new", None, None, "added"),
    ]


def test_diffs_are_sorted_by_path() -> None:
    changes = diff_values({"b": 1, "a": 1, "c": {"z": 1}}, {"b": 2, "a": 2, "c": {"z": 2}})
    assert [change.path for change in changes] == ["a", "b", "c.z"]


def test_type_change_is_a_change_even_when_equal() -> None:
    assert diff_values({"a": 1}, {"a": 1.0}) == [ConfigDiff("a", 1, 1.0)]


def test_identical_values_have_no_diff() -> None:
    assert diff_values({"a": [1, {"b": 2}]}, {"a": [1, {"b": 2}]}) == []


def test_changed_secret_is_reported_masked() -> None:
    changes = diff_values(
        {"llm_api_key": "sk-old"}, {"llm_api_key": "sk-new"}, secret_paths={"llm_api_key"}
    )
    assert changes == [ConfigDiff("llm_api_key", "***", "***")]


def test_secret_inside_a_removed_subtree_is_masked() -> None:
    changes = diff_values(
        {"module_config": {"llm_api_key": "sk-old", "x": 1}},
        {},
        secret_paths={"module_config.llm_api_key"},
    )
    assert changes == [ConfigDiff("module_config", {"llm_api_key": "***", "x": 1}, None, "removed")]


def test_secret_that_became_null_shows_null() -> None:
    changes = diff_values({"k": "sk-old"}, {"k": None}, secret_paths={"k"})
    assert changes == [ConfigDiff("k", "***", None)]


def test_secret_paths_of_the_builtin_schemas() -> None:
    assert secret_paths_for(SystemConfig) == {"llm_api_key"}
    assert secret_paths_for(AgentConfig) == {"llm_api_key"}


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False).map(lambda number: number + 0.0)
    | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(alphabet="abc", max_size=3), children, max_size=4)
    ),
    max_leaves=20,
)
json_objects = st.dictionaries(st.text(alphabet="abcd", max_size=3), json_values, max_size=5)


@given(json_objects, json_objects)
def test_diff_is_empty_exactly_when_values_are_equal(
    old: dict[str, Any], new: dict[str, Any]
) -> None:
    same = json.dumps(old, sort_keys=True) == json.dumps(new, sort_keys=True)
    assert (diff_values(old, new) == []) == same


@given(json_objects, json_objects, st.sampled_from(["a", "b", "ab"]))
def test_masked_diff_never_shows_a_secret_value(
    old: dict[str, Any], new: dict[str, Any], secret_key: str
) -> None:
    secret = "s3cr3t-value"
    old[secret_key] = {"inner": [secret]}
    new[secret_key] = secret
    rendered = repr(diff_values(old, new, secret_paths={secret_key}))
    assert secret not in rendered


async def test_manager_diff_masks_keys_named_like_secrets(manager: ConfigManager) -> None:
    """Untyped configs, and the free-form parts of typed ones, keep their secrets masked too."""
    key = ("default", "agent", "bot", "settings")
    await manager.store.set_config(*key, {"db": {"password": "old-pw"}, "tokens": ["t-1"]})
    await manager.store.set_config(*key, {"db": {"password": "new-pw"}, "tokens": ["t-2"]})
    changes = await manager.diff(*key, 1, 2)
    assert [(change.path, change.old, change.new) for change in changes] == [
        ("db.password", "***", "***"),
        ("tokens[0]", "***", "***"),
    ]
    await manager.set_system_config(SystemConfig(metadata={"db_password": "pw-1"}))
    await manager.set_system_config(SystemConfig(metadata={"db_password": "pw-2"}))
    changes = await manager.diff("default", "system", "system", "system_config", 1, 2)
    assert [(change.path, change.old, change.new) for change in changes] == [
        ("metadata.db_password", "***", "***")
    ]
    assert "pw-" not in repr(changes)
