"""The manager's cache: served from memory, own writes at once, other writers through the feed,
callers' changes never reaching it, and outages never turned into defaults."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from manager_stores import GatedStore, SwitchableStore
from pydantic import BaseModel

from confstore import (
    AgentConfig,
    BackendUnavailableError,
    ChangeKind,
    ConfigChangeEvent,
    ConfigManager,
    ConfigScope,
    ConfigWatch,
    InvalidConfigError,
    MemoryConfigStore,
    ModuleConfig,
    SystemConfig,
)
from confstore._typed import register_typed_config, schema_registry

FAST = 0.05
WAIT = 3.0
SYSTEM_KEY = ("default", "system", "system", "system_config")


class PlainSettings(BaseModel):
    """A plugin schema on plain pydantic: the cache cannot seal it."""

    tags: list[str] = []


def system_value(**fields: object) -> dict[str, object]:
    return SystemConfig(**fields).model_dump(mode="json")  # type: ignore[arg-type]


async def next_event(watch: ConfigWatch) -> ConfigChangeEvent:
    return await asyncio.wait_for(anext(watch), WAIT)


async def test_second_read_is_served_from_memory(switchable: SwitchableStore) -> None:
    async with ConfigManager(switchable, poll_interval=FAST) as manager:
        await manager.get_system_config("t")
        reads = switchable.reads
        await manager.get_system_config("t")
        assert switchable.reads == reads


async def test_absent_result_is_cached_too(switchable: SwitchableStore) -> None:
    async with ConfigManager(switchable, poll_interval=FAST) as manager:
        assert await manager.get_agent_config("t", "a") is None
        reads = switchable.reads
        assert await manager.get_agent_config("t", "a") is None
        assert switchable.reads == reads


async def test_own_write_is_visible_at_once(manager: ConfigManager) -> None:
    await manager.get_system_config()
    await manager.set_system_config(SystemConfig(llm_model="claude-3"))
    assert (await manager.get_system_config()).llm_model == "claude-3"


async def test_cached_read_returns_the_cached_object_without_copying(
    manager: ConfigManager,
) -> None:
    first = await manager.get_system_config()
    assert await manager.get_system_config() is first


async def test_assigning_to_a_returned_config_does_not_change_the_cache(
    manager: ConfigManager,
) -> None:
    config = await manager.get_system_config()
    config.llm_model = "changed-by-caller"
    assert (await manager.get_system_config()).llm_model == "gpt-4"


async def test_changing_a_returned_dict_in_place_does_not_change_the_cache(
    manager: ConfigManager,
) -> None:
    await manager.set_system_config(SystemConfig(metadata={"tags": ["a"]}))
    config = await manager.get_system_config()
    config.metadata["tags"].append("b")
    config.metadata["owner"] = "me"
    assert config.metadata == {"tags": ["a", "b"], "owner": "me"}
    assert (await manager.get_system_config()).metadata == {"tags": ["a"]}


async def test_changing_a_nested_model_does_not_change_the_cache(manager: ConfigManager) -> None:
    agent = AgentConfig(
        agent_name="a", module_config=ModuleConfig(module_type="predict", signature="S")
    )
    await manager.set_agent_config("t", "a", agent)
    cached = await manager.get_agent_config("t", "a")
    assert cached is not None
    cached.module_config.temperature = 0.0
    again = await manager.get_agent_config("t", "a")
    assert again is not None
    assert again.module_config.temperature == 0.7


async def test_write_by_another_handle_reaches_the_cache(
    manager: ConfigManager, store: MemoryConfigStore
) -> None:
    assert (await manager.get_system_config()).llm_model == "gpt-4"
    watch = manager.watch()
    await store.set_config(
        "default", "system", "system", "system_config", system_value(llm_model="x")
    )
    await next_event(watch)
    assert (await manager.get_system_config()).llm_model == "x"


async def test_delete_by_another_handle_reaches_the_cache(
    manager: ConfigManager, store: MemoryConfigStore
) -> None:
    agent = AgentConfig(
        agent_name="a", module_config=ModuleConfig(module_type="predict", signature="S")
    )
    await manager.set_agent_config("t", "a", agent)
    assert await manager.get_agent_config("t", "a") is not None
    watch = manager.watch()
    await store.delete_config("t", "agent", "a", "agent_config")
    while (await next_event(watch)).kind is not ChangeKind.DELETE:
        pass
    assert await manager.get_agent_config("t", "a") is None


async def test_cached_absence_ends_when_another_handle_writes(
    manager: ConfigManager, store: MemoryConfigStore
) -> None:
    assert await manager.get_agent_config("t", "a") is None
    watch = manager.watch()
    value = AgentConfig(
        agent_name="a", module_config=ModuleConfig(module_type="react", signature="S")
    ).model_dump(mode="json")
    await store.set_config("t", "agent", "a", "agent_config", value)
    await next_event(watch)
    assert await manager.get_agent_config("t", "a") is not None


async def test_watch_yields_the_entry_written(
    manager: ConfigManager, store: MemoryConfigStore
) -> None:
    watch = manager.watch()
    written = await store.set_config("t", "system", "system", "system_config", {"llm_model": "x"})
    event = await next_event(watch)
    assert (event.key, event.kind, event.version, event.entry) == (
        written.key,
        ChangeKind.SET,
        1,
        written,
    )


async def test_watch_filters_by_tenant_and_scope(
    manager: ConfigManager, store: MemoryConfigStore
) -> None:
    watch = manager.watch(tenant_id="b", scope=ConfigScope.ROUTING)
    await store.set_config("a", "routing", "routing_agent", "routing_config", {})
    await store.set_config("b", "system", "system", "system_config", {})
    await store.set_config("b", "routing", "routing_agent", "routing_config", {})
    event = await next_event(watch)
    assert (event.tenant_id, event.scope) == ("b", ConfigScope.ROUTING)


async def test_watch_reports_own_writes_too(manager: ConfigManager) -> None:
    watch = manager.watch()
    entry = await manager.set_system_config(SystemConfig())
    assert (await next_event(watch)).entry == entry


async def test_watch_ends_when_the_manager_closes(store: MemoryConfigStore) -> None:
    manager = ConfigManager(store, poll_interval=FAST)
    watch = manager.watch()
    await manager.initialize()
    await manager.close()
    assert [event async for event in watch] == []


async def test_refresh_applies_changes_without_waiting(switchable: SwitchableStore) -> None:
    async with ConfigManager(switchable, poll_interval=3600) as manager:
        await manager.get_system_config()
        await switchable.set_config(
            "default", "system", "system", "system_config", system_value(llm_model="x")
        )
        await manager.refresh()
        assert (await manager.get_system_config()).llm_model == "x"


async def test_backend_down_never_read_value_raises(switchable: SwitchableStore) -> None:
    async with ConfigManager(switchable, poll_interval=FAST) as manager:
        switchable.down = True
        with pytest.raises(BackendUnavailableError):
            await manager.get_system_config("never-read")


async def test_backend_down_before_first_use_raises(switchable: SwitchableStore) -> None:
    switchable.down = True
    manager = ConfigManager(switchable, poll_interval=FAST)
    with pytest.raises(BackendUnavailableError):
        await manager.get_system_config()
    await manager.close()


async def test_backend_down_cached_value_keeps_being_served(switchable: SwitchableStore) -> None:
    async with ConfigManager(switchable, poll_interval=FAST) as manager:
        await manager.set_system_config(SystemConfig(llm_model="claude-3"))
        switchable.down = True
        await switchable.wait_for_polls(3)
        assert (await manager.get_system_config()).llm_model == "claude-3"


async def test_unreadable_sqlite_file_raises_backend_unavailable(tmp_path: Path) -> None:
    directory = tmp_path / "not-a-file.db"
    directory.mkdir()
    manager = ConfigManager(url=f"sqlite:///{directory}")
    with pytest.raises(BackendUnavailableError):
        await manager.get_system_config()
    await manager.close()


async def test_feed_is_followed_again_after_an_outage(switchable: SwitchableStore) -> None:
    async with ConfigManager(switchable, poll_interval=FAST) as manager:
        await manager.get_system_config()
        watch = manager.watch()
        switchable.down = True
        await switchable.wait_for_polls(3)
        switchable.down = False
        await switchable.set_config(
            "default", "system", "system", "system_config", system_value(llm_model="x")
        )
        await next_event(watch)
        assert (await manager.get_system_config()).llm_model == "x"


async def test_close_stops_the_feed_task(store: MemoryConfigStore) -> None:
    manager = ConfigManager(store, poll_interval=FAST)
    await manager.get_system_config()
    assert _feed_tasks()
    await manager.close()
    assert not _feed_tasks()


async def test_without_cache_every_read_reaches_the_store(switchable: SwitchableStore) -> None:
    async with ConfigManager(switchable, cache=False) as manager:
        await manager.get_system_config()
        await manager.get_system_config()
        assert switchable.reads == 2


async def test_manager_is_usable_again_after_close(store: MemoryConfigStore) -> None:
    manager = ConfigManager(store, poll_interval=FAST)
    await manager.set_system_config(SystemConfig(llm_model="x"))
    await manager.close()
    assert (await manager.get_system_config()).llm_model == "x"
    await manager.close()


def _feed_tasks() -> list[asyncio.Task[object]]:
    return [
        task
        for task in asyncio.all_tasks()
        if task.get_name() == "confstore-manager-feed" and not task.done()
    ]


def test_manager_moves_to_a_new_event_loop_without_serving_stale_values() -> None:
    store = MemoryConfigStore()
    manager = ConfigManager(store, poll_interval=FAST)
    assert asyncio.run(manager.get_system_config()).llm_model == "gpt-4"
    asyncio.run(store.set_config(*SYSTEM_KEY, system_value(llm_model="written-in-between")))
    assert asyncio.run(manager.get_system_config()).llm_model == "written-in-between"
    asyncio.run(manager.close())


async def test_model_that_cannot_be_sealed_is_handed_out_as_copies(
    manager: ConfigManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schema_registry, "_by_name", dict(schema_registry._by_name))
    monkeypatch.setattr(schema_registry, "_by_model", dict(schema_registry._by_model))
    register_typed_config(PlainSettings, scope="system", config_key="plain", default_service="p")
    first = await manager.get(PlainSettings, "t")
    assert first is not None
    first.tags.append("changed-by-caller")
    again = await manager.get(PlainSettings, "t")
    assert again is not None
    assert again.tags == []


ORIGINAL = SystemConfig(
    llm_model="kept",
    video_processing_profiles=["b", "a"],
    metadata={"nested": {"list": [1]}, "flag": True},
)
CHANGES: list[Callable[[SystemConfig], object]] = [
    lambda config: setattr(config, "llm_model", "changed"),
    lambda config: config.metadata.__setitem__("flag", False),
    lambda config: config.metadata.__delitem__("flag"),
    lambda config: config.metadata.update(extra=1),
    lambda config: config.metadata.setdefault("new", []),
    lambda config: config.metadata.pop("nested"),
    lambda config: config.metadata.clear(),
    lambda config: config.metadata.get("nested", {}).get("list", []).append(2),
    lambda config: config.metadata.get("nested", {}).__setitem__("list", []),
    lambda config: config.video_processing_profiles.append("c"),
    lambda config: config.video_processing_profiles.sort(),
    lambda config: config.video_processing_profiles.reverse(),
    lambda config: config.video_processing_profiles.extend(["d"]),
    lambda config: config.video_processing_profiles.insert(0, "e"),
    lambda config: config.video_processing_profiles.__setitem__(slice(0, 1), ["f"]),
    lambda config: config.video_processing_profiles.__iadd__(["g"]),
]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, len(CHANGES) - 1), min_size=1, max_size=6))
def test_no_change_to_returned_configs_reaches_the_cache(changes: list[int]) -> None:
    async def scenario() -> SystemConfig:
        async with ConfigManager(MemoryConfigStore()) as manager:
            await manager.set_system_config(ORIGINAL)
            for change in changes:
                CHANGES[change](await manager.get_system_config())
            return await manager.get_system_config()

    assert asyncio.run(scenario()).model_dump() == ORIGINAL.model_dump()


async def test_read_overlapping_the_feed_never_caches_a_value_older_than_the_feed() -> None:
    store = GatedStore()
    async with ConfigManager(store, poll_interval=3600) as manager:
        await manager.get_system_config("cached")
        first_read = store.gate("racing")
        reading = asyncio.create_task(manager.get_system_config("racing"))
        await first_read.entered.wait()
        await store.set_config("racing", *SYSTEM_KEY[1:], system_value(llm_model="new"))
        await store.set_config("cached", *SYSTEM_KEY[1:], system_value(llm_model="new"))
        feed_reread = store.gate("cached")
        applying = asyncio.create_task(manager.refresh())
        await feed_reread.entered.wait()
        first_read.release.set()
        assert (await reading).llm_model == "gpt-4"
        feed_reread.release.set()
        await applying
        assert (await manager.get_system_config("racing")).llm_model == "new"


def test_store_and_url_together_are_refused() -> None:
    with pytest.raises(InvalidConfigError) as caught:
        ConfigManager(MemoryConfigStore(), url="memory://")
    assert caught.value.field == "store"


@pytest.mark.parametrize("interval", [0, -1.0])
def test_poll_interval_must_be_positive(interval: float) -> None:
    with pytest.raises(InvalidConfigError) as caught:
        ConfigManager(MemoryConfigStore(), poll_interval=interval)
    assert caught.value.field == "poll_interval"


async def test_watch_as_context_manager_stops_on_exit(manager: ConfigManager) -> None:
    async with manager.watch() as watch:
        await manager.set_system_config(SystemConfig())
        assert (await next_event(watch)).version == 1
    assert [event async for event in watch] == []
