"""Writes through the manager: validation first, compare-and-set update, rollback and diff."""

from __future__ import annotations

import asyncio

import pytest

from confstore import (
    AgentConfig,
    ConfigDiff,
    ConfigManager,
    InvalidConfigError,
    MemoryConfigStore,
    ModuleConfig,
    SystemConfig,
    VersionConflictError,
)

SECRET = "sk-live-0123456789abcdef"
SYSTEM_KEY = ("default", "system", "system", "system_config")


def agent(name: str = "a", **fields: object) -> AgentConfig:
    module = ModuleConfig(module_type="predict", signature="S")  # type: ignore[arg-type]
    return AgentConfig(agent_name=name, module_config=module, **fields)  # type: ignore[arg-type]


async def bump(config: SystemConfig) -> None:
    config.metadata["count"] = config.metadata.get("count", 0) + 1


@pytest.fixture(params=["memory", "sqlite"])
async def any_manager(request: pytest.FixtureRequest, sqlite_url: str) -> object:
    url = "memory://" if request.param == "memory" else sqlite_url
    async with ConfigManager(url=url, poll_interval=0.05) as manager:
        yield manager


async def test_twenty_concurrent_updates_all_count(any_manager: ConfigManager) -> None:
    await asyncio.gather(*(any_manager.update(SystemConfig, "t", bump) for _ in range(20)))
    assert (await any_manager.get_system_config("t")).metadata["count"] == 20


async def test_concurrent_updates_write_one_version_each(any_manager: ConfigManager) -> None:
    await asyncio.gather(*(any_manager.update(SystemConfig, "t", bump) for _ in range(20)))
    history = await any_manager.store.get_config_history(
        "t", "system", "system", "system_config", 50
    )
    assert [entry.version for entry in history] == list(range(20, 0, -1))


async def test_update_accepts_a_function_returning_a_new_config(manager: ConfigManager) -> None:
    await manager.update(
        SystemConfig, "t", lambda config: config.model_copy(update={"llm_model": "x"})
    )
    assert (await manager.get_system_config("t")).llm_model == "x"


async def test_update_accepts_an_async_function(manager: ConfigManager) -> None:
    async def change(config: SystemConfig) -> SystemConfig:
        config.llm_model = "y"
        return config

    await manager.update(SystemConfig, "t", change)
    assert (await manager.get_system_config("t")).llm_model == "y"


async def test_update_of_absent_agent_without_default_raises(manager: ConfigManager) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        await manager.update(AgentConfig, "t", lambda config: None, "a")
    assert caught.value.field == "default"


async def test_update_of_absent_agent_starts_from_default(manager: ConfigManager) -> None:
    def rename(config: AgentConfig) -> None:
        config.llm_model = "claude-3"

    await manager.update(AgentConfig, "t", rename, "a", default=agent())
    stored = await manager.get_agent_config("t", "a")
    assert stored is not None
    assert stored.llm_model == "claude-3"


async def test_update_after_a_delete_continues_the_numbering(
    manager: ConfigManager, store: MemoryConfigStore
) -> None:
    await manager.set_system_config(SystemConfig(tenant_id="t"))
    await store.delete_config("t", "system", "system", "system_config")
    entry = await manager.update(SystemConfig, "t", bump)
    assert entry.version == 3


async def test_update_gives_up_after_max_attempts(manager: ConfigManager) -> None:
    async def always_interfere(config: SystemConfig) -> None:
        await manager.store.set_config("t", "system", "system", "system_config", {})

    with pytest.raises(VersionConflictError):
        await manager.update(SystemConfig, "t", always_interfere, max_attempts=3)


async def test_set_with_stale_expected_version_conflicts(manager: ConfigManager) -> None:
    await manager.set_system_config(SystemConfig())
    with pytest.raises(VersionConflictError):
        await manager.set_system_config(SystemConfig(), expected_version=0)


async def test_invalid_value_names_the_field_and_writes_nothing(manager: ConfigManager) -> None:
    config = SystemConfig()
    config.metadata["bad"] = float("nan")
    with pytest.raises(InvalidConfigError) as caught:
        await manager.set_system_config(config)
    assert caught.value.field == "metadata.bad"
    assert await manager.store.get_config(*SYSTEM_KEY) is None


async def test_an_int_too_long_to_print_is_invalid_and_writes_nothing(sqlite_url: str) -> None:
    huge = 10**5000  # past Python's 4,300-digit limit for int-to-text conversion
    async with ConfigManager(url=sqlite_url) as manager:
        with pytest.raises(InvalidConfigError, match="not JSON-serialisable"):
            await manager.set_system_config(SystemConfig(metadata={"n": huge}), "acme")
        with pytest.raises(InvalidConfigError, match="not JSON-serialisable"):
            await manager.patch(SystemConfig, "acme", {"metadata": {"n": huge}})
        with pytest.raises(InvalidConfigError, match="not JSON-serialisable"):
            await manager.update(
                SystemConfig, "acme", lambda config: config.metadata.update(n=huge)
            )
        assert await manager.store.get_config("acme", *SYSTEM_KEY[1:]) is None


async def test_unvalidated_field_is_caught_before_writing(manager: ConfigManager) -> None:
    config = SystemConfig.model_construct(vespa_port=0)
    with pytest.raises(InvalidConfigError) as caught:
        await manager.set_system_config(config)
    assert caught.value.field == "vespa_port"
    assert await manager.store.get_config(*SYSTEM_KEY) is None


async def test_agent_name_must_match_the_config(manager: ConfigManager) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        await manager.set_agent_config("t", "other", agent("a"))
    assert caught.value.field == "agent_name"


async def test_set_takes_the_tenant_from_the_argument_first(manager: ConfigManager) -> None:
    await manager.set_system_config(SystemConfig(tenant_id="a"), tenant_id="b")
    stored = await manager.store.get_config("b", "system", "system", "system_config")
    assert stored is not None
    assert stored.config_value["tenant_id"] == "b"


async def test_generic_get_and_set_work_for_any_registered_schema(manager: ConfigManager) -> None:
    await manager.set(agent("a", llm_model="m"), "t", "a")
    stored = await manager.get(AgentConfig, "t", "a")
    assert stored is not None
    assert stored.llm_model == "m"


async def test_stored_secret_is_intact(manager: ConfigManager) -> None:
    await manager.set_system_config(SystemConfig(llm_api_key=SECRET))  # type: ignore[arg-type]
    stored = await manager.store.get_config(*SYSTEM_KEY)
    assert stored is not None
    assert stored.config_value["llm_api_key"] == SECRET


async def test_rollback_writes_a_new_version_equal_to_the_old_one(manager: ConfigManager) -> None:
    first = await manager.set_system_config(SystemConfig(llm_model="a"))
    await manager.set_system_config(SystemConfig(llm_model="b"))
    entry = await manager.rollback(*SYSTEM_KEY, to_version=1)
    assert (entry.version, entry.config_value, entry.comment) == (
        3,
        first.config_value,
        "rollback to version 1",
    )
    assert (await manager.get_system_config()).llm_model == "a"


async def test_rollback_to_a_missing_version_raises(manager: ConfigManager) -> None:
    await manager.set_system_config(SystemConfig())
    with pytest.raises(InvalidConfigError) as caught:
        await manager.rollback(*SYSTEM_KEY, to_version=7)
    assert caught.value.field == "to_version"


async def test_rollback_to_a_tombstone_raises(
    manager: ConfigManager, store: MemoryConfigStore
) -> None:
    await manager.set_system_config(SystemConfig())
    await store.delete_config(*SYSTEM_KEY)
    await manager.set_system_config(SystemConfig())
    with pytest.raises(InvalidConfigError, match="deletion"):
        await manager.rollback(*SYSTEM_KEY, to_version=2)


async def test_rollback_to_a_version_the_schema_rejects_writes_nothing(
    manager: ConfigManager, store: MemoryConfigStore
) -> None:
    await store.set_config(*SYSTEM_KEY, {"vespa_port": -1})
    await manager.set_system_config(SystemConfig())
    with pytest.raises(InvalidConfigError):
        await manager.rollback(*SYSTEM_KEY, to_version=1)
    assert len(await store.get_config_history(*SYSTEM_KEY)) == 2


async def test_diff_lists_field_level_changes(manager: ConfigManager) -> None:
    await manager.set_system_config(SystemConfig(llm_model="a", metadata={"tags": ["x"]}))
    await manager.set_system_config(SystemConfig(llm_model="b", metadata={"tags": ["x", "y"]}))
    assert await manager.diff(*SYSTEM_KEY, 1, 2) == [
        ConfigDiff("llm_model", "a", "b"),
        ConfigDiff("metadata.tags[1]", None, "y", "added"),
    ]


async def test_diff_masks_a_rotated_secret(manager: ConfigManager) -> None:
    await manager.set_system_config(SystemConfig(llm_api_key=SECRET))  # type: ignore[arg-type]
    await manager.set_system_config(SystemConfig(llm_api_key=SECRET + "-2"))  # type: ignore[arg-type]
    assert await manager.diff(*SYSTEM_KEY, 1, 2) == [ConfigDiff("llm_api_key", "***", "***")]


async def test_diff_of_a_missing_version_names_it(manager: ConfigManager) -> None:
    await manager.set_system_config(SystemConfig())
    with pytest.raises(InvalidConfigError) as caught:
        await manager.diff(*SYSTEM_KEY, 1, 2)
    assert caught.value.field == "to_version"


def nested_list(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("depth", [150, 900, 3000])
async def test_a_config_nested_too_deep_is_invalid_config(
    manager: ConfigManager, depth: int
) -> None:
    """Never RecursionError, whatever the depth; nothing is written."""
    with pytest.raises(InvalidConfigError, match="deeper than 100 levels"):
        await manager.set_system_config(SystemConfig(metadata={"x": nested_list(depth)}))
    assert await manager.store.get_config(*SYSTEM_KEY) is None


async def test_versions_out_of_range_are_invalid_config(manager: ConfigManager) -> None:
    await manager.set_system_config(SystemConfig())
    with pytest.raises(InvalidConfigError):
        await manager.diff(*SYSTEM_KEY, 1, 2**63)
    with pytest.raises(InvalidConfigError):
        await manager.rollback(*SYSTEM_KEY, 2**64)
    with pytest.raises(InvalidConfigError):
        await manager.set_system_config(SystemConfig(), expected_version=2**63)
