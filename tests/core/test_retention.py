"""Retention policies: ages, rules, overrides, their JSON form, and stores that offer no prune."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from confstore import (
    ConfigKey,
    ConfigScope,
    CursorExpiredError,
    InvalidConfigError,
    InvalidIdentifierError,
    MemoryConfigStore,
    PruneResult,
    RetentionPolicy,
    RetentionRule,
    StoreCapabilities,
    UnsupportedOperationError,
)
from confstore._retention import KeyPrune, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90d", 90 * 86400), ("12h", 43200), ("30m", 1800), ("45s", 45), ("2w", 1209600), ("7", 7)],
)
def test_ages_are_read_with_their_unit(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "bad",
    [
        *("", "d", "1y", "-3d", "1.5d", "3 fortnights", -1, True, None, []),
        *("9" * 5000 + "d", "9" * 30 + "w", pytest.param(10**400, id="10**400")),
        *(float("nan"), float("inf")),
    ],
)
def test_bad_ages_are_invalid_config(bad: object) -> None:
    with pytest.raises(InvalidConfigError):
        parse_duration(bad)


def test_the_most_specific_override_applies() -> None:
    policy = RetentionPolicy(
        RetentionRule(keep_last=1),
        tenants={"acme": RetentionRule(keep_last=2)},
        scopes={ConfigScope.AGENT: RetentionRule(keep_last=3)},
        tenant_scopes={("acme", ConfigScope.AGENT): RetentionRule(keep_last=4)},
    )

    def kept(tenant_id: str, scope: ConfigScope) -> int | None:
        return policy.rule_for(ConfigKey(tenant_id, scope, "svc", "key")).keep_last

    assert kept("other", ConfigScope.SYSTEM) == 1
    assert kept("acme", ConfigScope.SYSTEM) == 2
    assert kept("other", ConfigScope.AGENT) == 3
    assert kept("acme", ConfigScope.AGENT) == 4


rules = st.builds(
    RetentionRule,
    st.none() | st.integers(1, 1000),
    st.none() | st.integers(0, 10**6).map(lambda s: timedelta(seconds=s)),
    st.none() | st.integers(0, 10**6).map(lambda s: timedelta(seconds=s)),
)
names = st.from_regex(r"[a-z][a-z0-9_.-]{0,10}", fullmatch=True)


@settings(max_examples=30)
@given(
    default=rules,
    tenants=st.dictionaries(names, rules, max_size=3),
    scopes=st.dictionaries(st.sampled_from(list(ConfigScope)), rules, max_size=2),
)
def test_a_policy_survives_its_json_form(
    default: RetentionRule,
    tenants: dict[str, RetentionRule],
    scopes: dict[ConfigScope, RetentionRule],
) -> None:
    policy = RetentionPolicy(default, tenants, scopes, {("t", ConfigScope.ROUTING): default})
    assert RetentionPolicy.from_dict(policy.to_dict()) == policy


def test_a_prune_report_survives_its_json_form() -> None:
    key = ConfigKey("acme", ConfigScope.SYSTEM, "svc", "key")
    result = PruneResult((KeyPrune(key, 3, 3), KeyPrune(key, 5, 9, purged=True)), False, 7)
    assert PruneResult.from_dict(result.to_dict()) == result
    assert (result.versions_removed, result.keys_purged) == (8, 1)
    with pytest.raises(InvalidConfigError):
        PruneResult.from_dict({"keys": [{"tenant_id": "bad id"}]})


@pytest.mark.parametrize(
    "data",
    [
        {"keep_last": 0},
        {"keep": 1},
        {"tenants": {"acme": {"keep_last": "x"}}},
        {"tenants": []},
        {"scopes": {"nowhere": {}}},
        {"tenant_scopes": {"acme": {}}},
        {"tenant_scopes": {"acme/nowhere": {}}},
    ],
)
def test_malformed_policies_are_typed_errors(data: dict[str, object]) -> None:
    with pytest.raises((InvalidConfigError, InvalidIdentifierError)):
        RetentionPolicy.from_dict(data)


class StoreWithoutRetention(MemoryConfigStore):
    @property
    def capabilities(self) -> StoreCapabilities:
        return StoreCapabilities()


async def test_a_store_without_retention_raises_unsupported_and_keeps_everything() -> None:
    store = StoreWithoutRetention()
    await store.set_config("t", "system", "svc", "key", {"n": 1})
    await store.set_config("t", "system", "svc", "key", {"n": 2})
    with pytest.raises(UnsupportedOperationError):
        await store.prune(keep_last=1)
    assert len(await store.get_config_history("t", "system", "svc", "key")) == 2


async def test_limits_and_a_policy_together_are_refused() -> None:
    store = MemoryConfigStore()
    with pytest.raises(InvalidConfigError, match="not both"):
        await store.prune(keep_last=1, policy=RetentionPolicy(RetentionRule(keep_last=2)))


async def test_the_memory_feed_keeps_its_newest_changes_and_expires_older_cursors() -> None:
    store = MemoryConfigStore(feed_max_changes=5)
    start = await store.current_cursor()
    for n in range(12):
        await store.set_config("t", "system", "svc", "key", {"n": n})
    with pytest.raises(CursorExpiredError):
        await store.changes_since(start)
    batch = await store.changes_since(None)
    assert [change.version for change in batch.changes][-1] == 12
    assert 5 <= len(batch.changes) <= 10
