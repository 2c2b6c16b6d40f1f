"""How layers combine (merge_layers), what a tenant stores to get a config (overrides_for), and
RFC 7396 merge patches (merge_patch): the pure rules the manager's layered configs are built on."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from confstore import AgentConfig, SystemConfig
from confstore._layers import (
    Layer,
    explain_fields,
    merge_layers,
    merge_patch,
    overrides_for,
    same_json,
    schema_layer,
)
from confstore._typed import dump_for_storage, load_from_storage

BASE = Layer("base", {"llm_model": "gpt-4o", "metadata": {"owner": "ops"}}, "default", 3)

# RFC 7396, appendix A: (target, patch, result).
RFC_7396_EXAMPLES = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "result"), RFC_7396_EXAMPLES)
def test_merge_patch_follows_every_example_of_rfc_7396(
    target: Any, patch: Any, result: Any
) -> None:
    assert merge_patch(target, patch) == result


def test_merge_patch_changes_neither_argument() -> None:
    target = {"a": {"b": 1}, "c": [1]}
    patch = {"a": {"d": 2}, "c": None}
    kept_target, kept_patch = copy.deepcopy(target), copy.deepcopy(patch)
    merge_patch(target, patch)
    assert (target, patch) == (kept_target, kept_patch)


def test_higher_layer_wins_and_each_field_remembers_its_layer() -> None:
    tenant = Layer("tenant", {"llm_model": "claude-3"}, "acme", 7)
    merged, origins = merge_layers(SystemConfig, [schema_layer(SystemConfig), BASE, tenant])
    assert merged["llm_model"] == "claude-3"
    assert merged["metadata"] == {"owner": "ops"}
    assert merged["vespa_port"] == 8080
    assert origins[("llm_model",)] is tenant
    assert origins[("metadata",)] is BASE
    assert origins[("vespa_port",)].source == "schema"


def test_null_in_a_stored_layer_is_a_value_not_a_removal() -> None:
    base = Layer("base", {"elasticsearch_url": "http://es"})
    tenant = Layer("tenant", {"elasticsearch_url": None})
    merged, _ = merge_layers(SystemConfig, [schema_layer(SystemConfig), base, tenant])
    assert merged["elasticsearch_url"] is None


def test_a_dict_field_is_replaced_whole() -> None:
    tenant = Layer("tenant", {"metadata": {"team": "a"}})
    merged, _ = merge_layers(SystemConfig, [BASE, tenant])
    assert merged["metadata"] == {"team": "a"}


def test_fields_of_a_nested_model_merge_one_by_one() -> None:
    base = Layer("base", {"module_config": {"module_type": "react", "signature": "S"}})
    tenant = Layer("tenant", {"module_config": {"signature": "T"}})
    merged, origins = merge_layers(AgentConfig, [schema_layer(AgentConfig), base, tenant])
    assert merged["module_config"] == {"module_type": "react", "signature": "T"}
    assert origins[("module_config", "signature")] is tenant
    assert origins[("module_config",)] is base


def test_a_nested_model_replaced_by_a_value_forgets_the_origins_inside_it() -> None:
    base = Layer("base", {"optimizer_config": {"optimizer_type": "copro"}})
    tenant = Layer("tenant", {"optimizer_config": {"num_trials": 3}})
    cleared = Layer("tenant", {"optimizer_config": None})
    _, origins = merge_layers(AgentConfig, [base, tenant, cleared])
    assert origins == {("optimizer_config",): cleared}


def test_explain_names_a_nested_default_pydantic_filled_in_as_schema() -> None:
    base = Layer("base", {"agent_name": "a", "module_config": {"module_type": "react"}})
    tenant = Layer("tenant", {"module_config": {"signature": "T"}}, "acme", 2)
    merged, origins = merge_layers(AgentConfig, [schema_layer(AgentConfig), base, tenant])
    effective = dump_for_storage(load_from_storage(AgentConfig, merged))
    sources = {
        record.path: record.source
        for record in explain_fields(AgentConfig, effective, merged, origins)
    }
    assert sources["module_config.module_type"] == "base"
    assert sources["module_config.signature"] == "tenant"
    assert sources["module_config.max_retries"] == "schema"
    assert sources["agent_name"] == "base"


def test_overrides_keep_only_what_differs_from_the_inherited_value() -> None:
    inherited, _ = merge_layers(SystemConfig, [schema_layer(SystemConfig), BASE])
    desired = {**inherited, "vespa_port": 9090}
    assert overrides_for(SystemConfig, {}, inherited, {}, desired) == {"vespa_port": 9090}


def test_an_override_equal_to_the_inherited_value_stays_pinned() -> None:
    inherited, _ = merge_layers(SystemConfig, [schema_layer(SystemConfig), BASE])
    current = {"llm_model": "gpt-4o"}
    assert overrides_for(SystemConfig, current, inherited, {}, dict(inherited)) == current


def test_a_value_the_environment_forces_is_not_stored() -> None:
    inherited, _ = merge_layers(SystemConfig, [schema_layer(SystemConfig)])
    environment = {"llm_model": "from-env"}
    desired = {**inherited, "llm_model": "from-env"}
    assert overrides_for(SystemConfig, {}, inherited, environment, desired) == {}


def test_a_nested_model_stores_only_its_changed_fields() -> None:
    base = Layer("base", {"module_config": {"module_type": "react", "signature": "S"}})
    inherited, _ = merge_layers(AgentConfig, [schema_layer(AgentConfig), base])
    desired = copy.deepcopy(inherited)
    desired["module_config"]["signature"] = "T"
    assert overrides_for(AgentConfig, {}, inherited, {}, desired) == {
        "module_config": {"signature": "T"}
    }


def test_json_equality_tells_numbers_and_booleans_apart() -> None:
    assert not same_json(1, 1.0)
    assert not same_json(1, True)
    assert same_json({"a": [1, {"b": None}]}, {"a": [1, {"b": None}]})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=3),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=2), children, max_size=3)
    ),
    max_leaves=8,
)
system_overrides = st.fixed_dictionaries(
    {},
    optional={
        "llm_model": st.text(min_size=1, max_size=5),
        "vespa_port": st.integers(1, 65535),
        "elasticsearch_url": st.none() | st.text(max_size=5),
        "metadata": st.dictionaries(st.text(max_size=3), json_values, max_size=3),
        "video_processing_profiles": st.lists(st.text(max_size=3), max_size=3),
    },
)


@settings(max_examples=100, deadline=None)
@given(base=system_overrides, current=system_overrides, wanted=system_overrides)
def test_storing_the_overrides_gives_back_the_desired_config(
    base: dict[str, Any], current: dict[str, Any], wanted: dict[str, Any]
) -> None:
    """Whatever the base and the tenant's current overrides, what overrides_for stores merges
    back into exactly the config the tenant asked for, and keeps every field it held."""
    lower = [schema_layer(SystemConfig), Layer("base", base)]
    inherited, _ = merge_layers(SystemConfig, lower)
    desired, _ = merge_layers(SystemConfig, [*lower, Layer("tenant", current), Layer("x", wanted)])
    stored = overrides_for(SystemConfig, current, inherited, {}, desired)
    merged, _ = merge_layers(SystemConfig, [*lower, Layer("tenant", stored)])
    assert same_json(merged, desired)
    assert current.keys() <= stored.keys()
